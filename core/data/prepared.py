"""The prepared dataset format shared by the synthetic world and the real-data importer.

A prepared dataset is a folder (see ``core.paths.DatasetPaths``)::

    tracks.parquet     one row per track: ids, names, genre, Spotify attributes (NaN where absent), split,
                       audio_len, cover_hash / audio_hash (exact-duplicate fingerprints)
    covers_<R>.npy     uint8 (N, R, R, 3), memory-mapped, row i = tracks row i
    audio.npy          int16 (N, L), memory-mapped, fixed length L (zero-padded; audio_len = valid samples);
                       absent in a covers-only dataset (manifest ``"audio": false``, L = 0, audio_len 0)
    manifest.json      source, counts, genres, resolutions, hashes, duplicates, split warnings, versions
    rejected.csv       every input that was not taken, and why

It is written into a temporary sibling folder and renamed into place only when complete, so a crash never
leaves a half-written dataset under the real name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import paths as P
from core import storage
from core.config.schema import SplitConfig
from core.data.fingerprint import manifest_hash
from core.data.splits import SPLITS, split_frame
from core.errors import UserError
from core.jsonfiles import write_json_atomic
from core.versions import package_versions

FORMAT_VERSION = 1
ATTRIBUTES = (
    "danceability",
    "energy",
    "loudness",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "key",
    "mode",
    "duration_ms",
)
ID_COLUMNS = ("track_id", "album_id", "artist_id")
NAME_COLUMNS = ("artist", "album", "track")
REJECTED_COLUMNS = ("item", "source", "reason")


def file_sha256(path: Path, chunk: int = 1 << 23) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def to_int16(wave: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] (or int16 already) to int16 PCM."""
    if wave.dtype == np.int16:
        return wave
    return np.round(np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16)


def content_hash(arr: np.ndarray) -> str | None:
    """Exact-duplicate fingerprint of a cover (uint8 pixels) or a clip (int16 samples); None when all zero.

    All-zero content (a blank cover, digital silence, rows never written) is not a fingerprint of anything, so it
    ties no tracks together.
    """
    a = np.ascontiguousarray(arr)
    return hashlib.blake2b(a.tobytes(), digest_size=16).hexdigest() if a.any() else None


def empty_rejected() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=str) for c in REJECTED_COLUMNS})


