"""FIR filtering as per-axis weighted sums of shifted slices (``fir_impl="blend"``).

Why: only elementwise ops, which keep channels_last and which torch.compile fuses into one kernel; an alternative to
the depthwise convolution, around which cuDNN transposes channels_last bf16 tensors (see BENCHMARKS.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def fir_blend(x: torch.Tensor, taps: tuple[float, ...], pad: int, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
    """Correlation with the separable filter ``taps`` x ``taps`` (normalised to sum 1) after zero padding of ``pad``
    pixels on every side, times ``gain``, keeping every ``stride``-th output pixel."""
    total = sum(taps)
    b = [t / total * math.sqrt(gain) for t in taps]
    for dim in (-1, -2):
        xp = F.pad(x, (pad, pad) if dim == -1 else (0, 0, pad, pad))
        n = xp.shape[dim] - len(b) + 1
        y = xp.narrow(dim, 0, n) * b[0]
        for k in range(1, len(b)):
            y = y.add(xp.narrow(dim, k, n), alpha=b[k])
        x = y
    return x if stride == 1 else x[..., ::stride, ::stride]
