"""Retrieval for continuous conditions: can a generated cover be matched back to its condition vector?

A ridge regressor fit on real training pairs maps image features to condition vectors (both standardised
with training statistics). Each generated cover's predicted vector is compared with every candidate condition
by cosine similarity; a hit is the true condition among the top 1 / top 5. The null shuffles which condition
belongs to which generated cover (exact when the generator ignores its condition).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmark.errors import UserError

from .stats import TestResult, check_features, permutation_chunks, permutation_p, wilson_interval

RIDGE_ALPHAS = np.logspace(-2, 4, 7)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def condition_retrieval(
    train_features: np.ndarray, train_conditions: np.ndarray,
    gen_features: np.ndarray, gen_conditions: np.ndarray,
    *, max_candidates: int = 1000, max_train: int = 20000, n_permutations: int = 2000, seed: int = 0,
    top: int = 5,
) -> TestResult:
    """Top-1 retrieval accuracy (value) and top-``top``, against chance 1/m and ``top``/m (m candidates).

    Candidates are the distinct generated conditions (at most ``max_candidates``, a seeded subset; only
    covers whose condition is a candidate are scored). effect = top-1 - null mean; margin = max(0.01,
    chance): top-1 must at least double chance to count as meaningful. The regressor sees at most
    ``max_train`` training pairs (a seeded subset): ridge needs no more, and its cost grows with n * d^2.
    """
    tx = check_features(train_features, "real training features", min_rows=3)
    tc = check_features(train_conditions, "real training conditions")
    gx = check_features(gen_features, "generated features")
    gc = check_features(gen_conditions, "generated-cover condition vectors")
    if tc.shape[0] != tx.shape[0] or gc.shape[0] != gx.shape[0]:
        raise UserError("features and condition vectors must have the same number of rows")
    if tc.shape[1] != gc.shape[1]:
        raise UserError(f"condition vectors differ in width: train {tc.shape[1]}, generated {gc.shape[1]}")
    rng = np.random.default_rng(seed)
    if tx.shape[0] > max_train:
        sub = np.sort(rng.choice(tx.shape[0], max_train, replace=False))
        tx, tc = tx[sub], tc[sub]

    cand, truth = np.unique(gc, axis=0, return_inverse=True)
    truth = truth.ravel()
    if cand.shape[0] < 2:
        raise UserError("retrieval needs at least 2 distinct condition vectors among the generated covers")
    if cand.shape[0] > max_candidates:
        keep = np.sort(rng.choice(cand.shape[0], max_candidates, replace=False))
        remap = np.full(cand.shape[0], -1)
        remap[keep] = np.arange(keep.size)
        rows = remap[truth] >= 0
        cand, truth, gx = cand[keep], remap[truth][rows], gx[rows]
    m, n = cand.shape[0], truth.size
    top = min(top, m)

    c_mean, c_std = tc.mean(axis=0), tc.std(axis=0) + 1e-12
    reg = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(tx, (tc - c_mean) / c_std)
    pred = _unit(reg.predict(gx).reshape(n, -1))
    cand_u = _unit((cand - c_mean) / c_std)
    ranked = np.empty((n, top), dtype=np.int64)
    step = max(1, 4_000_000 // m)
    for s in range(0, n, step):
        sim = pred[s:s + step] @ cand_u.T
        part = np.argpartition(-sim, top - 1, axis=1)[:, :top]
        order = np.argsort(-np.take_along_axis(sim, part, axis=1), axis=1, kind="stable")
        ranked[s:s + step] = np.take_along_axis(part, order, axis=1)

    def hits(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return t == ranked[:, 0], (t[..., None] == ranked).any(axis=-1)

    h1, hk = hits(truth)
    top1, topk = float(h1.mean()), float(hk.mean())
    null1, nullk = [], []
    for perm in permutation_chunks(n, n_permutations, rng, width=top):
        a, b = hits(truth[perm])
        null1.append(a.mean(axis=1))
        nullk.append(b.mean(axis=1))
    null1_a, nullk_a = np.concatenate(null1), np.concatenate(nullk)
    null_mean = float(null1_a.mean())
    # effect interval: Wilson interval of top-1 minus the (tightly estimated) null mean
    lo, hi = wilson_interval(top1 * n, n)
    return TestResult(
        name="condition_retrieval",
        value=top1,
        n=n,
        chance=1.0 / m,
        interval=(lo, hi),
        p_value=permutation_p(top1, null1_a),
        null_mean=null_mean,
        effect=top1 - null_mean,
        effect_interval=(lo - null_mean, hi - null_mean),
        margin=max(0.01, 1.0 / m),
        n_permutations=n_permutations,
        seed=seed,
        details={
            "n_candidates": m,
            f"top{top}": topk,
            f"top{top}_chance": top / m,
            f"top{top}_interval": wilson_interval(topk * n, n),
            f"top{top}_p_value": permutation_p(topk, nullk_a),
            f"top{top}_null_mean": float(nullk_a.mean()),
            "ridge_alpha": float(reg[-1].alpha_),
            "n_train": int(tx.shape[0]),
        },
    )
