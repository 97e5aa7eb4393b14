"""Cross-modal retrieval for continuous conditions: can a cover be matched back to its own condition vector?

A ridge regressor fit on real training pairs maps image features to condition vectors (both standardised with
training statistics). Each query cover's predicted vector is compared with every candidate condition by cosine
similarity, which ranks the candidates; the query's own condition gets rank 1 (best) to m.

The test statistic is the mean rank score, (m - rank) / (m - 1) averaged over the queries: 1 when every cover's
own condition comes first, 0.5 at chance. It uses every rank, not only the top, so it sees a weak track-level
signal that top-1 misses when many candidates are alike (all tracks of one genre). Top-1, top-5 and the median
rank are reported beside it, each with its own permutation p-value. The null shuffles which condition belongs
to which cover: exact when the generator ignores its condition. The same function run on real test covers gives
the ceiling, what a generator that reproduces real covers of its tracks would score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import UserError

from .ridge import ConditionRegressor
from .stats import TestResult, check_features, permutation_chunks, permutation_p, wilson_interval

RIDGE_ALPHAS = np.logspace(-2, 4, 7)
RANK_SCORE_MARGIN = 0.05  # meaningful: own conditions rank on average 5 points of percentile above chance


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def _candidates(
    gc: np.ndarray, gx: np.ndarray, max_candidates: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct query conditions (a seeded subset of at most ``max_candidates``), each query's candidate index,
    and the queries whose condition is a candidate."""
    cand, truth = np.unique(gc, axis=0, return_inverse=True)
    truth = truth.ravel()
    if cand.shape[0] < 2:
        raise UserError("retrieval needs at least 2 distinct condition vectors among the covers")
    if cand.shape[0] > max_candidates:
        keep = np.sort(rng.choice(cand.shape[0], max_candidates, replace=False))
        remap = np.full(cand.shape[0], -1)
        remap[keep] = np.arange(keep.size)
        rows = remap[truth] >= 0
        cand, truth, gx = cand[keep], remap[truth][rows], gx[rows]
    return cand, truth, gx


@dataclass
class FittedRegressor:
    """The ridge map from image features to standardised condition vectors, with the standardisation."""

    model: ConditionRegressor
    c_mean: np.ndarray
    c_std: np.ndarray
    n_train: int


def _training_rows(n: int, max_train: int, rng: np.random.Generator) -> np.ndarray | None:
    return np.sort(rng.choice(n, max_train, replace=False)) if n > max_train else None


def fit_condition_regressor(train_features: np.ndarray, train_conditions: np.ndarray, *, max_train: int = 20000,
                            seed: int = 0, rng: np.random.Generator | None = None) -> FittedRegressor:
    """Fit the retrieval's regressor on (a seeded subset of at most ``max_train``) real training pairs."""
    tx = check_features(train_features, "real training features", min_rows=3)
    tc = check_features(train_conditions, "real training conditions")
    if tc.shape[0] != tx.shape[0]:
        raise UserError("features and condition vectors must have the same number of rows")
    sub = _training_rows(tx.shape[0], max_train, np.random.default_rng(seed) if rng is None else rng)
    if sub is not None:
        tx, tc = tx[sub], tc[sub]
    c_mean, c_std = tc.mean(axis=0), tc.std(axis=0) + 1e-12
    model = ConditionRegressor(RIDGE_ALPHAS).fit(tx, (tc - c_mean) / c_std)
    return FittedRegressor(model=model, c_mean=c_mean, c_std=c_std, n_train=int(tx.shape[0]))


