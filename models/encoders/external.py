"""Outside condition vectors (your own music encoder: CLAP, musicnn, ...) registered as a condition of a run.

``register_embedding`` reads one vector per track, keyed by track id, checks it against the dataset and writes it
where the built-in encoders write theirs: ``<run>/encoders/<name>/embeddings.parquet``, ``eval.json`` (the same
genre probe, k-NN, clustering and t-SNE as ``bench encode``, so it shows on the report's encoder and music pages)
and ``meta.json`` saying where it came from (``kind: external``, the source path as given, its SHA-256, d, the
dataset and its content fingerprint, which ``eval.json`` records too, as every encoder's does). The files are
staged and replace an earlier registration together or not at all; the caller holds the run's lock
(``benchmark.pipeline.encode``). A model id ``dcgan_cond+<name>`` then trains and is judged on it like on pca,
while the dataset keeps the content it was registered for.

Accepted files (a bare array "in dataset row order" is refused: row order is too easy to get silently wrong):

- ``.parquet`` or ``.csv``: a ``track_id`` column and either a list column ``vector`` or numeric columns (every
  column but ``track_id`` and the metadata columns ``split``, ``genre``, ``genre_idx``, in file order);
- ``.npz`` holding arrays ``track_id`` (N,) and ``vector`` (N, d);
- ``.npy`` (N, d), or an ``.npz`` holding one (N, d) array, with ``ids``: a CSV whose ``track_id`` column names the
  track of each row, in order.

Every track of the dataset needs exactly one finite vector, no row may name a track the dataset lacks, no vector
(d >= 2) may be constant, and the vectors must not all be equal. A failure is one line naming the first bad row
(rows counted from 1, the header not counted, as manifests count them).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.config.names import CONDITION_NAMES, check_condition_name
from core.config.schema import EncodersConfig
from core.data.fingerprint import KEY as FINGERPRINT
from core.data.fingerprint import check_fingerprint, is_stale
from core.data.prepared import PreparedDataset, file_sha256
from core.errors import UserError
from core.jsonfiles import write_json_atomic
from core.paths import RunPaths
from core.storage import staged_outputs
from models.encoders.base import META_FILE
from models.encoders.evaluate import evaluate_embeddings
from models.encoders.store import EMBEDDINGS_FILE, EVAL_FILE, load_embeddings, write_embeddings

EXTERNAL_KIND = "external"
ID_COLUMN = "track_id"
VECTOR_COLUMN = "vector"
METADATA_COLUMNS = (ID_COLUMN, "split", "genre", "genre_idx")  # never read as vector components
FORMATS = (".parquet", ".csv", ".npz", ".npy")


@dataclass(frozen=True)
class VectorTable:
    """Vectors as read from the user's file: ``ids[i]`` names the track of ``x[i]`` (float64, (n, d))."""

    ids: np.ndarray
    x: np.ndarray
    layout: str  # how the file was read, for meta.json


def check_external_name(name: str) -> str:
    """A name an outside embedding may take: a valid condition name that no built-in encoder uses."""
    name = check_condition_name(name)
    if name in CONDITION_NAMES:
        raise UserError(f"--name {name!r} is a built-in encoder: choose another name for your embedding")
    return name


