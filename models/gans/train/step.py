"""One training iteration (``n_critic`` D steps, one G step, EMA), shared by ``train_gan`` and ``bench perf train``.

Keeping the iteration in one place means the throughput ``bench perf train`` reports is the throughput of the
code that trains. The engine owns zero_grad/backward/optimiser step so it can wrap the loss calls in autocast,
average gradients across ranks, and skip (and count) a step whose loss is not finite.

``torch.compile``: AOTAutograd cannot take gradients of gradients, so steps that differentiate through D or G twice
(the WGAN gradient penalty on every critic step, StyleGAN's lazy R1 and path-length steps) run the eager module;
every other step runs the compiled one. Parameters are shared, so the two stay identical.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from benchmark.errors import UserError
from models.gans.losses import StyleGANLoss, WassersteinGPLoss, ema_beta, ema_update
from models.gans.registry import GanSpec
from models.gans.train.distributed import Dist, all_ranks_finite, average_gradients

Batch = tuple[torch.Tensor, torch.Tensor | None]


class NonFiniteError(UserError):
    """Training produced too many non-finite losses."""


def new_counters() -> dict[str, Any]:
    return {"images_seen": 0, "d_steps": 0, "g_steps": 0, "batches": 0, "nonfinite": 0, "train_seconds": 0.0}


@dataclass
class Stepper:
    """Networks, optimisers and settings for running training iterations."""

    spec: GanSpec
    G: nn.Module
    D: nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    batch: int  # global batch (all ranks)
    local_batch: int
    G_ema: nn.Module | None = None
    dist: Dist = field(default_factory=Dist)
    amp: bool = False
    max_nonfinite: int = 20
    compile: bool = False
    compile_mode: str | None = None
    counters: dict[str, Any] = field(default_factory=new_counters)

    def __post_init__(self) -> None:
        self._G_fast, self._D_fast = self.G, self.D
        # Forward passes update BatchNorm statistics (and StyleGAN's w_avg) before the loss is known to be finite:
        # keep a copy to restore when a step is skipped, so one NaN batch cannot poison them.
        self._buffers = [b for m in (self.G, self.D) for b in m.buffers()]
        self._saved = [b.detach().clone() for b in self._buffers]
        if self.compile:
            kw = {"mode": self.compile_mode} if self.compile_mode and self.compile_mode != "default" else {}
            self._G_fast = torch.compile(self.G, **kw)
            self._D_fast = torch.compile(self.D, **kw)

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else nullcontext()

    # -- which module (compiled or eager) a step may use
    def _d_modules(self, step: int) -> tuple[nn.Module, nn.Module]:
        loss = self.spec.loss
        double = isinstance(loss, WassersteinGPLoss) or (
            isinstance(loss, StyleGANLoss) and loss.r1_gamma > 0 and loss.r1_every > 0 and step % loss.r1_every == 0
        )
        return self._G_fast, (self.D if double else self._D_fast)

    def _g_modules(self, step: int) -> tuple[nn.Module, nn.Module]:
        loss = self.spec.loss
        double = (
            isinstance(loss, StyleGANLoss) and loss.pl_weight > 0 and loss.pl_every > 0 and step % loss.pl_every == 0
        )
        return (self.G if double else self._G_fast), self._D_fast

    def run_step(self, opt: torch.optim.Optimizer, module: nn.Module, fn: Callable) -> dict[str, torch.Tensor] | None:
        """Loss, guard, backward, gradient averaging, optimiser step; None when the step was skipped."""
        if self._buffers:
            torch._foreach_copy_(self._saved, self._buffers)
        with self.autocast():
            loss, st = fn()
        if not all_ranks_finite(loss, self.dist):
            if self._buffers:
                torch._foreach_copy_(self._buffers, self._saved)
            opt.zero_grad(set_to_none=True)
            self.counters["nonfinite"] += 1
            if self.counters["nonfinite"] > self.max_nonfinite:
                raise NonFiniteError(
                    f"{self.spec.name}: {self.counters['nonfinite']} non-finite losses (limit {self.max_nonfinite}); "
                    "training diverged: lower the learning rate or check the data"
                )
            return None
        opt.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(module, self.dist)
        opt.step()
        return st

    def iteration(self, batches: Iterator[Batch]) -> list[dict[str, torch.Tensor]]:
        """``n_critic`` D steps on fresh real batches, one G step, the EMA update. Returns the steps' stats."""
        c_ = self.counters
        spec, out = self.spec, []
        c_last = None
        for _ in range(spec.n_critic):
            real, c = next(batches)
            c_["batches"] += 1
            c_last = c
            G, D = self._d_modules(c_["d_steps"])
            st = self.run_step(
                self.opt_D, self.D, lambda G=G, D=D, real=real, c=c: spec.loss.d_step(G, D, real, c, step=c_["d_steps"])
            )
            c_["d_steps"] += 1
            c_["images_seen"] += self.batch
            if st:
                out.append(st)
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        G, D = self._g_modules(c_["g_steps"])
        try:
            st = self.run_step(
                self.opt_G, self.G, lambda: spec.loss.g_step(G, D, c_last, n=self.local_batch, step=c_["g_steps"])
            )
        finally:
            self.D.requires_grad_(True)
        if st:
            out.append(st)
        c_["g_steps"] += 1
        if self.G_ema is not None:
            kimg = c_["images_seen"] / 1000
            beta = ema_beta(self.batch, spec.ema_half_life_kimg, rampup=spec.ema_rampup, kimg_seen=kimg)
            ema_update(self.G_ema, self.G, beta)
        return out
