"""Residual discriminator (StyleGAN2 "resnet" architecture) with minibatch std and projection conditioning."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..conditioning import check_condition
from ..layers import EqualConv2d, EqualLinear
from .synthesis import channels_at


def minibatch_std(x: torch.Tensor, group_size: int = 4, num_channels: int = 1) -> torch.Tensor:
    """Append the std of features across groups of samples (fp32 maths), so D can see a lack of variety.

    The group is the largest divisor of N not above group_size (a python decision on the shape only).
    """
    n, c, h, w = x.shape
    g = max(d for d in range(1, min(group_size, n) + 1) if n % d == 0)
    f = num_channels
    y = x.float().reshape(g, n // g, f, c // f, h, w)
    y = y - y.mean(dim=0)
    y = (y.square().mean(dim=0) + 1e-8).sqrt()  # (n/g, f, c/f, h, w)
    y = y.mean(dim=(2, 3, 4))  # (n/g, f)
    y = y.reshape(n // g, f, 1, 1).repeat(g, 1, h, w)  # sample i gets group i % (n/g)
    return torch.cat([x, y.to(x.dtype)], dim=1)


class DiscriminatorBlock(nn.Module):
    """conv3x3 -> conv3x3 with FIR down-sampling, plus a 1x1 down-sampled skip; sum scaled by sqrt(1/2)."""

    def __init__(self, cin: int, cout: int, fir_impl: str = "conv"):
        super().__init__()
        self.conv0 = EqualConv2d(cin, cin, 3, activation=True)
        # the sum's sqrt(1/2) is folded into both branches' weights (one pass fewer over the activations)
        self.conv1 = EqualConv2d(cin, cout, 3, activation=True, down=True, fir_impl=fir_impl, gain=math.sqrt(0.5))
        self.skip = EqualConv2d(cin, cout, 1, bias=False, down=True, fir_impl=fir_impl, gain=math.sqrt(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.conv1(self.conv0(x))


class StyleDiscriminator(nn.Module):
    """D(x, c) -> logits (N,). Conditioning: logit += <embed(c), h> / sqrt(dim) on the penultimate features h."""

    def __init__(self, *, res: int, cond_dim: int = 0, channel_base: int = 16384, channel_max: int = 512,
                 channels: int = 3, mbstd_group: int = 4, fir_impl: str = "conv"):
        super().__init__()
        log2 = int(math.log2(res))
        if res < 8 or 2**log2 != res:
            raise ValueError(f"resolution must be a power of two >= 8, got {res}")
        self.cond_dim, self.mbstd_group = cond_dim, mbstd_group

        def ch(r: int) -> int:
            return channels_at(r, channel_base, channel_max)

        self.fromrgb = EqualConv2d(channels, ch(res), 1, activation=True)
        self.blocks = nn.Sequential(
            *[DiscriminatorBlock(ch(2**i), ch(2 ** (i - 1)), fir_impl) for i in range(log2, 2, -1)]
        )
        c4 = ch(4)
        self.conv = EqualConv2d(c4 + 1, c4, 3, activation=True)
        self.fc = EqualLinear(c4 * 16, c4, activation=True)
        self.out = EqualLinear(c4, 1)
        self.embed = EqualLinear(cond_dim, c4) if cond_dim else None
        self.proj_gain = 1.0 / math.sqrt(c4)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        check_condition(c, self.cond_dim, x.shape[0])
        h = self.blocks(self.fromrgb(x))
        h = self.conv(minibatch_std(h, self.mbstd_group))
        h = self.fc(h.flatten(1))
        logit = self.out(h).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(c.to(h.dtype)) * h).sum(1) * self.proj_gain
        return logit
