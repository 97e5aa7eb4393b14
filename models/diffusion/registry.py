"""``build_diffusion(name, res=..., cond_dim=..., size=...) -> DiffusionSpec``: the diffusion model, ready to train.

A DiffusionSpec has the fields the training engine reads from a GanSpec (generator, optimiser settings, EMA,
batch, resolved hyper-parameters) with no discriminator (``D`` and ``d_opt`` are None) and a denoising loss in
place of the adversarial one; ``models.diffusion.step.DenoiserStepper`` runs its iterations.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from core.config.hparams import resolve_hparams
from core.config.names import DIFFUSION_NAMES
from core.errors import UserError
from models.diffusion.generator import DiffusionGenerator
from models.diffusion.objective import DenoisingLoss
from models.diffusion.unet import UNet
from models.gans.registry import SIZES, OptimSpec

MULTIPLIERS = (1, 2, 2, 2)  # channel multiplier per level by default: at most four levels
COARSEST = 4  # px of the lowest U-Net level by default


@dataclass
class DiffusionSpec:
    """A built diffusion model: the generator (denoiser + sampler), its loss and training settings."""

    name: str
    res: int
    cond_dim: int
    size: str
    G: DiffusionGenerator
    loss: DenoisingLoss
    z_dim: int
    g_opt: OptimSpec
    has_ema: bool = True
    ema_half_life_kimg: float = 10.0
    ema_rampup: float | None = 0.05
    batch: int = 32
    hparams: dict[str, Any] = field(default_factory=dict)
    D: None = None  # no discriminator
    d_opt: None = None
    n_critic: int = 1

    @property
    def conditional(self) -> bool:
        return self.cond_dim > 0

    def make_optimizers(self) -> tuple[torch.optim.Adam, None]:
        return self.g_opt.make(self.G.parameters()), None

    def make_G_ema(self) -> nn.Module:
        return copy.deepcopy(self.G).eval().requires_grad_(False)


def default_multipliers(res: int) -> tuple[int, ...]:
    """One level per halving of the (patched) grid of ``res`` px down to 4 px, at most four levels."""
    levels = 1
    while levels < len(MULTIPLIERS) and res % 2**levels == 0 and res // 2**levels >= COARSEST:
        levels += 1
    return MULTIPLIERS[:levels]


def build_diffusion(name: str, *, res: int, cond_dim: int, size: Literal["tiny", "full"] = "full",
                    **overrides: Any) -> DiffusionSpec:
    """Build one of DIFFUSION_NAMES; overrides are typed in ``core.config.hparams.DiffusionHParams``."""
    if name not in DIFFUSION_NAMES:
        raise UserError(f"unknown diffusion model {name!r}; choose one of {', '.join(DIFFUSION_NAMES)}")
    if size not in SIZES:
        raise UserError(f"unknown size {size!r}; choose tiny or full")
    if cond_dim <= 0:
        raise UserError(f"{name} is conditional: give cond_dim > 0 (the condition vector's length)")
    h = resolve_hparams(name, overrides).model_dump()
    tiny = size == "tiny"
    base, patch = h["base"] or (16 if tiny else 64), h["patch"] or (2 if tiny else 1)
    if res % patch:
        raise UserError(f"{name} at {res} px: the resolution is not a multiple of patch {patch}")
    mult = tuple(h["channel_mult"] or default_multipliers(res // patch))
    if (res // patch) % 2 ** (len(mult) - 1):
        raise UserError(f"{name} at {res} px: {res // patch} px patches do not halve {len(mult) - 1} times")
    h.update(base=base, patch=patch, channel_mult=list(mult),
             res_blocks=h["res_blocks"] or (1 if tiny else 2),
             attention=(not tiny) if h["attention"] is None else h["attention"],
             embed_dim=h["embed_dim"] or 4 * base, lr=h["lr"] or (1e-3 if tiny else 2e-4), betas=list(h["betas"]))
    net = UNet(res, cond_dim, base, mult, h["res_blocks"], h["attention"], h["embed_dim"], patch)
    G = DiffusionGenerator(net, res=res, timesteps=h["timesteps"], schedule=h["schedule"],
                           prediction=h["prediction"], sample_steps=h["sample_steps"], guidance=h["guidance"])
    loss = DenoisingLoss(h["timesteps"], h["prediction"], h["cond_drop"])
    opt = OptimSpec(h["lr"], tuple(h["betas"]))
    return DiffusionSpec(name=name, res=res, cond_dim=cond_dim, size=size, G=G, loss=loss, z_dim=G.z_dim, g_opt=opt,
                         has_ema=h["ema"], ema_half_life_kimg=h["ema_half_life_kimg"], ema_rampup=h["ema_rampup"],
                         batch=h["batch"], hparams=h)
