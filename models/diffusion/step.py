"""One training iteration of a diffusion model in the GANs' engine: a denoising step, then the EMA update.

``DenoiserStepper`` is the engine's ``Stepper`` with a different iteration: one real batch, one optimiser step
on the denoising loss, no discriminator. Everything around it is shared: the non-finite guard (a step whose loss is
not finite leaves weights and Adam state untouched, counted on the device), gradient averaging across torchrun
ranks, the counters that checkpoints and resumes carry, and EMA by a half-life in kimg. Denoiser steps are
counted as ``g_steps``; ``d_steps`` stays 0. Under ``compile`` the denoiser network is compiled (sampling is not
trained, so the generator's own forward never needs to be).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from models.gans.train.step import Batch, Stepper


@dataclass
class DenoiserStepper(Stepper):
    """``spec`` is a DiffusionSpec (``D``, ``opt_D``: None); ``iteration`` returns one step's stats."""

    def __post_init__(self) -> None:
        compile_net, self.compile = self.compile, False  # the engine would compile G's sampling forward
        super().__post_init__()
        self.compile = compile_net
        net = self.G.net
        if compile_net:
            kw = {"mode": self.compile_mode} if self.compile_mode and self.compile_mode != "default" else {}
            net = torch.compile(net, **kw)
        self._net = net

    def iteration(self, batches: Iterator[Batch]) -> list[dict[str, torch.Tensor]]:
        c_, spec = self.counters, self.spec
        if self.compile and self.compile_mode in ("reduce-overhead", "max-autotune"):
            torch.compiler.cudagraph_mark_step_begin()
        real, c = next(batches)
        c_["batches"] += 1
        st = self.run_step(self.opt_G, self.G, lambda: spec.loss.step(self._net, self.G.alphas, real, c))
        c_["g_steps"] += 1
        c_["images_seen"] += self.batch
        self.end_iteration()
        return [st]
