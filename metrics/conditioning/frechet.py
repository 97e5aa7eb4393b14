"""Track-level joint and conditional Fréchet distances (the values; their tests are in ``joint_tests``).

Image features y (n, d) and condition vectors x (n, dc: one-hot genres, audio embeddings) are paired row by row,
real and generated. Plain FID compares only the marginals of y, so a generator that ignores its condition can
score as well as one that follows it; both distances below see the pairing.

FJD (DeVries et al. 2019, "On the evaluation of conditional GANs"): the Fréchet distance between Gaussian fits
of the joint vectors [y, a x], real vs generated. The condition is scaled by one number computed on the REAL
set, a = mean_i ||y_i||_2 / mean_i ||x_i||_2 (raw, uncentred rows, as the authors' code), so the condition
weighs about as much as the image features; the same a is applied to both sets. The value is FID on the joint
vectors, computed by ``metrics.distribution.fid`` (same eigh-based trace square root, same bootstrap).

CFID (Soloveitchik et al. 2021, "Conditional Frechet Inception Distance"): E_x W2^2 between the Gaussian
conditionals p(y | x) of the two sets. For each set k, with unbiased moments of the joint Gaussian fit,
  A_k = S_yx S_xx^+,   m_k(x) = mu_y + A_k (x - mu_x),   S_k|x = S_yy - S_yx S_xx^+ S_xy   (constant in x).
The expectation over x is taken under the real condition distribution (mean mu_x^r, covariance S_xx^r).
Writing m_r(x) - m_g(x) = delta + dA (x - mu_x^r) with dA = A_r - A_g and
  delta = m_r(mu_x^r) - m_g(mu_x^r) = (mu_y^r - mu_y^g) - A_g (mu_x^r - mu_x^g),
the cross term has zero mean, so
  CFID = ||delta||^2 + tr(dA S_xx^r dA^T) + tr(S_r|x + S_g|x - 2 (S_r|x^1/2 S_g|x S_r|x^1/2)^1/2)
       =  mean_term  + regression_term    + covariance_term.
Only the first two moments of x enter. The paper evaluates both sets on the same inputs x (mu_x and S_xx
shared); then delta = mu_y^r - mu_y^g and the regression term is its tr((C_yx - C_y^x) C_xx^-1 (.)^T), so the
formula above is the paper's closed form. Deviation: here the generated set may carry its own sample of
conditions; each set regresses on its own S_xx, and the real S_xx and mean weigh the comparison.
Reduction: if y and x are uncorrelated in both sets (S_yx = 0), A = 0, S_k|x = S_yy and CFID = FID of the y
marginals exactly (tested on data with exactly zero sample cross-covariance).
Stability: S_xx^+ is the pseudo-inverse with eigenvalues below ``rcond`` x the largest treated as zero (one-hot
conditions are rank dc - 1 after centring; exact, no ridge bias). S_r|x may be singular (n_real <= d + dc);
the trace square root then uses its eigh square root instead of Cholesky (``fid.covariance_factor``).

Significance: ``joint_tests.joint_conditioning_tests`` (permutation null of the pairing, bootstrap intervals);
the reference implementation of that null is ``joint_exact``, the fast one ``joint_null`` in a reduced basis
(``metrics.distribution.basis``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.linalg

from core.errors import UserError
from core.jsonfiles import jsonable
from metrics.distribution.fid import (
    GaussianStats,
    block_moments,
    bootstrap_replicates,
    check_covariance_size,
    covariance_factor,
    frechet_distance,
    sqrtm_psd,
    trace_sqrt_product,
)
from metrics.threads import limited_threads

from .stats import check_features

RCOND = 1e-8  # relative eigenvalue cutoff of the pseudo-inverse of S_xx
MARGIN_SHARE = 0.05  # a meaningful effect: the true pairing beats shuffled pairings by 5 % of the null mean


@dataclass
class JointFrechetResult:
    """FJD or CFID with sample sizes; ``interval`` is a bias-shifted bootstrap percentile interval over the
    generated (image, condition) pairs, real set held fixed (the spread at these n; small-sample bias stays)."""

    name: str
    value: float
    n_real: int
    n_gen: int
    dim: int
    cond_dim: int
    interval: tuple[float, float] | None = None
    confidence: float = 0.95
    n_boot: int = 0
    seed: int | None = None
    boot_se: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


# ---------------------------------------------------------------- inputs and moments


def _check_pairs(
    real_x: Any, real_c: Any, gen_x: Any, gen_c: Any, allow_singular: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Finite float64 arrays with matching rows and widths, enough rows for the joint covariances."""
    ry = check_features(real_x, "real image features")
    rc = check_features(real_c, "real condition vectors")
    gy = check_features(gen_x, "generated image features")
    gc = check_features(gen_c, "generated-cover condition vectors")
    if ry.shape[0] != rc.shape[0] or gy.shape[0] != gc.shape[0]:
        raise UserError(
            f"image features and condition vectors must pair row by row: real {ry.shape[0]} vs {rc.shape[0]}, "
            f"generated {gy.shape[0]} vs {gc.shape[0]}"
        )
    if ry.shape[1] != gy.shape[1]:
        raise UserError(f"real image features are {ry.shape[1]}-d but generated ones are {gy.shape[1]}-d")
    if rc.shape[1] != gc.shape[1]:
        raise UserError(f"condition vectors differ in width: real {rc.shape[1]}, generated {gc.shape[1]}")
    d, dc = ry.shape[1], rc.shape[1]
    for n, name in ((ry.shape[0], "real pairs"), (gy.shape[0], "generated pairs")):
        if n < dc + 2:
            raise UserError(f"{name}: {n} rows cannot fit a regression on {dc}-d conditions (need at least {dc + 2})")
        check_covariance_size(n, d + dc, name, allow_singular)
    return ry, rc, gy, gc


