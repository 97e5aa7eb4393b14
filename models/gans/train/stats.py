"""Training statistics: ``stats.jsonl`` (one JSON object per line) and TensorBoard events when installed."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch


class StatsWriter:
    def __init__(self, directory: Path, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = directory / "stats.jsonl"
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(directory / "tensorboard"))
            except Exception:  # tensorboard not installed: jsonl only
                self.tb = None

    def truncate_after(self, images_seen: int) -> None:
        """On resume, drop lines logged after the checkpoint so the file reads as one uninterrupted run."""
        if not (self.enabled and self.path.is_file()):
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("images_seen", 0) <= images_seen:
                    keep.append(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a killed run
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(k + "\n" for k in keep))
        os.replace(tmp, self.path)

    def write(self, row: dict[str, Any]) -> None:
        """Append one row. Non-finite numbers (e.g. a gradient norm right after a skipped step) become null, so
        every line is strict JSON that any reader (jq, a browser) accepts."""
        if not self.enabled:
            return
        row = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(row, allow_nan=False) + "\n")
            f.flush()
        if self.tb is not None:
            step = int(row.get("images_seen", 0))
            for k, v in row.items():
                if isinstance(v, int | float) and k != "images_seen":
                    self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_stats(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


Window = dict[str, list[tuple[torch.Tensor, torch.Tensor | None]]]


def window_means(window: Window) -> dict[str, float]:
    """Each statistic's mean over a logging window of (value, skipped) pairs, leaving out steps the non-finite
    guard skipped and values that are not finite (one host sync per window, not per step)."""
    out = {}
    for k, pairs in window.items():
        v = torch.stack([p[0] for p in pairs]).double()
        keep = torch.isfinite(v)
        flags = [p[1] for p in pairs]
        if all(f is not None for f in flags):
            keep &= torch.stack(flags).to(keep.device) == 0
        if bool(keep.any()):
            out[k] = float(v[keep].mean())
    return out


def grad_norm(module: torch.nn.Module) -> float:
    grads = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


def memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except Exception:  # pragma: no cover
        return 0.0
