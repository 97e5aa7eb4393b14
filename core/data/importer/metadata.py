"""Reading and validating the dump's track table (a Spotify-style CSV).

Policy, so the importer never guesses silently:

* ``track_id`` is required: without it the file is not a track table, so we stop with a UserError.
* The 12 Spotify attribute columns are optional as whole columns: a collection from anywhere but Spotify's API
  (FMA, GTZAN, a personal library) has none. An absent column is NaN for every track and is listed in the
  manifest (``absent_attribute_columns``); the ``attributes`` condition then says it is unavailable. A column that
  is present must hold a number in every row, as before.
* ``album_id``, ``artist_id``, the name columns and ``genre`` are optional (None where missing). Without
  ``artist_id`` the artist name stands in, so splits stay artist-disjoint.
* Extra columns are ignored and listed in the manifest's source info.
* Text that is not UTF-8 is read as cp1252, then latin-1 (which always decodes); the encoding used is recorded.
* A row with an empty id, or a missing / non-numeric / non-finite value in a present attribute column, is
  rejected naming the column; a repeated track id keeps its first row and rejects the later ones.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.prepared import ATTRIBUTES
from core.errors import UserError

ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
INTEGER_ATTRIBUTES = ("key", "mode", "duration_ms")
# prepared-format column -> accepted source column names, first match wins
OPTIONAL = {
    "album_id": ("album_id",),
    "artist_id": ("artist_id",),
    "artist": ("artist_name", "artist", "artists"),
    "album": ("album_name", "album"),
    "track": ("track_name", "track", "name"),
    "genre": ("genre", "track_genre"),
}
REQUIRED = ("track_id",)


@dataclass
class Metadata:
    """Valid rows (one per unique track id, in file order) plus what was rejected and how the file was read."""

    tracks: pd.DataFrame
    rejected: list[tuple[str, str, str]]  # (item, source, "code: detail")
    rows_read: int
    info: dict[str, object] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)  # every track and album id in the file, valid rows or not


def decode_text(raw: bytes) -> tuple[str, str]:
    """Return (text, encoding): UTF-8 (with or without BOM) when it decodes, else cp1252, else latin-1."""
    for enc in ENCODINGS:
        try:
            return raw.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover


def _norm(col: object) -> str:
    return str(col).strip().lower().replace(" ", "_")


def _clean_text(s: pd.Series) -> pd.Series:
    s = s.astype(str).str.strip()
    return s.where(s != "", None).astype(object)


def read_metadata(path: Path) -> Metadata:
    """Read and validate the track table; raises UserError when the file is not the expected dump."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read metadata file {path}: {e.strerror or e}") from e
    text, encoding = decode_text(raw)
    if not text.strip():
        raise UserError(f"metadata file {path} is empty")
    try:
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True, quoting=csv.QUOTE_MINIMAL
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as e:
        raise UserError(f"metadata file {path} is not a readable CSV ({str(e).splitlines()[0]})") from e
    if len(frame) == 0:
        raise UserError(f"metadata file {path} has a header but no rows")
    originals = list(frame.columns)
    frame.columns = [_norm(c) for c in originals]
    if frame.columns.duplicated().any():
        dups = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise UserError(f"metadata file {path} repeats column(s): {', '.join(dups)}")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise UserError(
            f"metadata file {path} lacks required column(s): {', '.join(missing)} "
            f"(expected a CSV of tracks with a track_id column; the attributes {', '.join(ATTRIBUTES)} are optional)"
        )
    used: set[str] = set(REQUIRED) | {c for c in ATTRIBUTES if c in frame.columns}
    out = pd.DataFrame({"track_id": frame["track_id"].astype(str).str.strip()})
    absent: list[str] = []
    for target, names in OPTIONAL.items():
        col = next((n for n in names if n in frame.columns), None)
        if col is None:
            out[target] = None
            absent.append(target)
        else:
            used.add(col)
            out[target] = _clean_text(frame[col])
    artist_from_name = False
    if "artist_id" in absent and out["artist"].notna().any():
        out["artist_id"] = out["artist"]
        artist_from_name = True
    extra = [orig for orig, c in zip(originals, frame.columns, strict=True) if c not in used]

    lines = np.arange(len(frame)) + 2  # header is line 1 (ignores quoted newlines; good enough to find a row)
    bad: dict[int, list[str]] = {}
    absent_attributes = [c for c in ATTRIBUTES if c not in frame.columns]
    for col in absent_attributes:
        out[col] = np.nan  # a whole missing column is "unknown", never a row error
    for col in (c for c in ATTRIBUTES if c in frame.columns):
        values = pd.to_numeric(frame[col].str.strip(), errors="coerce")
        ok = np.isfinite(values.to_numpy(dtype=float))
        for i in np.flatnonzero(~ok):
            bad.setdefault(int(i), []).append(f"{col}={frame[col].iat[i]!r}")
        if col in INTEGER_ATTRIBUTES:
            out[col] = values.round().fillna(0).astype(np.int64)
        else:
            out[col] = values.astype(np.float64)

    rejected: list[tuple[str, str, str]] = []
    keep = np.ones(len(frame), dtype=bool)
    first_line: dict[str, int] = {}
    for i, tid in enumerate(out["track_id"]):
        where = f"{path.name}:{lines[i]}"
        if not tid:
            rejected.append(("", where, "missing-id: empty track_id"))
            keep[i] = False
            continue
        if tid in first_line:
            rejected.append((tid, where, f"duplicate-id: track_id already on line {first_line[tid]}"))
            keep[i] = False
            continue
        first_line[tid] = int(lines[i])
        if i in bad:
            rejected.append((tid, where, f"bad-attribute: {', '.join(bad[i])} is missing or not a number"))
            keep[i] = False
    tracks = out[keep].reset_index(drop=True)
    tracks["line"] = lines[keep]
    info: dict[str, object] = {
        "metadata": str(path),
        "csv_encoding": encoding,
        "extra_columns": extra,
        "absent_optional_columns": absent,
        "absent_attribute_columns": absent_attributes,
    }
    if encoding != "utf-8-sig":
        info["csv_encoding_note"] = f"not valid UTF-8: decoded as {encoding}"
    if artist_from_name:
        info["artist_id_from"] = "artist name (no artist_id column)"
    ids = set(out["track_id"]) | set(out["album_id"].dropna())
    ids.discard("")
    return Metadata(tracks=tracks, rejected=rejected, rows_read=len(frame), info=info, ids=ids)
