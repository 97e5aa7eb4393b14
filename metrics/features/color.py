"""Colour statistics per image: mean RGB and a normalised HSV histogram (vectorised numpy).

The seed study found covers cluster by colour rather than genre; these features let the analyses measure that
directly (k-NN colour agreement, maps coloured by mean colour) without any network.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from core.errors import UserError

DEFAULT_BINS = (8, 4, 4)
EXTRACTOR_ID = "color-meanrgb-hsvhist"


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """float RGB in [0, 1], shape (..., 3) -> HSV in [0, 1] (hue as a fraction of the circle)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(-1)
    delta = v - rgb.min(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(v > 0, delta / np.where(v > 0, v, 1), 0.0)
        safe = np.where(delta > 0, delta, 1)
        h = np.where(
            b == v,
            4.0 + (r - g) / safe,
            np.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe),
        )
    h = np.where(delta > 0, (h / 6.0) % 1.0, 0.0)
    return np.stack([h, s, v], axis=-1)


def _check(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise UserError(f"colour features need images shaped (N, H, W, 3), got {x.shape}")
    if x.dtype != np.uint8:
        raise UserError(f"colour features need uint8 images (0..255), got {x.dtype}")
    return x


def _chunks(x: np.ndarray, max_pixels: int) -> Iterator[np.ndarray]:
    per = max(1, max_pixels // max(1, x.shape[1] * x.shape[2]))
    for s in range(0, x.shape[0], per):
        yield x[s : s + per]


def mean_rgb(images: np.ndarray) -> np.ndarray:
    """(N, 3) mean colour in [0, 1]."""
    x = _check(images)
    return np.concatenate([c.mean(axis=(1, 2), dtype=np.float64) / 255.0 for c in _chunks(x, 1 << 22)])


def hsv_histogram(
    images: np.ndarray, bins: tuple[int, int, int] = DEFAULT_BINS, max_pixels: int = 1 << 22
) -> np.ndarray:
    """(N, bh * bs * bv) share of pixels per HSV cell (rows sum to 1); hue is the slowest-varying axis."""
    x = _check(images)
    bh, bs, bv = bins
    cells = bh * bs * bv
    out = []
    for c in _chunks(x, max_pixels):
        hsv = rgb_to_hsv(c.astype(np.float64) / 255.0)
        ih = np.minimum((hsv[..., 0] * bh).astype(np.int64), bh - 1)
        is_ = np.minimum((hsv[..., 1] * bs).astype(np.int64), bs - 1)
        iv = np.minimum((hsv[..., 2] * bv).astype(np.int64), bv - 1)
        cell = (ih * bs + is_) * bv + iv
        cell += (np.arange(c.shape[0]) * cells)[:, None, None]
        counts = np.bincount(cell.ravel(), minlength=c.shape[0] * cells).reshape(c.shape[0], cells)
        out.append(counts / float(c.shape[1] * c.shape[2]))
    return np.concatenate(out) if out else np.zeros((0, cells))


def color_features(images: np.ndarray, bins: tuple[int, int, int] = DEFAULT_BINS) -> np.ndarray:
    """(N, 3 + bh * bs * bv) float32: mean RGB then the HSV histogram."""
    return np.concatenate([mean_rgb(images), hsv_histogram(images, bins)], axis=1).astype(np.float32)
