"""One entry point for the six GANs: build_gan(name, res=..., cond_dim=..., size=...) -> GanSpec.

A GanSpec carries everything a training engine needs besides data: the two networks, the loss object (see
`models.gans.losses` for the d_step/g_step contract), optimiser settings (already adjusted for lazy
regularisation), latent size, critic steps per G step, whether to keep a G_ema and with which half-life, and the
resolved hyper-parameters (``core.config.hparams`` completed with size- and resolution-dependent defaults,
as a flat dict, safe to write to config/stats files).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from core.config.hparams import family_of, resolve_hparams
from core.config.names import GAN_NAMES
from core.errors import UserError

from .ada import AdaptiveAugment
from .dcgan import build_dcgan
from .diffaugment import DiffAugment
from .losses import BCELoss, GanLoss, StyleGANLoss, WassersteinGPLoss
from .ops import FIR_IMPLS
from .stylegan import StyleDiscriminator, StyleGenerator
from .wgan_gp import build_wgan_gp

MODELS = GAN_NAMES
SIZES = ("tiny", "full")


@dataclass(frozen=True)
class OptimSpec:
    """Adam settings for one network."""

    lr: float
    betas: tuple[float, float]
    eps: float = 1e-8

    def make(self, params) -> torch.optim.Adam:
        """Fused Adam where the parameters live on a CPU or CUDA device: one kernel per step, and it can skip a
        step on the device (``found_inf``), so the engine's non-finite guard needs no host sync."""
        params = list(params)
        fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
        return torch.optim.Adam(params, lr=self.lr, betas=self.betas, eps=self.eps, fused=fused or None)


@dataclass
class GanSpec:
    """A built GAN: networks, loss, optimiser settings and hyper-parameters."""

    name: str
    res: int
    cond_dim: int
    size: str
    G: nn.Module
    D: nn.Module
    loss: GanLoss
    z_dim: int
    g_opt: OptimSpec
    d_opt: OptimSpec
    n_critic: int = 1  # D steps per G step
    has_ema: bool = False
    ema_half_life_kimg: float = 10.0
    ema_rampup: float | None = None
    batch: int = 32
    hparams: dict[str, Any] = field(default_factory=dict)

    @property
    def conditional(self) -> bool:
        return self.cond_dim > 0

    def make_optimizers(self) -> tuple[torch.optim.Adam, torch.optim.Adam]:
        return self.g_opt.make(self.G.parameters()), self.d_opt.make(self.D.parameters())

    def make_G_ema(self) -> nn.Module:
        """A frozen copy of G for the exponential moving average (update with losses.ema_update)."""
        return copy.deepcopy(self.G).eval().requires_grad_(False)


