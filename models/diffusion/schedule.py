"""The noise schedule: how much signal survives at each of T training timesteps, and what the network predicts.

Variance preserving, as in DDPM: x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps with a_t the cumulative product of
(1 - beta). ``cosine`` is Nichol & Dhariwal's (2021) schedule, ``linear`` DDPM's betas from 1e-4 to 0.02. The
network predicts either the noise eps (DDPM's objective) or v = sqrt(a) eps - sqrt(1 - a) x_0 (Salimans & Ho
2022, steadier at the few sampling steps this toolkit affords); both convert to (x_0, eps) for the sampler.
"""

from __future__ import annotations

import math

import torch

SCHEDULES = ("cosine", "linear")
PREDICTIONS = ("eps", "v")


def alphas_cumprod(schedule: str, timesteps: int) -> torch.Tensor:
    """(T,) float64 cumulative signal fractions a_0 > ... > a_{T-1} > 0."""
    if schedule == "linear":
        betas = torch.linspace(1e-4 * 1000 / timesteps, 0.02 * 1000 / timesteps, timesteps, dtype=torch.float64)
    elif schedule == "cosine":
        s = 0.008
        f = torch.cos((torch.arange(timesteps + 1, dtype=torch.float64) / timesteps + s) / (1 + s) * math.pi / 2) ** 2
        betas = 1 - f[1:] / f[:-1]
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    return torch.cumprod(1 - betas.clamp(max=0.999), dim=0)


def target(prediction: str, x0: torch.Tensor, eps: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """What the network is trained to output for clean images x0, noise eps and signal fractions a (N,1,1,1)."""
    if prediction == "eps":
        return eps
    return a.sqrt() * eps - (1 - a).sqrt() * x0


def to_x0_eps(prediction: str, out: torch.Tensor, x_t: torch.Tensor, a: torch.Tensor,
              clip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's output at x_t as (x_0, eps); x_0 clipped to the image range [-1, 1] (then eps recomputed
    so the pair stays consistent with x_t), which keeps few-step sampling from overshooting."""
    sa, s1 = a.sqrt(), (1 - a).sqrt()
    if prediction == "eps":
        x0 = (x_t - s1 * out) / sa
    else:
        x0 = sa * x_t - s1 * out
    if clip:
        x0 = x0.clamp(-1, 1)
    return x0, (x_t - sa * x0) / s1


def ddim_timesteps(timesteps: int, steps: int) -> list[int]:
    """``steps`` timesteps from T-1 down to 0, evenly spaced ("trailing": the first is pure noise)."""
    steps = max(1, min(int(steps), timesteps))
    ts = torch.linspace(timesteps - 1, 0, steps + 1, dtype=torch.float64)[:-1].round().long().tolist()
    return sorted(set(ts), reverse=True)
