"""Building blocks shared by the StyleGAN-style networks.

Equalised learning rate (weights stored at unit variance, scaled at run time, so Adam sees every layer alike),
FIR up/down-sampling with the [1, 3, 3, 1] filter (no custom CUDA; four interchangeable implementations, see
``FIR_IMPLS``), and the modulated/demodulated convolution in both its fused (grouped) and non-fused (batched) forms.
Weight maths (modulation, demodulation) runs in fp32 even under autocast; the convolutions run in the autocast
dtype. Every op keeps the memory format it is given, so channels_last inputs stay channels_last.
"""

from __future__ import annotations

import math
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from . import fir_fold
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
        attach_fir(self, fir_impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * (self.w_gain * self.out_gain)
        b = None if self.bias is None else _scaled(self.bias, self.out_gain).to(x.dtype)
        if self.down and self.fold_taps is not None and self.kernel == 3:
            # the filter merged into this conv (fir_fold.py): no filter pass
            x = fir_fold.down_conv(x, w, self.fold_taps, b)
            return F.leaky_relu(x, 0.2) if self.activation else x
        w = w.to(x.dtype)
        if self.down and self.kernel == 1:
            # a 1x1 conv commutes with the filter: down-sample first and mix channels on a quarter of the pixels
            x = F.conv2d(fir_filter(x, self.fir, 1, stride=2), w, b)
        elif self.down:
            # blur (pad so the composite is "conv same, then FIR downsample") then a strided valid conv
            pad = (self.kernel - 1) // 2 + 1
            x = fir_filter(x, self.fir, pad)
            x = F.conv2d(x, w, b, stride=2)
        else:
            x = F.conv2d(x, w, b, padding=self.kernel // 2)
        return F.leaky_relu(x, 0.2) if self.activation else x


# ----------------------------------------------------------------------------------------------- FIR filters


FIR_TAPS = (1.0, 3.0, 3.0, 1.0)  # the StyleGAN2 low-pass


def fir_kernel(taps: tuple[float, ...] = FIR_TAPS) -> torch.Tensor:
    """Separable 2-D low-pass filter from 1-D taps, normalised to sum 1."""
    f = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def _depthwise(f: torch.Tensor, channels: int, dtype: torch.dtype) -> torch.Tensor:
    return _prepared(f, 1.0, dtype)[None, None].expand(channels, 1, *f.shape)


_PREPARED: dict[tuple, tuple[weakref.ref, torch.Tensor, int]] = {}


def _prepared(f: torch.Tensor, gain: float, dtype: torch.dtype) -> torch.Tensor:
    """``(f * gain).to(dtype)``, made once per filter buffer, gain and dtype.

    The filters are constants; making them afresh on every call cost ~80 tiny kernel launches per iteration of the
    64 px model, whose eager training is launch-bound. Keyed on the buffer's address and checked against a weak
    reference to it and its version counter, so a freed or modified buffer is never served from the cache.
    """
    if gain == 1.0 and f.dtype == dtype:
        return f
    if torch.compiler.is_compiling() or f.requires_grad:
        return (f * gain).to(dtype)
    key = (f.data_ptr(), f.device, tuple(f.shape), gain, dtype)
    hit = _PREPARED.get(key)
    if hit is None or hit[0]() is not f or hit[2] != f._version:
        if len(_PREPARED) > 4096:  # many short-lived models (tests): drop the dead entries' memory now and then
            _PREPARED.clear()
        hit = _PREPARED[key] = (weakref.ref(f), (f * gain).to(dtype), f._version)
    return hit[1]


class _FirConv(torch.autograd.Function):
    """Depthwise conv2d with a fixed filter, whose backward is the matching transposed conv (``_FirConvT``).

    Why: autograd's generic double backward of a grouped convolution loops over the groups (one conv per channel,
    ~1,600 kernel launches per path-length or R1 step at 32 px). The filter is a constant, so the op is linear in
    x and its adjoint is the transposed conv with the same filter; each function differentiates through the
    other, so gradients of gradients stay single depthwise convolutions.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, f: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
        ctx.save_for_backward(f)
        ctx.conf = (stride, padding, tuple(x.shape[-2:]))
        c = x.shape[1]
        return F.conv2d(x, _depthwise(f, c, x.dtype), stride=stride, padding=padding, groups=c)

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        (f,) = ctx.saved_tensors
        stride, padding, size = ctx.conf
        return _FirConvT.apply(gy, f, stride, padding, size), None, None, None


class _FirConvT(torch.autograd.Function):
    """Depthwise transposed conv with a fixed filter (output size ``size``); its backward is ``_FirConv``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, f: torch.Tensor, stride: int, padding: int,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        ctx.save_for_backward(f)
        ctx.conf = (stride, padding)
        c, k = x.shape[1], f.shape[-1]
        natural = [(n - 1) * stride - 2 * padding + k for n in x.shape[-2:]]
        extra = (0, 0) if size is None else tuple(s - n for s, n in zip(size, natural, strict=True))
        return F.conv_transpose2d(x, _depthwise(f, c, x.dtype), stride=stride, padding=padding,
                                  output_padding=extra, groups=c)

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        (f,) = ctx.saved_tensors
        stride, padding = ctx.conf
        return _FirConv.apply(gy, f, stride, padding), None, None, None, None


FIR_IMPLS = ("conv", "blend", "pool", "fold")
"""How the low-pass runs (the same linear map in each; tests hold them equal to second order): "conv" one depthwise
cuDNN convolution, "blend" per-axis weighted sums of shifted slices (elementwise ops that torch.compile fuses),
"pool" the 2x2 box filter three times (``avg_pool2d``, native channels_last kernels), "fold" merged into the
up/down-sampling convolution next to it (``fir_fold``: dense convs and a depth/space shuffle, no filter pass; where
there is no convolution to merge with, it runs as "pool")."""


def attach_fir(module: nn.Module, impl: str = "conv") -> None:
    """Give ``module`` its FIR filter as ``module.fir``: a kernel buffer ("conv") or the impl's name."""
    if impl not in FIR_IMPLS:
        raise ValueError(f"fir_impl must be one of {', '.join(FIR_IMPLS)}, got {impl!r}")
    if impl == "conv":
        module.register_buffer("fir", fir_kernel(), persistent=False)
    else:
        module.fir = impl
    # the tap maps "fold" merges into the convs (None otherwise: the layer's one test for folding)
    module.register_buffer("fold_taps", fir_fold.fold_matrices() if impl == "fold" else None, persistent=False)


def fir_filter(x: torch.Tensor, f: torch.Tensor | str, pad: int, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
    """Correlation with the separable [1, 3, 3, 1] low-pass after zero padding of ``pad`` pixels on every side,
    times ``gain``, keeping every ``stride``-th output pixel.

    ``f`` a 2-D kernel tensor: one depthwise convolution (cuDNN). ``f`` "blend" or "pool": see ``FIR_IMPLS``; both
    keep channels_last (experiments against cuDNN's layout transposes around depthwise convolutions; see
    BENCHMARKS.md).
    """
    if isinstance(f, torch.Tensor):
        return _FirConv.apply(x, _prepared(f, gain, f.dtype), stride, pad)
    if f in ("pool", "fold"):
        return _fir_pool(x, pad, gain, stride)
    if f == "blend":
        y = _fir_blend(x, FIR_TAPS, pad, gain)
        return y if stride == 1 else y[..., ::stride, ::stride]
    raise ValueError(f"unknown FIR implementation {f!r}")


def _fir_blend(x: torch.Tensor, taps: tuple[float, ...], pad: int, gain: float) -> torch.Tensor:
    total = sum(taps)
    b = [t / total * math.sqrt(gain) for t in taps]
    for dim in (-1, -2):
        xp = F.pad(x, (pad, pad) if dim == -1 else (0, 0, pad, pad))
        n = xp.shape[dim] - len(b) + 1
        y = xp.narrow(dim, 0, n) * b[0]
        for k in range(1, len(b)):
            y = y.add(xp.narrow(dim, k, n), alpha=b[k])
        x = y
    return x


def _fir_pool(x: torch.Tensor, pad: int, gain: float, stride: int) -> torch.Tensor:
    """[1,3,3,1] x [1,3,3,1] / 64 is the 2x2 box filter applied three times: three ``avg_pool2d`` calls, the
    zero padding spread over them (at most 1 pixel each) and the last one striding."""
    if pad > 3:
        x = F.pad(x, (pad - 3,) * 4)
        pad = 3
    # a gain of 4 (the up-sampling path) is one box sum instead of a mean: no extra multiply
    divisors = (None, None, 1) if gain == 4.0 else (None, None, None)
    for i in range(3):
        x = F.avg_pool2d(x, 2, stride=stride if i == 2 else 1, padding=1 if i < pad else 0,
                         divisor_override=divisors[i])
    return x if gain in (1.0, 4.0) else x * gain


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """FIR up-sampling by 2: zero insertion and the 4-tap filter, as one stride-2 depthwise transposed conv.

    With [1,3,3,1] this is bilinear interpolation with pixel centres aligned (output 2i is 3/4 x[i] + 1/4 x[i-1]).
    """
    return _FirConvT.apply(x, _prepared(f, 4.0, f.dtype), 2, 1, None)


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """FIR down-sampling by 2 (filter then keep every other pixel), pixel centres aligned."""
    return fir_filter(x, f, 1, stride=2)


# -------------------------------------------------------------------------------------- modulated convolution


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True,
                     up: bool = False, fir: torch.Tensor | str | None = None, fused: bool = False,
                     gain: float = 1.0, add: torch.Tensor | None = None,
                     fold_taps: torch.Tensor | None = None) -> torch.Tensor:
    """StyleGAN2 modulated convolution: per-sample weights w'[n,o,i] = w[o,i] * s[n,i], optionally demodulated.

    x: (N, Cin, H, W); weight: (Cout, Cin, k, k) already scaled; styles: (N, Cin). The result is multiplied by
    ``gain`` and ``add`` (broadcast, e.g. per-pixel noise) is added, in the same pass as the demodulation.
    `fused=False` scales activations instead of weights (x * s, shared conv, * d): one ordinary cuDNN conv,
    usually fastest for training batches. `fused=True` builds per-sample weights and runs one grouped conv.
    Both give the same result up to rounding. `up=True` doubles the resolution: a stride-2 transposed conv then
    the FIR filter, equal to "FIR upsample, then conv" away from the borders at a quarter of the cost. With
    ``fold_taps`` (``fir_fold.fold_matrices()``, fir_impl "fold") the non-fused up-conv runs as one conv to 4x the
    channels and a depth-to-space instead.
    """
    n, cin, _, _ = x.shape
    cout, _, k, _ = weight.shape
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
        if up and fold_taps is not None and k == 3:
            x = fir_fold.up_conv(x, w32, fold_taps)
        elif up:
            x = F.conv_transpose2d(x, w32.to(dt).transpose(0, 1).flip((2, 3)), stride=2)
            x = fir_filter(x, fir, 1, gain=4.0)
        else:
            x = F.conv2d(x, w32.to(dt), padding=k // 2)
        if out_scale is None:
            return x if add is None else x + add
        scale = out_scale.to(dt)[:, :, None, None]
        return x * scale if add is None else torch.addcmul(add.to(dt), x, scale)
    # fused: fold the batch into groups
    h, w_ = x.shape[2], x.shape[3]
    xg = x.reshape(1, n * cin, h, w_)
    if up:
        wt = wn.transpose(1, 2).reshape(n * cin, cout, k, k).flip((2, 3)).to(dt)
        y = F.conv_transpose2d(xg, wt, stride=2, groups=n)
        y = fir_filter(y, fir, 1, gain=4.0)
    else:
        y = F.conv2d(xg, wn.reshape(n * cout, cin, k, k).to(dt), padding=k // 2, groups=n)
    y = y.reshape(n, cout, y.shape[2], y.shape[3])
    return y if add is None else y + add.to(dt)
