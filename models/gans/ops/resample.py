"""The one entry point for StyleGAN's FIR resampling: ``conv2d_resample`` and the ``Resampler`` it is given.

A network layer builds ``make_resampler(fir_impl)`` once (a small module that owns the implementation's buffers, so
they follow ``.to()``) and hands it to ``conv2d_resample`` for every convolution that changes resolution, or calls
its ``upsample2d``. Which implementation runs is decided here and in the ``fir_*`` modules, never in network code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import fir_conv, fir_fold
from .fir_blend import fir_blend
from .fir_pool import fir_pool

FIR_IMPLS = ("conv", "blend", "pool", "fold")
"""How the low-pass runs (the same linear map in each; tests hold them equal to second order): "conv" one depthwise
cuDNN convolution, "blend" per-axis weighted sums of shifted slices (elementwise ops that torch.compile fuses),
"pool" the 2x2 box filter three times (``avg_pool2d``, native channels_last kernels), "fold" merged into the
up/down-sampling convolution next to it (``fir_fold``: dense convs and a depth/space shuffle, no filter pass; where
there is no 3x3 convolution to merge with, it runs as "pool")."""


class Resampler(nn.Module):
    """FIR up/down-sampling by 2 with the [1, 3, 3, 1] low-pass, one subclass per implementation.

    Every implementation owns the 2-D kernel as the non-persistent buffer ``fir``: G's 3-channel skip image is
    up-sampled by the depthwise transposed conv whatever the choice (``upsample2d``). Subclasses define ``filter``
    and may override the resampling convolutions (``fold`` does).
    """

    impl = ""

    def __init__(self):
        super().__init__()
        self.register_buffer("fir", fir_conv.fir_kernel(), persistent=False)

    def extra_repr(self) -> str:
        return f"impl={self.impl!r}"

    def filter(self, x: torch.Tensor, pad: int, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
        """Correlation with the low-pass after zero padding of ``pad`` pixels on every side, times ``gain``,
        keeping every ``stride``-th output pixel."""
        raise NotImplementedError

    def upsample2d(self, x: torch.Tensor) -> torch.Tensor:
        """Zero insertion and the filter (gain 4): bilinear up-sampling by 2, pixel centres aligned."""
        return fir_conv.upsample2d(x, self.fir)

    def downsample2d(self, x: torch.Tensor) -> torch.Tensor:
        """The filter, then every other pixel: down-sampling by 2, pixel centres aligned."""
        return self.filter(x, 1, stride=2)

    def down_conv2d(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        """"Conv (same padding), then down-sample by 2" for a (Cout, Cin, k, k) weight ``w`` (cast to x's dtype here;
        ``b`` already is)."""
        k = w.shape[-1]
        w = w.to(x.dtype)
        if k == 1:
            # a 1x1 conv commutes with the filter: down-sample first and mix channels on a quarter of the pixels
            return F.conv2d(self.filter(x, 1, stride=2), w, b)
        # blur (padded so the composite is "conv same, then FIR downsample"), then a strided valid conv
        return F.conv2d(self.filter(x, (k - 1) // 2 + 1), w, b, stride=2)

    def up_conv2d(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Stride-2 transposed conv, then the filter with gain 4: "up-sample by 2, then conv" away from the borders at
        a quarter of the cost. ``w``: the weight of the conv it stands for, as in ``conv2d_resample``."""
        wt, groups = _transposed(w, x.dtype)
        return self.filter(F.conv_transpose2d(x, wt, stride=2, groups=groups), 1, gain=4.0)


def _transposed(w: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, int]:
    """A conv weight (Cout, Cin, k, k) or grouped (G, Cout, Cin, k, k) as the transposed conv's (G Cin, Cout, k, k),
    flipped, and the group count. Straight from the 5-D form, not via a 4-D reshape: that would hand the weight a
    contiguous gradient instead of a transposed one and change the rounding of the reductions behind it."""
    if w.ndim == 5:
        g, co, ci, kh, kw = w.shape
        return w.transpose(1, 2).reshape(g * ci, co, kh, kw).flip((2, 3)).to(dtype), g
    return w.to(dtype).transpose(0, 1).flip((2, 3)), 1


class _ConvResampler(Resampler):
    impl = "conv"

    def filter(self, x: torch.Tensor, pad: int, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
        return fir_conv.fir_filter(x, self.fir, pad, gain, stride)


class _BlendResampler(Resampler):
    impl = "blend"

    def filter(self, x: torch.Tensor, pad: int, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
        return fir_blend(x, fir_conv.FIR_TAPS, pad, gain, stride)


class _PoolResampler(Resampler):
    impl = "pool"

    def filter(self, x: torch.Tensor, pad: int, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
        return fir_pool(x, pad, gain, stride)


class _FoldResampler(_PoolResampler):
    """The filter merged into 3x3 up/down convolutions (``fir_fold``); every other filter pass runs as "pool"."""

    impl = "fold"

    def __init__(self):
        super().__init__()
        # the tap maps the folded weights are made with (a buffer: it moves with the module, and a compiled graph
        # sees a buffer rather than a host-to-device copy per call)
        self.register_buffer("fold_taps", fir_fold.fold_matrices(), persistent=False)

    def down_conv2d(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        if w.shape[-1] == 3:
            return fir_fold.down_conv(x, w, self.fold_taps, b)
        return super().down_conv2d(x, w, b)

    def up_conv2d(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if w.ndim == 4 and w.shape[-1] == 3:  # grouped (fused modulated conv) weights are not folded
            return fir_fold.up_conv(x, w, self.fold_taps)
        return super().up_conv2d(x, w)


_RESAMPLERS: dict[str, type[Resampler]] = {
    r.impl: r for r in (_ConvResampler, _BlendResampler, _PoolResampler, _FoldResampler)
}


def make_resampler(impl: str = "conv") -> Resampler:
    """The ``Resampler`` for one of ``FIR_IMPLS``; a layer keeps it as a submodule."""
    if impl not in FIR_IMPLS:
        raise ValueError(f"fir_impl must be one of {', '.join(FIR_IMPLS)}, got {impl!r}")
    return _RESAMPLERS[impl]()


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, *,
                    resample: Resampler | None = None, up: bool = False, down: bool = False) -> torch.Tensor:
    """The convolution every StyleGAN layer makes: same-padded conv of x with ``w``, optionally up- or down-sampling
    by 2 through ``resample``.

    ``w``: (Cout, Cin, k, k), or (G, Cout, Cin, k, k) for a conv with G groups (one weight set per group, as the
    fused modulated conv builds them); cast to x's dtype here, ``b`` must already be. ``up``: "up-sample, then conv"
    (no bias); ``down``: "conv, then down-sample" (not grouped). Without either it is a plain ``F.conv2d`` and
    ``resample`` is not needed.
    """
    if up and down:
        raise ValueError("conv2d_resample: up or down, not both")
    if not (up or down):
        groups = w.shape[0] if w.ndim == 5 else 1
        w = w.reshape(-1, *w.shape[-3:]) if w.ndim == 5 else w
        return F.conv2d(x, w.to(x.dtype), b, padding=w.shape[-1] // 2, groups=groups)
    if resample is None:
        raise ValueError("conv2d_resample: up/down-sampling needs a Resampler (make_resampler)")
    if up:
        if b is not None:
            raise ValueError("conv2d_resample: no bias with up=True")
        return resample.up_conv2d(x, w)
    if w.ndim != 4:
        raise ValueError("conv2d_resample: down=True takes a (Cout, Cin, k, k) weight")
    return resample.down_conv2d(x, w, b)
