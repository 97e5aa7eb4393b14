"""Dataset-level feature extraction: worker processes, a parquet cache keyed by track id, shards and merge.

Files in ``<dataset>/features/``::

    fma.parquet                      track_id + 531 float32 feature columns, rows in dataset order
    skipped.csv                      track_id, reason: tracks whose audio gave no usable features
    fma.shard-<i>-of-<N>.parquet     one shard's rows (tracks whose stable id hash % N == i)
    skipped.shard-<i>-of-<N>.csv     that shard's skips

``extract_features(ds, shard=(i, N))`` writes one shard (run shards in separate processes or machines, or one
per rank under ``torchrun``); ``merge_feature_shards(ds)`` checks every track is covered exactly once and
writes ``fma.parquet``. Parquet metadata records the feature version and the dataset's creation stamp, so a
cache from an older feature definition or a re-prepared dataset is recomputed rather than reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.audio.features import FEATURE_VERSION, feature_names
from core.data.prepared import PreparedDataset
from core.errors import UserError
from core.progress import progress_bar

FEATURE_SET = "fma"
META_KEY = b"coverbench.features"
CHUNK = 8


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/N"`` -> ``(i, N)`` with 0 <= i < N; None or "" -> None."""
    if text is None or str(text).strip() == "":
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise UserError(f"bad --shard {text!r}: write it as i/N, e.g. 0/4 for the first of four shards")
    return check_shard((int(m.group(1)), int(m.group(2))))


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    i, n = int(shard[0]), int(shard[1])
    if n < 1 or not 0 <= i < n:
        raise UserError(f"bad shard {i}/{n}: need 0 <= i < N and N >= 1")
    return i, n