def rank_matrix(pred: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """(n, m) int32: rank (1 = most similar) of every candidate for every query, by cosine similarity."""
    n, m = pred.shape[0], cand.shape[0]
    ranks = np.empty((n, m), dtype=np.int32)
    step = max(1, 4_000_000 // m)
    cols = np.arange(1, m + 1, dtype=np.int32)
    for s in range(0, n, step):
        order = np.argsort(-(pred[s : s + step] @ cand.T), axis=1, kind="stable")
        np.put_along_axis(ranks[s : s + step], order, np.broadcast_to(cols, order.shape), axis=1)
    return ranks


def _scores(ranks: np.ndarray, m: int, top: int) -> dict[str, np.ndarray]:
    """Statistics of rank arrays (..., n): mean rank score, top-1, top-``top`` and median rank."""
    r = ranks.astype(np.float64)
    return {
        "rank_score": ((m - r) / (m - 1)).mean(axis=-1),
        "top1": (r == 1).mean(axis=-1),
        f"top{top}": (r <= top).mean(axis=-1),
        "median_rank": np.median(r, axis=-1),
    }


def condition_retrieval(
    train_features: np.ndarray, train_conditions: np.ndarray,
    gen_features: np.ndarray, gen_conditions: np.ndarray,
    *, max_candidates: int = 1000, max_train: int = 20000, n_permutations: int = 2000, seed: int = 0,
    top: int = 5, regressor: FittedRegressor | None = None,
) -> TestResult:
    """Mean rank score of each query cover's own condition (value; chance 0.5), with top-1, top-``top`` and the
    median rank in ``details``, each against the shuffled-condition null.

    Candidates are the distinct query conditions (at most ``max_candidates``, a seeded subset; only covers whose
    condition is a candidate are scored). effect = value - null mean; margin = RANK_SCORE_MARGIN. The regressor
    sees at most ``max_train`` training pairs (a seeded subset): ridge needs no more, and its cost grows with n d^2.
    ``regressor``: :func:`fit_condition_regressor` of the same training pairs, max_train and seed, fit once for
    callers that score several sets (generated covers and the real-cover ceiling); the results are the same.
    """
    tx = check_features(train_features, "real training features", min_rows=3)
    tc = check_features(train_conditions, "real training conditions")
    gx = check_features(gen_features, "query features")
    gc = check_features(gen_conditions, "query condition vectors")
    if tc.shape[0] != tx.shape[0] or gc.shape[0] != gx.shape[0]:
        raise UserError("features and condition vectors must have the same number of rows")
    if tc.shape[1] != gc.shape[1]:
        raise UserError(f"condition vectors differ in width: train {tc.shape[1]}, queries {gc.shape[1]}")
    rng = np.random.default_rng(seed)
    if regressor is None:
        regressor = fit_condition_regressor(tx, tc, max_train=max_train, rng=rng)
    else:
        _training_rows(tx.shape[0], max_train, rng)  # the same draws as a fit here, so the rest of the stream is too
    cand, truth, gx = _candidates(gc, gx, max_candidates, rng)
    m, n = cand.shape[0], truth.size
    top = min(top, m)
    reg, c_mean, c_std, n_train = regressor.model, regressor.c_mean, regressor.c_std, regressor.n_train
    ranks = rank_matrix(_unit(reg.predict(gx).reshape(n, -1)), _unit((cand - c_mean) / c_std))
    rows = np.arange(n)
    observed = _scores(ranks[rows, truth], m, top)
    null: dict[str, list[np.ndarray]] = {k: [] for k in observed}
    for perm in permutation_chunks(n, n_permutations, rng):
        for k, v in _scores(ranks[rows[None, :], truth[perm]], m, top).items():
            null[k].append(v)
    nulls = {k: np.concatenate(v) for k, v in null.items()}
    value = float(observed["rank_score"])
    null_mean = float(nulls["rank_score"].mean())
    se = float(((m - ranks[rows, truth]) / (m - 1)).std(ddof=1) / np.sqrt(n)) if n > 1 else 0.5
    lo, hi = value - 1.96 * se, value + 1.96 * se  # normal interval of a mean of n bounded scores
    details: dict = {"n_candidates": m, "rank_score_chance": 0.5}
    for k in ("top1", f"top{top}"):
        details[k] = float(observed[k])
        details[f"{k}_chance"] = (1 if k == "top1" else top) / m
        details[f"{k}_interval"] = wilson_interval(observed[k] * n, n)
        details[f"{k}_p_value"] = permutation_p(float(observed[k]), nulls[k])
        details[f"{k}_null_mean"] = float(nulls[k].mean())
    details.update(
        median_rank=float(observed["median_rank"]),
        median_rank_chance=(m + 1) / 2,
        median_rank_p_value=permutation_p(float(observed["median_rank"]), nulls["median_rank"], "less"),
        median_rank_null_mean=float(nulls["median_rank"].mean()),
        ridge_alpha=float(reg.alpha_),
        n_train=n_train,
    )
    return TestResult(
        name="condition_retrieval",
        value=value,
        n=n,
        chance=0.5,
        interval=(max(0.0, lo), min(1.0, hi)),
        p_value=permutation_p(value, nulls["rank_score"]),
        null_mean=null_mean,
        effect=value - null_mean,
        effect_interval=(lo - null_mean, hi - null_mean),
        margin=RANK_SCORE_MARGIN,
        n_permutations=n_permutations,
        seed=seed,
        details=details,
    )
