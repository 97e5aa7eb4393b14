"""FIR filtering as depthwise convolutions with a fixed kernel (``fir_impl="conv"``, the default).

The kernel is a tensor (a module buffer, so it moves with the module). Custom autograd functions keep gradients of
gradients single depthwise convolutions, and a cache makes each scaled/cast kernel once per buffer instead of once
per call. ``upsample2d`` here is also what every implementation uses for G's 3-channel skip image.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F

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


def fir_filter(x: torch.Tensor, f: torch.Tensor, pad: int, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
    """Correlation with the 2-D kernel ``f`` after zero padding of ``pad`` pixels on every side, times ``gain``,
    keeping every ``stride``-th output pixel: one depthwise convolution (cuDNN on a GPU)."""
    return _FirConv.apply(x, _prepared(f, gain, f.dtype), stride, pad)


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """FIR up-sampling by 2: zero insertion and the 4-tap filter, as one stride-2 depthwise transposed conv.

    With [1,3,3,1] this is bilinear interpolation with pixel centres aligned (output 2i is 3/4 x[i] + 1/4 x[i-1]).
    """
    return _FirConvT.apply(x, _prepared(f, 4.0, f.dtype), 2, 1, None)


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """FIR down-sampling by 2 (filter then keep every other pixel), pixel centres aligned."""
    return fir_filter(x, f, 1, stride=2)