def build_gan(name: str, *, res: int, cond_dim: int = 0, size: Literal["tiny", "full"] = "full",
              **overrides: Any) -> GanSpec:
    """Build one of MODELS. `size="tiny"` gives small channel counts for CPU tests and demos.

    Overrides tune architecture and training settings, typed per family in ``core.config.hparams``; unknown or
    ill-typed ones raise UserError.
    """
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if size not in SIZES:
        raise UserError(f"unknown size {size!r}; choose tiny or full")
    if name.endswith("_cond") and cond_dim <= 0:
        raise UserError(f"{name} is conditional: give cond_dim > 0 (the condition vector's length)")
    if not name.endswith("_cond") and cond_dim != 0:
        raise UserError(f"{name} is unconditional but cond_dim={cond_dim}; use {name}_cond for a condition")
    h = resolve_hparams(name, overrides).model_dump()
    tiny = size == "tiny"
    fam = family_of(name)
    augment = DiffAugment(h["augment"] if h["augment"] is not None else
                          ("color,translation,cutout" if fam == "stylegan" else "none"))
    ada = AdaptiveAugment(target=h["ada_target"], interval=4) if h["ada"] else None
    if ada is not None and not augment.ops:
        raise UserError("ada=True needs an augmentation policy (augment='color,translation,cutout')")

    if fam == "dcgan":
        G, D = build_dcgan(res=res, cond_dim=cond_dim, tiny=tiny, z_dim=h["z_dim"], base=h["base"],
                           embed_dim=h["embed_dim"])
        loss: GanLoss = BCELoss(z_dim=h["z_dim"], augment=augment, ada=ada)
        lr, betas, n_critic, z_dim = 2e-4, (0.5, 0.999), 1, h["z_dim"]
        g_lr = d_lr = h["lr"] or lr
        has_ema = bool(h["ema"])
    elif fam == "wgan_gp":
        G, D = build_wgan_gp(res=res, cond_dim=cond_dim, tiny=tiny, z_dim=h["z_dim"], base=h["base"],
                             embed_dim=h["embed_dim"], critic_norm=h["critic_norm"])
        loss = WassersteinGPLoss(z_dim=h["z_dim"], augment=augment, ada=ada, gp_weight=h["gp_weight"],
                                 drift=h["drift"])
        lr, betas, n_critic, z_dim = 1e-4, (0.0, 0.9), int(h["n_critic"]), h["z_dim"]
        g_lr = d_lr = h["lr"] or lr
        has_ema = bool(h["ema"])
    else:
        if res < 8 or res > 1024 or 2 ** int(math.log2(res)) != res:
            raise UserError(f"StyleGAN resolution must be a power of two from 8 to 1024, got {res}")
        if h["fir_impl"] not in FIR_IMPLS:
            raise UserError(f"fir_impl must be one of {', '.join(FIR_IMPLS)}, got {h['fir_impl']!r}")
        z_dim = h["z_dim"] or (64 if tiny else 512)
        w_dim = h["w_dim"] or (64 if tiny else 512)
        h.update(z_dim=z_dim, w_dim=w_dim,
                 mapping_layers=h["mapping_layers"] or (2 if tiny else 8),
                 channel_base=h["channel_base"] or (256 if tiny else (32768 if res >= 512 else 16384)),
                 channel_max=h["channel_max"] or (32 if tiny else 512),
                 r1_gamma=h["r1_gamma"] if h["r1_gamma"] is not None else 0.0002 * res**2 / h["batch"],
                 pl_weight=h["pl_weight"] if h["pl_weight"] is not None else (0.0 if tiny else 2.0))
        G = StyleGenerator(res=res, z_dim=z_dim, w_dim=w_dim, cond_dim=cond_dim, mapping_layers=h["mapping_layers"],
                           channel_base=h["channel_base"], channel_max=h["channel_max"], fused=h["fused"],
                           fir_impl=h["fir_impl"])
        D = StyleDiscriminator(res=res, cond_dim=cond_dim, channel_base=h["channel_base"],
                               channel_max=h["channel_max"], mbstd_group=h["mbstd_group"], fir_impl=h["fir_impl"])
        loss = StyleGANLoss(z_dim=z_dim, augment=augment, ada=ada, g_kwargs={"style_mix_prob": h["style_mix_prob"]},
                            r1_gamma=h["r1_gamma"], r1_every=h["r1_every"], pl_weight=h["pl_weight"],
                            pl_every=h["pl_every"])
        lr, betas, n_critic = 0.0025, (0.0, 0.99), 1
        g_lr = d_lr = h["lr"] or lr
        has_ema = True if h["ema"] is None else bool(h["ema"])

    g_lr, d_lr = h["g_lr"] or g_lr, h["d_lr"] or d_lr
    betas = tuple(h["betas"]) if h["betas"] is not None else betas
    g_opt, d_opt = OptimSpec(g_lr, betas), OptimSpec(d_lr, betas)
    if fam == "stylegan":  # lazy regularisation: scale Adam so the effective update matches per-step regularising
        g_opt = _lazy(g_opt, h["pl_every"] if h["pl_weight"] > 0 else 0)
        d_opt = _lazy(d_opt, h["r1_every"] if h["r1_gamma"] > 0 else 0)
    h.update(z_dim=z_dim, n_critic=n_critic, augment=",".join(augment.ops) or "none", ema=has_ema)
    return GanSpec(name=name, res=res, cond_dim=cond_dim, size=size, G=G, D=D, loss=loss, z_dim=z_dim,
                   g_opt=g_opt, d_opt=d_opt, n_critic=n_critic, has_ema=has_ema,
                   ema_half_life_kimg=h["ema_half_life_kimg"], ema_rampup=h["ema_rampup"], batch=h["batch"],
                   hparams=h)


def _lazy(opt: OptimSpec, every: int) -> OptimSpec:
    if every <= 1:
        return opt
    r = every / (every + 1)
    return OptimSpec(opt.lr * r, (opt.betas[0] ** r, opt.betas[1] ** r), opt.eps)