def _moments(rows: np.ndarray, *more: np.ndarray) -> GaussianStats:
    """Mean and unbiased covariance (n - 1) in float64 of ``rows`` (and ``more`` column blocks beside them), as
    ``fid.feature_stats`` (inputs already checked; summed in row blocks, ``fid.block_moments``)."""
    return block_moments([rows, *more])


def condition_scale(real_x: np.ndarray, real_c: np.ndarray) -> float:
    """DeVries' alpha: mean L2 norm of the real image features over that of the real condition vectors."""
    cn = float(np.linalg.norm(real_c, axis=1).mean())
    if not cn > 0:
        raise UserError("FJD: every real condition vector is zero; cannot scale the condition embedding")
    return float(np.linalg.norm(real_x, axis=1).mean()) / cn


def _scaled(stats: GaussianStats, dim: int, alpha: float) -> GaussianStats:
    """Moments of [y, alpha x] from those of [y, x]."""
    s = np.ones(stats.dim)
    s[dim:] = alpha
    return GaussianStats(mu=stats.mu * s, sigma=stats.sigma * np.outer(s, s), n=stats.n)


def _shifted_interval(vals: np.ndarray, value: float, confidence: float) -> tuple[tuple[float, float], float]:
    """Percentile interval shifted by the bootstrap's own bias (as ``fid.fid``), so it sits around ``value``;
    widened to the value in the rare case a skewed bootstrap still misses it (the interval must contain it)."""
    q = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(vals, [q, 1.0 - q]) - (float(vals.mean()) - value)
    se = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
    return (float(min(lo, value)), float(max(hi, value))), se


@dataclass
class _Conditional:
    """Gaussian regression of y on x from joint moments: A = S_yx S_xx^+, S_y|x = S_yy - S_yx S_xx^+ S_xy."""

    mu_y: np.ndarray
    mu_x: np.ndarray
    s_yy: np.ndarray
    s_yx: np.ndarray
    s_xx: np.ndarray
    p: np.ndarray  # S_xx^+
    p_half: np.ndarray  # (S_xx^+)^1/2
    a: np.ndarray
    s_cond: np.ndarray
    rank: int


