"""DCGAN (Radford et al. 2016, as in the PyTorch reference example) and the conditional form.

Generator: z (100) -> 4x4 transposed conv -> stride-2 transposed convs with BatchNorm + ReLU -> tanh.
Discriminator: stride-2 convs with BatchNorm (not on the first) + LeakyReLU(0.2) -> 4x4 valid conv to one logit.
The logit is returned raw (BCE-with-logits in the loss) so bf16 autocast is safe. Conditional form: z joined
with a linear embedding of c; D gets a projection head on its mean-pooled last feature map.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.errors import UserError

from .conditioning import CondEmbedding, ProjectionHead, check_condition


def _n_up(res: int, allowed: tuple[int, ...]) -> int:
    if res not in allowed:
        raise UserError(f"resolution {res} not supported here; choose one of {', '.join(map(str, allowed))}")
    return int(math.log2(res)) - 2


def dcgan_init(module: nn.Module) -> None:
    """Weights N(0, 0.02) for convs, N(1, 0.02) for BatchNorm scales, zero biases (reference init)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm | nn.LayerNorm):
            if m.weight is not None:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)


class ConvGenerator(nn.Module):
    """DCGAN-style generator (shared by DCGAN and WGAN-GP). G(z, c) -> (N, 3, res, res) in [-1, 1]."""

    def __init__(self, *, res: int, z_dim: int = 100, base: int = 64, cond_dim: int = 0, embed_dim: int = 0,
                 channels: int = 3, allowed: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        n_up = _n_up(res, allowed)
        self.res, self.z_dim, self.cond_dim = res, z_dim, cond_dim
        self.embed = CondEmbedding(cond_dim, embed_dim) if cond_dim else None
        cin = z_dim + (embed_dim if cond_dim else 0)
        ch = base * 2 ** (n_up - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(cin, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch),
                                   nn.ReLU(True)]
        for _ in range(n_up - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        check_condition(c, self.cond_dim, z.shape[0])
        if self.embed is not None:
            z = torch.cat([z, self.embed(c).to(z.dtype)], dim=1)
        return self.net(z[:, :, None, None])


class ConvDiscriminator(nn.Module):
    """DCGAN-style discriminator/critic. D(x, c) -> logits (N,).

    norm: "batch" (DCGAN), "layer" (per-sample LayerNorm over C,H,W: safe with the gradient penalty) or "none".
    """

    def __init__(self, *, res: int, base: int = 64, cond_dim: int = 0, channels: int = 3, norm: str = "batch",
                 allowed: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        n_down = _n_up(res, allowed)
        self.cond_dim = cond_dim
        layers: list[nn.Module] = [nn.Conv2d(channels, base, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        ch = base
        for _ in range(n_down - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm == "none"), _norm(norm, ch * 2),
                       nn.LeakyReLU(0.2, True)]
            ch *= 2
        self.features = nn.Sequential(*layers)
        self.out = nn.Conv2d(ch, 1, 4, 1, 0, bias=False)
        self.proj = ProjectionHead(cond_dim, ch) if cond_dim else None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        check_condition(c, self.cond_dim, x.shape[0])
        h = self.features(x)
        logit = self.out(h).flatten(1).sum(1)
        if self.proj is not None:
            logit = logit + self.proj(h.mean((2, 3)), c)
        return logit


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "layer":
        return nn.GroupNorm(1, ch)  # one group = LayerNorm over (C, H, W), per-channel affine
    if kind == "none":
        return nn.Identity()
    raise UserError(f"unknown norm {kind!r}; choose batch, layer or none")


def build_dcgan(*, res: int, cond_dim: int, tiny: bool, z_dim: int = 100, base: int | None = None,
                embed_dim: int | None = None) -> tuple[nn.Module, nn.Module]:
    """DCGAN generator and discriminator with the reference init."""
    base = base or (16 if tiny else 64)
    embed_dim = embed_dim or (16 if tiny else 64)
    G = ConvGenerator(res=res, z_dim=z_dim, base=base, cond_dim=cond_dim, embed_dim=embed_dim)
    D = ConvDiscriminator(res=res, base=base, cond_dim=cond_dim, norm="batch")
    dcgan_init(G)
    dcgan_init(D)
    if G.embed is not None:
        G.embed.reset_parameters()
    if D.proj is not None:  # the projection embedding keeps its own scale (the 0.02 init would mute it)
        nn.init.normal_(D.proj.embed.weight, std=1.0 / D.proj.embed.weight.shape[0] ** 0.5)
    return G, D
