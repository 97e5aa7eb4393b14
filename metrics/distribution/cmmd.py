"""CMMD (Jayasumana et al. 2024, "Rethinking FID"): squared MMD with a Gaussian RBF kernel over image embeddings.

k(x, y) = exp(-|x - y|^2 / (2 sigma^2)) with sigma = 10 on unit-length embeddings (CLIP's image embeddings are
L2-normalised before the kernel), reported x1000 as in the paper. It assumes no Gaussian shape, and the unbiased
estimator (a U-statistic: within-set sums skip the diagonal, as the paper describes) has no small-sample bias, so
values compare across sample sizes. The paper's reference code computes the biased V-statistic (diagonal
included, "minimum variance"): ``estimator="biased"`` gives that one; the two differ by O(1/n).

Any features are L2-normalised first (``normalise=True``), so sigma = 10 means what it means for CLIP in every
feature space and the value does not change with the features' scale. With a CLIP image tower as the feature
network the number is the paper's CMMD.

Interval: a bootstrap over both sets (each resampled with replacement). A resampled point that repeats counts as
one point (its pairs with its own copies are diagonal terms), so each replicate is itself an unbiased estimate and
the percentile interval needs no shift. The kernel matrices are computed once, in row blocks, against the weights
of every replicate at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch

from core.errors import UserError
from core.jsonfiles import jsonable
from metrics.distribution.fid import check_features

SIGMA = 10.0
SCALE = 1000.0
KERNEL = "gaussian-rbf"
Estimator = Literal["unbiased", "biased"]
BLOCK = 1024


@dataclass
class CMMDResult:
    """``value`` = scale x MMD^2 (the paper's units); ``interval`` a bootstrap percentile interval over both sets."""

    value: float
    n_real: int
    n_gen: int
    sigma: float
    scale: float
    estimator: str
    normalise: bool
    interval: tuple[float, float] | None = None
    confidence: float = 0.95
    n_boot: int = 0
    seed: int | None = None
    boot_se: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["interval"] = list(self.interval) if self.interval is not None else None
        return d


def unit_rows(x: np.ndarray, what: str) -> np.ndarray:
    """Rows scaled to length 1; a zero row has no direction and is refused."""
    norms = np.linalg.norm(x, axis=1)
    zero = np.flatnonzero(norms == 0)
    if len(zero):
        raise UserError(f"CMMD: {what} row {int(zero[0])} is all zeros: it has no direction to normalise")
    return x / norms[:, None]


def kernel_sums(a: torch.Tensor, b: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor, gamma: float) -> torch.Tensor:
    """wa[:, r]^T K(a, b) wb[:, r] for every column r, with K_ij = exp(-gamma |a_i - b_j|^2), in row blocks."""
    out = torch.zeros(wa.shape[1], dtype=a.dtype, device=a.device)
    b_sq = (b * b).sum(dim=1)
    for s in range(0, len(a), BLOCK):
        blk = a[s : s + BLOCK]
        d2 = (blk * blk).sum(dim=1)[:, None] + b_sq[None, :] - 2.0 * (blk @ b.T)
        k = torch.exp(-gamma * d2.clamp_min_(0.0))
        out += (wa[s : s + BLOCK] * (k @ wb)).sum(dim=0)
    return out


def _within(x: torch.Tensor, w: torch.Tensor, gamma: float, estimator: Estimator) -> torch.Tensor:
    """Mean kernel within one (weighted) set: off-diagonal pairs only for the unbiased estimator; k(x, x) = 1."""
    total = kernel_sums(x, x, w, w, gamma)
    n = w.sum(dim=0)
    if estimator == "biased":
        return total / (n * n)
    same = (w * w).sum(dim=0)  # ordered pairs of a point with itself or its own copies
    return (total - same) / (n * n - same)


def mmd2_weighted(
    x: np.ndarray, y: np.ndarray, wx: np.ndarray, wy: np.ndarray, sigma: float, estimator: Estimator,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """MMD^2 for each column of resampling counts ``wx`` (n_x, R) and ``wy`` (n_y, R) (all ones: the estimate),
    in float64 on ``device`` (default CPU; a GPU makes large sets cheap)."""
    gamma = 1.0 / (2.0 * sigma * sigma)
    x, y, wx, wy = (torch.as_tensor(np.asarray(a, np.float64), device=device) for a in (x, y, wx, wy))
    with torch.no_grad():
        cross = kernel_sums(x, y, wx, wy, gamma) / (wx.sum(dim=0) * wy.sum(dim=0))
        out = _within(x, wx, gamma, estimator) + _within(y, wy, gamma, estimator) - 2.0 * cross
    return out.cpu().numpy()


def mmd2_rbf(x: np.ndarray, y: np.ndarray, sigma: float = SIGMA, *, estimator: Estimator = "unbiased") -> float:
    """Squared MMD between feature sets ``x`` (n, d) and ``y`` (m, d) with the Gaussian RBF kernel (no scaling)."""
    x, y = _checked(x, y)
    ones_x, ones_y = np.ones((len(x), 1)), np.ones((len(y), 1))
    return float(mmd2_weighted(x, y, ones_x, ones_y, sigma, estimator)[0])


def _checked(real: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = check_features(real, "real features").astype(np.float64)
    g = check_features(gen, "generated features").astype(np.float64)
    if r.shape[1] != g.shape[1]:
        raise UserError(f"CMMD: real features are {r.shape[1]}-d but generated features are {g.shape[1]}-d")
    if min(len(r), len(g)) < 2:
        raise UserError(f"CMMD needs at least 2 samples per set, got {len(r)} real and {len(g)} generated")
    return r, g


def _counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n, n_boot) resampling counts, one column per bootstrap replicate."""
    w = np.zeros((n, n_boot))
    for b in range(n_boot):
        w[:, b] = np.bincount(rng.integers(0, n, size=n), minlength=n)
    return w


def cmmd(
    real: np.ndarray,
    gen: np.ndarray,
    *,
    sigma: float = SIGMA,
    scale: float = SCALE,
    normalise: bool = True,
    estimator: Estimator = "unbiased",
    n_boot: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
    device: torch.device | str | None = None,
) -> CMMDResult:
    """CMMD between real and generated features; ``n_boot`` > 0 adds a bootstrap percentile interval."""
    if estimator not in ("unbiased", "biased"):
        raise UserError(f"CMMD estimator {estimator!r}: choose unbiased or biased")
    r, g = _checked(real, gen)
    if normalise:
        r, g = unit_rows(r, "real"), unit_rows(g, "generated")
    wr, wg = np.ones((len(r), 1)), np.ones((len(g), 1))
    interval, se = None, None
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        wr = np.concatenate([wr, _counts(len(r), n_boot, rng)], axis=1)
        wg = np.concatenate([wg, _counts(len(g), n_boot, rng)], axis=1)
    vals = scale * mmd2_weighted(r, g, wr, wg, sigma, estimator, device)
    if n_boot > 0:
        q = (1.0 - confidence) / 2.0
        lo, hi = np.quantile(vals[1:], [q, 1.0 - q])
        interval, se = (float(lo), float(hi)), float(vals[1:].std(ddof=1)) if n_boot > 1 else 0.0
    return CMMDResult(
        value=float(vals[0]), n_real=len(r), n_gen=len(g), sigma=sigma, scale=scale, estimator=estimator,
        normalise=normalise, interval=interval, confidence=confidence, n_boot=n_boot,
        seed=seed if n_boot > 0 else None, boot_se=se,
    )  # fmt: skip


def cmmd_entry(
    real_features: np.ndarray, gen_features: np.ndarray, *, seed: int, n_boot: int,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """The ``metrics.json`` entry for CMMD beside FID: value (x1000), n (generated), n_real, interval, kernel,
    sigma, estimator and normalisation (the caller adds the extractor's name)."""
    res = cmmd(real_features, gen_features, n_boot=n_boot, seed=seed, device=device)
    d = res.to_dict()
    return jsonable({
        "value": d.pop("value"), "n": d.pop("n_gen"), "kernel": KERNEL, "units": f"MMD^2 x {res.scale:g}",
        "reference": "Jayasumana et al. 2024, Rethinking FID (CMMD)", **d,
    })  # fmt: skip