class DatasetWriter:
    """Streams covers and audio into memory-mapped arrays; ``finish`` adds the tables and moves it into place.

    Worker processes may open ``cover_file(res)`` / ``audio_file`` themselves with
    ``np.load(path, mmap_mode="r+")`` and write their own rows, which avoids shipping arrays between processes.
    """

    def __init__(
        self,
        dest: P.DatasetPaths,
        n: int,
        resolutions: Sequence[int],
        audio_samples: int,
        sample_rate: int,
        force: bool = False,
        *,
        audio: bool = True,
    ):
        """``audio=False``: a covers-only dataset (no audio.npy; the probe's genre side still works)."""
        if n <= 0:
            raise UserError("nothing to write: the dataset would have no tracks")
        if dest.root.exists() and not force:
            raise UserError(f"dataset {dest.name!r} already exists at {dest.root} (pass --force to replace it)")
        self.dest = dest
        self.n = int(n)
        self.resolutions = sorted({int(r) for r in resolutions})
        self.has_audio = bool(audio)
        self.audio_samples = int(audio_samples) if audio else 0
        self.sample_rate = int(sample_rate)
        self.warnings: list[str] = []  # what the split could not keep, filled by finish
        self.tmp = P.DatasetPaths(dest.root.parent / f".{dest.name}.tmp-{os.getpid()}")
        # covers + audio, plus room for the tables: checked first, then reserved, so a full disk is one line now
        # rather than a worker killed by SIGBUS while writing into a sparse memory map later
        self.nbytes = self.n * (sum(3 * r * r for r in self.resolutions) + 2 * self.audio_samples) + (4 << 20)
        storage.check_writable(dest.root.parent, "the data root")
        storage.check_free_space(dest.root.parent, self.nbytes, f"{self.n} tracks")
        if self.tmp.root.exists():
            shutil.rmtree(self.tmp.root)
        with storage.disk_errors(dest.root.parent, self.nbytes):
            self.tmp.root.mkdir(parents=True)
            try:
                self._covers = {
                    r: np.lib.format.open_memmap(self.tmp.covers(r), mode="w+", dtype=np.uint8, shape=(self.n, r, r, 3))
                    for r in self.resolutions
                }
                self._audio = (
                    np.lib.format.open_memmap(
                        self.tmp.audio, mode="w+", dtype=np.int16, shape=(self.n, self.audio_samples)
                    )
                    if self.has_audio
                    else None
                )
                for path in [*map(self.tmp.covers, self.resolutions), *([self.tmp.audio] if self.has_audio else [])]:
                    storage.reserve_file(path)
            except BaseException:
                self._covers, self._audio = {}, None
                shutil.rmtree(self.tmp.root, ignore_errors=True)
                raise

    def cover_file(self, res: int) -> Path:
        return self.tmp.covers(res)

    @property
    def audio_file(self) -> Path | None:
        return self.tmp.audio if self.has_audio else None

    def put(self, row: int, covers: dict[int, np.ndarray], audio: np.ndarray) -> int:
        """Write one track's covers (one uint8 HxWx3 per resolution) and audio; returns its valid length."""
        for r in self.resolutions:
            self._covers[r][row] = covers[r]
        if self._audio is None:
            return 0
        wave = to_int16(np.asarray(audio))[: self.audio_samples]
        self._audio[row, : len(wave)] = wave
        self._audio[row, len(wave) :] = 0
        return len(wave)

    def _content_hashes(self, audio_len: np.ndarray) -> tuple[list[str | None], list[str | None]]:
        """Per kept row: ``content_hash`` of the largest cover and of the valid audio samples."""
        covers = self._covers[max(self.resolutions)]
        n = len(audio_len)  # the rows kept (after compaction)
        audio = self._audio
        return (
            [content_hash(covers[i]) for i in range(n)],
            [content_hash(audio[i, : int(audio_len[i])]) if audio is not None else None for i in range(n)],
        )

    def abort(self) -> None:
        self._covers.clear()
        self._audio = None
        shutil.rmtree(self.tmp.root, ignore_errors=True)

    def _compact(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (in that order) of every array, streaming in chunks."""
        arrays = {self.tmp.covers(r): self._covers[r] for r in self.resolutions}
        if self._audio is not None:
            arrays[self.tmp.audio] = self._audio
        for path, arr in arrays.items():
            arr.flush()
            src = np.load(path, mmap_mode="r")
            new_path = path.with_suffix(".compact.npy")
            with storage.disk_errors(self.tmp.root, len(rows) * src[0].nbytes):
                out = np.lib.format.open_memmap(new_path, mode="w+", dtype=src.dtype, shape=(len(rows), *src.shape[1:]))
                storage.reserve_file(new_path)
            for start in range(0, len(rows), 1024):
                out[start : start + 1024] = src[rows[start : start + 1024]]
            out.flush()
            del out, src
            os.replace(new_path, path)
        self._covers = {r: np.load(self.tmp.covers(r), mmap_mode="r+") for r in self.resolutions}
        self._audio = np.load(self.tmp.audio, mmap_mode="r+") if self.has_audio else None

    def finish(
        self,
        tracks: pd.DataFrame,
        *,
        kind: str,
        source: dict[str, Any],
        split: SplitConfig | None = None,
        rows: np.ndarray | None = None,
        rejected: pd.DataFrame | None = None,
        genres: Sequence[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> P.DatasetPaths:
        """Write tables and manifest, then move the folder into place.

        ``tracks`` has one row per kept track; ``rows`` says which writer rows they occupy (default: all, in
        order). Unkept rows are dropped from the arrays. ``genres`` fixes the order of genre indices (default:
        sorted names seen).
        """
        tracks = self._kept_tracks(tracks, rows)
        genre_names = list(genres) if genres is not None else sorted(tracks["genre"].dropna().astype(str).unique())
        tracks = self._complete_columns(tracks, genre_names, split)
        rej = rejected if rejected is not None else empty_rejected()
        self._write_tables(tracks, rej)
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": self.dest.name,
            "kind": kind,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": source,
            "counts": _counts(tracks, genre_names, len(rej)),
            "genres": genre_names,
            "resolutions": self.resolutions,
            "sample_rate": self.sample_rate,
            "audio": self.has_audio,
            "audio_samples": self.audio_samples,
            "split": (split or SplitConfig()).model_dump(),
            "split_warnings": self.warnings,
            "attributes_available": [c for c in ATTRIBUTES if tracks[c].notna().any()],
            "duplicates": duplicate_report(tracks),
            "files": self._file_hashes(),
            "versions": package_versions(),
            **(extra or {}),
        }
        write_json_atomic(self.tmp.manifest, manifest)
        self._move_into_place()
        return self.dest

    def _kept_tracks(self, tracks: pd.DataFrame, rows: np.ndarray | None) -> pd.DataFrame:
        """The kept tracks, checked, with the arrays compacted to their rows."""
        tracks = tracks.reset_index(drop=True).copy()
        if rows is None:
            rows = np.arange(self.n)
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) != len(tracks):
            raise ValueError("rows and tracks differ in length")
        if len(tracks) == 0:
            self.abort()
            raise UserError("no valid tracks: nothing was written")
        missing = [c for c in ("track_id", "genre") if c not in tracks.columns]
        if missing:
            raise ValueError(f"tracks table lacks columns {missing}")
        if tracks["track_id"].duplicated().any():
            raise ValueError("duplicate track ids in tracks table")
        if len(rows) != self.n or not np.array_equal(rows, np.arange(self.n)):
            audio_len = tracks["audio_len"].to_numpy() if "audio_len" in tracks else None
            self._compact(rows)
            if audio_len is not None:
                tracks["audio_len"] = audio_len
        return tracks

    def _complete_columns(
        self, tracks: pd.DataFrame, genre_names: list[str], split: SplitConfig | None
    ) -> pd.DataFrame:
        """Every column of the format (absent ones unknown), genre indices, content hashes and the split."""
        for col in ("album_id", "artist_id", *NAME_COLUMNS):
            if col not in tracks.columns:
                tracks[col] = None
        if "audio_len" not in tracks.columns:
            tracks["audio_len"] = self.audio_samples
        lookup = {g: i for i, g in enumerate(genre_names)}
        tracks["genre_idx"] = [lookup.get(g, -1) if isinstance(g, str) else -1 for g in tracks["genre"]]
        for col in ATTRIBUTES:  # an absent attribute column is unknown for every track
            if col not in tracks.columns:
                tracks[col] = np.nan
        if "cover_hash" not in tracks.columns or "audio_hash" not in tracks.columns:  # the importer's workers hash
            tracks["cover_hash"], tracks["audio_hash"] = self._content_hashes(tracks["audio_len"].to_numpy())
        try:
            result = split_frame(tracks, split)  # artist and content ties, as split.group_by says
        except UserError:
            self.abort()
            raise
        tracks["split"] = result.split
        self.warnings = list(result.warnings)
        tracks["row"] = np.arange(len(tracks))
        for col in ID_COLUMNS:
            tracks[col] = tracks[col].astype("string")
        return tracks

    def _write_tables(self, tracks: pd.DataFrame, rejected: pd.DataFrame) -> None:
        """tracks.parquet, rejected.csv, and the memory-mapped arrays flushed and closed."""
        tracks.to_parquet(self.tmp.tracks, index=False)
        rejected.to_csv(self.tmp.rejected, index=False)
        for arr in self._covers.values():
            arr.flush()
        if self._audio is not None:
            self._audio.flush()
        self._covers.clear()
        self._audio = None

    def _file_hashes(self) -> dict[str, dict[str, Any]]:
        return {
            path.name: {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
            for path in sorted(self.tmp.root.iterdir())
            if path.is_file()
        }

    def _move_into_place(self) -> None:
        """Replace the destination with the finished folder in one rename (the old one removed afterwards)."""
        _fsync_dir(self.tmp.root)
        final = self.dest.root
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            os.replace(final, old)
        os.replace(self.tmp.root, final)
        _fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _counts(tracks: pd.DataFrame, genre_names: list[str], rejected: int) -> dict[str, Any]:
    """Tracks, rejected inputs, tracks per split and per genre and split, for the manifest."""
    split_counts = {s: int((tracks["split"] == s).sum()) for s in SPLITS}
    per_genre = {
        str(g): {s: int(((tracks["genre"] == g) & (tracks["split"] == s)).sum()) for s in SPLITS}
        for g in genre_names
    }
    return {"tracks": len(tracks), "rejected": rejected, "splits": split_counts, "genres": per_genre}


def duplicate_report(tracks: pd.DataFrame, examples: int = 10) -> dict[str, Any]:
    """Exact duplicates across tracks (same audio samples, or the same cover on different albums).

    Tracks of one album share its cover by design, so a cover counts only when it appears on more than one album
    (or on more than one track where album ids are missing). Duplicates were kept in one split by the splitter.
    """
    out: dict[str, Any] = {}
    album = tracks["album_id"].astype(object).where(tracks["album_id"].notna(), tracks["track_id"]).astype(str)
    for kind, col in (("audio", "audio_hash"), ("covers", "cover_hash")):
        if col not in tracks.columns:
            continue
        h = tracks[col]
        ok = h.notna()
        unit = tracks["track_id"].astype(str) if kind == "audio" else album
        per = pd.DataFrame({"h": h[ok], "unit": unit[ok], "track": tracks["track_id"].astype(str)[ok]})
        spread = per.groupby("h")["unit"].nunique()
        dup = spread.index[spread.to_numpy() > 1]
        rows = per[per["h"].isin(dup)]
        groups = [sorted(v.tolist()) for _, v in rows.groupby("h")["track"]]
        groups.sort(key=lambda v: (-len(v), v[0]))
        out[kind] = {"groups": len(groups), "tracks": int(len(rows)), "examples": groups[:examples]}
    return out


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class PreparedDataset:
    """Read access to a prepared dataset: tracks table, manifest, memory-mapped covers and audio."""

    def __init__(self, paths: P.DatasetPaths):
        if not paths.exists():
            raise UserError(
                f"dataset {paths.name!r} not found at {paths.root} "
                f"(create it with `bench data synth --name {paths.name}` or `bench data import`)"
            )
        self.paths = paths
        self.manifest: dict[str, Any] = json.loads(paths.manifest.read_text(encoding="utf-8"))
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise UserError(
                f"dataset {paths.name!r} has format version {self.manifest.get('format_version')}, "
                f"this coverbench reads {FORMAT_VERSION}: prepare it again"
            )
        self.tracks: pd.DataFrame = pd.read_parquet(paths.tracks)

    @classmethod
    def open(cls, name_or_path: str | Path) -> PreparedDataset:
        """By dataset name under the data root, or by an explicit folder path."""
        p = Path(name_or_path)
        if (p / "manifest.json").is_file():
            return cls(P.DatasetPaths(p))
        return cls(P.dataset(str(name_or_path)))

    @property
    def name(self) -> str:
        return self.paths.name

    @property
    def fingerprint(self) -> str:
        """Content identity (``core.data.fingerprint``): what every artifact made from this dataset records."""
        return manifest_hash(self.manifest)

    @property
    def location(self) -> str:
        """How to open this dataset again: its name when it is the one under the data root, else its folder."""
        try:
            if P.dataset(self.name).root.absolute() == self.paths.root.absolute():
                return self.name
        except UserError:  # a folder name that is no dataset name
            pass
        return str(self.paths.root.absolute())

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def genres(self) -> list[str]:
        return list(self.manifest["genres"])

    @property
    def resolutions(self) -> list[int]:
        return list(self.manifest["resolutions"])

    @property
    def sample_rate(self) -> int:
        return int(self.manifest["sample_rate"])

    @property
    def is_synthetic(self) -> bool:
        return self.manifest.get("kind") == "synthetic"

    @property
    def has_audio(self) -> bool:
        """False for a covers-only import (no previews); datasets from before the field all have audio."""
        return bool(self.manifest.get("audio", True))

    def require_audio(self, need: str, instead: str = "import the collection again with its previews") -> None:
        """One clear line instead of a missing audio.npy deep inside the caller; ``need`` says who needs it
        ("encoder pca needs audio")."""
        if not self.has_audio:
            raise UserError(f"dataset {self.name!r} was imported without audio (covers only): {need}; {instead}")

    @property
    def attributes_available(self) -> list[str]:
        """The Spotify attribute columns this dataset has (datasets from before the field have all of them)."""
        return list(self.manifest.get("attributes_available", ATTRIBUTES))

    @property
    def genre_idx(self) -> np.ndarray:
        return self.tracks["genre_idx"].to_numpy(dtype=np.int64)

    def split_rows(self, split: str | None) -> np.ndarray:
        if split is None:
            return np.arange(len(self.tracks))
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
        return np.flatnonzero(self.tracks["split"].to_numpy() == split)

    def covers(self, res: int) -> np.ndarray:
        """uint8 (N, res, res, 3), memory-mapped read-only."""
        if int(res) not in self.resolutions:
            have = ", ".join(str(r) for r in self.resolutions)
            raise UserError(f"dataset {self.name!r} has no {res} px covers (it has: {have})")
        return np.load(self.paths.covers(int(res)), mmap_mode="r")

    def audio(self) -> np.ndarray:
        """int16 (N, L), memory-mapped read-only; see ``waveform`` for one track as float."""
        self.require_audio("reading its audio needs audio.npy")
        return np.load(self.paths.audio, mmap_mode="r")

    def waveform(self, row: int) -> np.ndarray:
        """Track ``row``'s valid audio as float32 in [-1, 1]."""
        n = int(self.tracks["audio_len"].iat[row])
        return self.audio()[row, :n].astype(np.float32) / 32767.0

    def rejected(self) -> pd.DataFrame:
        if self.paths.rejected.is_file():
            return pd.read_csv(self.paths.rejected, dtype=str, keep_default_na=False)
        return empty_rejected()
