"""The bf16 gradient check flags a gradient that points elsewhere, not one that is merely noisy."""

from __future__ import annotations

import torch

from models.gans.registry import build_gan
from speed.bf16_gradients import TERMS, gradient_errors, stylegan_gradients


def test_flags_an_unrelated_gradient_but_not_rounding_noise():
    g = torch.Generator().manual_seed(0)
    ref = {"r1": {"a": torch.randn(64, generator=g), "b": torch.randn(8, 8, generator=g),
                  "scale": torch.tensor([1e-3])}}
    cand = {"r1": {"a": ref["r1"]["a"] + 0.1 * torch.randn(64, generator=g),  # bf16-like noise: kept
                   "b": torch.randn(8, 8, generator=g),  # a wrong kernel's answer: flagged
                   "scale": torch.tensor([-5e-3])}}  # scalars are left out
    rep = gradient_errors(ref, cand, flag=0.5)["r1"]
    assert set(rep["flagged"]) == {"b"}
    assert rep["max"] > 1.0 and rep["min_cosine"] < 0.5


def test_fp32_gradients_of_every_term_are_reproducible_and_reach_both_networks():
    torch.manual_seed(0)
    spec = build_gan("stylegan_cond", res=16, cond_dim=8, size="tiny")
    G, D = spec.G.eval(), spec.D
    z, c, real = torch.randn(4, spec.z_dim), torch.eye(8)[:4], torch.randn(4, 3, 16, 16)
    a = stylegan_gradients(G, D, z, c, real, bf16=False)
    b = stylegan_gradients(G, D, z, c, real, bf16=False)
    assert tuple(a) == TERMS
    rep = gradient_errors(a, b, flag=0.5)
    assert all(r["max"] == 0.0 and not r["flagged"] for r in rep.values())
    assert a["r1"]["fromrgb.weight"].norm() > 0 and a["path_length"]["mapping.net.0.weight"].norm() > 0
