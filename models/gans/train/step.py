"""One training iteration (``n_critic`` D steps, one G step, EMA), shared by ``train_gan`` and ``bench perf train``.

Keeping the iteration in one place means the throughput ``bench perf train`` reports is the throughput of the
code that trains. The engine owns zero_grad/backward/optimiser step so it can wrap the loss calls in autocast,
average gradients across ranks, and skip (and count) a step whose loss is not finite.

The non-finite guard does not sync the host with the device: the skip happens inside fused Adam (``found_inf``,
the hook ``torch.amp.GradScaler`` uses), buffers a forward pass changed are put back with ``torch.where``, and
skipped steps are counted on the device. The count reaches ``counters`` (and the limit is checked) every
``check_every`` iterations and whenever the loop logs or checkpoints (``sync_nonfinite``). A non-fused optimiser
(e.g. an old checkpoint's settings) falls back to one sync per step.

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

from core.errors import UserError
from models.gans.losses import StyleGANLoss, WassersteinGPLoss, ema_beta, ema_update
from models.gans.registry import GanSpec
from models.gans.train.distributed import Dist, average_gradients, nonfinite_flag

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
    check_every: int | None = None  # iterations between non-finite count syncs (None: 1 on CPU, 16 on CUDA)
    guard: bool = True  # False only for FLOP counting on the meta device: no finiteness check at all

    def __post_init__(self) -> None:
        self._G_fast, self._D_fast = self.G, self.D
        # Forward passes update BatchNorm statistics (and StyleGAN's w_avg) before the loss is known to be finite:
        # keep a copy to restore when a step is skipped, so one NaN batch cannot poison them.
        self._buffers = [b for m in (self.G, self.D) if m is not None for b in m.buffers()]  # D: None (diffusion)
        self._saved = [b.detach().clone() for b in self._buffers]
        # by optimiser (D or G step): indices of the buffers that step's forward passes change (in-place BatchNorm
        # updates do not bump version counters, so the first step of each kind compares values once)
        self._mutable: dict[int, list[int]] = {}
        self._skipped: torch.Tensor | None = None  # skipped steps since the last sync_nonfinite, on the device
        self._iterations = 0
        if self.check_every is None:
            on_cpu = all(p.device.type == "cpu" for p in self.G.parameters())
            self.check_every = 1 if on_cpu else 16
        if self.compile:
            kw = {"mode": self.compile_mode} if self.compile_mode and self.compile_mode != "default" else {}
            self._G_fast = torch.compile(self.G, **kw)
            self._D_fast = torch.compile(self.D, **kw)

    def autocast(self):
        # CUDA only: on the CPU, oneDNN's bf16 double backward of a padded stride-1 conv (R1, path length) gives
        # wrong weight gradients (torch 2.14.1; python -m speed.bf16_gradients), and fp32 keeps CPU runs exact
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

    def run_step(self, opt: torch.optim.Optimizer, module: nn.Module, fn: Callable) -> dict[str, torch.Tensor]:
        """Loss, guard, backward, gradient averaging, optimiser step. The stats gain ``skipped`` (a 0/1 tensor):
        a step whose loss is not finite on some rank leaves weights, optimiser state and buffers as they were."""
        if not self.guard:
            with self.autocast():
                loss, st = fn()
            self._update(opt, module, loss)
            return st
        mutable = self._mutable.get(id(opt))
        idx = range(len(self._buffers)) if mutable is None else mutable
        if idx:
            torch._foreach_copy_([self._saved[i] for i in idx], [self._buffers[i] for i in idx])
        with self.autocast():
            loss, st = fn()
        if mutable is None:  # first step of this kind: learn which buffers its forward passes change (one sync)
            pairs = enumerate(zip(self._buffers, self._saved, strict=True))
            mutable = self._mutable[id(opt)] = [i for i, (b, saved) in pairs if not torch.equal(b, saved)]
        bad = nonfinite_flag(loss, self.dist)
        if not opt.param_groups[0].get("fused"):
            if bool(bad.item()):  # the fallback: decide on the host, before the backward
                self._restore(bad, mutable)
                opt.zero_grad(set_to_none=True)
            else:
                self._update(opt, module, loss)
        else:
            opt.found_inf = bad  # fused Adam leaves parameters, moments and step count alone where it is 1
            try:
                self._update(opt, module, loss)
            finally:
                del opt.found_inf
            self._restore(bad, mutable)
        self._skipped = bad.clone() if self._skipped is None else self._skipped.add_(bad)
        return {**st, "skipped": bad}

    def _update(self, opt: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(module, self.dist)
        opt.step()

    def _restore(self, bad: torch.Tensor, mutable: list[int]) -> None:
        """Put back the buffers this kind of step changes (BatchNorm statistics, w_avg) where ``bad`` is 1."""
        keep = bad > 0
        for i in mutable:
            self._buffers[i].copy_(torch.where(keep, self._saved[i], self._buffers[i]))

    def sync_nonfinite(self) -> int:
        """Fold the device-side count of skipped steps into ``counters`` (one host sync); raise past the limit."""
        if self._skipped is not None:
            self.counters["nonfinite"] += int(self._skipped.item())
            self._skipped.zero_()
        if self.counters["nonfinite"] > self.max_nonfinite:
            raise NonFiniteError(
                f"{self.spec.name}: {self.counters['nonfinite']} non-finite losses (limit {self.max_nonfinite}); "
                "training diverged: lower the learning rate or check the data"
            )
        return self.counters["nonfinite"]

    def iteration(self, batches: Iterator[Batch]) -> list[dict[str, torch.Tensor]]:
        """``n_critic`` D steps on fresh real batches, one G step, the EMA update. Returns the steps' stats."""
        c_ = self.counters
        spec, out = self.spec, []
        c_last = None
        if self.compile and self.compile_mode in ("reduce-overhead", "max-autotune"):
            # CUDA-graph modes reuse output memory between replays: tell them a new iteration starts, so tensors
            # kept from the last one (stats, EMA inputs) are not taken for live outputs
            torch.compiler.cudagraph_mark_step_begin()
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
        out.append(st)
        c_["g_steps"] += 1
        self.end_iteration()
        return out

    def end_iteration(self) -> None:
        """After the generator's step: the EMA copy follows it, and every ``check_every`` iterations the ranks
        agree on whether any step was non-finite."""
        spec, c_ = self.spec, self.counters
        if self.G_ema is not None:
            kimg = c_["images_seen"] / 1000
            beta = ema_beta(self.batch, spec.ema_half_life_kimg, rampup=spec.ema_rampup, kimg_seen=kimg)
            ema_update(self.G_ema, self.G, beta)
        self._iterations += 1
        if self.guard and self._iterations % self.check_every == 0:
            self.sync_nonfinite()