def _conditional(stats: GaussianStats, dim: int, rcond: float) -> _Conditional:
    mu, s = stats.mu, stats.sigma
    s_xx = s[dim:, dim:]
    w, v = scipy.linalg.eigh(s_xx, check_finite=False)
    keep = w > rcond * max(float(w.max()), 0.0)
    keep &= w > 0
    vk, wk = v[:, keep], w[keep]
    p = (vk / wk) @ vk.T
    p_half = (vk / np.sqrt(wk)) @ vk.T
    s_yx = s[:dim, dim:]
    u = s_yx @ p_half
    s_cond = s[:dim, :dim] - u @ u.T
    return _Conditional(
        mu_y=mu[:dim], mu_x=mu[dim:], s_yy=s[:dim, :dim], s_yx=s_yx, s_xx=s_xx, p=p, p_half=p_half,
        a=s_yx @ p, s_cond=(s_cond + s_cond.T) / 2, rank=int(keep.sum()),
    )


def _cfid_parts(real: _Conditional, gen: _Conditional, real_factor: np.ndarray, sqrt_sxx: np.ndarray) -> dict:
    delta = (real.mu_y - gen.mu_y) - gen.a @ (real.mu_x - gen.mu_x)
    mean_term = float(delta @ delta)
    reg_term = float(np.sum(((real.a - gen.a) @ sqrt_sxx) ** 2))
    cov_term = float(
        np.trace(real.s_cond) + np.trace(gen.s_cond) - 2.0 * trace_sqrt_product(real_factor, gen.s_cond)
    )
    return {
        "value": mean_term + reg_term + cov_term,
        "mean_term": mean_term,
        "regression_term": reg_term,
        "covariance_term": cov_term,
    }


def cfid_from_stats(real: GaussianStats, gen: GaussianStats, dim: int, *, rcond: float = RCOND) -> dict[str, float]:
    """CFID between joint moments of [y, x] (y = the first ``dim`` coordinates); also takes exact moments.

    Returns ``value`` and its three parts ``mean_term``, ``regression_term``, ``covariance_term`` (module
    docstring). Raises UserError on mismatched shapes.
    """
    if real.dim != gen.dim or not 0 < dim < real.dim:
        raise UserError(f"CFID: joint moments of {real.dim} and {gen.dim} dims cannot split at y-dim {dim}")
    rc, gc = _conditional(real, dim, rcond), _conditional(gen, dim, rcond)
    return _cfid_parts(rc, gc, covariance_factor(rc.s_cond), sqrtm_psd(rc.s_xx))


# ---------------------------------------------------------------- the two distances


@limited_threads
def frechet_joint_distance(
    real_x: np.ndarray,
    real_c: np.ndarray,
    gen_x: np.ndarray,
    gen_c: np.ndarray,
    *,
    cond_scale: float | None = None,
    n_boot: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
    allow_singular: bool = False,
) -> JointFrechetResult:
    """FJD: FID of the joint vectors [image features, a * condition]; a = ``cond_scale`` or, by default,
    ``condition_scale(real_x, real_c)`` (mean image-feature norm / mean condition norm on the real set).

    ``n_boot`` > 0 resamples generated pairs (``fid.bootstrap_replicates``) for a bias-shifted interval.
    ``allow_singular`` lets n <= d + dc through with a warning (the pipeline's FID does the same).
    """
    ry, rc, gy, gc = _check_pairs(real_x, real_c, gen_x, gen_c, allow_singular)
    return _fjd(ry, rc, gy, gc, cond_scale, n_boot, seed, confidence)


