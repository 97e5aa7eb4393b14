"""Where an encoder's outputs live in a run: ``embeddings.parquet`` (track_id, split, genre_idx, vector) and
``eval.json``, written atomically and read back in a dataset's row order."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.data.fingerprint import KEY as FINGERPRINT
from core.data.fingerprint import check_fingerprint
from core.data.prepared import PreparedDataset
from core.errors import UserError
from core.paths import RunPaths
from models.encoders.base import ENCODER_NAMES, OPTIONAL_ENCODERS, encoder_class

EMBEDDINGS_FILE = "embeddings.parquet"
EVAL_FILE = "eval.json"


def resolve_names(names: str | Sequence[str]) -> list[str]:
    """``"all"``, one name, or several (comma-separated or a list) -> known encoder names in canonical order."""
    items = [names] if isinstance(names, str) else list(names)
    flat = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
    if not flat:  # an empty --encoder "" is a mistake, never a request for all six
        raise UserError(f"no encoder named in {names!r}: name one or more "
                        f"of {', '.join((*ENCODER_NAMES, *OPTIONAL_ENCODERS))}, comma-separated, or all")
    if "all" in flat:
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


def read_encoder_eval(run_paths: RunPaths, name: str) -> dict | None:
    """An encoder's ``eval.json`` (None when missing or unreadable: the encoder is then not complete)."""
    try:
        ev = json.loads((run_paths.encoder(name) / EVAL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return ev if isinstance(ev, dict) else None


def _check_same_dataset(run_paths: RunPaths, name: str, ds: PreparedDataset) -> None:
    """Embeddings belong to the dataset they were computed on: track ids alone can coincide across datasets, and
    a dataset replaced under the same name (``--force``) keeps its name but not its content."""
    ev = read_encoder_eval(run_paths, name) or {}
    source = ev.get("dataset")
    redo = f"`bench encode --encoder {name} --run {run_paths.name} --dataset {ds.location}`"
    if source is not None and source != ds.name:
        raise UserError(
            f"the {name!r} embeddings in run {run_paths.name!r} were computed on dataset {source!r}, not {ds.name!r}: "
            f"use another --run, or {redo}"
        )
    check_fingerprint(ev.get(FINGERPRINT), ds.fingerprint, f"the {name!r} embeddings in run {run_paths.name!r}",
                      ds.name, f"encode again with {redo}")
