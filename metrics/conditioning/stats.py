"""Statistics shared by the conditioning metrics: input checks, permutation tests, Holm, intervals.

Permutation tests here never refit a model: predictions are computed once and only labels are permuted,
which is exact whenever the null hypothesis makes labels exchangeable with respect to the (fixed)
predictions, e.g. "the generator ignores its condition".
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from core.errors import UserError
from core.jsonfiles import jsonable

_CHUNK_ELEMS = 4_000_000  # entries per vectorised permutation chunk (bounded memory)


@dataclass
class TestResult:
    """One conditioning measurement with its chance level, null, p-value and effect size.

    ``effect`` is value minus the null mean (same units as ``value``); ``margin`` is the smallest effect the
    metric considers meaningful (set by the metric, documented there) and is what the verdict compares with.
    """

    name: str
    value: float
    n: int
    chance: float | None = None
    interval: tuple[float, float] | None = None
    p_value: float | None = None
    null_mean: float | None = None
    effect: float | None = None
    effect_interval: tuple[float, float] | None = None
    margin: float | None = None
    n_permutations: int = 0
    seed: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    __test__ = False  # not a pytest class

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


# ---------------------------------------------------------------- input checks


def check_features(x: Any, name: str = "features", min_rows: int = 1) -> np.ndarray:
    """Return ``x`` as a finite float64 (N, d) array, or raise UserError naming what is wrong."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise UserError(f"{name} must be a 2-D (N, d) array, got shape {a.shape}")
    if a.shape[0] < min_rows:
        raise UserError(f"{name} has {a.shape[0]} rows, need at least {min_rows}")
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).any(axis=1).sum())
        raise UserError(f"{name} contains NaN or infinite values in {bad} rows; refusing to compute metrics")
    return a


