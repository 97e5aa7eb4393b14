"""Fréchet distance between Gaussian fits of two feature sets, computed with symmetric eigensolvers.

FD = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2). The product S1 S2 is not symmetric, which is why the
usual path (scipy ``sqrtm``) is slow and can return complex noise. With A = sqrt(S1) (symmetric, from one
``eigh``), S1 S2 is similar to A S2 A, which is symmetric positive semi-definite, so
tr sqrt(S1 S2) = sum(sqrt(eigvalsh(A S2 A))). A depends only on the reference set, so it is cached with the
real-feature statistics and each generated set costs two matrix products and one values-only eigensolve.
Without a cached A, any factor S1 = F F^T does the same job (F^T S2 F is similar to S1 S2 too): the Cholesky
factor costs a tenth of an ``eigh``.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.linalg

from core.errors import UserError
from metrics.distribution.basis import ReducedBasis, basis_from_moments
from metrics.threads import fit_thread_limit

BOOT_COMPONENTS = 128  # bootstrap replicates of wider features run in this many principal components (BENCHMARKS.md)


@dataclass
class GaussianStats:
    """Mean and covariance of a feature set; ``sqrt_sigma`` is filled lazily (and cached for references)."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    sqrt_sigma: np.ndarray | None = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])

    def sqrt(self) -> np.ndarray:
        if self.sqrt_sigma is None:
            self.sqrt_sigma = sqrtm_psd(self.sigma)
        return self.sqrt_sigma


@dataclass
class FIDResult:
    """FID value with the sample sizes; ``interval`` is a bias-shifted bootstrap percentile interval over the
    generated set (the spread of FID at these sample sizes; FID's own small-sample bias is not removed)."""

    value: float
    n_real: int
    n_gen: int
    interval: tuple[float, float] | None = None
    confidence: float = 0.95
    n_boot: int = 0
    seed: int | None = None
    boot_se: float | None = None
    boot_basis: dict | None = None  # the replicates' reduced basis (components, dim, variance share), if any

    def to_dict(self) -> dict:
        d = asdict(self)
        d["interval"] = list(self.interval) if self.interval is not None else None
        return d


