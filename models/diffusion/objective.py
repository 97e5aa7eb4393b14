"""The training objective: DDPM's denoising loss, with condition dropout for classifier-free guidance.

Each real image gets a uniform timestep t and Gaussian noise; the network sees x_t and the condition and is
trained, by mean squared error, to output the noise (or v, see ``schedule``). A share ``cond_drop`` of the rows
is shown the null condition instead, which trains the unconditional branch in the same network. The object has
no state to carry across a resume (``state_dict`` is empty) but keeps the GAN losses' two methods for it, so the
engine saves and restores every model the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.diffusion.schedule import target

Stats = dict[str, torch.Tensor]


@dataclass
class DenoisingLoss:
    timesteps: int
    prediction: str
    cond_drop: float

    def step(self, net: Callable, alphas: torch.Tensor, real: torch.Tensor,
             c: torch.Tensor | None) -> tuple[torch.Tensor, Stats]:
        """(loss, stats) for one batch of real images in [-1, 1]; ``net`` is the denoiser (eager or compiled).
        Draws t, the noise and the dropout mask from the global RNG, in that order (checkpoints restore it)."""
        n = real.shape[0]
        t = torch.randint(0, self.timesteps, (n,), device=real.device)
        eps = torch.randn_like(real)
        uncond = torch.rand(n, device=real.device) < self.cond_drop
        a = alphas[t].to(real.dtype).view(-1, 1, 1, 1)
        x_t = a.sqrt() * real + (1 - a).sqrt() * eps
        out = net(x_t, t, c, uncond if c is not None else None)
        loss = F.mse_loss(out.float(), target(self.prediction, real, eps, a).float())
        return loss, {"loss/denoise": loss.detach(), "uncond_share": uncond.float().mean()}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
