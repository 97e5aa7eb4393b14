"""Cache of real-image features and their Gaussian statistics, keyed by what determines them.

The reference side of every comparison (real test covers through a fixed extractor) is the same for every
model, and its 2048-d covariance square root is the expensive part of FID; both are computed once. The key is a
hash of the dataset's content (manifest file hashes), the split, the extractor and its preprocessing, so any
change to one of them is a different entry rather than a stale hit. Files are written atomically and the key
file goes last, so a crash never leaves an entry that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.data.fingerprint import manifest_hash
from core.errors import UserError
from metrics.distribution.fid import GaussianStats, check_features, feature_stats

CACHE_VERSION = 1
__all__ = ["CachedFeatures", "cache_key", "cached_features", "dataset_key_parts", "manifest_hash"]


@dataclass
class CachedFeatures:
    features: np.ndarray
    stats: GaussianStats | None  # mu, sigma and sqrt_sigma (filled); None when asked for features only
    key: str
    path: Path  # the key file of this entry
    hit: bool  # True when loaded, False when just computed


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(key_parts: dict) -> str:
    """Stable hash of the key parts (order of dict keys does not matter)."""
    return hashlib.sha256(_canonical({"cache_version": CACHE_VERSION, **key_parts}).encode()).hexdigest()[:32]


def dataset_key_parts(dataset: Any, split: str | None, extractor: str, preprocessing: str, **extra: Any) -> dict:
    """Key parts for a ``PreparedDataset`` (anything with ``.name`` and ``.manifest``)."""
    return {
        "dataset": dataset.name,
        "manifest": manifest_hash(dataset.manifest),
        "split": split or "all",
        "extractor": extractor,
        "preprocessing": preprocessing,
        **extra,
    }


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """``write(f)`` into a temporary file beside ``path``, then renamed over it: readers see all or nothing."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _files(cache_dir: Path, key: str) -> tuple[Path, Path, Path]:
    return cache_dir / f"{key}.features.npy", cache_dir / f"{key}.stats.npz", cache_dir / f"{key}.key.json"


def _stats_of(features: np.ndarray) -> GaussianStats:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sample-size warnings are raised where the stats are used
        st = feature_stats(features, "cached real features", allow_singular=True)
    st.sqrt()
    return st


def _save_stats(s_path: Path, stats: GaussianStats) -> None:
    atomic_write(
        s_path,
        lambda f: np.savez(f, mu=stats.mu, sigma=stats.sigma, sqrt_sigma=stats.sqrt_sigma, n=np.int64(stats.n)),
    )


def _load(cache_dir: Path, key: str, key_parts: dict, stats: bool = True) -> CachedFeatures | None:
    f_path, s_path, k_path = _files(cache_dir, key)
    if not (f_path.is_file() and k_path.is_file()):
        return None
    try:
        stored = json.loads(k_path.read_text(encoding="utf-8"))
        if stored.get("key_parts") != json.loads(_canonical(key_parts)):
            return None
        feats = np.load(f_path)
        st = None
        if s_path.is_file():
            with np.load(s_path) as z:
                st = GaussianStats(mu=z["mu"], sigma=z["sigma"], n=int(z["n"]), sqrt_sigma=z["sqrt_sigma"])
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None  # damaged entry: recompute and overwrite
    if st is None and stats:  # an entry cached without statistics: add them now, from the stored features
        st = _stats_of(feats)
        _save_stats(s_path, st)
    if st is not None and feats.shape[0] != st.n:
        return None
    return CachedFeatures(feats, st, key, k_path, hit=True)  # type: ignore[arg-type]


def cached_features(
    key_parts: dict, compute: Callable[[], np.ndarray], cache_dir: Path, *, stats: bool = True
) -> CachedFeatures:
    """Features for ``key_parts`` from ``cache_dir``, or ``compute()`` them, store them and their statistics.

    ``stats=False`` skips the Gaussian statistics (a 2048-d covariance square root costs tens of seconds on a
    CPU) for callers that only need the features, such as the relationship probe; ``.stats`` is then None
    unless an earlier call stored them, and a later call that wants them computes them from the cached features.
    """
    cache_dir = Path(cache_dir)
    key = cache_key(key_parts)
    hit = _load(cache_dir, key, key_parts, stats)
    if hit is not None:
        return hit
    feats = np.asarray(compute())
    check_features(feats, "features to cache")
    if feats.shape[0] < 2:
        raise UserError(f"refusing to cache statistics of {feats.shape[0]} sample(s)")
    st = _stats_of(feats) if stats else None
    cache_dir.mkdir(parents=True, exist_ok=True)
    f_path, s_path, k_path = _files(cache_dir, key)
    atomic_write(f_path, lambda f: np.save(f, feats))
    s_path.unlink(missing_ok=True)  # statistics of an older entry under this key would not match
    if st is not None:
        _save_stats(s_path, st)
    record = {"key": key, "key_parts": json.loads(_canonical(key_parts)), "n": int(feats.shape[0]),
              "dim": int(feats.shape[1])}
    atomic_write(k_path, lambda f: f.write(json.dumps(record, indent=2, sort_keys=True)), mode="w")
    return CachedFeatures(feats, st, key, k_path, hit=False)  # type: ignore[arg-type]
