"""The condition classifier (image features -> condition class) and condition clusters for vectors.

A standardised multinomial logistic regression is the default: convex (so the same data give the same
model), fast on a few thousand 2048-d rows, and strong enough to set a ceiling on real covers. A small MLP is
available for features whose classes are not linearly separable.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import UserError
from metrics.threads import fit_thread_limit

from .stats import check_features, check_labels


class ConditionClassifier:
    """Standardise, then logistic regression (``kind="logreg"``) or a one-hidden-layer MLP; seeded."""

    def __init__(
        self, kind: Literal["logreg", "mlp"] = "logreg", C: float = 1.0, hidden: int = 256,
        max_iter: int = 500, seed: int = 0,
    ):
        self.kind, self.C, self.hidden, self.max_iter, self.seed = kind, C, hidden, max_iter, seed
        self._model: Pipeline | None = None

    def _make(self) -> Pipeline:
        if self.kind == "logreg":
            head = LogisticRegression(C=self.C, max_iter=self.max_iter)
        elif self.kind == "mlp":
            head = MLPClassifier(
                hidden_layer_sizes=(self.hidden,), alpha=1e-3, max_iter=self.max_iter,
                early_stopping=True, random_state=self.seed,
            )
        else:
            raise UserError(f"unknown classifier kind {self.kind!r}: use 'logreg' or 'mlp'")
        return make_pipeline(StandardScaler(), head)

    def fit(self, features: np.ndarray, labels: np.ndarray) -> ConditionClassifier:
        x = check_features(features, "classifier training features", min_rows=2)
        y = check_labels(labels, x.shape[0], "classifier training labels")
        if np.unique(y).size < 2:
            raise UserError("the condition classifier needs training rows from at least 2 classes")
        with fit_thread_limit():
            self._model = self._make().fit(x, y)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("ConditionClassifier.predict called before fit")
        return self._model.predict(check_features(features, "classifier input features")).astype(np.int64)


class ConditionClusters:
    """Class labels for continuous condition vectors: k-means (seeded) fit on the real training conditions.

    Lets the class-based tests (accuracy, CAS, purity) run for audio-embedding conditions too.
    """

    def __init__(self, k: int, seed: int = 0, n_init: int = 4):
        if k < 2:
            raise UserError(f"need at least 2 condition clusters, got k={k}")
        self.k, self.seed, self.n_init = k, seed, n_init
        self._km: KMeans | None = None
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None

    def fit(self, train_conditions: np.ndarray) -> ConditionClusters:
        c = check_features(train_conditions, "training condition vectors", min_rows=self.k)
        self._mean, self._std = c.mean(axis=0), c.std(axis=0) + 1e-12
        with fit_thread_limit():
            self._km = KMeans(self.k, n_init=self.n_init, random_state=self.seed).fit((c - self._mean) / self._std)
        return self

    def labels(self, conditions: np.ndarray) -> np.ndarray:
        if self._km is None:
            raise RuntimeError("ConditionClusters.labels called before fit")
        c = check_features(conditions, "condition vectors")
        return self._km.predict((c - self._mean) / self._std).astype(np.int64)
