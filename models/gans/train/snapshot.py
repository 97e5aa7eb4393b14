"""Sample grids at each snapshot: fixed z, one row per condition, so progress and conditioning are visible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn


def grid_conditions(conditions: np.ndarray | None, labels: np.ndarray, n_rows: int | None = None) -> np.ndarray | None:
    """One condition vector per class (``labels`` holds each row's class; negative = none): the member closest to
    its class mean, for the first ``n_rows`` classes in order."""
    if conditions is None:
        return None
    rows = []
    for g in np.unique(labels[labels >= 0])[:n_rows]:
        members = conditions[labels == g]
        centre = members.mean(0)
        rows.append(members[np.argmin(((members - centre) ** 2).sum(1))])
    return np.stack(rows).astype(np.float32)


@torch.no_grad()
def generate(
    G: nn.Module, z: torch.Tensor, c: np.ndarray | torch.Tensor | None, batch: int = 64, **kwargs
) -> np.ndarray:
    """uint8 NHWC images for z (and conditions), converted batch by batch; the global RNG is left untouched."""
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    out = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        for s in range(0, len(z), batch):
            cb = None
            if c is not None:
                cb = c[s : s + batch]
                cb = torch.from_numpy(np.ascontiguousarray(cb)) if isinstance(cb, np.ndarray) else cb
                cb = cb.to(device)
            out.append(to_uint8(G(z[s : s + batch].to(device), cb, **kwargs).float().cpu()))
    G.train(was_training)
    return np.concatenate(out)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] NCHW to uint8 NHWC."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def save_grid(images: np.ndarray, n_cols: int, path: Path, pad: int = 2) -> Path:
    n, h, w, _ = images.shape
    n_rows = (n + n_cols - 1) // n_cols
    canvas = np.full((n_rows * (h + pad) + pad, n_cols * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, n_cols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = images[i]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(canvas).save(tmp)
    tmp.replace(path)
    return path


def snapshot_grid(
    G: nn.Module, z_dim: int, cond_rows: np.ndarray | None, path: Path, n_cols: int = 8, seed: int = 123
) -> Path:
    """A grid with the same z in every row; row r uses condition r (or more samples when unconditional)."""
    n_rows = len(cond_rows) if cond_rows is not None else 8
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n_cols, z_dim, generator=gen).repeat(n_rows, 1)
    if cond_rows is None:
        z = torch.randn(n_rows * n_cols, z_dim, generator=gen)
        c = None
    else:
        c = torch.from_numpy(np.repeat(cond_rows, n_cols, axis=0))
    return save_grid(generate(G, z, c), n_cols, path)
