"""GAN objectives as small loss objects the training engine drives.

Contract (the same for all models; `c` is None for unconditional models):

    loss.d_step(G, D, real, c, *, step) -> (loss, stats)   # D/critic objective for one batch of reals
    loss.g_step(G, D, c, *, n, step)    -> (loss, stats)   # G objective for n fresh samples (c: real conditions)

`loss` is a scalar fp32 tensor to call .backward() on; the engine owns zero_grad/backward/optimiser step, so it
can wrap the calls in autocast, wrap G and D in DDP (each step calls each module's forward, never `.module`), and
skip a step whose loss is not finite. `stats` maps names to detached 0-dim tensors (no host sync; call .item()
when logging). `step` is the engine's counter of D steps (for d_step) or G steps (for g_step): lazy regularisers
run when step % every == 0 and are scaled by `every`. Fakes for D are made under no_grad. Augmentation (if any)
is applied to real and fake images before every D call; with ADA its probability is `loss.ada.p`.
Loss objects carry small state (path-length mean, ADA p): save it with `state_dict()`.

Engine notes: freeze D (`D.requires_grad_(False)`) around g_step so D's weights get no gradients; R1, GP and
path-length use double backward (autograd.grad with create_graph), which torch.compile'd modules do not support,
so on those steps pass the eager modules (they share parameters with the compiled ones). Under DDP, call each
wrapped module's forward (never `.module`); style mixing therefore lives inside G's forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .ada import AdaptiveAugment
from .diffaugment import DiffAugment

Stats = dict[str, torch.Tensor]


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _take(c: torch.Tensor | None, k: int) -> torch.Tensor | None:
    return None if c is None else c[:k]


# --------------------------------------------------------------------------------------- penalties (pure)


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, c: torch.Tensor | None,
                     augment=None) -> tuple[torch.Tensor, torch.Tensor]:
    """WGAN-GP term E[(||grad_x D(x_hat)|| - 1)^2] on x_hat = e*real + (1-e)*fake, e ~ U(0,1) per sample.

    Returns (penalty, mean gradient norm). Built with create_graph so the penalty trains D.
    """
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = D(augment(x_hat) if augment else x_hat, c)
    (grad,) = torch.autograd.grad(out.float().sum(), x_hat, create_graph=True)
    norm = grad.float().flatten(1).norm(dim=1)
    return (norm - 1).square().mean(), norm.detach().mean()


def r1_penalty(D: nn.Module, real: torch.Tensor, c: torch.Tensor | None,
               augment=None) -> tuple[torch.Tensor, torch.Tensor]:
    """R1: per-sample ||grad_x D(x)||^2 on reals (before augmentation). Returns (penalties (N,), logits (N,))."""
    x = real.detach().requires_grad_(True)
    logits = D(augment(x) if augment else x, c).float()
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return grad.float().square().sum(dim=(1, 2, 3)), logits


def path_lengths(img: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
    """Per-sample ||J_w^T y|| for y ~ N(0, 1/(H W)) (StyleGAN2 path-length), averaged over the ws layers."""
    noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    (grad,) = torch.autograd.grad((img.float() * noise.float()).sum(), ws, create_graph=True)
    return grad.float().square().sum(dim=2).mean(dim=1).sqrt()


# ------------------------------------------------------------------------------------------------ EMA


def ema_beta(batch_size: int, half_life_kimg: float = 10.0, *, rampup: float | None = None,
             kimg_seen: float | None = None) -> float:
    """Per-step EMA decay for a half-life in thousands of images (optionally ramped up early in training)."""
    half_life = half_life_kimg * 1000.0
    if rampup is not None and kimg_seen is not None:
        half_life = min(half_life, kimg_seen * 1000.0 * rampup)
    return 0.5 ** (batch_size / max(half_life, 1e-8))


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """G_ema <- beta * G_ema + (1 - beta) * G for parameters; buffers (BN stats, w_avg) are copied."""
    G = getattr(G, "module", G)
    pe = [p for p in G_ema.parameters()]
    pg = [p.detach() for p in G.parameters()]
    if pe:
        torch._foreach_lerp_(pe, pg, 1.0 - beta)
    be, bg = list(G_ema.buffers()), list(G.buffers())
    if len(be) != len(bg):
        raise ValueError(f"G_ema has {len(be)} buffers, G {len(bg)}: not copies of one network")
    if be:
        torch._foreach_copy_(be, bg)  # one multi-tensor launch, not one copy kernel per buffer


# ------------------------------------------------------------------------------------------------ losses


@dataclass
class GanLoss:
    """Shared plumbing: latent sampling, augmentation, state. Subclasses define d_step and g_step."""

    z_dim: int
    augment: DiffAugment | None = None
    ada: AdaptiveAugment | None = None
    g_kwargs: dict | None = None  # extra keyword arguments for G during training (e.g. style mixing)

    def sample_z(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randn(n, self.z_dim, device=device)

    def aug_p(self) -> float | torch.Tensor:
        return self.ada.p if self.ada is not None else 1.0

    def run_G(self, G: nn.Module, c: torch.Tensor | None, n: int) -> torch.Tensor:
        return G(self.sample_z(n, _device(G)), c, **(self.g_kwargs or {}))

    def run_D(self, D: nn.Module, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if self.augment is not None and self.augment.ops:
            x = self.augment(x, self.aug_p())
        return D(x, c).float().reshape(-1)

    def _aug_fn(self):
        if self.augment is None or not self.augment.ops:
            return None
        return lambda x: self.augment(x, self.aug_p())

    def _base_stats(self) -> Stats:
        on = self.augment is not None and bool(self.augment.ops)
        return {"aug_p": torch.as_tensor(self.aug_p()).detach().float()} if on else {}

    def state_dict(self) -> dict:
        return {"ada": self.ada.state_dict()} if self.ada is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.ada is not None and "ada" in state:
            self.ada.load_state_dict(state["ada"])

    def _real_fake_logits(self, G, D, real, c) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fakes made under no_grad, D logits on reals, D logits on fakes); ADA sees the real logits."""
        with torch.no_grad():
            fake = self.run_G(G, c, real.shape[0])
        lr, lf = self.run_D(D, real, c), self.run_D(D, fake, c)
        if self.ada is not None:
            self.ada.observe(lr)
        return fake, lr, lf

    def d_step(self, G, D, real, c, *, step: int = 0) -> tuple[torch.Tensor, Stats]:
        raise NotImplementedError

    def g_step(self, G, D, c, *, n: int | None = None, step: int = 0) -> tuple[torch.Tensor, Stats]:
        raise NotImplementedError

    @staticmethod
    def _n(c: torch.Tensor | None, n: int | None) -> int:
        if n is None:
            if c is None:
                raise ValueError("g_step needs n for an unconditional model")
            return c.shape[0]
        return n


