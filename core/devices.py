"""Which torch device a command runs on: one rule for every stage, one error when CUDA is asked for and absent."""

from __future__ import annotations

import torch

from core.errors import UserError


def resolve_device(device: str | torch.device | None, hint: str = "use --set device=cpu") -> torch.device:
    """``None``/``"auto"``: CUDA when present, else CPU; anything else as given, refused when it names absent CUDA."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device cuda requested but CUDA is not available ({hint})")
    return torch.device(device)


def pick_device(kind: str) -> torch.device:
    """A training or evaluation ``device`` setting (``auto``, ``cuda``, ``cpu``) as a device (CUDA without index)."""
    device = resolve_device(kind, hint="use --preset cpu")
    return torch.device("cuda") if device.type == "cuda" else torch.device("cpu")
