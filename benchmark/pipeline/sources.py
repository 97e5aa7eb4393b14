"""Where generated covers come from: any callable ``G(z, c)`` (the toolkit's GANs included), or fixed images.

A callable can be asked again: the same z with shuffled conditions (the regenerated null), a z x condition grid
(sensitivity) and a picture of samples per class. Fixed images cannot; their manifest's ``z_id`` groups give the
grid where they cross a common set of conditions, and the picture is drawn from the images themselves.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from core.errors import UserError
from core.images import as_uint8_nhwc
from models.gans.train.snapshot import save_grid, to_uint8


@runtime_checkable
class Generator(Protocol):
    """A conditional generator: ``G(z, c)`` -> images for latents ``z`` (B, z_dim) and conditions ``c`` (B, dc)
    (``None`` for an unconditional one). Images are float (B, 3, H, W) in [-1, 1] (the toolkit's GANs), or
    uint8 (B, H, W, 3). A generator with ``z_dim = 0`` is called as ``G(c)``: it has no latent to hold fixed."""

    z_dim: int

    def __call__(self, *args: Any) -> Any: ...


def _device_of(G: Any, default: torch.device) -> torch.device:
    params = getattr(G, "parameters", None)
    if callable(params):
        first = next(iter(params()), None)
        if first is not None:
            return first.device
    return default


def _covers(out: Any, value_range: tuple[float, float]) -> np.ndarray:
    if isinstance(out, torch.Tensor) and out.is_floating_point() and tuple(value_range) == (-1.0, 1.0):
        if out.ndim == 4 and out.shape[1] == 3:
            bad = int((~torch.isfinite(out)).flatten(1).any(dim=1).sum())
            if bad:  # judged as covers they would be silently clipped: refuse as evaluate_images does
                raise UserError(f"generator output: {bad} images hold NaN or inf pixels")
            return to_uint8(out.float().cpu())  # the toolkit's own conversion, bit for bit
    return as_uint8_nhwc(out, value_range, "generator output")


@torch.no_grad()
def generate_covers(
    G: Any, z: np.ndarray | torch.Tensor | None, c: np.ndarray | None, *, batch: int = 256,
    value_range: tuple[float, float] = (-1.0, 1.0), device: torch.device | None = None,
) -> np.ndarray:
    """uint8 NHWC covers of ``G`` for each row of ``z`` (None: ``G(c)``) and ``c``; batch by batch, eval mode,
    the global RNG untouched (forked and seeded, so a generator with noise inputs gives the same covers again)."""
    n = len(z) if z is not None else len(c)
    dev = _device_of(G, device or torch.device("cpu"))
    was_training = getattr(G, "training", None)
    if isinstance(G, torch.nn.Module):
        G.eval()
    out = []
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(0)
            for s in range(0, n, batch):
                zb = None if z is None else torch.as_tensor(z[s : s + batch]).to(dev)
                cb = None if c is None else torch.from_numpy(np.ascontiguousarray(c[s : s + batch])).to(dev)
                imgs = _covers(G(zb, cb) if z is not None else G(cb), value_range)
                if len(imgs) != len(zb if zb is not None else cb):
                    raise UserError(f"the generator returned {len(imgs)} images for a batch of {min(batch, n - s)}")
                out.append(imgs)
    finally:
        if isinstance(G, torch.nn.Module) and was_training:
            G.train()
    return np.concatenate(out)


def generator_z_dim(G: Any) -> int:
    """``G.z_dim`` (0: a generator called as ``G(c)``); a generator without one is refused, since guessing
    would call it with the wrong arguments."""
    if not callable(G):
        raise UserError(f"the generator must be callable as G(z, c) or G(c), got a {type(G).__name__}")
    if not hasattr(G, "z_dim"):
        raise UserError("the generator has no z_dim: set G.z_dim to its latent size (called as G(z, c)), "
                        "or to 0 if it takes only the condition (called as G(c))")
    z_dim = G.z_dim
    if isinstance(z_dim, bool) or not isinstance(z_dim, numbers.Integral) or z_dim < 0:
        raise UserError(f"the generator's z_dim must be a non-negative int, got {z_dim!r}")
    return int(z_dim)


def sensitivity_covers(
    G: Any, z_dim: int, reps: np.ndarray, n_z: int, seed: int, **kw: Any
) -> np.ndarray:
    """Covers of G(z_i, c_j): ``n_z`` fixed z's crossed with one representative condition per class, row-major."""
    gen = torch.Generator().manual_seed(seed + 1)
    z = torch.randn(n_z, z_dim, generator=gen).repeat_interleave(len(reps), dim=0)
    return generate_covers(G, z, np.tile(reps, (n_z, 1)), **kw)


def sample_sheet_writer(
    G: Any, z_dim: int, reps: np.ndarray | None, *, n_cols: int = 8, seed: int = 1234, **kw: Any
) -> Callable[[Path], Path]:
    """A function writing ``samples.png``: the same z in every row, one row per class representative (or 64
    unconditional samples)."""

    def write(folder: Path) -> Path:
        gen = torch.Generator().manual_seed(seed)
        if reps is None:
            z, c = torch.randn(8 * n_cols, max(z_dim, 1), generator=gen), None
        else:
            z = torch.randn(n_cols, max(z_dim, 1), generator=gen).repeat(len(reps), 1)
            c = np.repeat(reps, n_cols, axis=0)
        images = generate_covers(G, z if z_dim else None, c, **kw)
        return save_grid(images, n_cols, Path(folder) / "samples.png")

    return write


def image_sheet_writer(images: np.ndarray, labels: np.ndarray, n_classes: int, n_cols: int = 8):
    """A function writing ``samples.png`` from fixed images: one row per class, its first ``n_cols`` covers."""

    def write(folder: Path) -> Path:
        h, w = images.shape[1:3]
        sheet = np.full((n_classes * n_cols, h, w, 3), 255, np.uint8)
        for k in range(n_classes):
            members = np.flatnonzero(labels == k)[:n_cols]
            sheet[k * n_cols : k * n_cols + len(members)] = images[members]
        return save_grid(sheet, n_cols, Path(folder) / "samples.png")

    return write


def grid_from_groups(features: np.ndarray, z_ids: np.ndarray, cond_keys: list) -> tuple[np.ndarray | None, str]:
    """The (n_z, n_c, d) sensitivity grid from images sharing a z_id, or None and why not.

    Only groups of two or more images count; the grid's columns are the conditions every such group holds, so each
    column is one condition under every z (the design the within-row permutation null needs).
    """
    groups: dict[Any, dict[Any, int]] = {}
    for i, (z, key) in enumerate(zip(z_ids, cond_keys, strict=True)):
        groups.setdefault(z, {})[key] = i
    kept = [g for g in groups.values() if len(g) >= 2]
    if len(kept) < 2:
        return None, "fewer than two z_id groups with two or more conditions each"
    common = set(kept[0]).intersection(*kept[1:])
    if len(common) < 2:
        return None, "the z_id groups do not share two or more asked conditions (the grid needs z x condition)"
    order = sorted(common, key=str)
    idx = np.array([[g[k] for k in order] for g in kept])
    return features[idx], ""
