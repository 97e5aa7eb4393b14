"""The denoiser: a small U-Net over (noisy image, timestep, condition) with a learned null condition.

``patch`` > 1 folds each patch x patch block of pixels into channels first (pixel unshuffle) and unfolds the
output at the end: the U-Net then runs at 1/patch of the resolution, several times cheaper on a CPU, at the cost
of fine detail that 32 px covers barely have.

The timestep (sinusoidal features) and the condition (a one-hot genre or any encoder's vector, through a small
MLP) are summed into one embedding that modulates every residual block (adaptive group norm: scale and shift).
Rows flagged ``uncond`` take a learned *null* embedding in place of the condition's: trained on a share of the
steps (condition dropout), it is the unconditional branch that classifier-free guidance extrapolates away from.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

TIME_FEATURES = 64  # sinusoidal features of the timestep, before the embedding MLP


def timestep_features(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(N,) timesteps (any real value) -> (N, dim) sinusoidal features, as in the Transformer and DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    out = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(out, (0, dim % 2))


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; the embedding scales and shifts the second norm's output."""

    def __init__(self, c_in: int, c_out: int, embed_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(embed_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: a deep net trains from step one
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class Attention(nn.Module):
    """Single-head self-attention over pixels, residual (used at the coarsest level only)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).transpose(2, 3).unbind(1)
        a = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.out(a.transpose(1, 2).reshape(n, c, h, w))


class Level(nn.Module):
    """The residual blocks of one resolution (and attention after each, when asked)."""

    def __init__(self, channels: list[int], embed_dim: int, attention: bool):
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(a, b, embed_dim) for a, b in zip(channels[:-1], channels[1:], strict=True))
        self.attn = nn.ModuleList(Attention(b) if attention else nn.Identity() for b in channels[1:])


class UNet(nn.Module):
    """``forward(x, t, c, uncond)`` -> (N, 3, H, W): the noise (or v) the schedule's prediction type names.

    ``c`` is (N, cond_dim) float; ``uncond`` (N,) bool picks the null condition per row (None: none do).
    """

    def __init__(self, res: int, cond_dim: int, base: int, channel_mult: tuple[int, ...], res_blocks: int,
                 attention: bool, embed_dim: int, patch: int = 1):
        super().__init__()
        if res % patch or (res // patch) % 2 ** (len(channel_mult) - 1):
            raise ValueError(f"{res} px cannot be cut into {patch} px patches and halved {len(channel_mult) - 1} times")
        self.base, self.cond_dim, self.patch = base, cond_dim, patch
        self.time = nn.Sequential(nn.Linear(TIME_FEATURES, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        self.cond = nn.Sequential(nn.Linear(cond_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        self.null = nn.Parameter(torch.zeros(embed_dim))
        self.stem = nn.Conv2d(3 * patch * patch, base, 3, padding=1)
        widths = [base * m for m in channel_mult]
        last = len(widths) - 1
        self.down, self.downsample, skips, c = nn.ModuleList(), nn.ModuleList(), [base], base
        for i, w in enumerate(widths):
            self.down.append(Level([c] + [w] * res_blocks, embed_dim, attention and i == last))
            c = w
            skips += [w] * res_blocks
            if i < last:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = Level([c, c, c], embed_dim, attention)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(res_blocks + 1):
                blocks.append(ResBlock(c + skips.pop(), w, embed_dim))
                c = w
            self.up.append(blocks)
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.head = nn.Sequential(nn.GroupNorm(_groups(c), c), nn.SiLU(), nn.Conv2d(c, 3 * patch * patch, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def embed(self, t: torch.Tensor, c: torch.Tensor | None, uncond: torch.Tensor | None) -> torch.Tensor:
        emb = self.time(timestep_features(t, TIME_FEATURES))
        if c is None:
            return emb + self.null
        e = self.cond(c.to(emb.dtype))
        if uncond is not None:
            e = torch.where(uncond[:, None], self.null.to(e.dtype).expand_as(e), e)
        return emb + e

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None,
                uncond: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embed(t, c, uncond)
        h = self.stem(F.pixel_unshuffle(x, self.patch) if self.patch > 1 else x)
        skips = [h]
        for i, level in enumerate(self.down):
            for block, attn in zip(level.blocks, level.attn, strict=True):
                h = attn(block(h, emb))
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                skips.append(h)
        for block, attn in zip(self.mid.blocks, self.mid.attn, strict=True):
            h = attn(block(h, emb))
        for j, blocks in enumerate(self.up):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if j < len(self.upsample):
                h = F.interpolate(self.upsample[j](h), scale_factor=2.0, mode="nearest")  # conv at the coarse size
        out = self.head(h)
        return F.pixel_shuffle(out, self.patch) if self.patch > 1 else out
