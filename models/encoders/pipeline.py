"""``bench encode`` as a library call: fit each encoder on the train split, embed every track, evaluate, save.

Each encoder gets ``<run>/encoders/<name>/`` with ``model.pt`` + ``meta.json``, ``embeddings.parquet``
(track_id, split, genre_idx, vector) and ``eval.json`` (+ ``tsne.png``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.config.schema import Config
from benchmark.data.prepared import PreparedDataset, write_json_atomic
from benchmark.errors import UserError
from benchmark.paths import RunPaths
from models.encoders.base import ENCODER_NAMES, OPTIONAL_ENCODERS, TABLE_ENCODERS, encoder_class
from models.encoders.evaluate import evaluate_embeddings
from models.encoders.train_utils import release_frames, resolve_device

EMBEDDINGS_FILE = "embeddings.parquet"
EVAL_FILE = "eval.json"
FEATURE_ENCODERS = ("pca", "autoencoder")
AE_MATCH_TOLERANCE = 0.01  # "matches pca" = within 1 % of pca's test reconstruction error


def resolve_names(names: str | Sequence[str]) -> list[str]:
    """``"all"``, one name, or several (comma-separated or a list) -> known encoder names in canonical order."""
    items = [names] if isinstance(names, str) else list(names)
    flat = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
    if not flat or "all" in flat:
        return list(ENCODER_NAMES)
    for n in flat:
        encoder_class(n)  # raises UserError for unknown names
    return [n for n in (*ENCODER_NAMES, *OPTIONAL_ENCODERS) if n in flat]


def write_embeddings(path: Path, ds: PreparedDataset, x: np.ndarray) -> Path:
    """Parquet with track_id, split, genre_idx and ``vector`` (fixed-size list of float32), written atomically."""
    x = np.ascontiguousarray(x, np.float32)
    d = x.shape[1]
    vec = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), d)
    table = pa.table(
        {
            "track_id": pa.array(ds.tracks["track_id"].astype(str).tolist(), pa.string()),
            "split": pa.array(ds.tracks["split"].astype(str).tolist(), pa.string()),
            "genre_idx": pa.array(ds.genre_idx, pa.int64()),
            "vector": vec,
        }
    )
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_embeddings(run_paths: RunPaths, name: str, ds: PreparedDataset | None = None) -> np.ndarray:
    """float32 (N, d) embeddings of encoder ``name``, in ``ds`` row order when a dataset is given."""
    path = run_paths.encoder(name) / EMBEDDINGS_FILE
    if not path.is_file():
        dataset = f" --dataset {ds.name}" if ds is not None else ""
        raise UserError(
            f"no {name!r} embeddings in run {run_paths.name!r}: run `bench encode --encoder {name} "
            f"--run {run_paths.name}{dataset}` first"
        )
    if ds is not None:
        _check_same_dataset(run_paths, name, ds)
    df = pd.read_parquet(path)
    x = np.stack(df["vector"].to_numpy()).astype(np.float32) if len(df) else np.zeros((0, 0), np.float32)
    if ds is None:
        return x
    pos = pd.Series(np.arange(len(df)), index=df["track_id"].astype(str))
    ids = ds.tracks["track_id"].astype(str)
    missing = ~ids.isin(pos.index)
    if missing.any():
        raise UserError(f"{name!r} embeddings lack {int(missing.sum())} tracks of dataset {ds.name!r}: encode again")
    return x[pos.loc[ids].to_numpy()]


def _check_same_dataset(run_paths: RunPaths, name: str, ds: PreparedDataset) -> None:
    """Embeddings belong to the dataset they were computed on: track ids alone can coincide across datasets."""
    ev = run_paths.encoder(name) / EVAL_FILE
    source = json.loads(ev.read_text()).get("dataset") if ev.is_file() else None
    if source is not None and source != ds.name:
        raise UserError(
            f"the {name!r} embeddings in run {run_paths.name!r} were computed on dataset {source!r}, not {ds.name!r}: "
            f"use another --run, or `bench encode --encoder {name} --run {run_paths.name} --dataset {ds.name}`"
        )


def ensure_features(ds: PreparedDataset, workers: int | None = None) -> None:
    """Extract the FMA-style features unless they are cached already."""
    from benchmark.audio.extract import extract_features

    extract_features(ds, workers=workers)


def _extra_scores(name: str, enc: Any, ds: PreparedDataset, train: np.ndarray, test: np.ndarray) -> dict:
    if name == "pca":
        ratio = [float(v) for v in enc.explained_variance_ratio]
        z_test = enc.standardised(ds, test) if len(test) else None
        out = {"explained_variance": float(sum(ratio)), "explained_variance_ratio": ratio}
        if z_test is not None:
            out["reconstruction_mse_test"] = enc.reconstruction_mse(z_test)
        return out
    if name == "autoencoder":
        from models.encoders.pca import pca_reconstruction_mse

        if not len(test):
            return {"reconstruction": {"skipped": "no test tracks"}}
        z_train, z_test = enc.standardised(ds, train), enc.standardised(ds, test)
        ae = enc.reconstruction_mse(z_test)
        pca = pca_reconstruction_mse(z_train, z_test, enc.dim)
        ok = ae <= pca * (1 + AE_MATCH_TOLERANCE)
        verdict = (
            f"autoencoder {'beats' if ae < pca else 'matches'} pca at d={enc.dim} on test reconstruction"
            if ok
            else f"autoencoder does NOT beat or match pca at d={enc.dim}: test MSE {ae:.4f} vs pca {pca:.4f}"
        )
        return {
            "reconstruction": {
                "autoencoder_mse_test": ae,
                "pca_mse_test": pca,
                "dim": enc.dim,
                "beats_or_matches_pca": bool(ok),
                "tolerance": AE_MATCH_TOLERANCE,
                "verdict": verdict,
            }
        }
    return {}


def encode(
    ds: PreparedDataset, run_paths: RunPaths, names: str | Sequence[str], cfg: Config, *, workers: int | None = None
) -> dict[str, dict]:
    """Fit, embed, save and evaluate each named encoder; returns {name: eval dict} (also in each eval.json)."""
    try:
        return _encode(ds, run_paths, names, cfg, workers)
    finally:
        release_frames()  # the log-mels the mel encoders shared, computed once for all of them


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
        out_dir = run_paths.encoder(name)
        out_dir.mkdir(parents=True, exist_ok=True)
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
        ev.update(_extra_scores(name, enc, ds, train, test))
        ev.update(
            encoder=name,
            dataset=ds.name,
            device=str(device),
            fit_seconds=round(t1 - t0, 3),
            encode_seconds=round(t2 - t1, 3),
            splits={"train": int(len(train)), "val": int(len(val)), "test": int(len(test))},
        )
        if getattr(enc, "history", None):
            h = enc.history
            ev["training"] = {k: h[k] for k in ("epochs_run", "best_epoch", "best_loss") if k in h}
        write_json_atomic(out_dir / EVAL_FILE, ev)
        results[name] = ev
    return results
