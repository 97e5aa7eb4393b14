"""Conditioning metrics and verdict on planted-signal synthetic features (fast, CPU)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy.stats import chisquare, kstest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from threadpoolctl import threadpool_limits

from core.errors import UserError
from metrics.conditioning import (
    ConditionClassifier,
    ConditionClusters,
    accuracy_from_predictions,
    classification_accuracy_score,
    cluster_purity,
    condition_retrieval,
    condition_sensitivity,
    conditional_accuracy,
    conditioning_verdict,
    holm,
    permutation_p,
    wilson_interval,
)
from metrics.conditioning.retrieval import rank_matrix
from metrics.conditioning.stats import contingency, permutation_chunks, permutation_tables, table_scores


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small fits run faster single-threaded; OpenMP threads thrash when the 2 shared cores are busy."""
    with threadpool_limits(1):
        yield

K, D = 4, 12


class World:
    """k Gaussian class clusters in d dims; generators sample features given asked classes."""

    def __init__(self, seed: int, sep: float = 3.0):
        self.rng = np.random.default_rng(seed)
        self.means = self.rng.normal(size=(K, D))
        self.means *= sep / np.linalg.norm(self.means, axis=1, keepdims=True)

    def real(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = self.rng.integers(0, K, n)
        return self.sample(y), y

    def sample(self, y: np.ndarray) -> np.ndarray:
        return self.means[y] + self.rng.normal(size=(y.size, D))

    def generate(self, asked: np.ndarray, coupling: float) -> np.ndarray:
        """With probability ``coupling`` the asked class, else a random class (condition ignored)."""
        use = self.rng.random(asked.size) < coupling
        return self.sample(np.where(use, asked, self.rng.integers(0, K, asked.size)))

    def grid(self, n_z: int, coupling: float) -> np.ndarray:
        """G[i, j]: style from z_i plus the asked class j's mean (coupling 1) or a z-chosen class (0)."""
        style = 0.7 * self.rng.normal(size=(n_z, 1, D))
        cls = np.where(coupling > 0, np.arange(K)[None, :], self.rng.integers(0, K, (n_z, 1)))
        return self.means[cls] + style + 0.3 * self.rng.normal(size=(n_z, K, D))


def evaluate(seed: int, coupling: float, n_gen: int = 400, n_perm: int = 400, cas: bool = True) -> dict:
    w = World(seed)
    xtr, ytr = w.real(400)
    xte, yte = w.real(200)
    asked = w.rng.integers(0, K, n_gen)
    gen = w.generate(asked, coupling)
    kw = dict(n_permutations=n_perm, n_bootstrap=400, seed=seed)
    acc = conditional_accuracy(xtr, ytr, xte, yte, gen, asked, n_classes=K, **kw)
    out = {
        "accuracy": acc,
        "purity": cluster_purity(gen, asked, xte, yte, n_classes=K, n_init=2, **kw),
        "sensitivity": condition_sensitivity(w.grid(16, coupling), **kw),
    }
    if cas:
        kw["n_permutations"] = 200
        out["cas"] = classification_accuracy_score(gen, asked, xte, yte, n_classes=K,
                                                   ceiling=acc.details["ceiling"], **kw)
    return out


# ---------------------------------------------------------------- statistics


def test_holm_matches_hand_computed_example():
    # sorted p: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])


def test_wilson_interval_known_value():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)


def test_permutation_p_has_plus_one_correction():
    assert permutation_p(5.0, np.zeros(99)) == pytest.approx(0.01)
    assert permutation_p(0.0, np.zeros(99)) == 1.0


def test_within_strata_permutations_stay_inside_strata():
    strata = np.repeat([0, 1, 2], [5, 7, 4])
    rng = np.random.default_rng(0)
    perms = np.concatenate(list(permutation_chunks(strata.size, 50, rng, strata=strata)))
    assert perms.shape == (50, 16)
    assert (strata[perms] == strata[None, :]).all()
    assert all(sorted(p) == list(range(16)) for p in perms)
    assert len({tuple(p) for p in perms}) > 40  # actually random


