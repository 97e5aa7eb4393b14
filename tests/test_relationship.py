"""Relationship probe on synthetic real pairs: planted structure is found, absent structure is not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kstest
from threadpoolctl import threadpool_limits

from core.errors import UserError
from metrics.relationship import audio_probe, genre_probe, relationship_probe


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small fits run faster single-threaded; OpenMP threads thrash when the 2 shared cores are busy."""
    with threadpool_limits(1):
        yield

K, D = 4, 8


def covers(rng: np.random.Generator, n: int, sep: float) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, K, n)
    means = rng.normal(size=(K, D))
    means *= sep / np.linalg.norm(means, axis=1, keepdims=True)
    return means[y] + rng.normal(size=(n, D)), y


def test_planted_genre_structure_is_found():
    rng = np.random.default_rng(0)
    x, y = covers(rng, 300, sep=3.0)
    res = relationship_probe(x, y, n_permutations=500, n_bootstrap=200, seed=0)
    g = res["genre"]
    assert res["audio"] is None
    assert g.p_value < 0.01 and g.value > 0.75 and g.chance == 0.25
    assert g.interval[0] > 0.6 and g.effect_interval[0] > 0.4


def test_no_structure_gives_chance_accuracy_and_uniform_p():
    ps, accs = [], []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        x, y = covers(rng, 120, sep=0.0)
        r = genre_probe(x, y, folds=3, n_permutations=200, n_bootstrap=20, seed=seed)
        ps.append(r.p_value)
        accs.append(r.value)
    ps = np.array(ps)
    assert abs(np.mean(accs) - 0.25) < 0.05
    assert kstest(ps, "uniform").pvalue > 0.001
    assert (ps < 0.05).mean() <= 0.2 and (ps < 0.01).mean() <= 0.1


def test_audio_r2_matches_planted_linear_map():
    rng = np.random.default_rng(1)
    n, e = 600, 5
    x = rng.normal(size=(n, D))
    w = rng.normal(size=(D, e))
    w /= np.linalg.norm(w, axis=0, keepdims=True)  # unit signal variance per embedding dimension
    emb = x @ w + 0.5 * rng.normal(size=(n, e))  # noise variance 0.25 -> population R^2 = 1 / 1.25 = 0.8
    y = rng.integers(0, K, n)
    r = relationship_probe(x, y, emb, n_permutations=300, n_bootstrap=200, seed=1)["audio"]
    assert r.value == pytest.approx(0.8, abs=0.04)
    assert r.p_value < 0.01 and r.interval[0] < r.value < r.interval[1]


def test_audio_r2_null_is_near_zero_and_not_significant():
    ps = []
    for seed in range(15):
        rng = np.random.default_rng(50 + seed)
        r = audio_probe(rng.normal(size=(150, D)), rng.normal(size=(150, 3)), n_permutations=200,
                        n_bootstrap=20, seed=seed)
        assert r.value < 0.05
        ps.append(r.p_value)
    assert (np.array(ps) < 0.01).mean() <= 0.15


def test_probe_is_deterministic_and_refuses_bad_input():
    rng = np.random.default_rng(2)
    x, y = covers(rng, 100, sep=2.0)
    a = genre_probe(x, y, n_permutations=100, n_bootstrap=50, seed=3).to_dict()
    assert a == genre_probe(x, y, n_permutations=100, n_bootstrap=50, seed=3).to_dict()
    y_small = y.copy()
    y_small[:] = 0
    y_small[:3] = 1  # a genre with 3 covers cannot fill 5 folds
    with pytest.raises(UserError, match="folds"):
        genre_probe(x, y_small)
    x_nan = x.copy()
    x_nan[0, 0] = np.inf
    with pytest.raises(UserError, match="NaN or infinite"):
        genre_probe(x_nan, y)


def test_r2_permutation_paths_agree_with_brute_force(monkeypatch):
    import metrics.relationship as rel

    rng = np.random.default_rng(4)
    y, pred = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    fold = np.repeat(np.arange(4), 10)
    gram = rel._permuted_cross(y, pred, fold, 7, np.random.default_rng(0))
    monkeypatch.setattr(rel, "_GRAM_MAX", 0)
    gather = rel._permuted_cross(y, pred, fold, 7, np.random.default_rng(0))
    perms = np.concatenate(list(rel.permutation_chunks(40, 7, np.random.default_rng(0), strata=fold)))
    brute = [sum(y[p[i]] @ pred[i] for i in range(40)) for p in perms]
    np.testing.assert_allclose(gram, brute, rtol=1e-10)
    np.testing.assert_allclose(gather, brute, rtol=1e-10)
    # multinomial-weight bootstrap equals R^2 on the resampled rows
    w = np.random.default_rng(1).multinomial(40, np.full(40, 1 / 40), size=3)
    boot = rel._bootstrap_r2(y, pred, 3, np.random.default_rng(1))
    for b in range(3):
        rows = np.repeat(np.arange(40), w[b])
        assert boot[b] == pytest.approx(rel._r2(y[rows], pred[rows]), rel=1e-10)
