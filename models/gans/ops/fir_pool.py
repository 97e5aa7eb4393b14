"""FIR filtering as a cascade of 2x2 box filters (``fir_impl="pool"``; also the lone filter passes of "fold").

Why: [1,3,3,1] x [1,3,3,1] / 64 is the 2x2 box filter applied three times, and ``avg_pool2d`` has native
channels_last kernels, so this avoids the layout transposes cuDNN puts around depthwise convolutions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fir_pool(x: torch.Tensor, pad: int, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
    """Correlation with the [1,3,3,1] low-pass after zero padding of ``pad`` pixels on every side, times ``gain``,
    keeping every ``stride``-th output pixel: three ``avg_pool2d`` calls, the zero padding spread over them (at most
    1 pixel each) and the last one striding."""
    if pad > 3:
        x = F.pad(x, (pad - 3,) * 4)
        pad = 3
    # a gain of 4 (the up-sampling path) is one box sum instead of a mean: no extra multiply
    divisors = (None, None, 1) if gain == 4.0 else (None, None, None)
    for i in range(3):
        x = F.avg_pool2d(x, 2, stride=stride if i == 2 else 1, padding=1 if i < pad else 0,
                         divisor_override=divisors[i])
    return x if gain in (1.0, 4.0) else x * gain