def env_shard() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) when launched by torchrun with more than one process, else None."""
    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if rank is None or world is None:
        return None
    try:
        shard = (int(rank), int(world))
    except ValueError as e:
        raise UserError(f"RANK={rank!r} / WORLD_SIZE={world!r} are not integers") from e
    return check_shard(shard) if shard[1] > 1 else None


def shard_of(track_ids: pd.Series | list[str], n: int) -> np.ndarray:
    """Stable shard number of each track id (blake2b of the id, independent of row order and Python's hash)."""
    ids = [str(t) for t in track_ids]
    return np.array([int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little") % n for t in ids])


def features_path(ds: PreparedDataset, shard: tuple[int, int] | None = None) -> Path:
    if shard is None:
        return ds.paths.features_dir / f"{FEATURE_SET}.parquet"
    return ds.paths.features_dir / f"{FEATURE_SET}.shard-{shard[0]}-of-{shard[1]}.parquet"


def skipped_path(ds: PreparedDataset, shard: tuple[int, int] | None = None) -> Path:
    if shard is None:
        return ds.paths.features_dir / "skipped.csv"
    return ds.paths.features_dir / f"skipped.shard-{shard[0]}-of-{shard[1]}.csv"


def _stamp(ds: PreparedDataset, shard: tuple[int, int] | None) -> dict:
    return {
        "feature_set": FEATURE_SET,
        "feature_version": FEATURE_VERSION,
        "dataset": ds.name,
        "dataset_created": ds.manifest.get("created"),
        "n_tracks": len(ds),
        "shard": list(shard) if shard else None,
    }


def _read_stamp(path: Path) -> dict | None:
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[META_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowInvalid):
        return None


def _is_current(ds: PreparedDataset, path: Path, shard: tuple[int, int] | None) -> bool:
    return path.is_file() and _read_stamp(path) == _stamp(ds, shard)


def _write(ds: PreparedDataset, frame: pd.DataFrame, skipped: pd.DataFrame, shard: tuple[int, int] | None) -> Path:
    """Parquet and skip list via temporary files and renames (readers never see half a file)."""
    out = features_path(ds, shard)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(_stamp(ds, shard))})
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    skip_tmp = skipped_path(ds, shard).with_name(f".{skipped_path(ds, shard).name}.tmp-{os.getpid()}")
    skipped.to_csv(skip_tmp, index=False)
    os.replace(skip_tmp, skipped_path(ds, shard))
    os.replace(tmp, out)
    return out


# -- worker side ---------------------------------------------------------------------------------------------

_worker_ds: PreparedDataset | None = None


def _init_worker(root: str) -> None:
    global _worker_ds
    try:  # one BLAS/FFT thread per worker: the pool provides the parallelism
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    _worker_ds = PreparedDataset.open(root)


def _extract_rows(rows: list[int], ds: PreparedDataset | None = None) -> tuple[list[int], np.ndarray, list[tuple]]:
    """Features of ``rows``; returns (rows done, (k, F) float32, [(row, reason), ...] skipped)."""
    from core.audio.features import clip_features

    ds = ds or _worker_ds
    assert ds is not None
    done, values, skipped = [], [], []
    for row in rows:
        n = int(ds.tracks["audio_len"].iat[row])
        if n <= 0:
            skipped.append((row, "no audio (audio_len is 0)"))
            continue
        try:
            values.append(clip_features(ds.waveform(row), ds.sample_rate))
            done.append(row)
        except Exception as e:  # one broken clip (BadAudio or worse) must not stop a 50,000-track run
            skipped.append((row, f"{type(e).__name__}: {e}"))
    arr = np.stack(values) if values else np.zeros((0, len(feature_names())), dtype=np.float32)
    return done, arr, skipped


# -- public API ----------------------------------------------------------------------------------------------


def extract_features(
    ds: PreparedDataset,
    *,
    workers: int | None = None,
    shard: tuple[int, int] | None = None,
    force: bool = False,
) -> Path:
    """Compute (or reuse) the feature table of ``ds`` or of one shard of it; returns the parquet path.

    ``workers``: processes (default: the available cores, divided by torchrun's LOCAL_WORLD_SIZE; 1 runs in
    this process). ``shard``: ``(i, N)``; when None and the process was launched by ``torchrun`` with several
    ranks, ``(RANK, WORLD_SIZE)``. A clip that fails is recorded in the skip list with its error, not fatal.
    """
    ds.require_audio("audio feature extraction needs audio")
    if shard is None:
        shard = env_shard()
    elif shard is not None:
        shard = check_shard(shard)
    if shard is not None and shard[1] == 1:
        shard = None
    out = features_path(ds, shard)
    if not force and _is_current(ds, out, shard):
        return out

    ids = ds.tracks["track_id"].astype(str)
    rows = np.arange(len(ds)) if shard is None else np.flatnonzero(shard_of(ids, shard[1]) == shard[0])
    rows = [int(r) for r in rows]
    if workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))  # torchrun: share the cores
    workers = max(1, min(int(workers), max(1, len(rows) // CHUNK)))

    results: dict[int, np.ndarray] = {}
    skipped: list[tuple[int, str]] = []
    chunks = [rows[s : s + CHUNK] for s in range(0, len(rows), CHUNK)]
    label = f"features {ds.name}" + (f" shard {shard[0]}/{shard[1]}" if shard else "")
    with progress_bar(label, len(rows)) as bar:
        if workers == 1:
            for chunk in chunks:
                _collect(_extract_rows(chunk, ds), results, skipped)
                bar.advance(len(chunk))
        else:
            import multiprocessing as mp

            if "forkserver" in mp.get_all_start_methods():
                ctx = mp.get_context("forkserver")
                # workers fork from a server that has imported librosa (and loaded its numba code) once
                ctx.set_forkserver_preload(["core.audio.features", "librosa.beat", "librosa.onset"])
            else:
                ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(str(ds.paths.root),)) as pool:  # fmt: skip
                futures = {pool.submit(_extract_rows, chunk): len(chunk) for chunk in chunks}
                for fut in as_completed(futures):
                    _collect(fut.result(), results, skipped)
                    bar.advance(futures[fut])

    done = sorted(results)
    if len(rows) > 1 and not done and not any(why.startswith("no audio") for _, why in skipped):
        raise RuntimeError(f"every track failed feature extraction, e.g. {ids.iat[skipped[0][0]]}: {skipped[0][1]}")
    names = list(feature_names())
    values = np.stack([results[r] for r in done]) if done else np.zeros((0, len(names)), dtype=np.float32)
    frame = pd.DataFrame(values, columns=names)
    frame.insert(0, "track_id", ids.iloc[done].to_numpy() if done else np.array([], dtype=str))
    skipped.sort()
    skip_frame = pd.DataFrame(
        {"track_id": [ids.iat[r] for r, _ in skipped], "reason": [why for _, why in skipped]}, dtype=str
    )
    return _write(ds, frame, skip_frame, shard)


def _collect(result: tuple, results: dict[int, np.ndarray], skipped: list[tuple[int, str]]) -> None:
    done, arr, skips = result
    for r, v in zip(done, arr, strict=True):
        results[r] = v
    skipped.extend(skips)


def _shard_files(ds: PreparedDataset) -> dict[int, list[Path]]:
    """Shard parquet files present, grouped by N."""
    found: dict[int, list[Path]] = {}
    pattern = re.compile(rf"{FEATURE_SET}\.shard-(\d+)-of-(\d+)\.parquet")
    if ds.paths.features_dir.is_dir():
        for p in sorted(ds.paths.features_dir.iterdir()):
            m = pattern.fullmatch(p.name)
            if m:
                found.setdefault(int(m.group(2)), []).append(p)
    return found


def merge_feature_shards(ds: PreparedDataset) -> Path:
    """Combine the shards of one ``N`` into ``fma.parquet`` and ``skipped.csv``, checking full coverage."""
    groups = _shard_files(ds)
    if not groups:
        raise UserError(
            f"no feature shards for dataset {ds.name!r} in {ds.paths.features_dir} "
            f"(run `bench features extract {ds.name} --shard i/N` for each i first)"
        )
    if len(groups) > 1:
        sizes = ", ".join(str(n) for n in sorted(groups))
        raise UserError(f"shards of several sizes (N = {sizes}) in {ds.paths.features_dir}: delete the stale ones")
    (n,) = groups
    frames, skips = [], []
    missing, stale = [], []
    for i in range(n):
        p = features_path(ds, (i, n))
        if not p.is_file():
            missing.append(f"{i}/{n}")
        elif not _is_current(ds, p, (i, n)):
            stale.append(f"{i}/{n}")
        else:
            frames.append(pd.read_parquet(p))
            sp = skipped_path(ds, (i, n))
            if sp.is_file():
                skips.append(pd.read_csv(sp, dtype=str, keep_default_na=False))
    if missing or stale:
        parts = []
        if missing:
            parts.append(f"missing shards {', '.join(missing)}")
        if stale:
            parts.append(f"outdated shards {', '.join(stale)} (rerun them with --force)")
        raise UserError(f"cannot merge features of {ds.name!r}: {'; '.join(parts)}")
    merged = pd.concat(frames, ignore_index=True)
    skipped = pd.concat(skips, ignore_index=True) if skips else pd.DataFrame({"track_id": [], "reason": []}, dtype=str)
    ids = ds.tracks["track_id"].astype(str)
    covered = pd.concat([merged["track_id"].astype(str), skipped["track_id"].astype(str)])
    if covered.duplicated().any():
        raise UserError(f"feature shards of {ds.name!r} overlap: {covered[covered.duplicated()].iloc[0]!r} twice")
    if set(covered) != set(ids):
        lost = len(set(ids) - set(covered))
        raise UserError(f"feature shards of {ds.name!r} do not match the dataset ({lost} tracks missing)")
    order = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    merged = merged.iloc[np.argsort(order.loc[merged["track_id"].astype(str)].to_numpy(), kind="stable")]
    skipped = skipped.iloc[np.argsort(order.loc[skipped["track_id"]].to_numpy(), kind="stable")]
    return _write(ds, merged.reset_index(drop=True), skipped.reset_index(drop=True), None)


def load_skipped(ds: PreparedDataset) -> pd.DataFrame:
    """Tracks without features (track_id, reason); empty when none were skipped or nothing was extracted."""
    p = skipped_path(ds)
    if p.is_file():
        return pd.read_csv(p, dtype=str, keep_default_na=False)
    return pd.DataFrame({"track_id": [], "reason": []}, dtype=str)


def load_features(ds: PreparedDataset) -> pd.DataFrame:
    """The feature table: index ``track_id``, float32 columns, rows in dataset order (skipped tracks absent)."""
    p = features_path(ds)
    if not p.is_file():
        hint = f"run `bench features extract {ds.name}`"
        if _shard_files(ds):
            hint = f"shards exist: run `bench features merge {ds.name}`"
        raise UserError(f"no audio features for dataset {ds.name!r} ({hint})")
    if not _is_current(ds, p, None):
        raise UserError(
            f"audio features of {ds.name!r} are outdated (older feature version or re-prepared dataset): "
            f"run `bench features extract {ds.name} --force`"
        )
    frame = pd.read_parquet(p)
    frame["track_id"] = frame["track_id"].astype(str)
    frame = frame.set_index("track_id")
    order = pd.Index(ds.tracks["track_id"].astype(str))
    frame = frame.loc[order[order.isin(frame.index)]]
    return frame.astype(np.float32)
