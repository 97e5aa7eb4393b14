"""The per-track job run in worker processes: decode one cover and one preview, write them into the memmaps.

A covers-only import (no previews at all) sends jobs without a preview and no audio file: only the cover is done.

Each worker opens the writer's memory-mapped arrays once (``init``) and writes its own rows, so only a few bytes
per track travel back to the parent: the row, which file failed (if any), the reason and the audio length.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data.importer.audio import load_preview
from core.data.importer.images import load_cover
from core.data.importer.reject import Reject
from core.data.prepared import content_hash, to_int16
from core.workers import die_with_parent


@dataclass(frozen=True)
class Job:
    row: int
    cover: str
    preview: str | None  # None in a covers-only import


@dataclass(frozen=True)
class Outcome:
    row: int
    audio_len: int = 0
    failed: str | None = None  # "cover" or "preview"
    reason: str | None = None  # "code: detail"
    cover_hash: str | None = None  # content_hash of the largest cover and of the written samples, computed here
    audio_hash: str | None = None  # where the data is in memory and the work runs in parallel


@dataclass(frozen=True)
class Settings:
    cover_files: dict[int, str]
    audio_file: str | None  # None in a covers-only import
    samples: int
    sample_rate: int
    min_audio_seconds: float
    min_cover_px: int
    max_aspect: float
    max_pixels: int


_state: dict[str, object] = {}


def init(settings: Settings, quiet: bool = False, parent: int | None = None) -> None:
    """Open the output arrays for this process; ``quiet`` silences C-library chatter (mpg123) on stderr.

    ``parent``: the importing process's pid; the worker is killed when it dies (no orphan waits forever).
    """
    die_with_parent(parent)
    if quiet:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    _state["settings"] = settings
    _state["covers"] = {int(r): np.load(p, mmap_mode="r+") for r, p in settings.cover_files.items()}
    _state["audio"] = np.load(settings.audio_file, mmap_mode="r+") if settings.audio_file else None


def run_job(job: Job) -> Outcome:
    """Decode and write one track; input problems come back as a reason, never as an exception."""
    s: Settings = _state["settings"]  # type: ignore[assignment]
    failed = "cover"
    try:
        covers = load_cover(
            Path(job.cover),
            sorted(s.cover_files),
            min_px=s.min_cover_px,
            max_aspect=s.max_aspect,
            max_pixels=s.max_pixels,
        )
        failed = "preview"
        wave = load_preview(Path(job.preview), s.sample_rate, s.samples, s.min_audio_seconds) if job.preview else None
    except Reject as e:
        return Outcome(job.row, failed=failed, reason=e.reason)
    except MemoryError:
        return Outcome(job.row, failed=failed, reason="decode-error: out of memory while decoding")
    except Exception as e:  # noqa: BLE001 - decoders raise odd types on hostile files; one file must not stop all
        return Outcome(job.row, failed=failed, reason=f"decode-error: {type(e).__name__}: {e}")
    cover_arrays: dict[int, np.ndarray] = _state["covers"]  # type: ignore[assignment]
    for r, arr in covers.items():
        cover_arrays[r][job.row] = arr
    cover_hash = content_hash(covers[max(covers)])
    if wave is None:
        return Outcome(job.row, cover_hash=cover_hash)
    pcm = to_int16(wave)
    audio: np.ndarray = _state["audio"]  # type: ignore[assignment]
    audio[job.row, : len(pcm)] = pcm
    audio[job.row, len(pcm) :] = 0
    return Outcome(job.row, audio_len=len(pcm), cover_hash=cover_hash, audio_hash=content_hash(pcm))


def run_batch(jobs: list[Job]) -> list[Outcome]:
    return [run_job(j) for j in jobs]
