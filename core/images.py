"""Image sets in, one uint8 NHWC array out: a folder of files, an ``.npy``/``.npz`` array, or a tensor.

Everything that judges images from outside works on the same array form the toolkit's own generators produce
(``uint8``, ``(N, H, W, 3)``), so one code path scores them all. Float inputs follow the GANs' convention
(``value_range`` (-1, 1) by default); nothing is resized: images must already be square at a size the dataset
holds, because resizing would change what is judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.errors import UserError

ARRAY_SUFFIXES = (".npy", ".npz")


def as_uint8_nhwc(x: Any, value_range: tuple[float, float] = (-1.0, 1.0), what: str = "images") -> np.ndarray:
    """``x`` (numpy array or torch tensor; uint8 NHWC/NCHW, or float NCHW/NHWC in ``value_range``) as uint8 NHWC."""
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 4 or 3 not in (a.shape[1], a.shape[3]):
        raise UserError(f"{what}: expected (N, H, W, 3) or (N, 3, H, W) RGB images, got shape {tuple(a.shape)}")
    if a.shape[3] != 3:  # NCHW
        a = a.transpose(0, 2, 3, 1)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise UserError(f"{what}: expected uint8 or float pixels, got {a.dtype}")
    if not np.isfinite(a).all():
        raise UserError(f"{what}: {int((~np.isfinite(a)).any(axis=(1, 2, 3)).sum())} images hold NaN or inf pixels")
    lo, hi = value_range
    scaled = (np.clip(a.astype(np.float32), lo, hi) - lo) * (255.0 / (hi - lo))
    return np.ascontiguousarray(np.round(scaled).astype(np.uint8))


def check_square(images: np.ndarray, sizes: Sequence[int], what: str, where: str) -> int:
    """The side of square ``images``; one line when they are not square or not one of ``sizes``."""
    h, w = images.shape[1:3]
    if h != w:
        raise UserError(f"{what}: images are {w}x{h}: covers are square")
    if h not in sizes:
        have = ", ".join(f"{s} px" for s in sizes)
        raise UserError(f"{what}: images are {h} px but {where} has {have} covers: generate at one of those sizes")
    return int(h)


def read_image_array(path: Path) -> np.ndarray:
    """An ``.npy`` array, or the ``images`` array of an ``.npz`` (its only array when it has one)."""
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = "images" if "images" in keys else keys[0] if len(keys) == 1 else None
            if key is None:
                raise UserError(f"{path}: holds {', '.join(keys)}: name the image array 'images'")
            return z[key]
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"{path}: not a readable numpy array ({e})") from e


def safe_member(folder: Path, name: str, where: str) -> Path:
    """``folder / name``, refused when it would leave ``folder`` (absolute paths, '..', links pointing out)."""
    root = folder.resolve()
    path = (folder / name).resolve()
    if Path(name).is_absolute() or not path.is_relative_to(root):
        raise UserError(f"{where}: {name!r} points outside {folder}: give paths relative to the folder")
    return path


def read_image_files(folder: Path, names: Sequence[str], where: str) -> np.ndarray:
    """RGB uint8 array of the files ``names`` inside ``folder``, in that order; the first bad file in one line."""
    out: list[np.ndarray] = []
    for i, name in enumerate(names):
        row = f"{where} row {i + 1}"
        path = safe_member(folder, name, row)
        if not path.is_file():
            raise UserError(f"{row}: no file {name!r} in {folder}")
        try:
            with Image.open(path) as im:
                a = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as e:
            raise UserError(f"{row}: {name!r} is not a readable image ({e})") from e
        if out and a.shape != out[0].shape:
            raise UserError(f"{row}: {name!r} is {a.shape[1]}x{a.shape[0]}, the first image {out[0].shape[1]} px")
        out.append(a)
    return np.stack(out) if out else np.zeros((0, 1, 1, 3), np.uint8)


def list_image_files(folder: Path) -> list[str]:
    """Image files directly in ``folder``, sorted (for sets given without a manifest)."""
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg") and p.is_file())


def save_png(image: np.ndarray, path: Path) -> None:
    Image.fromarray(image).save(path, format="PNG")
