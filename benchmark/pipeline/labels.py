"""Real labelled covers as every judgement of a generator sees them: features, classes and condition vectors.

Shared by ``bench evaluate`` (before it draws the asked tracks) and ``bench power`` (before it draws partial-oracle
samples), so both judge against exactly the same real covers and labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.config.names import is_categorical
from core.data.prepared import PreparedDataset
from core.errors import UserError
from metrics.conditioning import ConditionClusters


@dataclass
class RealLabelled:
    """Real labelled training and test covers: features, classes (genre, or k-means cluster of condition vectors)
    and condition vectors, exactly as ``bench evaluate`` builds them before drawing the asked tracks."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    train_c: np.ndarray | None
    test_c: np.ndarray | None
    n_classes: int
    label_kind: str
    clusters: ConditionClusters | None = None
    train_rows: np.ndarray | None = None  # dataset rows of the labelled covers above
    test_rows: np.ndarray | None = None


def labelled_test_rows(ds: PreparedDataset) -> np.ndarray:
    """Test-split rows with a genre: the tracks generated covers are asked for (refused when too few)."""
    rows = ds.split_rows("test")
    rows = rows[ds.genre_idx[rows] >= 0]
    if len(rows) < 2 * len(ds.genres):
        raise UserError(f"the test split holds only {len(rows)} labelled covers: too few to evaluate")
    return rows


def real_labelled(
    ds: PreparedDataset, real: dict[str, tuple[Any, np.ndarray]], conditions: np.ndarray | None,
    condition: str | None, seed: int,
) -> RealLabelled:
    """The labelled part of evaluation's ``_labels`` step (``real``: split -> (cached features, dataset rows))."""
    genre, k = ds.genre_idx, len(ds.genres)
    (tr_cache, train_rows), (te_cache, test_rows) = real["train"], real["test"]
    keep_tr, keep_te = genre[train_rows] >= 0, genre[test_rows] >= 0
    train_rows, test_rows = train_rows[keep_tr], test_rows[keep_te]
    if len(test_rows) < 2 * k:
        raise UserError(f"the test split holds only {len(test_rows)} labelled covers: too few to evaluate")
    clusters = None
    if conditions is not None and not is_categorical(condition):
        clusters = ConditionClusters(k=k, seed=seed).fit(conditions[train_rows])
        train_y, test_y = clusters.labels(conditions[train_rows]), clusters.labels(conditions[test_rows])
        label_kind = f"k-means cluster (k={k}) of {condition} condition vectors"
    else:
        train_y, test_y, label_kind = genre[train_rows], genre[test_rows], "genre"
    c = conditions
    return RealLabelled(
        train_x=tr_cache.features[keep_tr], train_y=train_y, test_x=te_cache.features[keep_te], test_y=test_y,
        train_c=None if c is None else c[train_rows], test_c=None if c is None else c[test_rows],
        n_classes=k, label_kind=label_kind, clusters=clusters, train_rows=train_rows, test_rows=test_rows,
    )
