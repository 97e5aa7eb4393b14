"""Encoder evaluation against independent references: hand-computed values, sklearn, and planted signals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.neighbors import KNeighborsClassifier

from models.encoders.evaluate import (
    ari,
    chance_levels,
    cluster_scores,
    evaluate_embeddings,
    knn_accuracy,
    knn_predict,
    linear_probe,
    nmi,
    purity,
    silhouette,
)


def test_purity_by_hand():
    # clusters: 0 -> {a,a,b}, 1 -> {b,b,c}, 2 -> {c}: majorities 2 + 2 + 1 = 5 of 7
    true = np.array([0, 0, 1, 1, 1, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 1, 2])
    assert purity(true, pred) == pytest.approx(5 / 7)
    assert purity(true, true) == 1.0
    # every point in one cluster: purity = largest class share
    assert purity(true, np.zeros(7, int)) == pytest.approx(3 / 7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nmi_ari_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 5, 300)
    pred = np.where(rng.random(300) < 0.6, true, rng.integers(0, 7, 300))
    assert nmi(true, pred) == pytest.approx(normalized_mutual_info_score(true, pred), abs=1e-10)
    assert ari(true, pred) == pytest.approx(adjusted_rand_score(true, pred), abs=1e-10)
    # label names do not matter
    assert ari(true, pred + 10) == pytest.approx(ari(true, pred))


def test_nmi_ari_extremes():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert nmi(y, y[::-1] * 0 + y) == pytest.approx(1.0)
    assert ari(y, np.array([5, 5, 7, 7, 9, 9])) == pytest.approx(1.0)
    assert ari(y, np.array([0, 1, 0, 1, 0, 1])) < 0.0  # worse than chance


def test_knn_matches_sklearn_cosine():
    rng = np.random.default_rng(3)
    x_tr, x_te = rng.standard_normal((200, 6)), rng.standard_normal((80, 6))
    y_tr = (x_tr[:, 0] > 0).astype(int) + 2 * (x_tr[:, 1] > 0)
    ref = KNeighborsClassifier(n_neighbors=10, metric="cosine", algorithm="brute").fit(x_tr, y_tr).predict(x_te)
    mine = knn_predict(x_tr, y_tr, x_te, k=10)
    assert np.mean(mine == ref) >= 0.97  # only exact distance ties may be broken differently
    # cosine: scaling a query does not change its neighbours
    assert np.array_equal(knn_predict(x_tr, y_tr, 3.0 * x_te, k=10), mine)


def test_silhouette_by_hand():
    # two 1-D clusters {0, 1} and {10, 11}; after standardisation distances scale uniformly, so silhouette is
    # scale-free: a = 1, b = mean(10, 11) or mean(9, 10) -> s = 1 - a/b
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    y = np.array([0, 0, 1, 1])
    s = [1 - 1 / 10.5, 1 - 1 / 9.5, 1 - 1 / 9.5, 1 - 1 / 10.5]
    assert silhouette(x, y) == pytest.approx(np.mean(s))
    assert np.isnan(silhouette(x, np.zeros(4, int)))


def test_chance_levels():
    c = chance_levels(np.array([0, 0, 0, 1]), 4)
    assert c == {"chance_majority": 0.75, "chance_uniform": 0.25}


def _planted(n: int, k: int, signal: float, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.standard_normal((k, 8)) * signal
    return centres[y] + rng.standard_normal((n, 8)), y


def test_probes_see_planted_signal_and_not_noise():
    x, y = _planted(600, 4, 4.0, 0)
    tr, te = slice(0, 400), slice(400, None)
    lp = linear_probe(x[tr], y[tr], x[te], y[te], 4)
    kn = knn_accuracy(x[tr], y[tr], x[te], y[te], 4)
    assert lp["accuracy"] > 0.95 and lp["macro_f1"] > 0.95 and kn["accuracy"] > 0.95
    assert lp["chance_uniform"] == 0.25 and 0.2 < lp["chance_majority"] < 0.4
    x0, _ = _planted(600, 4, 0.0, 1)  # features unrelated to the labels
    lp0 = linear_probe(x0[tr], y[tr], x0[te], y[te], 4)
    kn0 = knn_accuracy(x0[tr], y[tr], x0[te], y[te], 4)
    assert lp0["accuracy"] < 0.4 and kn0["accuracy"] < 0.4
    cs, cs0 = cluster_scores(x, y, 4), cluster_scores(x0, y, 4)
    assert cs["purity"] > 0.9 and cs["nmi"] > 0.8 and cs["ari"] > 0.8
    assert cs0["nmi"] < 0.05 and abs(cs0["ari"]) < 0.05


def test_evaluate_embeddings_full(tmp_path):
    x, y = _planted(300, 3, 3.0, 2)
    y[:5] = -1  # unlabelled tracks are ignored
    splits = np.array(["train"] * 200 + ["val"] * 20 + ["test"] * 80)
    ev = evaluate_embeddings(x, y, splits, ["a", "b", "c"], tsne_path=tmp_path / "t.png", seed=0)
    assert ev["n_labelled"] == 295 and ev["linear_probe"]["n_train"] == 195
    assert ev["linear_probe"]["accuracy"] > 0.9 and ev["knn"]["accuracy"] > 0.9
    assert ev["silhouette"] > 0.2 and ev["kmeans"]["k"] == 3
    assert (tmp_path / "t.png").stat().st_size > 1000
    again = evaluate_embeddings(x, y, splits, ["a", "b", "c"], seed=0)
    assert again["kmeans"] == ev["kmeans"] and again["linear_probe"] == ev["linear_probe"]
    bad = x.copy()
    bad[0, 0] = np.nan
    assert "error" in evaluate_embeddings(bad, y, splits, ["a", "b", "c"])
