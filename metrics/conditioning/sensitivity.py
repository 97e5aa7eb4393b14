"""Condition sensitivity: how much of the feature variance does the condition explain, z held fixed?

Input: features of a grid of generated covers G[i, j] = f(z_i, c_j), shape (n_z, n_c, d). Two-way variance
decomposition (sums of squares around the grand mean):
  V_c|z = total - SS_z   (spread across conditions inside each z row: condition effect + interaction)
  V_z|c = total - SS_c   (spread across z inside each condition column: z effect + interaction)
sensitivity = V_c|z / (V_c|z + V_z|c): 1 when c alone decides the output, 0 when c is ignored, 1/2 for
unstructured noise. Null: permute the conditions independently inside each z row (exact if f ignores c);
only SS_c changes under that permutation, computed from a Gram matrix so the cost does not depend on d.
"""

from __future__ import annotations

import numpy as np

from core.errors import UserError

from .stats import TestResult, percentile_interval, permutation_p

MARGIN = 0.02  # sensitivity points above the null mean


def _sensitivity(ss_t: float, ss_z: float, ss_c: np.ndarray | float) -> np.ndarray | float:
    # arrays, also for scalars: a Python-float 0/0 raises instead of taking the 0.5 branch (a bootstrap resample of
    # one z row of a generator that ignores c has no variance at all)
    within_rows, within_cols = np.asarray(ss_t - ss_z, dtype=np.float64), np.asarray(ss_t - ss_c, dtype=np.float64)
    den = within_rows + within_cols
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, within_rows / den, 0.5)


def _bootstrap_sensitivity(gram: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sensitivity of grids resampled by z rows, ``counts`` (B, n_z) times each row, from the cells' Gram matrix
    (n_z, n_c, n_z, n_c) of the centred grid: O(n_z^2) per replicate instead of a pass over n_z n_c d features.

    With row sums R_i (K_R = R R^T), C_ii' = sum_j <h_ij, h_i'j>, the resampled grand mean m (|m|^2 = w K_R w / N^2,
    N = n_z n_c): SS_t = sum_i w_i |h_i.|^2 - N |m|^2, SS_z = w diag(K_R) / n_c - N |m|^2,
    SS_c = w C w / n_z - N |m|^2 (shift-invariant, so the full grid's centring serves every replicate)."""
    n_z, n_c = gram.shape[:2]
    n = n_z * n_c
    cell_sq = np.einsum("ijij->i", gram)
    k_r = gram.sum(axis=(1, 3))
    c = np.einsum("ijkj->ik", gram)
    mean_sq = np.einsum("bi,ij,bj->b", counts, k_r, counts) / n  # N |m|^2
    ss_t = counts @ cell_sq - mean_sq
    ss_z = counts @ np.diag(k_r) / n_c - mean_sq
    ss_c = np.einsum("bi,ij,bj->b", counts, c, counts) / n_z - mean_sq
    return np.asarray(_sensitivity(ss_t, ss_z, ss_c), dtype=np.float64).reshape(-1)


def condition_sensitivity(
    grid: np.ndarray, *, n_permutations: int = 2000, n_bootstrap: int = 1000, seed: int = 0
) -> TestResult:
    """Share of grid variance due to the condition, with a within-row permutation null and p-value.

    effect = sensitivity - null mean; its interval bootstraps z rows (the grid's independent units).
    """
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 3 or g.shape[0] < 2 or g.shape[1] < 2:
        raise UserError(f"the sensitivity grid must be (n_z >= 2, n_c >= 2, d), got shape {g.shape}")
    if not np.isfinite(g).all():
        raise UserError("the sensitivity grid contains NaN or infinite features; refusing to compute")
    n_z, n_c, _ = g.shape
    rng = np.random.default_rng(seed)

    def parts(x: np.ndarray) -> tuple[float, float, float, float]:
        h = x - x.mean(axis=(0, 1))
        ss_t = float((h**2).sum())
        ss_z = float(n_c * (h.mean(axis=1) ** 2).sum())
        ss_c = float(n_z * (h.mean(axis=0) ** 2).sum())
        return ss_t, ss_z, ss_c, float(_sensitivity(ss_t, ss_z, ss_c))

    ss_t, ss_z, ss_c, value = parts(g)

    # SS_c under row-wise permutations: column sums s_j = sum_i h[i, pi_i(j)], |s_j|^2 via the Gram matrix.
    h = (g - g.mean(axis=(0, 1))).reshape(n_z * n_c, -1)
    gram = h @ h.T
    rows = np.arange(n_z)[:, None]
    null = np.empty(n_permutations)
    step = max(1, 2_000_000 // (n_c * n_z * n_z))
    for start in range(0, n_permutations, step):
        b = min(step, n_permutations - start)
        perm = np.argsort(rng.random((b, n_z, n_c)), axis=2)  # (b, i, j) -> column used in row i
        idx = (rows * n_c + perm).transpose(0, 2, 1)  # (b, j, i) flat cell index
        col_sq = gram[idx[..., :, None], idx[..., None, :]].sum(axis=(-2, -1))  # (b, j)
        null[start:start + b] = _sensitivity(ss_t, ss_z, col_sq.sum(axis=1) / n_z)
    null_mean = float(null.mean()) if n_permutations else float("nan")

    counts = np.stack([np.bincount(rng.integers(0, n_z, n_z), minlength=n_z) for _ in range(n_bootstrap)]) \
        if n_bootstrap else np.zeros((0, n_z))
    boot = _bootstrap_sensitivity(gram.reshape(n_z, n_c, n_z, n_c), counts.astype(np.float64))
    return TestResult(
        name="condition_sensitivity",
        value=value,
        n=n_z * n_c,
        chance=null_mean,
        interval=percentile_interval(boot),
        p_value=permutation_p(value, null),
        null_mean=null_mean,
        effect=value - null_mean,
        effect_interval=percentile_interval(boot - null_mean),
        margin=MARGIN,
        n_permutations=n_permutations,
        seed=seed,
        details={
            "n_z": n_z, "n_c": n_c,
            "share_condition": ss_c / ss_t if ss_t > 0 else 0.0,
            "share_z": ss_z / ss_t if ss_t > 0 else 0.0,
            "share_interaction": (ss_t - ss_c - ss_z) / ss_t if ss_t > 0 else 0.0,
            "null_q99": float(np.quantile(null, 0.99)) if n_permutations else None,
            "n_bootstrap": n_bootstrap,
        },
    )