def test_permutation_tables_have_the_law_of_shuffled_labels():
    """Every one of the 7! shuffles enumerated: the drawn tables' frequencies match the exact law (chi-square)."""
    a = np.array([0, 0, 0, 1, 1, 2, 2])
    b = np.array([0, 1, 2, 2, 0, 1, 2])
    exact: dict[bytes, int] = {}
    for perm in itertools.permutations(range(7)):
        key = contingency(a, b[list(perm)], 3, 3).tobytes()
        exact[key] = exact.get(key, 0) + 1
    draws = permutation_tables(np.bincount(a), np.bincount(b), 40000, np.random.default_rng(0))
    seen: dict[bytes, int] = {}
    for t in draws:
        seen[t.tobytes()] = seen.get(t.tobytes(), 0) + 1
    assert set(seen) <= set(exact)  # only tables a shuffle can make
    keys = sorted(exact)
    observed = np.array([seen.get(k, 0) for k in keys])
    expected = np.array([exact[k] for k in keys]) / math.factorial(7) * len(draws)
    assert chisquare(observed, expected).pvalue > 0.001
    assert (draws.sum(axis=2) == np.bincount(a)).all() and (draws.sum(axis=1) == np.bincount(b)).all()


def test_table_scores_agree_with_sklearn():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, 300)
    b = np.where(rng.random(300) < 0.5, a, rng.integers(0, 5, 300))
    t = np.bincount(a * 5 + b, minlength=25).reshape(5, 5)
    s = table_scores(t)
    assert s["nmi"] == pytest.approx(normalized_mutual_info_score(b, a), abs=1e-10)
    assert s["ari"] == pytest.approx(adjusted_rand_score(b, a), abs=1e-10)
    assert s["purity"] == pytest.approx(sum(t[i].max() for i in range(5)) / 300)


def test_accuracy_p_values_are_uniform_under_the_null():
    ps = []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        pred = rng.integers(0, K, 150)
        labels = rng.integers(0, K, 150)
        ps.append(accuracy_from_predictions(pred, labels, pred, labels, n_classes=K, n_permutations=300,
                                            n_bootstrap=10, seed=seed).p_value)
    ps = np.array(ps)
    # accuracy takes few values, so ties make p a little conservative (P(p <= u) <= u, not =): measured over 600
    # seeds, mean p 0.535 with shuffled labels and with drawn tables alike, and a KS test against the continuous
    # uniform rejects at that size; 60 seeds must stay valid and near uniform
    for u in (0.05, 0.1, 0.2, 0.5):
        assert (ps <= u).mean() <= u + 3 * np.sqrt(u * (1 - u) / ps.size), u
    assert 0.4 < ps.mean() < 0.65
    assert kstest(ps, "uniform").pvalue > 1e-4


# ---------------------------------------------------------------- metrics on the synthetic world


def test_oracle_generator_gives_yes_with_all_primary_tests_significant():
    res = evaluate(seed=0, coupling=1.0)
    v = conditioning_verdict(res)
    assert v["conditioning_works"] == "yes", v["reasons"]
    for key in ("accuracy", "purity", "sensitivity"):
        assert res[key].p_value < 0.01 and v["tests"][key]["p_adjusted"] < 0.01
    assert res["cas"].p_value < 0.01
    acc = res["accuracy"]
    assert acc.value > 0.8 and acc.details["ceiling"] > 0.8 and acc.null_mean < 0.35
    assert acc.effect_interval[0] > acc.margin
    json.dumps(v)  # the verdict is JSON-ready


def test_condition_ignoring_generator_false_positive_rate():
    decisions = [conditioning_verdict(evaluate(seed, 0.0, n_gen=1000, n_perm=200, cas=False))["conditioning_works"]
                 for seed in range(20)]
    assert decisions.count("yes") == 0
    assert decisions.count("no") >= 16, decisions  # enough samples to exclude a meaningful effect


def test_too_few_samples_is_inconclusive():
    res = evaluate(seed=3, coupling=0.0, n_gen=16)
    assert conditioning_verdict(res)["conditioning_works"] == "inconclusive"


def test_accuracy_rises_with_planted_coupling():
    accs = [evaluate(seed=7, coupling=c)["accuracy"] for c in (0.0, 0.5, 1.0)]
    values = [a.value for a in accs]
    assert values[0] < values[1] < values[2]
    assert abs(accs[0].effect) < 0.08 and accs[1].effect > 0.25 and accs[2].effect > 0.5


