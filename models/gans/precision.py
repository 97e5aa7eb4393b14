"""Where the StyleGAN layers leave autocast: weight maths (modulation, demodulation, folded filters) stays fp32."""

from __future__ import annotations

import contextlib

import torch


def fp32_math(device: torch.device):
    """A region where autocast is off (weight maths in fp32); a no-op on devices without autocast (meta, for
    counting FLOPs from shapes alone)."""
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()
