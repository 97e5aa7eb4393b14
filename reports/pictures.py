"""Pictures for the report: real covers per genre (data page) and a one-line sample strip per model (leaderboard).

A table of numbers does not show that covers cluster by colour or that a generator draws the same cover for every
genre; a row of real covers per genre and one generated cover per condition do, at a glance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PAD = 2  # white gap between tiles, as in the sample grids (models/gans/train/snapshot.save_grid)


def _strip(tiles: list[np.ndarray], pad: int = PAD) -> np.ndarray:
    h, w = tiles[0].shape[:2]
    canvas = np.full((h + 2 * pad, len(tiles) * (w + pad) + pad, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        canvas[pad : pad + h, pad + i * (w + pad) : pad + i * (w + pad) + w] = t
    return canvas


def _save(arr: np.ndarray, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(dest)
    return dest


def pick_covers(genre_idx: np.ndarray, artists: np.ndarray | None, genre: int, k: int, seed: int = 0) -> np.ndarray:
    """Up to ``k`` rows of ``genre``, one per artist first (seeded), so one prolific artist cannot fill the row."""
    rows = np.flatnonzero(genre_idx == genre)
    rng = np.random.default_rng(seed + genre)
    rows = rows[rng.permutation(len(rows))]
    if artists is None:
        return np.sort(rows[:k])
    seen: set[object] = set()
    first, rest = [], []
    for r in rows:
        (rest if artists[r] in seen else first).append(r)
        seen.add(artists[r])
    return np.asarray((first + rest)[:k], dtype=np.int64)


def cover_grid(ds: Any, dest_dir: Path, per_genre: int = 8, thumb: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """One PNG strip of real covers per genre (``genre-<i>.png``; genre names stay out of file names).

    Covers come from the smallest stored resolution of at least ``thumb`` px (else the largest), resized to
    ``thumb`` px when they differ. Returns [{"genre", "n", "file"}] in genre order; genres without covers are left out.
    """
    res = min((r for r in ds.resolutions if r >= thumb), default=max(ds.resolutions))
    covers = ds.covers(res)
    artists = ds.tracks["artist_id"].to_numpy(dtype=object) if ds.tracks["artist_id"].notna().any() else None
    out = []
    for g, name in enumerate(ds.genres):
        rows = pick_covers(ds.genre_idx, artists, g, per_genre, seed)
        if not len(rows):
            continue
        tiles = [np.asarray(covers[r]) for r in rows]
        if res != thumb:
            tiles = [np.asarray(Image.fromarray(t).resize((thumb, thumb), Image.Resampling.LANCZOS)) for t in tiles]
        path = _save(_strip(tiles), Path(dest_dir) / f"genre-{g}.png")
        out.append({"genre": name, "n": int((ds.genre_idx == g).sum()), "file": path, "rows": rows.tolist()})
    return out


def sample_strip(
    grid_png: Path, dest: Path, n_cols: int = 8, pad: int = PAD, items: int = 8, thumb: int = 64
) -> Path | None:
    """The first column of a sample grid laid out as one row: one z, each condition (``snapshot_grid`` layout).

    For a conditional model the strip shows whether changing the condition changes the cover; for an
    unconditional one it is simply a few samples. None when the file is missing or not a grid of square tiles.
    """
    if not Path(grid_png).is_file():
        return None
    try:
        with Image.open(grid_png) as im:
            grid = np.asarray(im.convert("RGB"))
    except OSError:
        return None
    height, width = grid.shape[:2]
    tile = (width - pad) // n_cols - pad
    if tile <= 0 or n_cols * (tile + pad) + pad != width or (height - pad) % (tile + pad):
        return None
    n_rows = (height - pad) // (tile + pad)
    tiles = [grid[pad + r * (tile + pad) : pad + r * (tile + pad) + tile, pad : pad + tile] for r in range(n_rows)]
    tiles = tiles[:items]
    if tile > thumb:  # a leaderboard thumbnail: 256 px covers need not travel at full size
        tiles = [np.asarray(Image.fromarray(t).resize((thumb, thumb), Image.Resampling.LANCZOS)) for t in tiles]
    return _save(_strip(tiles, pad), Path(dest))