@dataclass
class BCELoss(GanLoss):
    """DCGAN: D minimises BCE-with-logits (real=1, fake=0); G the non-saturating BCE(D(G(z)), 1)."""

    def d_step(self, G, D, real, c, *, step: int = 0):
        _, lr, lf = self._real_fake_logits(G, D, real, c)
        loss = F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr)) + \
            F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf))
        return loss, {"loss/D": loss.detach(), "D/real": lr.detach().mean(), "D/fake": lf.detach().mean(),
                      **self._base_stats()}

    def g_step(self, G, D, c, *, n: int | None = None, step: int = 0):
        lf = self.run_D(D, self.run_G(G, c, self._n(c, n)), c)
        loss = F.binary_cross_entropy_with_logits(lf, torch.ones_like(lf))
        return loss, {"loss/G": loss.detach()}


@dataclass
class WassersteinGPLoss(GanLoss):
    """WGAN-GP: critic minimises E[D(fake)] - E[D(real)] + gp_weight * GP (+ drift * E[D(real)^2])."""

    gp_weight: float = 10.0
    drift: float = 0.0

    def d_step(self, G, D, real, c, *, step: int = 0):
        fake, lr, lf = self._real_fake_logits(G, D, real, c)
        gp, gnorm = gradient_penalty(D, real, fake, c, self._aug_fn())
        wdist = lr.mean() - lf.mean()
        loss = -wdist + self.gp_weight * gp
        if self.drift:
            loss = loss + self.drift * lr.square().mean()
        return loss, {"loss/D": loss.detach(), "D/real": lr.detach().mean(), "D/fake": lf.detach().mean(),
                      "D/wdist": wdist.detach(), "D/gp": gp.detach(), "D/grad_norm": gnorm, **self._base_stats()}

    def g_step(self, G, D, c, *, n: int | None = None, step: int = 0):
        lf = self.run_D(D, self.run_G(G, c, self._n(c, n)), c)
        loss = -lf.mean()
        return loss, {"loss/G": loss.detach()}


