"""``G(z, c)`` for a diffusion model: DDIM sampling from the initial noise z, with classifier-free guidance.

The same interface as the GANs' generators, so every consumer (sample grids, evaluation, the sensitivity grid)
draws from it unchanged: z is the initial noise x_T, flattened to ``z_dim = 3 * res * res`` values (or shaped
(N, 3, res, res)), c the (N, cond_dim) condition, and the output (N, 3, res, res) images in [-1, 1]. Sampling is
deterministic (DDIM with eta = 0): the same z and c give the same image, so "z fixed, c varied" means what it
means for a GAN.

``guidance`` is the scale w of classifier-free guidance (Ho & Salimans 2022), set on the loaded generator:
the prediction is ``uncond + w * (cond - uncond)``, so w = 0 samples the unconditional branch (the condition is
never read), w = 1 the plain conditional model, and w > 1 pushes samples further towards what tells the
condition apart. ``sample_steps`` is the number of DDIM steps (one network call each, two when 0 < w != 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.errors import UserError
from models.diffusion.schedule import alphas_cumprod, ddim_timesteps, to_x0_eps
from models.diffusion.unet import UNet


class DiffusionGenerator(nn.Module):
    """The denoiser ``net`` with its schedule and sampling settings; ``forward(z, c)`` draws images."""

    def __init__(self, net: UNet, *, res: int, timesteps: int, schedule: str, prediction: str,
                 sample_steps: int, guidance: float):
        super().__init__()
        self.net = net
        self.res, self.timesteps, self.schedule, self.prediction = res, timesteps, schedule, prediction
        self.register_buffer("alphas", alphas_cumprod(schedule, timesteps).float(), persistent=False)
        self.sample_steps = sample_steps
        self.guidance = guidance

    @property
    def z_dim(self) -> int:
        return 3 * self.res * self.res

    @property
    def guidance(self) -> float:
        return self._guidance

    @guidance.setter
    def guidance(self, w: float) -> None:
        w = float(w)
        if not math.isfinite(w) or w < 0:
            raise UserError(f"guidance scale must be a finite number >= 0, got {w:g}")
        self._guidance = w

    def predict(self, x: torch.Tensor, t: int, c: torch.Tensor | None) -> torch.Tensor:
        """The network's output at timestep t under guidance: one call at w = 0 or 1, one doubled batch else."""
        n, w = len(x), self._guidance
        tt = torch.full((n,), t, device=x.device, dtype=torch.long)
        if c is None or w == 0:
            return self.net(x, tt, None)
        if w == 1:
            return self.net(x, tt, c)
        uncond = torch.arange(2 * n, device=x.device) >= n
        cond_out, uncond_out = self.net(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([c, c]), uncond).chunk(2)
        return uncond_out + w * (cond_out - uncond_out)

    @torch.no_grad()
    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = z.reshape(len(z), 3, self.res, self.res).to(self.alphas.dtype)
        ts = ddim_timesteps(self.timesteps, self.sample_steps)
        one = torch.ones((), device=x.device, dtype=x.dtype)
        for i, t in enumerate(ts):
            a = self.alphas[t]
            a_prev = self.alphas[ts[i + 1]] if i + 1 < len(ts) else one
            x0, eps = to_x0_eps(self.prediction, self.predict(x, t, c), x, a)
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        return x.clamp(-1, 1)