def test_verdict_from_serialised_results_is_the_same():
    res = evaluate(seed=1, coupling=0.5)
    as_json = json.loads(json.dumps({k: r.to_dict() for k, r in res.items()}))
    assert conditioning_verdict(as_json) == conditioning_verdict(res)


def test_same_seed_same_numbers():
    a = {k: r.to_dict() for k, r in evaluate(seed=2, coupling=0.5, n_perm=100).items()}
    b = {k: r.to_dict() for k, r in evaluate(seed=2, coupling=0.5, n_perm=100).items()}
    assert a == b


def test_purity_oracle_matches_real_reference_and_ignoring_is_at_null():
    w = World(4)
    xte, yte = w.real(300)
    asked = w.rng.integers(0, K, 300)
    good = cluster_purity(w.generate(asked, 1.0), asked, xte, yte, n_permutations=200, n_bootstrap=200)
    bad = cluster_purity(w.generate(asked, 0.0), asked, n_permutations=200, n_bootstrap=200)
    assert good.value == pytest.approx(good.details["reference"]["nmi"], abs=0.1) and good.value > 0.6
    assert good.details["purity"] > 0.8 and good.p_value < 0.01
    assert bad.value < 0.05 and bad.p_value > 0.01


def test_purity_fits_centroids_on_a_subset_above_fit_rows(monkeypatch):
    """Above FIT_ROWS the centroids come from a seeded subset and every cover is assigned: the clusters are nearly
    as tight as a fit on all covers (within-cluster sum of squares within 1 %) and find the condition as well
    (NMI within 0.05), the labels never pick the subset (the null stays exact), and at or below FIT_ROWS the
    clusters are sklearn's fit on all of them."""
    from sklearn.cluster import KMeans

    from metrics.conditioning import purity

    w = World(9)
    asked = w.rng.integers(0, K, 1200)
    x = w.generate(asked, 1.0)
    z = ((x - x.mean(axis=0)) / (x.std(axis=0) + 1e-12)).astype(np.float32)
    full = KMeans(K, n_init=4, random_state=0).fit_predict(z)
    assert np.array_equal(purity._clusters(x, K, 0, 4), full)  # 1,200 <= FIT_ROWS: unchanged
    monkeypatch.setattr(purity, "FIT_ROWS", 300)
    sub = purity._clusters(x, K, 0, 4)

    def inertia(labels: np.ndarray) -> float:
        return float(sum(((z[labels == c] - z[labels == c].mean(axis=0)) ** 2).sum() for c in range(K)))

    assert not np.array_equal(sub, full)  # a subset fit, not the full one
    assert inertia(sub) < 1.01 * inertia(full)
    assert normalized_mutual_info_score(asked, sub) > normalized_mutual_info_score(asked, full) - 0.05
    r = cluster_purity(x, asked, n_permutations=200, n_bootstrap=100)
    assert r.details["centroid_fit_rows"] == 300 and r.p_value < 0.01
    ignored = cluster_purity(x, w.rng.permutation(asked), n_permutations=200, n_bootstrap=100)
    assert ignored.p_value > 0.01


def test_sensitivity_is_one_when_c_decides_and_zero_when_ignored():
    rng = np.random.default_rng(0)
    by_c = np.broadcast_to(rng.normal(size=(1, 5, 8)), (10, 5, 8))
    by_z = np.broadcast_to(rng.normal(size=(10, 1, 8)), (10, 5, 8))
    s_c = condition_sensitivity(by_c + 1e-3 * rng.normal(size=by_c.shape), n_permutations=200, n_bootstrap=50)
    s_z = condition_sensitivity(by_z + 1e-3 * rng.normal(size=by_z.shape), n_permutations=200, n_bootstrap=50)
    assert s_c.value > 0.99 and s_c.p_value < 0.01
    assert s_z.value < 0.01 and s_z.p_value > 0.05


