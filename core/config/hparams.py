"""One typed hyper-parameter model per GAN family: what a preset's ``hparams`` may hold, with types and defaults.

``train.per_model.<id>.hparams`` is checked against its family's model when the config loads, and ``build_gan``
resolves its overrides through the same model, so a typo or a wrong type fails before any work with one line.
Fields marked ``architecture`` shape the networks: a generator is rebuilt from them for evaluation, and resuming
with another value is refused. ``None`` means "the family's default for this size and resolution" (see
``models.gans.registry``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.config.names import GAN_NAMES
from core.errors import UserError


def _arch(default: Any = None) -> Any:
    return Field(default, json_schema_extra={"architecture": True})


class CommonHParams(BaseModel):
    """Optimiser, batch, augmentation and EMA settings shared by every family."""

    model_config = ConfigDict(extra="forbid")

    lr: float | None = None  # both networks; None: the family's reference learning rate
    g_lr: float | None = None
    d_lr: float | None = None
    betas: tuple[float, float] | None = None
    batch: int = Field(32, ge=1)
    augment: str | None = None  # DiffAugment policy; None: "color,translation,cutout" for StyleGAN, else "none"
    ada: bool = False
    ada_target: float = 0.6
    ema: bool | None = None  # None: on for StyleGAN only
    ema_half_life_kimg: float = 10.0
    ema_rampup: float | None = None


class DCGANHParams(CommonHParams):
    z_dim: int = _arch(100)
    base: int | None = _arch()
    embed_dim: int | None = _arch()


class WGANGPHParams(CommonHParams):
    z_dim: int = _arch(128)
    base: int | None = _arch()
    embed_dim: int | None = _arch()
    critic_norm: str = _arch("layer")
    gp_weight: float = 10.0
    n_critic: int = Field(5, ge=1)
    drift: float = 0.0


class StyleGANHParams(CommonHParams):
    z_dim: int | None = _arch()
    w_dim: int | None = _arch()
    mapping_layers: int | None = _arch()
    channel_base: int | None = _arch()
    channel_max: int | None = _arch()
    fused: bool = _arch(False)
    r1_gamma: float | None = None  # None: 0.0002 * res^2 / batch
    r1_every: int = Field(16, ge=1)
    pl_weight: float | None = None  # None: 2 at full size, 0 for tiny
    pl_every: int = Field(4, ge=1)
    style_mix_prob: float = 0.9
    mbstd_group: int = _arch(4)
    fir_impl: str = "conv"  # how the FIR filter runs (same function): see models.gans.ops


HPARAMS_BY_FAMILY: dict[str, type[CommonHParams]] = {
    "dcgan": DCGANHParams,
    "wgan_gp": WGANGPHParams,
    "stylegan": StyleGANHParams,
}
assert {g.removesuffix("_cond") for g in GAN_NAMES} == set(HPARAMS_BY_FAMILY)

ARCHITECTURE_KEYS = frozenset(
    name
    for model in HPARAMS_BY_FAMILY.values()
    for name, field in model.model_fields.items()
    if (field.json_schema_extra or {}).get("architecture")
)


def family_of(gan: str) -> str:
    """``stylegan_cond`` -> ``stylegan``: conditional and unconditional GANs share their hyper-parameters."""
    return gan.removesuffix("_cond")


def resolve_hparams(gan: str, overrides: dict[str, Any]) -> CommonHParams:
    """``overrides`` checked and completed with the family's defaults, or a UserError naming what is wrong."""
    model = HPARAMS_BY_FAMILY[family_of(gan)]
    unknown = sorted(set(overrides) - set(model.model_fields))
    if unknown:
        accepted = ", ".join(sorted(model.model_fields))
        raise UserError(f"unknown setting(s) for {gan}: {', '.join(unknown)}; accepted: {accepted}")
    try:
        return model.model_validate(overrides)
    except ValidationError as e:
        what = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise UserError(f"invalid setting for {gan}: {what}") from None
