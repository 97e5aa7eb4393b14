"""Checkpoints written before the layering refactor (``tests/data/checkpoints``, made by the code of 4b0ff1d with
tiny networks) still load, and their generators still draw the same images from the same inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.gans.train.checkpoint import load_generator

DATA = Path(__file__).parent / "data" / "checkpoints"


def draw(G, gan: str, inputs: dict) -> torch.Tensor:
    if gan.startswith("stylegan"):  # the stored per-pixel noise, not fresh noise
        return G(inputs["z"], inputs["c"], noise_mode="const")
    return G(inputs["z"], inputs["c"]) if inputs["c"] is not None else G(inputs["z"])


@pytest.mark.parametrize("gan", ["dcgan", "wgan_gp_cond", "stylegan_cond"])
def test_a_checkpoint_from_before_the_refactor_loads_and_draws_the_same_images(gan):
    G, meta = load_generator(DATA / gan)
    expected = torch.load(DATA / gan / "expected.pt", weights_only=True)
    with torch.no_grad():
        images = draw(G, gan, expected)
    # same machine: identical; another CPU type may round the last bits of a convolution differently
    torch.testing.assert_close(images, expected["images"], rtol=1e-5, atol=1e-6)
    assert meta["images_seen"] == 64 and meta["checkpoint"] == "ckpt-000000064.pt"
    assert meta["ema"] == (gan == "stylegan_cond")  # the stylegan fixture's G_ema differs from its G


def test_the_fixture_tells_g_ema_from_g():
    """Loading G instead of G_ema gives other images: the comparison above can fail."""
    G, _ = load_generator(DATA / "stylegan_cond", ema=False)
    expected = torch.load(DATA / "stylegan_cond" / "expected.pt", weights_only=True)
    with torch.no_grad():
        images = draw(G, "stylegan_cond", expected)
    assert not torch.allclose(images, expected["images"], rtol=1e-5, atol=1e-6)