def test_sensitivity_p_value_matches_full_enumeration():
    rng = np.random.default_rng(5)
    g = rng.normal(size=(3, 3, 4)) + 0.6 * rng.normal(size=(1, 3, 4))
    h = g - g.mean(axis=(0, 1))
    ss_t, ss_z = (h**2).sum(), 3 * (h.mean(axis=1) ** 2).sum()

    def sens(x):
        hh = x - x.mean(axis=(0, 1))
        ss_c = 3 * (hh.mean(axis=0) ** 2).sum()
        return (ss_t - ss_z) / (2 * ss_t - ss_z - ss_c)

    perms = list(itertools.permutations(range(3)))
    stats = np.array([sens(np.stack([g[i, list(p)] for i, p in enumerate(ps)]))
                      for ps in itertools.product(perms, repeat=3)])
    exact = (stats >= sens(g) - 1e-12).mean()
    res = condition_sensitivity(g, n_permutations=6000, n_bootstrap=20)
    assert res.value == pytest.approx(sens(g))
    assert res.p_value == pytest.approx(exact, abs=0.02)


def test_sensitivity_bootstrap_from_the_gram_matrix_equals_resampling_rows():
    """Each replicate's sensitivity from the cells' Gram matrix equals the share recomputed on the resampled grid
    (a common offset and a condition effect included, ties from repeated rows too)."""
    from metrics.conditioning.sensitivity import _bootstrap_sensitivity

    rng = np.random.default_rng(21)
    g = rng.standard_normal((12, 5, 7)) + 3 + rng.standard_normal((1, 5, 7))

    def share(x):
        h = x - x.mean(axis=(0, 1))
        within_rows = (h**2).sum() - 5 * (h.mean(axis=1) ** 2).sum()
        within_cols = (h**2).sum() - 12 * (h.mean(axis=0) ** 2).sum()
        return within_rows / (within_rows + within_cols)

    h = (g - g.mean(axis=(0, 1))).reshape(60, -1)
    draws = [rng.integers(0, 12, 12) for _ in range(40)]
    counts = np.stack([np.bincount(d, minlength=12) for d in draws]).astype(np.float64)
    fast = _bootstrap_sensitivity((h @ h.T).reshape(12, 5, 12, 5), counts)
    np.testing.assert_allclose(fast, [share(g[d]) for d in draws], rtol=1e-10, atol=1e-12)
    assert np.ptp(fast) > 0.01


def test_cas_oracle_high_and_ignoring_not_significant():
    w = World(6)
    xte, yte = w.real(300)
    asked = w.rng.integers(0, K, 300)
    good = classification_accuracy_score(w.generate(asked, 1.0), asked, xte, yte, n_permutations=200)
    assert good.value > 0.8 and good.p_value < 0.01 and good.details["shuffled_train_accuracy"] < 0.5


def test_cas_p_values_are_uniform_under_the_null():
    """A condition-ignoring generator: real test labels still cluster, so only refit nulls stay valid."""
    ps = []
    for seed in range(30):
        w = World(100 + seed)
        xte, yte = w.real(150)
        asked = w.rng.integers(0, K, 150)
        ps.append(classification_accuracy_score(w.generate(asked, 0.0), asked, xte, yte, n_permutations=100,
                                                n_bootstrap=10, seed=seed).p_value)
    ps = np.array(ps)
    assert kstest(ps, "uniform").pvalue > 0.001
    assert (ps < 0.05).mean() <= 0.2


def test_retrieval_oracle_high_ignoring_at_chance():
    rng = np.random.default_rng(8)
    a = rng.normal(size=(6, D))

    def images(c):
        return c @ a + 0.3 * rng.normal(size=(c.shape[0], D))

    ctr = rng.normal(size=(400, 6))
    cgen = rng.normal(size=(150, 6))
    good = condition_retrieval(images(ctr), ctr, images(cgen), cgen, n_permutations=300)
    bad = condition_retrieval(images(ctr), ctr, images(rng.normal(size=(150, 6))), cgen, n_permutations=300)
    assert good.details["top1_chance"] == pytest.approx(1 / 150) and good.chance == 0.5
    assert good.details["top1"] > 0.5 and good.details["top5"] > 0.9 and good.p_value < 0.01
    assert good.value > 0.95 and good.details["median_rank"] <= 2 and good.effect >= good.margin
    assert bad.details["top1"] < 0.05 and bad.details["top5"] < 0.12 and bad.p_value > 0.01
    assert abs(bad.value - 0.5) < 0.08 and 40 < bad.details["median_rank"] < 110
    for r in (good, bad):
        assert r.interval[0] <= r.value <= r.interval[1]
        assert r.effect_interval[0] <= r.effect <= r.effect_interval[1]


