"""FIR resampling folded into the neighbouring dense convolution (``fir_impl="fold"``), by polyphase decomposition.

The maths only; ``resample.py`` decides where it applies (the fold ``Resampler``'s 3x3 up/down convolutions).

Why: on a GPU the [1, 3, 3, 1] filters of StyleGAN's up/down-sampling layers are depthwise convolutions, for which
cuDNN has no fast channels_last bf16 path (layout transposes around every call took about a third of device time in
our profiles). A linear filter next to a convolution can be merged with it, and the stride-2 result split by output
(or input) phase becomes one ordinary 3x3 convolution on the low-resolution grid:

- up (G): stride-2 transposed 3x3 conv, then the filter  ==  3x3 conv to 4x the channels, then depth-to-space;
- down (D): the filter, then a stride-2 3x3 conv  ==  space-to-depth, then a 3x3 conv from 4x the channels;

Same linear maps (tests hold them equal to the depthwise-filter forms to second order). The price is FLOPs: the
merged kernels are dense (36 taps per input channel instead of 9, plus a 16-tap filter pass), which tensor cores may
absorb better than depthwise passes do; whether they do is a GPU measurement (``speed/gpu_checks.sh``).
D's 1x1 skip is not folded (its merged kernel would be a 2x2 conv from 4x the channels, 16x the 1x1's FLOPs):
under "fold" it runs the box-filter cascade ("pool"); G's 3-channel image up-sampling stays a depthwise conv. The
folded weights are built per forward from the layer's 3x3 weights with one small matrix product, so gradients reach
the same parameters.

Channel order of the phases is phase-major (index = phase * C + c), so depth-to-space and space-to-depth on a
channels_last tensor move whole contiguous C-vectors and return channels_last.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..precision import fp32_math

_TAPS = (1.0, 3.0, 3.0, 1.0)


def _tap(g: tuple[float, ...], i: int) -> float:
    return g[i] if 0 <= i < len(g) else 0.0


def up_phase_matrix() -> list:
    """M[a][u][k]: weight of 3x3-kernel tap k at window offset u (padding 1) for output phase a, per axis.

    From y[2j+a] = sum_u x[j+u-1] sum_k g[1+2u-a-k] w[k], with g the taps scaled to gain 2 per axis (4 in 2-D, the
    zero-insertion's loss of energy), which is "transposed conv (stride 2), then filter with padding 1".
    """
    g = tuple(2.0 * t / sum(_TAPS) for t in _TAPS)
    return [[[_tap(g, 1 + 2 * u - a - k) for k in range(3)] for u in range(3)] for a in range(2)]


def down_phase_matrix() -> list:
    """N[p][v][k]: weight of 3x3-kernel tap k at window offset v (padding 1) for input phase p, per axis.

    From "filter with padding 2, then stride-2 valid conv": y[j] = sum_{v,p} x[2(j+v-1)+p] sum_k g[2v+p-k] w[k].
    """
    g = tuple(t / sum(_TAPS) for t in _TAPS)
    return [[[_tap(g, 2 * v + p - k) for k in range(3)] for v in range(3)] for p in range(2)]


def fold_matrices() -> torch.Tensor:
    """(2, 36, 9) float32: [0] up, [1] down; rows (phase a, phase b, u, v), columns the 3x3 taps (k, l) (the 2-D map
    is the per-axis one on both axes). A layer keeps it as a non-persistent buffer, so it moves with the module and
    a compiled graph sees a buffer, not a fresh host-to-device copy per call."""
    m = torch.tensor([up_phase_matrix(), down_phase_matrix()], dtype=torch.float64)
    return torch.einsum("tauk,tbvl->tabuvkl", m, m).reshape(2, 36, 9).float()


def fold_up_weight(w: torch.Tensor, taps: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """(Cout, Cin, 3, 3) conv weights -> (4 Cout, Cin, 3, 3): one 3x3 conv whose depth-to-space is the up-conv.
    ``taps`` is ``fold_matrices()`` (on w's device); ``channels_last`` lays the result out as a channels_last conv
    reads it (no copy inside the conv)."""
    co, ci = _check_3x3(w)
    t = (w.reshape(co * ci, 9) @ taps[0].to(w.dtype).t()).reshape(co, ci, 2, 2, 3, 3)
    if channels_last:  # memory order (a, b, o, u, v, i)
        return t.permute(2, 3, 0, 4, 5, 1).reshape(4 * co, 3, 3, ci).permute(0, 3, 1, 2)
    return t.permute(2, 3, 0, 1, 4, 5).reshape(4 * co, ci, 3, 3)


def fold_down_weight(w: torch.Tensor, taps: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """(Cout, Cin, 3, 3) -> (Cout, 4 Cin, 3, 3): the 3x3 conv over space-to-depth that is "filter, stride-2 conv"."""
    co, ci = _check_3x3(w)
    t = (w.reshape(co * ci, 9) @ taps[1].to(w.dtype).t()).reshape(co, ci, 2, 2, 3, 3)
    if channels_last:  # memory order (o, v, w, p, q, i)
        return t.permute(0, 4, 5, 2, 3, 1).reshape(co, 3, 3, 4 * ci).permute(0, 3, 1, 2)
    return t.permute(0, 2, 3, 1, 4, 5).reshape(co, 4 * ci, 3, 3)


def _check_3x3(w: torch.Tensor) -> tuple[int, int]:
    co, ci, kh, kw = w.shape
    if (kh, kw) != (3, 3):
        raise ValueError(f"fir_impl='fold' folds 3x3 kernels, got {kh}x{kw}")
    return co, ci


def _fp32(w: torch.Tensor) -> torch.Tensor:
    """At least fp32 (float64 stays, for tests)."""
    return w if w.dtype == torch.float64 else w.float()


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def depth_to_space(x: torch.Tensor) -> torch.Tensor:
    """(N, 4C, H, W) with phase-major channels -> (N, C, 2H, 2W); output [2i+a, 2j+b] is channel (2a+b) C + c."""
    n, c4, h, w = x.shape
    c = c4 // 4
    if _is_channels_last(x):
        y = x.permute(0, 2, 3, 1).reshape(n, h, w, 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, c)
        return y.permute(0, 3, 1, 2)
    return x.reshape(n, 2, 2, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, 2 * h, 2 * w)


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """(N, C, 2H, 2W) -> (N, 4C, H, W), phase-major: the inverse of ``depth_to_space``."""
    n, c, h2, w2 = x.shape
    if h2 % 2 or w2 % 2:
        raise ValueError(f"space_to_depth needs even sizes, got {h2}x{w2}")
    h, w = h2 // 2, w2 // 2
    if _is_channels_last(x):
        y = x.permute(0, 2, 3, 1).reshape(n, h, 2, w, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h, w, 4 * c)
        return y.permute(0, 3, 1, 2)
    return x.reshape(n, c, h, 2, w, 2).permute(0, 3, 5, 1, 2, 4).reshape(n, 4 * c, h, w)


def up_conv(x: torch.Tensor, w: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """"Stride-2 transposed 3x3 conv with ``w`` (given as a conv weight), then the filter with gain 4": (N, Cin, H, W)
    -> (N, Cout, 2H, 2W). ``taps``: ``fold_matrices()``."""
    with fp32_math(x.device):
        wf = fold_up_weight(_fp32(w), taps, _is_channels_last(x))
    return depth_to_space(F.conv2d(x, wf.to(x.dtype), padding=1))


def down_conv(x: torch.Tensor, w: torch.Tensor, taps: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """"Filter with padding 2, then stride-2 3x3 conv": (N, Cin, 2H, 2W) -> (N, Cout, H, W). ``taps``:
    ``fold_matrices()``."""
    with fp32_math(x.device):
        wf = fold_down_weight(_fp32(w), taps, _is_channels_last(x))
    return F.conv2d(space_to_depth(x), wf.to(x.dtype), None if b is None else b.to(x.dtype), padding=1)
