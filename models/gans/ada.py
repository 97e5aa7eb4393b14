"""Adaptive augmentation probability (Karras et al. 2020, ADA heuristic r_t = E[sign(D(real))]).

Every `interval` D steps, p moves by (images seen) / (speed_kimg * 1000) toward more augmentation when
r_t > target (D over-confident on reals, i.e. over-fitting) and toward less otherwise. All state is tensors on the
device (no host sync per step); under torch.distributed the accumulators are all-reduced so every rank holds
the same p.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class AdaptiveAugment:
    """p in [0, 1], updated from the sign of D's logits on real images."""

    def __init__(self, *, target: float = 0.6, interval: int = 4, speed_kimg: float = 500.0, p_init: float = 0.0,
                 device: torch.device | str = "cpu"):
        self.target, self.interval, self.speed_kimg = target, interval, speed_kimg
        self.p = torch.tensor(float(p_init), device=device)
        self._acc = torch.zeros(2, device=device)  # sum of signs, count
        self._calls = 0
        self.last_rt = torch.zeros((), device=device)

    def to(self, device: torch.device | str) -> AdaptiveAugment:
        self.p, self._acc = self.p.to(device), self._acc.to(device)
        return self

    def observe(self, real_logits: torch.Tensor) -> None:
        """Accumulate sign(D(real)); update p every `interval` calls."""
        logits = real_logits.detach().float().flatten()
        if self._acc.device != logits.device:
            self.to(logits.device)
        finite = torch.isfinite(logits)  # a non-finite batch (its step is skipped) must not poison p
        self._acc += torch.stack([torch.where(finite, logits.sign(), 0.0).sum(), finite.sum().float()])
        self._calls += 1
        if self._calls % self.interval == 0:
            self.update()

    def update(self) -> None:
        acc = self._acc.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(acc)
        rt = acc[0] / acc[1].clamp(min=1)
        adjust = torch.sign(rt - self.target) * acc[1] / (self.speed_kimg * 1000)
        self.p = (self.p + torch.where(acc[1] > 0, adjust, torch.zeros_like(adjust))).clamp(0.0, 1.0)
        self.last_rt = rt
        self._acc.zero_()

    def state_dict(self) -> dict:
        return {"p": self.p.detach().cpu(), "acc": self._acc.detach().cpu(), "calls": self._calls}

    def load_state_dict(self, state: dict) -> None:
        dev = self.p.device
        self.p, self._acc, self._calls = state["p"].to(dev), state["acc"].to(dev), int(state["calls"])
