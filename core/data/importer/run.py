"""``import_dataset``: a Spotify-style dump (folder or zip) to a prepared dataset.

Steps: unpack a zip safely; read and validate the CSV; index media by stem and pair each row with its cover
(album_id, else track_id) and preview (track_id); decode and write the pairs in worker processes; drop what
failed; write the prepared dataset. Every input not taken lands in ``rejected.csv`` as (item, source,
"code: detail").

A dump with no audio file at all imports covers only (manifest ``"audio": false``, no audio.npy): the
relationship probe's genre side works on it, anything that needs audio refuses it in one line. A dump with some
previews keeps requiring one per track (a missing one is a rejection, not a silent covers-only track).

The reject share is counted over the CSV's rows (tracks): orphan files and refused zip members are recorded but
are not tracks. When more than ``max_reject_share`` of the rows are rejected, nothing is created; the rejected
list is saved as ``<data root>/.<name>.rejected.csv`` and a UserError says so.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import storage
from core.config.schema import ImportConfig, SplitConfig
from core.data.importer import worker
from core.data.importer.archive import default_cap, remove_tree, safe_extract
from core.data.importer.files import descend_single_folder, find_metadata, index_media
from core.data.importer.metadata import Metadata, read_metadata
from core.data.prepared import ATTRIBUTES, REJECTED_COLUMNS, DatasetWriter
from core.errors import UserError
from core.paths import DatasetPaths
from core.progress import progress_bar

BATCH = 4  # tracks per task sent to a worker: small enough for a smooth bar, big enough to hide IPC


@dataclass
class ImportResult:
    paths: DatasetPaths
    kept: int
    rejected: pd.DataFrame  # columns item, source, reason ("short code: detail")
    seconds: float
    notes: list[str] = field(default_factory=list)


def rejected_list_path(dest: DatasetPaths) -> Path:
    """Where the rejected list goes when the import fails for rejecting too much."""
    return dest.root.parent / f".{dest.name}.rejected.csv"


def import_dataset(
    src: Path,
    dest: DatasetPaths,
    cfg: ImportConfig,
    split: SplitConfig,
    *,
    metadata: Path | None = None,
    workers: int | None = None,
    force: bool = False,
) -> ImportResult:
    """Import ``src`` (folder or .zip) into ``dest``; see the module docstring for the rules."""
    t0 = time.perf_counter()
    src = Path(src)
    if not src.exists():
        raise UserError(f"import source {src} does not exist")
    if dest.root.exists() and not force:
        raise UserError(f"dataset {dest.name!r} already exists at {dest.root} (pass --force to replace it)")
    storage.check_writable(dest.root.parent, "the data root")  # before unpacking or decoding anything
    rejected: list[tuple[str, str, str]] = []
    source: dict[str, object] = {"path": str(src.resolve())}
    staging: Path | None = None
    try:
        if src.is_dir():
            root = src
            source["type"] = "folder"
        elif zipfile.is_zipfile(src):
            staging = dest.root.parent / f".{dest.name}.unzip-{os.getpid()}"
            remove_tree(staging)
            with zipfile.ZipFile(src) as zf:  # the sizes the members announce; a lying one fails in disk_errors
                need = min(sum(i.file_size for i in zf.infolist()), default_cap(src))
            storage.check_free_space(staging.parent, need, f"unpacking {src.name}")
            with storage.disk_errors(staging.parent, need):
                unpacked = safe_extract(src, staging)
            rejected += [(name, src.name, reason) for name, reason in unpacked.refused]
            root = descend_single_folder(staging)
            source["type"] = "zip"
            source["zip"] = {"files": unpacked.files, "bytes": unpacked.bytes, "refused": len(unpacked.refused)}
        else:
            raise UserError(f"import source {src} is neither a folder nor a zip archive")
        result = _import_tree(root, dest, cfg, split, metadata, workers, force, rejected, source)
    finally:
        if staging is not None:
            remove_tree(staging)
    result.seconds = time.perf_counter() - t0
    return result


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _import_tree(
    root: Path,
    dest: DatasetPaths,
    cfg: ImportConfig,
    split: SplitConfig,
    metadata: Path | None,
    workers: int | None,
    force: bool,
    rejected: list[tuple[str, str, str]],
    source: dict[str, object],
) -> ImportResult:
    csv_path = find_metadata(root, metadata)
    meta = read_metadata(csv_path)
    source.update(meta.info)
    source["metadata"] = _rel(csv_path, root)
    notes = [f"{csv_path.name}: {meta.info['csv_encoding_note']}"] if "csv_encoding_note" in meta.info else []
    absent_attr = list(meta.info.get("absent_attribute_columns") or [])
    if len(absent_attr) == len(ATTRIBUTES):
        notes.append(f"{csv_path.name}: no Spotify attribute columns: the 'attributes' condition is unavailable")
    elif absent_attr:
        notes.append(f"{csv_path.name}: attribute column(s) {', '.join(absent_attr)} absent (NaN for every track)")
    rejected += meta.rejected

    media = index_media(root)
    source["files"] = {"covers": len(media.covers), "previews": len(media.previews)}
    link_note = media.link_note(root)
    if link_note:
        notes.append(link_note)
        source["symlinks_not_followed"] = len(media.links)
    rejected += [
        (stem, _rel(p, root), f"duplicate-file: same id as {_rel(kept, root)}") for stem, p, kept in media.duplicates
    ]
    has_audio = bool(media.previews)
    if not has_audio:
        notes.append(f"no audio files in {root.name}: imported covers only (the probe's genre side works; audio "
                     "encoders and music-conditioned training need previews)")
    source["audio"] = has_audio
    jobs, pairing_rejects, meta_rows = _pair(meta, media, root, has_audio)
    rejected += pairing_rejects
    rejected += _orphans(meta, media, root)
    track_rejects = len(meta.rejected) + len(pairing_rejects)
    _check_share(track_rejects, meta.rows_read, cfg, dest, rejected, hint=link_note)  # fail before decoding

    samples = round(cfg.seconds * cfg.sample_rate)
    writer = DatasetWriter(dest, len(jobs), cfg.res, samples, cfg.sample_rate, force, audio=has_audio)
    try:
        with storage.disk_errors(dest.root.parent):  # space is reserved; a full disk later on is one line too
            outcomes = _decode_all(jobs, writer, cfg, samples, workers)
        kept_rows, audio_len, hashes = [], [], []
        for job, out in zip(jobs, outcomes, strict=True):
            if out.reason is None:
                kept_rows.append(job.row)
                audio_len.append(out.audio_len)
                hashes.append((out.cover_hash, out.audio_hash))
            else:
                bad = job.cover if out.failed == "cover" else job.preview
                rejected.append((meta.tracks["track_id"].iat[meta_rows[job.row]], _rel(Path(bad), root), out.reason))
                track_rejects += 1
        rejected_df = _rejected_frame(rejected)
        _check_share(track_rejects, meta.rows_read, cfg, dest, rejected, writer, hint=link_note)
        tracks = meta.tracks.iloc[[meta_rows[r] for r in kept_rows]].drop(columns=["line"]).reset_index(drop=True)
        tracks = tracks[["track_id", "album_id", "artist_id", "artist", "album", "track", "genre", *ATTRIBUTES]]
        tracks["audio_len"] = np.asarray(audio_len, dtype=np.int64)
        tracks["cover_hash"] = [h[0] for h in hashes]
        tracks["audio_hash"] = [h[1] for h in hashes]
        source["rows"] = meta.rows_read
        source["rejected_tracks"] = track_rejects
        source["config"] = cfg.model_dump()
        with storage.disk_errors(dest.root.parent):
            paths = writer.finish(
                tracks,
                kind="import",
                source=source,
                split=split,
                rows=np.asarray(kept_rows, dtype=np.int64),
                rejected=rejected_df,
            )
    except BaseException:
        writer.abort()
        raise
    notes += writer.warnings
    rejected_list_path(dest).unlink(missing_ok=True)  # a list left by an earlier failed try is stale now
    return ImportResult(paths=paths, kept=len(kept_rows), rejected=rejected_df, seconds=0.0, notes=notes)


def _pair(
    meta: Metadata, media, root: Path, has_audio: bool = True  # noqa: ANN001
) -> tuple[list[worker.Job], list[tuple[str, str, str]], list[int]]:
    """One job per CSV row that has both a cover and a preview (only a cover without ``has_audio``); rejections
    for the others."""
    jobs: list[worker.Job] = []
    rejects: list[tuple[str, str, str]] = []
    meta_rows: list[int] = []
    t = meta.tracks
    csv_name = Path(str(meta.info["metadata"])).name
    for i, (tid, aid, line) in enumerate(zip(t["track_id"], t["album_id"], t["line"], strict=True)):
        cover = media.covers.get(aid) if aid is not None else None
        cover = cover or media.covers.get(tid)
        preview = media.previews.get(tid)
        where = f"{csv_name}:{line}"
        if not has_audio:
            if cover is None:
                rejects.append((tid, where, _missing(media, root, "cover", [aid, tid])))
            else:
                jobs.append(worker.Job(len(jobs), str(cover), None))
                meta_rows.append(i)
        elif cover is None and preview is None:
            linked = _linked(media, root, "cover", [aid, tid]) or _linked(media, root, "preview", [tid])
            rejects.append((tid, where, linked or f"missing-files: no cover and no preview{_folders(media, root)}"))
        elif cover is None:
            rejects.append((tid, _rel(preview, root), _missing(media, root, "cover", [aid, tid])))
        elif preview is None:
            rejects.append((tid, _rel(cover, root), _missing(media, root, "preview", [tid])))
        else:
            jobs.append(worker.Job(len(jobs), str(cover), str(preview)))
            meta_rows.append(i)
    return jobs, rejects, meta_rows


def _linked(media, root: Path, kind: str, stems: list[str | None]) -> str | None:  # noqa: ANN001 - MediaIndex
    """``symlink-cover: covers/a1.jpg is a symbolic link, not followed ...`` when the wanted file is one."""
    path = next((media.linked[kind][s] for s in stems if s is not None and s in media.linked[kind]), None)
    if path is None:
        return None
    return f"symlink-{kind}: {_rel(path, root)} is a symbolic link, not followed (copy the file in)"


def _folders(media, root: Path) -> str:  # noqa: ANN001 - MediaIndex
    """`` (not searched: covers/ is a symbolic link, not followed)`` where linked folders may hide the file."""
    folders = [f"{_rel(p, root)}/" for p in media.linked_folders()]
    if not folders:
        return ""
    verb = "is a symbolic link" if len(folders) == 1 else "are symbolic links"
    return f" (not searched: {', '.join(folders[:3])} {verb}, not followed)"


def _missing(media, root: Path, kind: str, stems: list[str | None]) -> str:  # noqa: ANN001 - MediaIndex
    """Why a row has no ``kind``: its file is a link, or there is none (and maybe a linked folder was skipped)."""
    name = next((s for s in stems if s is not None), "?")
    return _linked(media, root, kind, stems) or f"missing-{kind}: no {kind} named {name}{_folders(media, root)}"


def _orphans(meta: Metadata, media, root: Path) -> list[tuple[str, str, str]]:  # noqa: ANN001
    out = []
    for stem, path in media.covers.items():
        if stem not in meta.ids:
            out.append((stem, _rel(path, root), "orphan-file: cover matches no album_id or track_id in the CSV"))
    for stem, path in media.previews.items():
        if stem not in meta.ids:
            out.append((stem, _rel(path, root), "orphan-file: preview matches no track_id in the CSV"))
    return out


def _rejected_frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(REJECTED_COLUMNS)).astype(str)


def _check_share(
    n_rejected: int,
    n_rows: int,
    cfg: ImportConfig,
    dest: DatasetPaths,
    rejected: list[tuple[str, str, str]],
    writer: DatasetWriter | None = None,
    hint: str = "",
) -> None:
    share = n_rejected / n_rows if n_rows else 1.0
    if n_rejected < n_rows and share <= cfg.max_reject_share:
        return
    if writer is not None:
        writer.abort()
    out = rejected_list_path(dest)
    out.parent.mkdir(parents=True, exist_ok=True)
    _rejected_frame(rejected).to_csv(out, index=False)
    raise UserError(
        f"import rejected {n_rejected} of {n_rows} tracks ({share:.0%}, limit {cfg.max_reject_share:.0%}): "
        f"dataset {dest.name!r} not created; reasons in {out}" + (f"; {hint}" if hint else "")
    )


def _decode_all(
    jobs: list[worker.Job], writer: DatasetWriter, cfg: ImportConfig, samples: int, workers: int | None
) -> list[worker.Outcome]:
    settings = worker.Settings(
        cover_files={r: str(writer.cover_file(r)) for r in writer.resolutions},
        audio_file=str(writer.audio_file) if writer.audio_file is not None else None,
        samples=samples,
        sample_rate=cfg.sample_rate,
        min_audio_seconds=cfg.min_audio_seconds,
        min_cover_px=cfg.min_cover_px,
        max_aspect=cfg.max_aspect,
        max_pixels=cfg.max_pixels,
    )
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    outcomes: list[worker.Outcome | None] = [None] * len(jobs)
    batches = [jobs[i : i + BATCH] for i in range(0, len(jobs), BATCH)]
    # fork is cheap and the workers need nothing from torch; start them before the bar's refresh thread exists
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    ex = ProcessPoolExecutor(n_workers, ctx, initializer=worker.init, initargs=(settings, True, os.getpid()))
    try:
        futures = [ex.submit(worker.run_batch, b) for b in batches]
        with progress_bar("import tracks", len(jobs)) as bar:
            for fut in as_completed(futures):
                done = fut.result()
                for out in done:
                    outcomes[out.row] = out
                bar.advance(len(done))
    finally:
        ex.shutdown(wait=True, cancel_futures=True)  # on Ctrl-C or a crash, drop the queued tracks
    return outcomes  # type: ignore[return-value]
