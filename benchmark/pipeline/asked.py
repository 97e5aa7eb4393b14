"""What each judged image was generated for: a manifest (``file,track_id[,z_id]``), track ids, or vectors.

The asked condition is what makes a conditional judgement possible: it pairs each image with the track (or the
condition vector) it was asked for. Images sharing a ``z_id`` came from the same latent with different
conditions; where those groups cross a common set of conditions they form the z x condition grid of the
sensitivity test. Every check names the first bad row in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data.prepared import PreparedDataset
from core.errors import UserError

MIN_IMAGES = 20  # as `bench evaluate --n`: fewer cannot fill the classifier's and the permutation tests' tables
MANIFEST_SUFFIXES = (".csv", ".parquet")


@dataclass
class Asked:
    """Per image: the dataset row of its asked track (or its asked condition vector), its file and its z group."""

    rows: np.ndarray | None  # int dataset rows, when tracks were named
    vectors: np.ndarray | None  # float32 (n, dc), when condition vectors were given instead
    files: list[str] | None  # image files of a folder, in manifest order
    z_ids: np.ndarray | None  # group ids (strings), None when the manifest has no z_id column
    source: str  # where it came from, for messages and metrics.json

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.vectors)


def read_manifest(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet manifest as strings (ids stay ids: no '007' -> 7)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no manifest {path}")
    if path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise UserError(f"{path}: a manifest is a .csv or .parquet file with columns file,track_id[,z_id]")
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        return pd.read_parquet(path).astype(str)
    except (UnicodeDecodeError, ValueError, OSError, pd.errors.ParserError) as e:
        raise UserError(f"{path}: not a readable manifest ({type(e).__name__}: {str(e).splitlines()[0]})") from e


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def track_rows(ds: PreparedDataset, ids: Sequence[Any], where: str) -> np.ndarray:
    """Dataset rows of track ids; the first unknown one in one line."""
    index = pd.Series(np.arange(len(ds)), index=ds.tracks["track_id"].astype(str))
    ids = pd.Series([str(i).strip() for i in ids])
    known = ids.isin(index.index).to_numpy()
    if not known.all():
        i = _first_bad(~known)
        raise UserError(f"{where} row {i + 1}: unknown track id {ids[i]!r} (not in dataset {ds.name!r})")
    return index.loc[ids].to_numpy()


def _check_vectors(v: Any, where: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] == 0:
        raise UserError(f"{where}: condition vectors must be a 2-d (n, d) array, got shape {a.shape}")
    bad = ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise UserError(f"{where} row {_first_bad(bad) + 1}: the condition vector holds NaN or inf")
    return a


def _from_frame(ds: PreparedDataset, df: pd.DataFrame, where: str, need_files: bool) -> Asked:
    cols = [c.strip() for c in df.columns]
    df.columns = cols
    if "track_id" not in cols:
        raise UserError(f"{where}: no track_id column (columns: {', '.join(cols)}); expected file,track_id[,z_id]")
    if need_files and "file" not in cols:
        raise UserError(f"{where}: no file column: a folder of images needs file,track_id[,z_id]")
    files = [str(f).strip() for f in df["file"]] if "file" in cols else None
    if files is not None:
        dup = pd.Series(files).duplicated().to_numpy()
        if dup.any():
            i = _first_bad(dup)
            raise UserError(f"{where} row {i + 1}: file {files[i]!r} is listed twice")
        empty = np.array([not f for f in files])
        if empty.any():
            raise UserError(f"{where} row {_first_bad(empty) + 1}: empty file name")
    z = None
    if "z_id" in cols:
        z = np.array([str(v).strip() for v in df["z_id"]], dtype=object)
        pairs = pd.Series([f"{a}\x00{b}" for a, b in zip(z, df["track_id"], strict=True)]).duplicated().to_numpy()
        if pairs.any():
            i = _first_bad(pairs)
            raise UserError(f"{where} row {i + 1}: z_id {z[i]!r} with track {df['track_id'].iloc[i]!r} is listed twice")
    return Asked(rows=track_rows(ds, df["track_id"], where), vectors=None, files=files, z_ids=z, source=where)


def resolve_asked(ds: PreparedDataset, asked: Any, *, need_files: bool = False) -> Asked:
    """``asked`` as a manifest path, a DataFrame, a sequence of track ids, an ``.npy`` of vectors or an array."""
    if isinstance(asked, (str, Path)) and Path(asked).suffix.lower() == ".npy":
        return _vectors(np.load(Path(asked), allow_pickle=False), str(asked), need_files)
    if isinstance(asked, (str, Path)):
        return _from_frame(ds, read_manifest(asked), Path(asked).name, need_files)
    if isinstance(asked, pd.DataFrame):
        return _from_frame(ds, asked.astype(str).copy(), "asked", need_files)
    if hasattr(asked, "detach"):
        asked = asked.detach().cpu().numpy()
    a = np.asarray(asked)
    if a.ndim == 2 and np.issubdtype(a.dtype, np.number):
        return _vectors(a, "asked", need_files)
    if a.ndim == 1:
        if need_files:
            raise UserError("a folder of images needs a manifest with file,track_id[,z_id] columns")
        return Asked(rows=track_rows(ds, a.tolist(), "asked"), vectors=None, files=None, z_ids=None, source="asked")
    raise UserError(f"asked: expected a manifest, track ids or (n, d) condition vectors, got shape {a.shape}")


def _vectors(a: np.ndarray, where: str, need_files: bool) -> Asked:
    if need_files:
        raise UserError("a folder of images needs a manifest with file,track_id[,z_id] columns, not vectors")
    return Asked(rows=None, vectors=_check_vectors(a, where), files=None, z_ids=None, source=where)


def check_count(asked: Asked, n_images: int) -> None:
    """As many asked rows as images, and at least ``MIN_IMAGES``."""
    if len(asked) != n_images:
        raise UserError(f"{asked.source}: {len(asked)} asked rows for {n_images} images: give one row per image")
    if n_images < MIN_IMAGES:
        raise UserError(f"{asked.source}: {n_images} images; at least {MIN_IMAGES} are needed to judge")