def _fjd(ry, rc, gy, gc, cond_scale, n_boot, seed, confidence, ref: GaussianStats | None = None,
         gen_stats: GaussianStats | None = None):
    """FJD; ``ref`` the real moments of [y, a x] and ``gen_stats`` the generated moments of [y, x] (unscaled)
    when the caller has them. The real factor is thin when the real set has fewer rows than dimensions."""
    d = ry.shape[1]
    alpha = condition_scale(ry, rc) if cond_scale is None else float(cond_scale)
    if not (math.isfinite(alpha) and alpha > 0):
        raise UserError(f"FJD: cond_scale must be a positive number, got {cond_scale}")
    real_rows = np.hstack([ry, alpha * rc])
    if ref is None:
        ref = _moments(real_rows)
    gen = _scaled(_moments(gy, gc) if gen_stats is None else gen_stats, d, alpha)
    factor = ref.sqrt_sigma if ref.sqrt_sigma is not None else covariance_factor(ref.sigma, real_rows - ref.mu)
    value = frechet_distance(ref.mu, ref.sigma, gen.mu, gen.sigma, sqrt_sigma1=factor)
    interval, se = None, None
    if n_boot > 0:
        vals = bootstrap_replicates(ref, np.hstack([gy, alpha * gc]), n_boot, seed)
        interval, se = _shifted_interval(vals, value, confidence)
    return JointFrechetResult(
        name="fjd", value=value, n_real=ry.shape[0], n_gen=gy.shape[0], dim=d, cond_dim=rc.shape[1],
        interval=interval, confidence=confidence, n_boot=n_boot, seed=seed if n_boot > 0 else None, boot_se=se,
        details={"cond_scale": alpha, "cond_scale_from": "real set" if cond_scale is None else "given"},
    )


@limited_threads
def conditional_frechet_distance(
    real_x: np.ndarray,
    real_c: np.ndarray,
    gen_x: np.ndarray,
    gen_c: np.ndarray,
    *,
    rcond: float = RCOND,
    n_boot: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
    allow_singular: bool = False,
) -> JointFrechetResult:
    """CFID (module docstring); ``details`` holds its three parts and the ranks of S_xx used.

    ``n_boot`` > 0 resamples generated pairs (real set fixed) for a bias-shifted percentile interval; each
    replicate refits the generated moments and costs one d x d eigensolve.
    """
    ry, rc, gy, gc = _check_pairs(real_x, real_c, gen_x, gen_c, allow_singular)
    return _cfid(ry, rc, gy, gc, rcond, n_boot, seed, confidence)


def _cfid(ry, rc, gy, gc, rcond, n_boot, seed, confidence, real: _Conditional | None = None,
          factor: np.ndarray | None = None, gen_stats: GaussianStats | None = None):
    d = ry.shape[1]
    if real is None:
        real = _conditional(_moments(np.hstack([ry, rc])), d, rcond)
    if factor is None:  # thin when the real set has fewer rows than dims: the regression residuals
        factor = covariance_factor(real.s_cond, (ry - real.mu_y) - (rc - real.mu_x) @ real.a.T)
    sqrt_sxx = sqrtm_psd(real.s_xx)
    gen = _conditional(_moments(gy, gc) if gen_stats is None else gen_stats, d, rcond)
    parts = _cfid_parts(real, gen, factor, sqrt_sxx)
    value = parts.pop("value")
    interval, se = None, None
    if n_boot > 0:
        gen_rows = np.hstack([gy, gc])
        rng = np.random.default_rng(seed)
        n = gen_rows.shape[0]
        vals = np.array([
            _cfid_parts(real, _conditional(_moments(gen_rows[rng.integers(0, n, n)]), d, rcond), factor, sqrt_sxx)[
                "value"
            ]
            for _ in range(n_boot)
        ])
        interval, se = _shifted_interval(vals, value, confidence)
    return JointFrechetResult(
        name="cfid", value=value, n_real=ry.shape[0], n_gen=gy.shape[0], dim=d, cond_dim=rc.shape[1],
        interval=interval, confidence=confidence, n_boot=n_boot, seed=seed if n_boot > 0 else None, boot_se=se,
        details={**parts, "rcond": rcond, "cond_rank_real": real.rank, "cond_rank_gen": gen.rank},
    )