def check_labels(y: Any, n: int | None = None, name: str = "labels") -> np.ndarray:
    """Return ``y`` as a non-negative int64 vector (length ``n`` if given), or raise UserError."""
    a = np.asarray(y)
    if a.ndim != 1:
        raise UserError(f"{name} must be a 1-D vector of class ids, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise UserError(f"{name} must be integer class ids")
    a = a.astype(np.int64)
    if n is not None and a.shape[0] != n:
        raise UserError(f"{name} has {a.shape[0]} entries but the features have {n} rows")
    if a.size and a.min() < 0:
        raise UserError(f"{name} must be non-negative class ids, found {int(a.min())}")
    return a


def n_classes_of(*label_arrays: np.ndarray, n_classes: int | None = None) -> int:
    k = max(int(a.max()) + 1 for a in label_arrays if a.size)
    if n_classes is not None:
        if n_classes < k:
            raise UserError(f"n_classes={n_classes} but labels go up to {k - 1}")
        k = n_classes
    if k < 2:
        raise UserError("conditioning metrics need at least 2 condition classes")
    return k


# ---------------------------------------------------------------- permutation machinery


def permutation_p(observed: float, null: np.ndarray, alternative: str = "greater") -> float:
    """Permutation p-value with the +1 correction: (1 + #{null >= observed}) / (1 + B)."""
    null = np.asarray(null, dtype=np.float64)
    tol = 1e-12 * max(1.0, abs(observed))
    if alternative == "greater":
        hits = int((null >= observed - tol).sum())
    elif alternative == "less":
        hits = int((null <= observed + tol).sum())
    else:
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    return (1 + hits) / (1 + null.size)


@dataclass(frozen=True)
class SequentialRule:
    """When a permutation null may stop: Besag & Clifford (1991) sequential Monte Carlo p-values, after a first stage.

    Draw ``first`` permutations. If at least ``hits`` of them reach the observed statistic, stop there with the
    ordinary p = (1 + H) / (1 + first). Otherwise keep drawing and stop at the draw L where the ``hits``-th one
    reaches it, p = hits / L (Besag-Clifford), or at ``most`` draws with p = (1 + H) / (1 + most).
    Valid: for u >= (1 + hits) / (1 + first) the event p <= u lies inside {first-stage p <= u}; below it the
    first stage never stops and p equals Besag-Clifford's, which is exact (P(p <= u) <= u). A clearly null
    result costs ``first`` draws, a borderline one about hits / p, a significant one ``most``.
    """

    first: int = 200
    most: int = 1200
    hits: int = 10

    def __post_init__(self):
        if not 1 <= self.first <= self.most or self.hits < 1:
            raise ValueError(f"sequential rule needs 1 <= first <= most and hits >= 1, got {self}")

    def describe(self) -> str:
        return (f"sequential (Besag-Clifford): {self.first} draws, then on until {self.hits} reach the observed "
                f"value, at most {self.most}")


def reaches(null: np.ndarray, observed: float, alternative: str) -> np.ndarray:
    """Which null draws count against the observed value (ties included, as :func:`permutation_p`)."""
    tol = 1e-12 * max(1.0, abs(observed))
    if alternative == "greater":
        return null >= observed - tol
    if alternative == "less":
        return null <= observed + tol
    raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")


def sequential_p(null: np.ndarray, observed: float, rule: SequentialRule, alternative: str) -> tuple[float, int]:
    """(p, draws it used) from the null draws in the order drawn; None-free: with fewer than ``rule.first`` draws
    it is the ordinary permutation p-value of what there is."""
    cum = np.cumsum(reaches(np.asarray(null, np.float64), observed, alternative))
    if cum.size == 0:
        return 1.0, 0
    first = min(rule.first, cum.size)
    if cum[first - 1] >= rule.hits or cum.size <= first:
        return (1 + int(cum[first - 1])) / (1 + first), first
    after = np.flatnonzero(cum[first:rule.most] >= rule.hits)
    if after.size:
        used = first + int(after[0]) + 1
        return rule.hits / used, used
    used = min(cum.size, rule.most)
    return (1 + int(cum[used - 1])) / (1 + used), used


def sequential_done(null: np.ndarray, observed: np.ndarray, rule: SequentialRule, alternative: str) -> bool:
    """Whether every column of ``null`` (draws x statistics) has reached its stopping point."""
    b = null.shape[0]
    if b >= rule.most:
        return True
    if b < rule.first:
        return False
    hits = [int(reaches(null[:, j], float(observed[j]), alternative).sum()) for j in range(null.shape[1])]
    return min(hits) >= rule.hits


def permutation_chunks(
    n: int, n_permutations: int, rng: np.random.Generator, strata: np.ndarray | None = None, width: int = 1
) -> Iterator[np.ndarray]:
    """Yield (b, n) index arrays of random permutations (within ``strata`` when given), b*n*width bounded."""
    b_max = max(1, _CHUNK_ELEMS // max(1, n * width))
    if strata is not None:
        order = np.argsort(strata, kind="stable")
        sorted_strata = strata[order].astype(np.float64)
    done = 0
    while done < n_permutations:
        b = min(b_max, n_permutations - done)
        if strata is None:
            yield np.argsort(rng.random((b, n)), axis=1)
        else:
            keys = sorted_strata[None, :] + rng.random((b, n))  # shuffles only inside each stratum block
            perm = np.empty((b, n), dtype=np.int64)
            perm[:, order] = order[np.argsort(keys, axis=1)]
            yield perm
        done += b


def permuted_accuracy(
    pred: np.ndarray, labels: np.ndarray, n_permutations: int, rng: np.random.Generator,
    strata: np.ndarray | None = None,
) -> np.ndarray:
    """Accuracies of fixed predictions against ``n_permutations`` shuffles of the labels."""
    out = []
    for perm in permutation_chunks(labels.size, n_permutations, rng, strata):
        out.append((labels[perm] == pred[None, :]).mean(axis=1))
    return np.concatenate(out) if out else np.empty(0)


def permutation_tables(row_counts: np.ndarray, col_counts: np.ndarray, size: int,
                       rng: np.random.Generator) -> np.ndarray:
    """(size, ka, kb) tables of a fixed labelling (row margins) against a uniformly shuffled one (column margins).

    Exactly the law of ``contingency(a, b[perm])`` for a uniform random permutation (the multivariate
    hypergeometric table with these margins), drawn row by row, each row as a chain of hypergeometric draws from
    the labels still in the urn: O(ka kb) per table instead of an O(n log n) shuffle of n labels. Statistics of
    the table alone (accuracy, NMI, purity) get their permutation null from it.
    """
    rows, cols = np.asarray(row_counts, np.int64), np.asarray(col_counts, np.int64)
    if rows.sum() != cols.sum():
        raise ValueError("row and column margins must count the same samples")
    urn = np.tile(cols, (size, 1))
    out = np.zeros((size, rows.size, cols.size), np.int64)
    for i, r in enumerate(rows):
        need = np.full(size, r, np.int64)
        rest = urn.sum(axis=1)
        for j in range(cols.size - 1):
            rest = rest - urn[:, j]
            x = rng.hypergeometric(urn[:, j], rest, need)
            out[:, i, j] = x
            need = need - x
        out[:, i, -1] = need
        urn -= out[:, i]
    return out


def permuted_accuracy_tables(pred: np.ndarray, labels: np.ndarray, k: int, n_permutations: int,
                             rng: np.random.Generator) -> np.ndarray:
    """Accuracies of fixed predictions against ``n_permutations`` shuffles of the labels, from
    :func:`permutation_tables` (the same law as :func:`permuted_accuracy`, without shuffling n labels)."""
    tables = permutation_tables(np.bincount(pred, minlength=k), np.bincount(labels, minlength=k), n_permutations, rng)
    return np.trace(tables, axis1=1, axis2=2) / labels.size


def expected_accuracy_under_independence(pred: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Mean accuracy over all label permutations: sum_c share_pred(c) * share_label(c)."""
    n = labels.size
    return float(np.dot(np.bincount(pred, minlength=k), np.bincount(labels, minlength=k)) / (n * n))


# ---------------------------------------------------------------- multiple testing and intervals


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (monotone, capped at 1); controls the family-wise error rate."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, (m - rank) * p[i])
        adj[i] = min(1.0, running)
    return adj


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (good near 0 and 1, unlike the Wald interval)."""
    if n <= 0:
        return (0.0, 1.0)
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact ends: round-off left 7e-18 at 0 of n
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return (lo, hi)


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(s, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return (float(lo), float(hi))


def bias_shifted_interval(samples: np.ndarray, value: float, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap ``samples`` moved by their median bias, so it always contains ``value``.

    Resampling with replacement inflates statistics such as NMI (duplicated rows look like structure); near zero
    the raw percentile interval then lies wholly above its own estimate. Shifting by median(samples) - value keeps
    the interval's width (the sampling spread) and centres it on the estimate, as ``fid.fid`` does with the mean.
    """
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(s, [0.5 - confidence / 2, 0.5 + confidence / 2]) - (float(np.median(s)) - value)
    return (float(lo), float(hi))


def bootstrap_tables(table: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Resample a contingency table of n iid pairs: (B, *table.shape) multinomial draws, same n."""
    n = int(table.sum())
    draws = rng.multinomial(n, table.ravel() / n, size=n_bootstrap)
    return draws.reshape((n_bootstrap, *table.shape))


# ---------------------------------------------------------------- contingency-table scores (vectorised)


def contingency(a: np.ndarray, b: np.ndarray, ka: int, kb: int) -> np.ndarray:
    """(ka, kb) counts of pairs (a_i, b_i)."""
    return np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb)


def contingency_stack(a: np.ndarray, b_stack: np.ndarray, ka: int, kb: int) -> np.ndarray:
    """(B, ka, kb) contingency tables of a fixed ``a`` against each row of ``b_stack``."""
    bsz = b_stack.shape[0]
    codes = (np.arange(bsz)[:, None] * (ka * kb) + a[None, :] * kb + b_stack).ravel()
    return np.bincount(codes, minlength=bsz * ka * kb).reshape(bsz, ka, kb)


def _entropy(counts: np.ndarray, n: np.ndarray) -> np.ndarray:
    p = counts / n[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)


def table_scores(tables: np.ndarray) -> dict[str, np.ndarray]:
    """Purity, NMI (arithmetic normalisation, as scikit-learn) and ARI of cluster-by-label tables.

    ``tables`` is (..., n_clusters, n_labels); purity credits each cluster with its majority label.
    """
    t = np.asarray(tables, dtype=np.float64)
    n = t.sum(axis=(-2, -1))
    rows, cols = t.sum(axis=-1), t.sum(axis=-2)
    purity = t.max(axis=-1).sum(axis=-1) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = t * n[..., None, None] / (rows[..., :, None] * cols[..., None, :])
        mi = np.where(t > 0, t / n[..., None, None] * np.log(np.where(t > 0, ratio, 1.0)), 0.0).sum(axis=(-2, -1))
    h_rows, h_cols = _entropy(rows, n), _entropy(cols, n)
    denom = (h_rows + h_cols) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        nmi = np.where(denom > 0, np.maximum(mi, 0.0) / denom, np.where((h_rows == 0) & (h_cols == 0), 1.0, 0.0))

    def c2(x: np.ndarray) -> np.ndarray:
        return x * (x - 1) / 2

    s_ij, s_a, s_b, s_n = c2(t).sum(axis=(-2, -1)), c2(rows).sum(axis=-1), c2(cols).sum(axis=-1), c2(n)
    expected = s_a * s_b / s_n
    maxi = (s_a + s_b) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        ari = np.where(maxi - expected != 0, (s_ij - expected) / (maxi - expected), 1.0)
    return {"purity": purity, "nmi": nmi, "ari": ari}