@dataclass
class StyleGANLoss(GanLoss):
    """Non-saturating logistic loss with lazy R1 on D and an optional lazy path-length regulariser on G."""

    r1_gamma: float = 10.0
    r1_every: int = 16
    pl_weight: float = 0.0
    pl_every: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01

    def __post_init__(self):
        self.pl_mean = torch.zeros(())

    def d_step(self, G, D, real, c, *, step: int = 0):
        with torch.no_grad():
            fake = self.run_G(G, c, real.shape[0])
        lf = self.run_D(D, fake, c)
        stats: Stats = {}
        do_r1 = self.r1_gamma > 0 and self.r1_every > 0 and step % self.r1_every == 0
        if do_r1:
            r1, lr = r1_penalty(D, real, c, self._aug_fn())
            reg = r1.mean() * (self.r1_gamma / 2) * self.r1_every
            stats["D/r1"] = r1.detach().mean()
        else:
            lr = self.run_D(D, real, c)
            reg = 0.0
        if self.ada is not None:
            self.ada.observe(lr)
        main = F.softplus(lf).mean() + F.softplus(-lr).mean()
        loss = main + reg
        stats.update({"loss/D": main.detach(), "D/real": lr.detach().mean(), "D/fake": lf.detach().mean(),
                      "D/real_sign": lr.detach().sign().mean(), **self._base_stats()})
        return loss, stats

    def g_step(self, G, D, c, *, n: int | None = None, step: int = 0):
        n = self._n(c, n)
        lf = self.run_D(D, self.run_G(G, c, n), c)
        loss = F.softplus(-lf).mean()
        stats: Stats = {"loss/G": loss.detach()}
        if self.pl_weight > 0 and self.pl_every > 0 and step % self.pl_every == 0:
            k = max(1, n // self.pl_batch_shrink)
            dev = _device(G)
            img, ws = G(self.sample_z(k, dev), _take(c, k), return_ws=True, **(self.g_kwargs or {}))
            lengths = path_lengths(img, ws)
            self.pl_mean = self.pl_mean.to(dev)
            batch_mean = lengths.detach().mean()
            pl_mean = self.pl_mean.lerp(batch_mean, self.pl_decay)
            # a non-finite batch (its step is skipped) must not poison the running mean for every later step
            self.pl_mean = torch.where(torch.isfinite(batch_mean), pl_mean, self.pl_mean).detach()
            pen = (lengths - pl_mean).square().mean()
            loss = loss + pen * self.pl_weight * self.pl_every
            stats.update({"G/pl_penalty": pen.detach(), "G/pl_mean": self.pl_mean})
        return loss, stats

    def state_dict(self) -> dict:
        return {**super().state_dict(), "pl_mean": self.pl_mean.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "pl_mean" in state:
            self.pl_mean = state["pl_mean"].clone()