def check_features(features: np.ndarray, name: str = "features") -> np.ndarray:
    """Refuse what would silently poison a metric: wrong shape, NaN or inf."""
    x = np.asarray(features)
    if x.ndim != 2:
        raise UserError(f"{name}: expected a 2-d array (n, dim), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise UserError(f"{name}: empty feature array {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise UserError(f"{name}: features must be numeric, got {x.dtype}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise UserError(f"{name}: {bad} of {x.shape[0]} feature rows hold NaN or inf; refusing to compute metrics")
    return x


def check_covariance_size(n: int, dim: int, name: str = "features", allow_singular: bool = False) -> None:
    """A d-dimensional covariance needs n >= d + 1 samples to be full rank, and ~2d to be a usable estimate."""
    if n < 2:
        raise UserError(f"{name}: a covariance needs at least 2 samples, got {n}")
    if n < dim + 1:
        msg = (
            f"{name}: {n} samples cannot give a full-rank {dim}-d covariance (need at least {dim + 1}, "
            f"ideally {2 * dim} or more); use more samples or lower-dimensional features"
        )
        if not allow_singular:
            raise UserError(msg)
        warnings.warn(msg, stacklevel=3)
    elif n < 2 * dim:
        warnings.warn(
            f"{name}: only {n} samples for a {dim}-d covariance (fewer than 2x dim); FID will be biased high and noisy",
            stacklevel=3,
        )


def feature_stats(features: np.ndarray, name: str = "features", allow_singular: bool = False) -> GaussianStats:
    """Mean and unbiased covariance (n - 1, as clean-fid and torchmetrics) in float64."""
    x = check_features(features, name)
    check_covariance_size(x.shape[0], x.shape[1], name, allow_singular)
    return block_moments([x])


MOMENT_ROWS = 8192  # rows per block of the covariance sums: float64 copies stay at a block, never the whole set


def block_moments(blocks: list[np.ndarray], scales: list[float] | None = None) -> GaussianStats:
    """Mean and unbiased covariance (n - 1) in float64 of the rows [s_1 b_1, s_2 b_2, ...]: column blocks side by
    side, each scaled, summed over ``MOMENT_ROWS`` rows at a time. At 50,000 x 2,048 float32 features this keeps
    ~130 MB of float64 in flight instead of the 1.6 GB of a converted and a centred copy."""
    scales = [1.0] * len(blocks) if scales is None else scales
    n = blocks[0].shape[0]
    mu = np.concatenate([np.asarray(b).mean(axis=0, dtype=np.float64) * s for b, s in zip(blocks, scales, strict=True)])
    sigma = np.zeros((mu.size, mu.size))
    for start in range(0, n, MOMENT_ROWS):
        rows = np.hstack([np.asarray(b[start : start + MOMENT_ROWS], dtype=np.float64) * s
                          for b, s in zip(blocks, scales, strict=True)]) - mu
        sigma += rows.T @ rows
    sigma /= n - 1
    return GaussianStats(mu=mu, sigma=(sigma + sigma.T) / 2, n=int(n))


def sqrtm_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix via eigh (negative round-off eigenvalues clipped to 0)."""
    s = np.asarray(sigma, dtype=np.float64)
    w, u = scipy.linalg.eigh((s + s.T) / 2, driver="evr", check_finite=False)
    r = (u * np.sqrt(np.clip(w, 0.0, None))) @ u.T
    return (r + r.T) / 2


def covariance_factor(sigma: np.ndarray, centred_rows: np.ndarray | None = None) -> np.ndarray:
    """F with S = F F^T: the Cholesky factor (about 10x cheaper than eigh), else the symmetric square root.

    Cholesky fails on a singular covariance (fewer samples than dimensions); the eigh route handles those. Given
    the ``centred_rows`` R (n x d) with S = R^T R / (n - 1) and fewer rows than dimensions, the thin factor
    R^T / sqrt(n - 1) (d x n) instead: exact, no eigensolve, and F^T S2 F in :func:`trace_sqrt_product` is then
    n x n (an 800-row reference at d = 2048: an 800-d eigensolve instead of a 2,048-d square root and product).
    """
    if centred_rows is not None and 1 < centred_rows.shape[0] < sigma.shape[0]:
        return np.ascontiguousarray(centred_rows.T) / np.sqrt(centred_rows.shape[0] - 1)
    try:
        return scipy.linalg.cholesky(sigma, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return sqrtm_psd(sigma)


def trace_sqrt_product(factor1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr sqrt(S1 S2) = sum sqrt(eig(F^T S2 F)) for any F with S1 = F F^T (S1 S2 is similar to F^T S2 F).

    F is sqrt(S1) (symmetric), S1's Cholesky factor, or a thin d x n factor (the nonzero eigenvalues agree);
    values only, float64.
    """
    a = np.asarray(factor1, dtype=np.float64)
    m = a.T @ np.asarray(sigma2, dtype=np.float64) @ a
    ev = scipy.linalg.eigvalsh((m + m.T) / 2, driver="evr", check_finite=False)
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    sqrt_sigma1: np.ndarray | None = None,
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); pass ``sqrt_sigma1`` when it is cached."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[0],) * 2:
        raise UserError(f"FID: mismatched statistics shapes {mu1.shape}, {s1.shape} vs {mu2.shape}, {s2.shape}")
    for arr, nm in ((mu1, "mu1"), (mu2, "mu2"), (s1, "sigma1"), (s2, "sigma2")):
        if not np.isfinite(arr).all():
            raise UserError(f"FID: {nm} holds NaN or inf")
    a = covariance_factor(s1) if sqrt_sigma1 is None else sqrt_sigma1
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(a, s2))


def fid_from_stats(ref: GaussianStats, gen: GaussianStats) -> float:
    """FID of ``gen`` against ``ref``, reusing the reference's cached square root."""
    return frechet_distance(ref.mu, ref.sigma, gen.mu, gen.sigma, sqrt_sigma1=ref.sqrt())


def bootstrap_replicates(
    ref: GaussianStats, gen_x: np.ndarray, n_boot: int, seed: int, *, max_components: int | None = None,
    gen_stats: GaussianStats | None = None,
) -> np.ndarray:
    """FID of ``n_boot`` resamples (with replacement) of the generated rows; the reference is held fixed.

    Each replicate needs only the generated covariance seen through A = sqrt(S_ref): with y_i = A (x_i - m),
    A S_b A = (sum w_i y_i y_i^T - n A d d^T A) / (n - 1), where w are the resampling counts and d the shift of
    the resampled mean; so one product over the resampled rows and one values-only eigensolve per replicate.
    ``max_components``: with more dims than that, the replicates are the FID of the projections onto the pooled
    sets' leading principal components (``reduced_for_bootstrap``; exact when they hold all the variance).
    """
    if max_components is not None and ref.dim > max_components:
        ref, gen_x, _ = reduced_for_bootstrap(ref, gen_x, max_components, gen_stats)
    a = ref.sqrt()
    n = gen_x.shape[0]
    m = gen_x.mean(axis=0)
    xc = gen_x - m
    y = xc @ a
    sq = np.einsum("ij,ij->i", xc, xc)
    base_shift = m - ref.mu
    tr_ref = float(np.trace(ref.sigma))
    rng = np.random.default_rng(seed)
    vals = np.empty(n_boot)
    for b in range(n_boot):
        w = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        keep = w > 0
        wk = w[keep]
        delta = wk @ xc[keep] / n
        ad = a @ delta
        z = y[keep] * np.sqrt(wk)[:, None]
        mat = (z.T @ z - n * np.outer(ad, ad)) / (n - 1)
        ev = scipy.linalg.eigvalsh((mat + mat.T) / 2, driver="evr", check_finite=False)
        tr_sqrt = float(np.sqrt(np.clip(ev, 0.0, None)).sum())
        tr_gen = (float(wk @ sq[keep]) - n * float(delta @ delta)) / (n - 1)
        shift = base_shift + delta
        vals[b] = float(shift @ shift) + tr_ref + tr_gen - 2.0 * tr_sqrt
    return vals


def reduced_for_bootstrap(
    ref: GaussianStats, gen_x: np.ndarray, max_components: int, gen_stats: GaussianStats | None = None,
) -> tuple[GaussianStats, np.ndarray, ReducedBasis]:
    """The reference statistics and the generated rows projected onto the leading ``max_components`` principal
    components of both sets pooled (``metrics.distribution.basis``), and that basis."""
    gen_stats = feature_stats(gen_x, allow_singular=True) if gen_stats is None else gen_stats
    g = gen_stats
    basis = basis_from_moments(ref.mu, (ref.n - 1) * ref.sigma, ref.n, g.mu, (g.n - 1) * g.sigma, g.n, max_components)
    if basis.p is None:
        return ref, gen_x, basis
    p = basis.p
    sigma = p.T @ ref.sigma @ p
    return GaussianStats(mu=ref.mu @ p, sigma=(sigma + sigma.T) / 2, n=ref.n), gen_x @ p, basis


def _value_and_replicates(ref: GaussianStats, g: np.ndarray, gen_stats: GaussianStats, n_boot: int, seed: int,
                          boot_components: int | None) -> tuple[float, np.ndarray, dict | None]:
    value = fid_from_stats(ref, gen_stats)
    if n_boot <= 0:
        return value, np.empty(0), None
    ref_b, gen_b, boot_basis = ref, g.astype(np.float64, copy=False), None
    if boot_components is not None and ref.dim > boot_components:
        ref_b, gen_b, basis = reduced_for_bootstrap(ref, gen_b, boot_components, gen_stats)
        boot_basis = basis.to_dict()
    return value, bootstrap_replicates(ref_b, gen_b, n_boot, seed), boot_basis


def fid(
    real: np.ndarray | GaussianStats,
    gen: np.ndarray,
    *,
    n_boot: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
    allow_singular: bool = False,
    boot_components: int | None = BOOT_COMPONENTS,
) -> FIDResult:
    """FID between real features (or their cached ``GaussianStats``) and generated features.

    ``n_boot`` > 0 adds a bootstrap percentile interval over the generated set; the reference statistics (and
    their square root) are reused, so each replicate costs about one FID. Features wider than
    ``boot_components`` (None: never) are resampled in the pooled sets' leading principal components
    (``reduced_for_bootstrap``): the interval is then the value plus the projected FID's bootstrap spread, and
    ``boot_basis`` says how many components held which share of the variance.
    """
    if isinstance(real, GaussianStats):
        check_covariance_size(real.n, real.dim, "real features", allow_singular)
        ref = real
    else:
        ref = feature_stats(real, "real features", allow_singular)
    g = check_features(gen, "generated features")
    if g.shape[1] != ref.dim:
        raise UserError(f"FID: real features are {ref.dim}-d but generated features are {g.shape[1]}-d")
    gen_stats = feature_stats(g, "generated features", allow_singular)  # the big product: every thread
    with fit_thread_limit():  # eigensolves and many small products (``metrics.threads``)
        value, vals, boot_basis = _value_and_replicates(ref, g, gen_stats, n_boot, seed, boot_components)
    interval, se = None, None
    if n_boot > 0:
        # Resampling with replacement repeats rows, which inflates every replicate (FID is biased upward by
        # ~1/n); the raw percentiles can then miss the value itself. Shift them by the bootstrap's own bias so
        # the interval shows the sampling spread of FID at this n around the reported value.
        q = (1.0 - confidence) / 2.0
        bias = float(vals.mean()) - value
        lo, hi = np.quantile(vals, [q, 1.0 - q]) - bias
        interval = (float(lo), float(hi))
        se = float(vals.std(ddof=1)) if n_boot > 1 else 0.0
    return FIDResult(
        value=value,
        n_real=ref.n,
        n_gen=gen_stats.n,
        interval=interval,
        confidence=confidence,
        n_boot=n_boot,
        seed=seed if n_boot > 0 else None,
        boot_se=se,
        boot_basis=boot_basis,
    )
