"""Synthesis network (StyleGAN2 "skip" architecture), our own pure-PyTorch design.

Learned 4x4 constant -> per resolution: modulated 3x3 conv (the first one up-sampling by 2 with the FIR filter),
per-pixel noise with a learned strength, bias, leaky ReLU; a modulated 1x1 to-RGB per resolution whose outputs are
FIR-up-sampled and summed. No data-dependent control flow: noise mode and fused/non-fused are python settings.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import SQRT2, EqualLinear, fp32_math, modulated_conv2d
from ..ops import make_resampler


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    return max(1, min(channel_base // res, channel_max))


class SynthesisLayer(nn.Module):
    """Modulated conv + noise + bias + lrelu. up=True doubles the resolution."""

    def __init__(self, cin: int, cout: int, *, w_dim: int, res: int, up: bool = False, kernel: int = 3,
                 fused: bool = False, fir_impl: str = "conv"):
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.w_gain = 1.0 / math.sqrt(cin * kernel * kernel)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(res, res))
        self.resample = make_resampler(fir_impl)
        self.up, self.res, self.fused = up, res, fused

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        with fp32_math(x.device):
            styles = self.affine(w.float())
        # sqrt(2) of the activation gain folded in (lrelu(g z) = g lrelu(z)): demodulation, gain and noise are one
        # pass over the activations, bias another, leaky ReLU (in place) a third
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.res, self.res, device=x.device, dtype=x.dtype)
            noise = noise * (self.noise_strength * SQRT2).to(x.dtype)
        elif noise_mode == "const":
            noise = (self.noise_const * (self.noise_strength * SQRT2)).to(x.dtype)
        elif noise_mode == "none":
            noise = None
        else:
            raise ValueError(f"noise_mode must be random, const or none, got {noise_mode!r}")
        x = modulated_conv2d(x, self.weight * self.w_gain, styles, demodulate=True, up=self.up,
                             resample=self.resample, fused=self.fused, gain=SQRT2, add=noise)
        x = x.add_((self.bias * SQRT2).to(x.dtype)[None, :, None, None])
        return F.leaky_relu(x, 0.2, inplace=True)


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation, to image channels."""

    def __init__(self, cin: int, channels: int, *, w_dim: int, fused: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.gain = 1.0 / math.sqrt(cin)
        self.fused = fused

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        with fp32_math(x.device):
            styles = self.affine(w.float()) * self.gain
        y = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=self.fused)
        return y + self.bias.to(y.dtype)[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution: (const | up-conv) + conv + to-RGB; consumes num_conv + 1 w's (to-RGB shares the next)."""

    def __init__(self, cin: int, cout: int, *, res: int, w_dim: int, channels: int, fused: bool,
                 fir_impl: str = "conv"):
        super().__init__()
        self.first = res == 4
        if self.first:
            self.const = nn.Parameter(torch.randn(cout, 4, 4))
        else:
            self.conv0 = SynthesisLayer(cin, cout, w_dim=w_dim, res=res, up=True, fused=fused, fir_impl=fir_impl)
        self.conv1 = SynthesisLayer(cout, cout, w_dim=w_dim, res=res, fused=fused, fir_impl=fir_impl)
        self.torgb = ToRGB(cout, channels, w_dim=w_dim, fused=fused)
        self.num_conv = 1 if self.first else 2
        self.resample = make_resampler(fir_impl)  # for the skip image's up-sampling

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first:
            x = self.const.to(ws.dtype)[None].expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise_mode)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        y = self.torgb(x, ws[:, self.num_conv])
        img = y if img is None else self.resample.upsample2d(img).to(y.dtype) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> image (N, channels, res, res)."""

    def __init__(self, *, res: int, w_dim: int, channel_base: int, channel_max: int, channels: int = 3,
                 fused: bool = False, fir_impl: str = "conv"):
        super().__init__()
        log2 = int(math.log2(res))
        if res < 8 or 2**log2 != res:
            raise ValueError(f"resolution must be a power of two >= 8, got {res}")
        self.res, self.w_dim = res, w_dim
        self.block_res = [2**i for i in range(2, log2 + 1)]
        self.blocks = nn.ModuleList()
        self.num_ws = 0
        cin = 0
        for r in self.block_res:
            cout = channels_at(r, channel_base, channel_max)
            block = SynthesisBlock(cin, cout, res=r, w_dim=w_dim, channels=channels, fused=fused, fir_impl=fir_impl)
            self.blocks.append(block)
            self.num_ws += block.num_conv
            cin = cout
        self.num_ws += 1  # the last to-RGB

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        x = img = None
        idx = 0
        for block in self.blocks:
            x, img = block(x, img, ws.narrow(1, idx, block.num_conv + 1), noise_mode)
            idx += block.num_conv
        return img
