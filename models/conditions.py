"""Condition vectors for the GANs: a one-hot genre, any encoder's embeddings from a run, or an outside embedding
registered in the run (``bench encode --from-file``)."""

from __future__ import annotations

import numpy as np

from core.config.names import CONDITION_NAMES, check_condition_name
from core.data.prepared import PreparedDataset
from core.errors import UserError
from core.paths import RunPaths

CONDITIONS = CONDITION_NAMES


def genre_onehot(ds: PreparedDataset) -> np.ndarray:
    """(N, n_genres) float32; tracks without a genre get an all-zero row."""
    idx = ds.genre_idx
    out = np.zeros((len(ds), len(ds.genres)), np.float32)
    ok = idx >= 0
    out[np.flatnonzero(ok), idx[ok]] = 1.0
    return out


def load_conditions(ds: PreparedDataset, source: str, run: RunPaths | None) -> np.ndarray:
    """(N, d) float32 conditions in dataset row order."""
    if source not in CONDITIONS:  # any other valid name is an outside embedding the run must hold
        check_condition_name(source)
        from models.encoders.external import load_external

        return load_external(ds, source, run)
    if source == "genre":
        if (ds.genre_idx < 0).all():
            raise UserError(f"dataset {ds.name!r} has no genres: choose an encoder condition (e.g. --condition pca)")
        return genre_onehot(ds)
    if source == "attributes":
        from models.encoders.plain import check_attributes

        check_attributes(ds)
    else:  # every other condition is an embedding of the audio
        ds.require_audio(f"the {source!r} condition needs audio")
    if run is None:
        raise UserError(f"condition {source!r} needs a run holding `bench encode --encoder {source}` output")
    from models.encoders.store import load_embeddings

    return np.asarray(load_embeddings(run, source, ds), dtype=np.float32)


def usable_rows(ds: PreparedDataset, source: str, rows: np.ndarray) -> np.ndarray:
    """Rows that can be trained on with this condition (a genre condition needs a genre)."""
    if source == "genre":
        return rows[ds.genre_idx[rows] >= 0]
    return rows