def read_vectors(path: str | Path, ids: str | Path | None = None) -> VectorTable:
    """The vectors of ``path`` with their track ids (see the module docstring for the accepted layouts)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"no vector file at {p}")
    suffix = p.suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{p}: unsupported vector file; use {', '.join(FORMATS)} (see `bench encode --help`)")
    if suffix in (".parquet", ".csv"):
        if ids is not None:
            raise UserError(f"{p} names its tracks in its {ID_COLUMN!r} column: --ids is only for .npy/.npz arrays")
        return _from_frame(_read_frame(p), p)
    arrays = _read_arrays(p)
    if ID_COLUMN in arrays and VECTOR_COLUMN in arrays and ids is None:
        return _from_arrays(arrays[ID_COLUMN], arrays[VECTOR_COLUMN], p, "npz track_id + vector")
    if ids is None:
        raise UserError(
            f"{p}: an array alone does not say which track each row is: pass --ids IDS.csv (a {ID_COLUMN!r} column, "
            f"one row per vector), or store arrays {ID_COLUMN!r} and {VECTOR_COLUMN!r} in an .npz"
        )
    if len(arrays) != 1:
        raise UserError(f"{p} holds {len(arrays)} arrays ({', '.join(sorted(arrays))}): with --ids give exactly one")
    return _from_arrays(_read_ids(Path(ids)), next(iter(arrays.values())), p, f"{suffix[1:]} + ids csv")


def _read_frame(p: Path) -> pd.DataFrame:
    try:
        if p.suffix.lower() == ".csv":  # track ids stay text ("NA" is an id); the vector columns parse NaN as NaN
            header = pd.read_csv(p, nrows=0).columns
            na = {c: ["", "NA", "NaN", "nan", "null"] for c in header if c != ID_COLUMN}
            return pd.read_csv(p, dtype={ID_COLUMN: str}, keep_default_na=False, na_values=na)
        return pd.read_parquet(p)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise UserError(f"cannot read {p}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _read_arrays(p: Path) -> dict[str, np.ndarray]:
    try:
        if p.suffix.lower() == ".npy":
            return {"array": np.load(p, allow_pickle=False)}
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        hint = ": save track ids as a string array (np.asarray(ids, dtype=str)), never pickled objects" if (
            "Object arrays" in str(e)) else ""
        raise UserError(f"cannot read {p} as a numpy array file: {str(e).splitlines()[0]}{hint}") from None


def _read_ids(p: Path) -> np.ndarray:
    if not p.is_file():
        raise UserError(f"no ids file at {p}")
    df = _read_frame(p)
    if ID_COLUMN not in df.columns:
        raise UserError(f"{p}: no {ID_COLUMN!r} column (columns: {', '.join(map(str, df.columns))})")
    return df[ID_COLUMN].to_numpy()


def _from_frame(df: pd.DataFrame, p: Path) -> VectorTable:
    if ID_COLUMN not in df.columns:
        raise UserError(f"{p}: no {ID_COLUMN!r} column (columns: {', '.join(map(str, df.columns[:8]))})")
    if VECTOR_COLUMN in df.columns:
        return _from_arrays(df[ID_COLUMN].to_numpy(), _stack_lists(df[VECTOR_COLUMN], p), p, "list column vector")
    cols = [c for c in df.columns if c not in METADATA_COLUMNS]
    for c in cols:
        col = df[c]
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            odd = np.flatnonzero(pd.to_numeric(col, errors="coerce").isna().to_numpy() & col.notna().to_numpy())
            i = int(odd[0]) if len(odd) else 0
            raise UserError(f"{p}: row {i + 1}: column {c!r} is not numeric ({col.iloc[i]!r})")
    x = df[cols].to_numpy(np.float64) if cols else np.zeros((len(df), 0))
    return _from_arrays(df[ID_COLUMN].to_numpy(), x, p, f"{len(cols)} numeric columns")


def _stack_lists(col: pd.Series, p: Path) -> np.ndarray:
    """A list column as (n, d): every entry a list of the same length."""
    lengths = []
    for i, v in enumerate(col.to_numpy()):
        if v is None or np.ndim(v) != 1:
            raise UserError(f"{p}: row {i + 1}: {VECTOR_COLUMN!r} is not a list of numbers ({v!r})")
        lengths.append(len(v))
        if lengths[-1] != lengths[0]:
            raise UserError(f"{p}: row {i + 1}: {VECTOR_COLUMN!r} has {lengths[-1]} values, row 1 has {lengths[0]}")
    if not lengths:
        return np.zeros((0, 0))
    try:
        return np.stack([np.asarray(v, np.float64) for v in col.to_numpy()])
    except (TypeError, ValueError):
        raise UserError(f"{p}: {VECTOR_COLUMN!r} holds values that are not numbers") from None


def _from_arrays(ids: Any, x: Any, p: Path, layout: str) -> VectorTable:
    ids, x = np.asarray(ids), np.asarray(x)
    if x.ndim != 2:
        raise UserError(f"{p}: vectors must be an (n_tracks, d) array, got shape {x.shape}")
    if x.shape[1] == 0:
        raise UserError(f"{p}: the vectors have d = 0 (no vector columns)")
    if ids.ndim != 1 or len(ids) != len(x):
        raise UserError(f"{p}: {len(x)} vectors but {ids.size} track ids")
    if not (np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)):
        raise UserError(f"{p}: vectors of dtype {x.dtype} are not real numbers")
    names = np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip() for v in ids],
                     dtype=object)
    return VectorTable(names, x.astype(np.float64), layout)


def align_vectors(ds: PreparedDataset, table: VectorTable, where: str) -> np.ndarray:
    """(len(ds), d) float32 in the dataset's row order, after every check; one line naming the first bad row."""
    ids, x = table.ids, table.x
    for i, tid in enumerate(ids):
        if not tid:
            raise UserError(f"{where}: row {i + 1}: empty track id")
    seen: dict[str, int] = {}
    for i, tid in enumerate(ids):
        if tid in seen:
            raise UserError(f"{where}: row {i + 1}: track id {tid!r} appears twice (first at row {seen[tid] + 1})")
        seen[tid] = i
    wanted = pd.Index(ds.tracks["track_id"].astype(str))
    unknown = ~pd.Index(ids).isin(wanted)
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise UserError(f"{where}: row {i + 1}: track id {ids[i]!r} is not in dataset {ds.name!r} "
                        f"({int(unknown.sum())} unknown ids)")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{where}: row {i + 1} (track {ids[i]!r}): NaN or inf in the vector "
                        f"({int(bad.sum())} such rows)")
    if x.shape[1] >= 2:
        flat = (x.max(axis=1) - x.min(axis=1)) == 0
        if flat.any():
            i = int(np.flatnonzero(flat)[0])
            raise UserError(f"{where}: row {i + 1} (track {ids[i]!r}): the vector is constant "
                            f"(every value {x[i, 0]:g}): a failed extraction? ({int(flat.sum())} such rows)")
    missing = ~wanted.isin(pd.Index(ids))
    if missing.any():
        j = int(np.flatnonzero(missing)[0])
        raise UserError(f"{where}: {int(missing.sum())} tracks of dataset {ds.name!r} have no vector, the first "
                        f"{wanted[j]!r} (dataset row {j + 1}): every track needs one")
    out = x[pd.Series(np.arange(len(ids)), index=pd.Index(ids)).loc[wanted].to_numpy()]
    if not (out.std(axis=0) > 0).any():
        raise UserError(f"{where}: every vector is the same: zero variance across tracks, nothing to condition on")
    return out.astype(np.float32)


