"""Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel, averaged over random subsets.

k(x, y) = (x.y / d + 1)^3. Unlike FID it has an unbiased estimator, so it is comparable across sample sizes;
the subsets bound the cost (m x m kernels) and their spread shows the estimator's noise at subset size m.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from core.errors import UserError
from metrics.distribution.fid import check_features


@dataclass
class KIDResult:
    """Mean MMD^2 over subsets, its std across subsets, and the 2.5/97.5 % percentiles of the subset values."""

    value: float
    std: float
    n_real: int
    n_gen: int
    subset_size: int
    num_subsets: int
    interval: tuple[float, float] | None = None
    seed: int | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["interval"] = list(self.interval) if self.interval is not None else None
        return d


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """One subset's estimate, as in Binkowski et al. (2018): within-set sums skip the diagonal."""
    m, d = x.shape
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    within = kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)
    return float(within / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m))


def draw_subsets(
    n_real: int, n_gen: int, num_subsets: int, subset_size: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(gen_idx, real_idx) pairs, each drawn without replacement."""
    rng = np.random.default_rng(seed)
    return [
        (rng.choice(n_gen, subset_size, replace=False), rng.choice(n_real, subset_size, replace=False))
        for _ in range(num_subsets)
    ]


def kid(
    real: np.ndarray,
    gen: np.ndarray,
    *,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
    subsets: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> KIDResult:
    """KID between real and generated features (float64).

    ``subsets`` (a list of ``(gen_idx, real_idx)`` index arrays of equal length) overrides the seeded draw;
    it lets a caller reproduce another implementation's subsets exactly.
    """
    r = check_features(real, "real features").astype(np.float64, copy=False)
    g = check_features(gen, "generated features").astype(np.float64, copy=False)
    if r.shape[1] != g.shape[1]:
        raise UserError(f"KID: real features are {r.shape[1]}-d but generated features are {g.shape[1]}-d")
    if subsets is None:
        m = min(r.shape[0], g.shape[0], max_subset_size)
        if m < 2:
            raise UserError(f"KID needs at least 2 samples per set, got {r.shape[0]} real and {g.shape[0]} generated")
        subsets = draw_subsets(r.shape[0], g.shape[0], num_subsets, m, seed)
        used_seed: int | None = seed
    else:
        used_seed = None
    if len(subsets) == 0:
        raise UserError("KID: no subsets")
    vals = []
    for gi, ri in subsets:
        gi, ri = np.asarray(gi), np.asarray(ri)
        if len(gi) != len(ri) or len(gi) < 2:
            raise UserError("KID: each subset pair needs two equal-length index arrays of at least 2")
        vals.append(mmd2_unbiased(g[gi], r[ri]))
    v = np.asarray(vals)
    lo, hi = np.quantile(v, [0.025, 0.975])
    return KIDResult(
        value=float(v.mean()),
        std=float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        n_real=int(r.shape[0]),
        n_gen=int(g.shape[0]),
        subset_size=int(len(subsets[0][0])),
        num_subsets=len(v),
        interval=(float(lo), float(hi)),
        seed=used_seed,
    )
