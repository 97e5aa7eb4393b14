"""Building blocks shared by the StyleGAN-style networks.

Equalised learning rate (weights stored at unit variance, scaled at run time, so Adam sees every layer alike),
FIR up/down-sampling by 2 through the one op in ``ops/`` (``conv2d_resample`` with a ``Resampler`` per layer, which
alone knows the ``fir_impl``), and the modulated/demodulated convolution in both its fused (grouped) and non-fused
(batched) forms. Weight maths (modulation, demodulation) runs in fp32 even under autocast; the convolutions run in
the autocast dtype. Every op keeps the memory format it is given, so channels_last inputs stay channels_last.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .ops import Resampler, conv2d_resample, make_resampler
from .precision import fp32_math

SQRT2 = math.sqrt(2.0)


def _scaled(t: torch.Tensor, gain: float) -> torch.Tensor:
    """t * gain without a kernel launch when the gain is 1 (small parameters, scaled on every forward)."""
    return t if gain == 1.0 else t * gain


def lrelu_gain(x: torch.Tensor, slope: float = 0.2) -> torch.Tensor:
    """Leaky ReLU scaled by sqrt(2) so activations keep unit variance through the network.

    The layers below do not call it: leaky ReLU is positively homogeneous (lrelu(g z) = g lrelu(z) for g > 0),
    so they fold sqrt(2) (and any output gain) into the weights and bias they already scale, which saves a
    full pass over the activations per layer in eager mode. This is the reference their tests compare with.
    """
    return F.leaky_relu(x, slope) * SQRT2


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate and a learning-rate multiplier (0.01 in the mapping net)."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.w_gain = lr_mul / math.sqrt(in_features)
        self.b_gain = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = SQRT2 if self.activation else 1.0
        w = self.weight * (self.w_gain * act)
        b = _scaled(self.bias, self.b_gain * act) if self.bias is not None else None
        x = F.linear(x, w.to(x.dtype), None if b is None else b.to(x.dtype))
        return F.leaky_relu(x, 0.2) if self.activation else x


class EqualConv2d(nn.Module):
    """Plain conv with equalised lr, optional FIR down-sampling by 2 (blur, then stride-2 conv) and activation.

    ``gain`` scales the output (folded into weight and bias, like the activation's sqrt(2))."""

    def __init__(self, cin: int, cout: int, kernel: int, *, bias: bool = True, activation: bool = False,
                 down: bool = False, fir_impl: str = "conv", gain: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.w_gain = 1.0 / math.sqrt(cin * kernel * kernel)
        self.out_gain = gain * (SQRT2 if activation else 1.0)
        self.kernel, self.down, self.activation = kernel, down, activation
        self.resample = make_resampler(fir_impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * (self.w_gain * self.out_gain)
        b = None if self.bias is None else _scaled(self.bias, self.out_gain).to(x.dtype)
        x = conv2d_resample(x, w, b, resample=self.resample, down=self.down)
        return F.leaky_relu(x, 0.2) if self.activation else x


# -------------------------------------------------------------------------------------- modulated convolution


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True,
                     up: bool = False, resample: Resampler | None = None, fused: bool = False,
                     gain: float = 1.0, add: torch.Tensor | None = None) -> torch.Tensor:
    """StyleGAN2 modulated convolution: per-sample weights w'[n,o,i] = w[o,i] * s[n,i], optionally demodulated.

    x: (N, Cin, H, W); weight: (Cout, Cin, k, k) already scaled; styles: (N, Cin). The result is multiplied by
    ``gain`` and ``add`` (broadcast, e.g. per-pixel noise) is added, in the same pass as the demodulation.
    `fused=False` scales activations instead of weights (x * s, shared conv, * d): one ordinary cuDNN conv,
    usually fastest for training batches. `fused=True` builds per-sample weights and runs one grouped conv.
    Both give the same result up to rounding. `up=True` doubles the resolution through ``resample`` (from
    ``ops.make_resampler``; ``ops.conv2d_resample`` decides how, e.g. stride-2 transposed conv then the FIR filter).
    """
    n, cin, _, _ = x.shape
    cout = weight.shape[0]
    with fp32_math(x.device):
        w32 = weight.float()
        s32 = styles.float()
        if demodulate:
            # d[n,o] = 1/sqrt(sum_i,kh,kw (w[o,i,kh,kw] s[n,i])^2)
            dcoefs = torch.rsqrt((s32.square() @ w32.square().sum((2, 3)).t()) + 1e-8)  # (N, Cout)
        else:
            dcoefs = None
        out_scale = dcoefs * gain if dcoefs is not None else (None if gain == 1.0 else torch.full_like(s32, gain))
        if fused:
            wn = w32[None] * s32[:, None, :, None, None]
            if out_scale is not None:
                wn = wn * out_scale[:, :, None, None, None]
    dt = x.dtype
    if not fused:
        x = x * s32.to(dt)[:, :, None, None]
        x = conv2d_resample(x, w32, resample=resample, up=up)
        if out_scale is None:
            return x if add is None else x + add
        scale = out_scale.to(dt)[:, :, None, None]
        return x * scale if add is None else torch.addcmul(add.to(dt), x, scale)
    # fused: fold the batch into groups
    h, w_ = x.shape[2], x.shape[3]
    xg = x.reshape(1, n * cin, h, w_)
    y = conv2d_resample(xg, wn, resample=resample, up=up)  # wn: (N, Cout, Cin, k, k), one group per sample
    y = y.reshape(n, cout, y.shape[2], y.shape[3])
    return y if add is None else y + add.to(dt)