def test_retrieval_with_repeated_conditions_and_candidate_cap():
    rng = np.random.default_rng(9)
    a = rng.normal(size=(6, D))
    ctr = rng.normal(size=(300, 6))
    cgen = np.repeat(rng.normal(size=(50, 6)), 3, axis=0)  # 3 covers per condition vector
    res = condition_retrieval(ctr @ a, ctr, cgen @ a, cgen, max_candidates=20, n_permutations=100)
    assert res.details["n_candidates"] == 20 and res.n == 60 and res.details["top1"] > 0.9


def test_retrieval_ranks_match_a_brute_force_count():
    rng = np.random.default_rng(12)
    pred, cand = rng.normal(size=(30, 4)), rng.normal(size=(9, 4))
    sim = pred @ cand.T
    brute = 1 + (sim[:, None, :] > sim[:, :, None]).sum(axis=2)
    assert np.array_equal(rank_matrix(pred, cand), brute)


def test_retrieval_null_is_calibrated_when_the_generator_ignores_its_condition():
    rng = np.random.default_rng(13)
    a = rng.normal(size=(6, D))
    ctr = rng.normal(size=(300, 6))
    ps = [
        condition_retrieval(ctr @ a, ctr, rng.normal(size=(80, 6)) @ a, rng.normal(size=(80, 6)),
                            n_permutations=200, seed=s).p_value
        for s in range(40)
    ]
    assert (np.array(ps) < 0.05).mean() <= 0.15


def test_condition_clusters_recover_blobs():
    rng = np.random.default_rng(10)
    centres = 5 * rng.normal(size=(K, 6))
    ids = rng.integers(0, K, 300)
    cl = ConditionClusters(K, seed=0).fit(centres[ids] + rng.normal(size=(300, 6)))
    new_ids = rng.integers(0, K, 100)
    assert adjusted_rand_score(new_ids, cl.labels(centres[new_ids] + rng.normal(size=(100, 6)))) > 0.95


def test_bad_inputs_raise_user_errors():
    w = World(0)
    x, y = w.real(50)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(UserError, match="NaN"):
        conditional_accuracy(x, y, x, y, bad, y)
    with pytest.raises(UserError, match="entries"):
        ConditionClassifier().fit(x, y[:-1])
    with pytest.raises(UserError, match="grid"):
        condition_sensitivity(np.zeros((1, 3, 4)))
    with pytest.raises(UserError, match="at least 2"):
        ConditionClassifier().fit(x, np.zeros(50, dtype=int))


def test_retrieval_caps_training_pairs():
    rng = np.random.default_rng(11)
    a = rng.normal(size=(6, D))
    ctr, cgen = rng.normal(size=(500, 6)), rng.normal(size=(60, 6))
    res = condition_retrieval(ctr @ a, ctr, cgen @ a, cgen, max_train=100, n_permutations=50)
    assert res.details["n_train"] == 100 and res.details["top1"] > 0.9


def test_condition_regressor_equals_scikit_learn_ridgecv():
    """The closed-form leave-one-out ridge picks scikit-learn's penalty and predicts what its pipeline predicts,
    for n > d and n < d, in cases where the penalty chosen differs."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from metrics.conditioning.retrieval import RIDGE_ALPHAS
    from metrics.conditioning.ridge import ConditionRegressor

    chosen = set()
    for n, d, noise in [(300, 40, 0.5), (300, 40, 8.0), (60, 150, 2.0)]:
        rng = np.random.default_rng(int(noise * 10) + n)
        x = rng.standard_normal((n, d)) * rng.uniform(0.1, 3, d) + 2
        x[:, 3] = 1.0  # a constant column, as StandardScaler leaves it
        y = x @ (rng.standard_normal((d, 5)) * 0.3) + rng.standard_normal((n, 5)) * noise
        queries = rng.standard_normal((40, d)) + 2
        ref = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(x, y)
        ours = ConditionRegressor(RIDGE_ALPHAS).fit(x, y)
        assert ours.alpha_ == ref[-1].alpha_
        np.testing.assert_allclose(ours.predict(queries), ref.predict(queries), rtol=1e-9, atol=1e-9)
        chosen.add(ours.alpha_)
    assert len(chosen) >= 2
