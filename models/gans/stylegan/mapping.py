"""Mapping network: normalised z joined with normalised embedded c -> w, with a tracked average for truncation."""

from __future__ import annotations

import torch
from torch import nn

from ..conditioning import check_condition
from ..layers import EqualLinear


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit root-mean-square (in fp32)."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.square().mean(dim=1, keepdim=True) + eps)).to(x.dtype)


class MappingNetwork(nn.Module):
    """z (N, z_dim) [+ c (N, cond_dim)] -> w (N, w_dim). Equalised lr with lr multiplier 0.01 on the MLP."""

    def __init__(self, *, z_dim: int, w_dim: int, cond_dim: int = 0, layers: int = 8, lr_mul: float = 0.01,
                 w_avg_beta: float = 0.995):
        super().__init__()
        if not 1 <= layers <= 8:
            raise ValueError("mapping layers must be in 1..8")
        self.z_dim, self.w_dim, self.cond_dim = z_dim, w_dim, cond_dim
        self.embed = EqualLinear(cond_dim, w_dim) if cond_dim else None
        dims = [z_dim + (w_dim if cond_dim else 0)] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, activation=True)
                                   for a, b in zip(dims[:-1], dims[1:], strict=True)])
        self.w_avg_beta = w_avg_beta
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, *, truncation_psi: float = 1.0,
                update_w_avg: bool | None = None) -> torch.Tensor:
        check_condition(c, self.cond_dim, z.shape[0])
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            x = torch.cat([x, normalize_2nd_moment(self.embed(c.to(z.dtype)))], dim=1)
        w = self.net(x)
        if update_w_avg if update_w_avg is not None else self.training:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if truncation_psi != 1.0:
            w = self.w_avg.to(w.dtype).lerp(w, truncation_psi)
        return w
