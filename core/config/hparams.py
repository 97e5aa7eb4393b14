"""One typed hyper-parameter model per model family (the GANs, the diffusion model): what a preset's ``hparams``
may hold, with types and defaults.

``train.per_model.<id>.hparams`` is checked against its family's model when the config loads, and the builders
(``build_gan``, ``build_diffusion``) resolve their overrides through the same model, so a typo or a wrong type
fails before any work with one line.
Fields marked ``architecture`` shape the networks: a generator is rebuilt from them for evaluation, and resuming
with another value is refused; fields marked ``sampling`` (how a diffusion model draws) are set again when a
generator is loaded and may change on resume. ``None`` means "the family's default for this size and resolution"
(see ``models.gans.registry``, ``models.diffusion.registry``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.config.names import MODEL_NAMES
from core.errors import UserError

# Bounds are part of the type: a value outside them would pass the config and break training steps later (a NaN
# learning rate trains NaNs; z_dim 0 fails deep inside a layer). Every float must be finite (allow_inf_nan=False).
AUGMENT_OPS = ("color", "translation", "cutout")  # models.gans.diffaugment.OPS (tests hold them equal)
FIR_IMPL_NAMES = ("conv", "blend", "pool", "fold")  # models.gans.ops.FIR_IMPLS (tests hold them equal)
PositiveRate = Annotated[float, Field(gt=0.0)]
Beta = Annotated[float, Field(ge=0.0, lt=1.0)]  # Adam's moment decay: 1 or more never forgets, below 0 flips sign
Size = Annotated[int, Field(ge=1)]

def _arch(default: Any = None, **bounds: Any) -> Any:
    return Field(default, json_schema_extra={"architecture": True}, **bounds)


def _sampling(default: Any, **bounds: Any) -> Any:
    """How a trained generator draws (not what it learned): set again at load, free to change on resume."""
    return Field(default, json_schema_extra={"sampling": True}, **bounds)


class CommonHParams(BaseModel):
    """Optimiser, batch, augmentation and EMA settings shared by every family."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    lr: PositiveRate | None = None  # both networks; None: the family's reference learning rate
    g_lr: PositiveRate | None = None
    d_lr: PositiveRate | None = None
    betas: tuple[Beta, Beta] | None = None
    batch: int = Field(32, ge=1)
    augment: str | None = None  # DiffAugment policy; None: "color,translation,cutout" for StyleGAN, else "none"
    ada: bool = False
    ada_target: float = Field(0.6, gt=0.0, lt=1.0)  # target of E[sign(D(real))]: 1 is never reached, 0 always
    ema: bool | None = None  # None: on for StyleGAN only
    ema_half_life_kimg: float = Field(10.0, gt=0.0)
    ema_rampup: float | None = Field(None, gt=0.0)

    @field_validator("augment")
    @classmethod
    def _augment(cls, v: str | None) -> str | None:
        if v is None or v.strip() in ("", "none"):
            return v
        bad = [op.strip() for op in v.split(",") if op.strip() not in AUGMENT_OPS]
        if bad:
            raise ValueError(f"unknown DiffAugment op(s) {', '.join(map(repr, bad))}: use none or a comma-separated "
                             f"subset of {', '.join(AUGMENT_OPS)}")
        return v


class DCGANHParams(CommonHParams):
    z_dim: int = _arch(100, ge=1)
    base: Size | None = _arch()
    embed_dim: Size | None = _arch()


class WGANGPHParams(CommonHParams):
    z_dim: int = _arch(128, ge=1)
    base: Size | None = _arch()
    embed_dim: Size | None = _arch()
    critic_norm: Literal["layer", "batch", "none"] = _arch("layer")
    gp_weight: float = Field(10.0, ge=0.0)
    n_critic: int = Field(5, ge=1)
    drift: float = Field(0.0, ge=0.0)


class StyleGANHParams(CommonHParams):
    z_dim: Size | None = _arch()
    w_dim: Size | None = _arch()
    mapping_layers: Size | None = _arch()
    channel_base: Size | None = _arch()
    channel_max: Size | None = _arch()
    fused: bool = _arch(False)
    r1_gamma: float | None = Field(None, ge=0.0)  # None: 0.0002 * res^2 / batch
    r1_every: int = Field(16, ge=1)
    pl_weight: float | None = Field(None, ge=0.0)  # None: 2 at full size, 0 for tiny
    pl_every: int = Field(4, ge=1)
    style_mix_prob: float = Field(0.9, ge=0.0, le=1.0)
    mbstd_group: int = _arch(4, ge=1)
    fir_impl: Literal["conv", "blend", "pool", "fold"] = "conv"  # how the FIR filter runs: see models.gans.ops