def external_meta(run: RunPaths | None, name: str) -> dict[str, Any] | None:
    """``meta.json`` of an outside embedding registered in ``run`` as ``name``, else None."""
    if run is None:
        return None
    path = run.encoder(name) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) and meta.get("kind") == EXTERNAL_KIND else None


def is_external(run: RunPaths | None, name: str) -> bool:
    return name not in CONDITION_NAMES and external_meta(run, name) is not None


def register_hint(name: str, run: RunPaths | None, dataset: str | None = None, again: bool = False) -> str:
    where = f" --run {run.name}" if run is not None else ""
    where += f" --dataset {dataset}" if dataset else ""
    return f"register it {'again ' if again else ''}with `bench encode --from-file F --name {name}{where}`"


def load_external(ds: PreparedDataset, name: str, run: RunPaths | None) -> np.ndarray:
    """(N, d) float32 vectors of the outside embedding ``name`` in ``ds`` row order; one line when it is missing or
    was registered for another dataset, or for an earlier version of this one (its track ids may all still be
    there: the content fingerprint is what tells)."""
    meta = external_meta(run, name)
    if meta is None or not (run.encoder(name) / EMBEDDINGS_FILE).is_file():
        in_run = f" in run {run.name!r}" if run is not None else " (no run given)"
        raise UserError(f"no condition {name!r}{in_run}: {register_hint(name, run)}")
    if meta.get("dataset") != ds.name:
        raise UserError(f"condition {name!r} in run {run.name!r} was registered for dataset {meta.get('dataset')!r}, "
                        f"not {ds.name!r}: {register_hint(name, run, ds.location)}")
    check_fingerprint(meta.get(FINGERPRINT), ds.fingerprint, f"the embedding {name!r} in run {run.name!r}", ds.name,
                      register_hint(name, run, ds.location, again=True), made="registered for")
    return load_embeddings(run, name, ds)


