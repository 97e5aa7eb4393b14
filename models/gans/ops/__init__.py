"""StyleGAN's FIR resampling as one op: ``conv2d_resample`` with a ``Resampler`` from ``make_resampler(fir_impl)``.

The networks up- and down-sample by 2 with the [1, 3, 3, 1] low-pass in three places: D's down-sampling convs (1x1
skip and 3x3), G's up-sampling modulated conv, and G's skip-image ``upsample2d``. All three go through
``resample.py``, which hides four implementations of the same linear map (``FIR_IMPLS``; the README's
``--hparam fir_impl=conv|pool|blend|fold``): ``fir_conv`` (depthwise convolutions), ``fir_blend`` (shifted-slice
sums), ``fir_pool`` (box-filter cascade) and ``fir_fold`` (the filter merged into the neighbouring 3x3 conv).

``conv`` is the default: on the CPU the depthwise conv is 7-18x faster than ``blend`` and ``pool`` and ``fold`` only
level with it (BENCHMARKS.md, ``speed/bench_fir.py``); the others exist for GPUs, where cuDNN wraps channels_last
bf16 depthwise convolutions in layout transposes, and which one wins there is what ``speed/gpu_checks.sh`` measures.
"""

from .resample import FIR_IMPLS, Resampler, conv2d_resample, make_resampler

__all__ = ["FIR_IMPLS", "Resampler", "conv2d_resample", "make_resampler"]
