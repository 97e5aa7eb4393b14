"""How a condition c enters the networks.

c is a float matrix (N, cond_dim): a one-hot genre or any encoder's d-dimensional vector. A linear embedding serves
both (for a one-hot it is a lookup table). The generator joins z with the embedding; the discriminator adds a
projection term <embed(c), h> to its unconditional logit (Miyato & Koyama 2018), where h are its penultimate
features.
"""

from __future__ import annotations

import torch
from torch import nn

from core.errors import UserError


def check_condition(c: torch.Tensor | None, cond_dim: int, n: int) -> None:
    """Shape check with a clear message (python-level, shapes only: compile-friendly)."""
    if cond_dim == 0:
        if c is not None and c.numel() > 0:
            raise UserError("this model is unconditional: pass c=None")
        return
    if c is None:
        raise UserError(f"this model is conditional: pass c of shape (N, {cond_dim})")
    if c.dim() != 2 or c.shape[1] != cond_dim or c.shape[0] != n:
        raise UserError(f"condition has shape {tuple(c.shape)}, expected ({n}, {cond_dim})")


class CondEmbedding(nn.Module):
    """Linear embedding of c, for the generator input; N(0, 1) init so it starts on the same scale as z."""

    def __init__(self, cond_dim: int, embed_dim: int):
        super().__init__()
        self.linear = nn.Linear(cond_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.linear.weight, std=1.0)
        nn.init.zeros_(self.linear.bias)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.linear(c.to(self.linear.weight.dtype))


class ProjectionHead(nn.Module):
    """Projection discriminator term: inner product of a linear embedding of c with the features h, (N,)."""

    def __init__(self, cond_dim: int, feat_dim: int):
        super().__init__()
        self.embed = nn.Linear(cond_dim, feat_dim, bias=False)
        nn.init.normal_(self.embed.weight, std=1.0 / feat_dim**0.5)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        e = self.embed(c.to(h.dtype))
        return (e * h).sum(dim=1)