def outdated(meta: dict[str, Any] | None, ds: PreparedDataset) -> bool:
    """Whether a registration was made for an earlier version of ``ds`` (its vectors fit no dataset there is)."""
    return meta is not None and meta.get("dataset") == ds.name and is_stale(meta.get(FINGERPRINT), ds.fingerprint)


def register_embedding(
    ds: PreparedDataset,
    run: RunPaths,
    path: str | Path,
    name: str,
    *,
    ids: str | Path | None = None,
    replace: bool = False,
    cfg: EncodersConfig | None = None,
) -> dict[str, Any]:
    """Check ``path`` against ``ds``, save it as condition ``name`` of ``run`` and score it like a built-in encoder.

    Registering the same file again re-evaluates it; another file under a registered name needs ``replace``
    (models trained on the old vectors are then stale), unless the old one was registered for an earlier version
    of ``ds``. Returns the eval dict (also in ``eval.json``).
    """
    name = check_external_name(name)
    cfg = cfg or EncodersConfig()
    src = Path(path)
    table = read_vectors(src, ids)
    sha = file_sha256(src)
    ids_sha = file_sha256(Path(ids)) if ids is not None else None
    out_dir = run.encoder(name)
    old = external_meta(run, name)
    if old is None and out_dir.is_dir() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} exists and is not a registered embedding: choose another --name")
    if old is not None and (old.get("sha256"), old.get("ids_sha256")) != (sha, ids_sha) and not (
            replace or outdated(old, ds)):
        raise UserError(f"condition {name!r} of run {run.name!r} is registered from {old.get('source')!r} "
                        f"(sha256 {str(old.get('sha256'))[:12]}...): pass --replace to register another file")
    x = align_vectors(ds, table, str(path))
    meta = {
        "kind": EXTERNAL_KIND, "name": name, "source": str(path), "sha256": sha,
        "ids": None if ids is None else str(ids), "ids_sha256": ids_sha, "layout": table.layout,
        "dim": int(x.shape[1]), "n": int(len(x)), "dataset": ds.name, FINGERPRINT: ds.fingerprint,
    }  # fmt: skip
    # meta, vectors and scores are staged and swapped in together: a kill leaves the earlier registration whole
    # (or none), never new vectors beside an old meta or without their scores
    with staged_outputs(out_dir) as stage:
        write_json_atomic(stage / META_FILE, meta)
        write_embeddings(stage / EMBEDDINGS_FILE, ds, x)
        return _score(ds, x, stage, meta, cfg)


def _score(ds: PreparedDataset, x: np.ndarray, stage: Path, meta: dict[str, Any], cfg: EncodersConfig
           ) -> dict[str, Any]:
    """The genre probe, k-NN, clustering and t-SNE of the vectors, written as ``eval.json`` into ``stage``."""
    name = meta["name"]
    t0 = time.perf_counter()
    ev = evaluate_embeddings(
        x, ds.genre_idx, ds.tracks["split"].to_numpy(), ds.genres, seed=cfg.seed, max_points=cfg.eval_max_points,
        tsne_points=cfg.tsne_points, tsne_path=stage / "tsne.png", title=f"{name} (external, d={x.shape[1]}) on "
        f"{ds.name}",
    )  # fmt: skip
    if "tsne_png" in ev:  # the staging folder's path would dangle once it is swapped in
        ev["tsne_png"] = Path(ev["tsne_png"]).name
    splits = {s: int(len(ds.split_rows(s))) for s in ("train", "val", "test")}
    ev.update(encoder=name, kind=EXTERNAL_KIND, dataset=ds.name, source=meta["source"], sha256=meta["sha256"],
              splits=splits, eval_seconds=round(time.perf_counter() - t0, 3), **{FINGERPRINT: ds.fingerprint})
    write_json_atomic(stage / EVAL_FILE, ev)
    return ev
