"""Typed GAN hyper-parameters: one pydantic model per family, checked when the config loads and when a GAN is built."""

from __future__ import annotations

import pytest

from core.config import load_config
from core.config.hparams import ARCHITECTURE_KEYS, HPARAMS_BY_FAMILY, resolve_hparams
from core.config.names import MODEL_NAMES
from core.errors import UserError
from models.gans.registry import build_gan

COMMON = ["lr", "g_lr", "d_lr", "betas", "batch", "augment", "ada", "ada_target", "ema", "ema_half_life_kimg",
          "ema_rampup"]


def test_architecture_keys_are_the_settings_that_shape_the_networks():
    assert ARCHITECTURE_KEYS == {"z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "fused", "base",
                                 "embed_dim", "critic_norm", "mbstd_group",
                                 # the diffusion model's U-Net and schedule (tests/test_diffusion.py)
                                 "patch", "channel_mult", "res_blocks", "attention", "timesteps", "schedule",
                                 "prediction"}


def test_every_model_has_a_family_model():
    assert {g.removesuffix("_cond") for g in MODEL_NAMES} == set(HPARAMS_BY_FAMILY)


@pytest.mark.parametrize(
    ("gan", "own"),
    [
        ("dcgan", ["z_dim", "base", "embed_dim", "n_critic"]),
        ("wgan_gp_cond", ["z_dim", "base", "embed_dim", "critic_norm", "gp_weight", "n_critic", "drift"]),
        ("stylegan", ["z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "fused", "r1_gamma",
                      "r1_every", "pl_weight", "pl_every", "style_mix_prob", "mbstd_group", "fir_impl", "n_critic"]),
    ],
)
def test_resolved_hparams_keep_their_order_and_fill_every_default(gan, own):
    """train_config.json and checkpoint meta list the same keys in the same order as before the typed models."""
    spec = build_gan(gan, res=32, cond_dim=4 if gan.endswith("_cond") else 0, size="tiny")
    assert list(spec.hparams) == COMMON + own
    assert spec.hparams["batch"] == 32 and spec.hparams["ada"] is False
    assert None not in (spec.hparams["z_dim"], spec.hparams["augment"], spec.hparams["ema"])


def test_values_are_typed():
    h = resolve_hparams("stylegan_cond", {"betas": [0.0, 0.99], "r1_every": "8", "fused": True})
    assert h.betas == (0.0, 0.99) and h.r1_every == 8 and h.fused is True
    with pytest.raises(UserError, match="invalid setting for stylegan_cond: r1_every"):
        resolve_hparams("stylegan_cond", {"r1_every": "often"})
    with pytest.raises(UserError, match="unknown setting.*gp_weight.*accepted"):
        resolve_hparams("dcgan", {"gp_weight": 5.0})  # a WGAN-GP setting on a DCGAN


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.per_model.dcgan.hparams={bogus: 1}", "dcgan.hparams: unknown setting.*bogus"),
        ("train.per_model.stylegan_cond+cnn.hparams={channel_max: lots}", r"stylegan_cond\+cnn.hparams.*channel_max"),
        ("train.per_model.wgan_gp.hparams={w_dim: 8}", "wgan_gp.hparams: unknown setting.*w_dim"),
    ],
)
def test_a_bad_hparam_fails_when_the_config_loads(override, message):
    with pytest.raises(UserError, match=message):
        load_config("cpu", overrides=[override])


def test_good_hparams_load_and_reach_the_built_gan():
    cfg = load_config("cpu", overrides=["train.per_model.stylegan_cond+pca.hparams={mbstd_group: 2}"])
    m = cfg.train.for_model("stylegan_cond+pca")
    spec = build_gan("stylegan_cond", res=32, cond_dim=4, size="tiny", **m.hparams)
    assert spec.hparams["mbstd_group"] == 2
