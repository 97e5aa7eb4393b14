"""``bench encode`` as a library call: fit each encoder on the train split, embed every track, evaluate, save.

Each encoder gets ``<run>/encoders/<name>/`` with ``model.pt`` + ``meta.json``, ``embeddings.parquet``
(track_id, split, genre_idx, vector) and ``eval.json`` (+ ``tsne.png``; it records the dataset's content
fingerprint), written into a staging folder and swapped in only when all of them are there. An outside embedding
(``register_embedding``) is registered under the same run lock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.pipeline.locks import run_lock
from core.config.schema import Config, EncodersConfig
from core.data.prepared import PreparedDataset
from core.devices import resolve_device
from core.errors import UserError
from core.jsonfiles import write_json_atomic
from core.paths import RunPaths
from core.storage import staged_outputs
from models.encoders.base import TABLE_ENCODERS, encoder_class
from models.encoders.evaluate import encoder_scores, evaluate_embeddings
from models.encoders.store import EMBEDDINGS_FILE, EVAL_FILE, resolve_names, write_embeddings
from models.encoders.train_utils import release_frames

FEATURE_ENCODERS = ("pca", "autoencoder")


def ensure_features(ds: PreparedDataset, workers: int | None = None) -> None:
    """Extract the FMA-style features unless they are cached already."""
    from core.audio.extract import extract_features

    extract_features(ds, workers=workers)


def encode(
    ds: PreparedDataset, run_paths: RunPaths, names: str | Sequence[str], cfg: Config, *, workers: int | None = None
) -> dict[str, dict]:
    """Fit, embed, save and evaluate each named encoder; returns {name: eval dict} (also in each eval.json).

    Holds the run's lock; each encoder's files are staged and swapped in together, so a killed encode leaves
    the earlier encoder whole."""
    try:
        with run_lock(run_paths):
            return _encode(ds, run_paths, names, cfg, workers)
    finally:
        release_frames()  # the log-mels the mel encoders shared, computed once for all of them


def register_embedding(
    ds: PreparedDataset, run: RunPaths, path: str | Path, name: str, *, ids: str | Path | None = None,
    replace: bool = False, cfg: EncodersConfig | None = None,
) -> dict[str, Any]:
    """``bench encode --from-file``: register an outside embedding as condition ``name`` of ``run``
    (``models.encoders.external.register_embedding``), holding the run's lock like every other writer of it."""
    from models.encoders import external

    with run_lock(run):
        return external.register_embedding(ds, run, path, name, ids=ids, replace=replace, cfg=cfg)


def _encode(
    ds: PreparedDataset, run_paths: RunPaths, names: str | Sequence[str], cfg: Config, workers: int | None
) -> dict[str, dict]:
    names = resolve_names(names)
    audio_needed = [n for n in names if n not in TABLE_ENCODERS]
    if audio_needed:  # before any fitting or feature extraction
        need = ("encoders {} need" if len(audio_needed) > 1 else "encoder {} needs").format(", ".join(audio_needed))
        ds.require_audio(f"{need} audio", "only encoders genre and attributes work on it")
    ecfg = cfg.encoders
    device = resolve_device(cfg.device)
    train, val, test = (ds.split_rows(s) for s in ("train", "val", "test"))
    if not len(train):
        raise UserError(f"dataset {ds.name!r} has no train split: nothing to fit encoders on")
    if any(n in FEATURE_ENCODERS for n in names):
        ensure_features(ds, workers)
    results: dict[str, dict] = {}
    if "attributes" in names and len(names) > 1 and not ds.attributes_available:
        names = [n for n in names if n != "attributes"]  # asked alone, it raises the UserError that says why
        results["attributes"] = {"skipped": f"dataset {ds.name!r} has no Spotify attribute columns"}
    for name in names:
        with staged_outputs(run_paths.encoder(name)) as out_dir:  # one encoder's files replace the old together
            results[name] = _fit_one(name, ds, out_dir, ecfg, device, (train, val, test))
    return results


def _fit_one(name: str, ds: PreparedDataset, out_dir: Path, ecfg: EncodersConfig, device: Any, splits: tuple) -> dict:
    """Fit, embed, save and evaluate one encoder into ``out_dir`` (a staging folder); returns its eval dict."""
    train, val, test = splits
    t0 = time.perf_counter()
    enc = encoder_class(name)(ecfg, str(device))
    enc.fit(ds, train, val, ecfg)
    t1 = time.perf_counter()
    x = enc.encode(ds)
    t2 = time.perf_counter()
    if x.shape != (len(ds), enc.dim) or x.dtype != np.float32:
        raise RuntimeError(f"encoder {name} returned {x.dtype} {x.shape}, expected float32 {(len(ds), enc.dim)}")
    enc.save(out_dir)
    write_embeddings(out_dir / EMBEDDINGS_FILE, ds, x)
    ev = evaluate_embeddings(
        x,
        ds.genre_idx,
        ds.tracks["split"].to_numpy(),
        ds.genres,
        seed=ecfg.seed,
        max_points=ecfg.eval_max_points,
        tsne_points=ecfg.tsne_points,
        tsne_path=out_dir / "tsne.png",
        title=f"{name} (d={enc.dim}) on {ds.name}",
    )
    ev.update(encoder_scores(name, enc, ds, train, test))
    if "tsne_png" in ev:  # the staging folder's path would dangle once it is swapped in
        ev["tsne_png"] = Path(ev["tsne_png"]).name
    ev.update(
        encoder=name,
        dataset=ds.name,
        dataset_fingerprint=ds.fingerprint,
        device=str(device),
        fit_seconds=round(t1 - t0, 3),
        encode_seconds=round(t2 - t1, 3),
        splits={"train": int(len(train)), "val": int(len(val)), "test": int(len(test))},
    )
    if getattr(enc, "history", None):
        h = enc.history
        ev["training"] = {k: h[k] for k in ("epochs_run", "best_epoch", "best_loss") if k in h}
    write_json_atomic(out_dir / EVAL_FILE, ev)
    return ev