class DiffusionHParams(BaseModel):
    """The conditional denoiser (``models.diffusion``): U-Net shape, noise schedule, condition dropout for
    classifier-free guidance, and how it samples. A family of its own: no discriminator, so none of the GANs'
    D-side settings. ``None``: the default for this size and resolution (``models.diffusion.registry``)."""

    model_config = ConfigDict(extra="forbid")

    lr: float | None = Field(None, gt=0.0, le=1.0)  # None: 1e-3 tiny, 2e-4 full
    betas: tuple[float, float] = (0.9, 0.99)
    batch: int = Field(32, ge=1)
    ema: bool = True
    ema_half_life_kimg: float = Field(10.0, gt=0.0)
    ema_rampup: float | None = Field(0.05, gt=0.0, le=1.0)
    patch: int | None = _arch(None, ge=1, le=8)  # pixels folded into channels first; None: 2 tiny, 1 full
    base: int | None = _arch(None, ge=4, le=1024)  # channels of the first level; None: 16 tiny, 64 full
    channel_mult: tuple[int, ...] | None = _arch(None, min_length=1, max_length=6)  # per level; None: by res
    res_blocks: int | None = _arch(None, ge=1, le=8)  # per level; None: 1 tiny, 2 full
    attention: bool | None = _arch()  # self-attention at the coarsest level; None: off tiny, on full
    embed_dim: int | None = _arch(None, ge=4, le=4096)  # time and condition embedding; None: 4 * base
    timesteps: int = _arch(1000, ge=10, le=100_000)  # T of the training schedule
    schedule: Literal["cosine", "linear"] = _arch("cosine")
    prediction: Literal["eps", "v"] = _arch("v")  # what the network predicts: v, or the noise as in DDPM
    cond_drop: float = Field(0.15, gt=0.0, lt=1.0)  # share of training steps with the null condition
    sample_steps: int = _sampling(12, ge=1, le=1000)  # DDIM steps at generation
    guidance: float = _sampling(1.0, ge=0.0, le=100.0)  # w: 0 unconditional, 1 conditional, > 1 amplified

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError(f"Adam betas must lie in [0, 1), got {v}")
        return v

    @field_validator("channel_mult")
    @classmethod
    def _mult(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None and not all(1 <= m <= 16 for m in v):
            raise ValueError(f"channel multipliers must lie in 1..16, got {list(v)}")
        return v


HPARAMS_BY_FAMILY: dict[str, type[BaseModel]] = {
    "dcgan": DCGANHParams,
    "wgan_gp": WGANGPHParams,
    "stylegan": StyleGANHParams,
    "diffusion": DiffusionHParams,
}
assert {g.removesuffix("_cond") for g in MODEL_NAMES} == set(HPARAMS_BY_FAMILY)


def _marked(mark: str) -> frozenset[str]:
    return frozenset(
        name
        for model in HPARAMS_BY_FAMILY.values()
        for name, field in model.model_fields.items()
        if (field.json_schema_extra or {}).get(mark)
    )


ARCHITECTURE_KEYS = _marked("architecture")
SAMPLING_KEYS = _marked("sampling")  # rebuilt with the architecture when a generator is loaded for evaluation


def family_of(gan: str) -> str:
    """``stylegan_cond`` -> ``stylegan``: conditional and unconditional GANs share their hyper-parameters."""
    return gan.removesuffix("_cond")


def resolve_hparams(gan: str, overrides: dict[str, Any]) -> BaseModel:
    """``overrides`` checked and completed with the family's defaults, or a UserError naming what is wrong."""
    model = HPARAMS_BY_FAMILY[family_of(gan)]
    unknown = sorted(set(overrides) - set(model.model_fields))
    if unknown:
        accepted = ", ".join(sorted(model.model_fields))
        raise UserError(f"unknown setting(s) for {gan}: {', '.join(unknown)}; accepted: {accepted}")
    try:
        return model.model_validate(overrides)
    except ValidationError as e:
        what = "; ".join(_problem(err) for err in e.errors())
        raise UserError(f"invalid setting for {gan}: {what}") from None


def _problem(err: dict[str, Any]) -> str:
    """``lr: Input should be greater than 0 (got -1)``: the key, pydantic's reason and the value given."""
    line = f"{'.'.join(map(str, err['loc']))}: {err['msg'].removeprefix('Value error, ')}"
    value = err.get("input")
    return f"{line} (got {value!r})" if isinstance(value, (int, float, str)) and not isinstance(value, bool) else line
