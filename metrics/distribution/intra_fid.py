"""intra-FID: FID computed separately within each condition class, then averaged.

A conditional generator can reach a good overall FID while mixing up classes; intra-FID compares the covers
generated for class c with the real covers of class c, so it drops only when each class looks like itself.
Classes with too few samples for a covariance are skipped, with the reason, rather than reported noisy.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from core.errors import UserError
from metrics.distribution.fid import check_features, feature_stats, frechet_distance
from metrics.threads import limited_threads


@dataclass
class ClassFID:
    value: float
    n_real: int
    n_gen: int


@dataclass
class IntraFIDResult:
    """Unweighted mean over evaluated classes; ``per_class`` and ``skipped`` (class -> reason) by label."""

    value: float | None
    n_real: int
    n_gen: int
    per_class: dict[str, ClassFID] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    min_samples: int = 0
    interval: None = None

    def to_dict(self) -> dict:
        return asdict(self)


@limited_threads
def intra_fid(
    real: np.ndarray,
    real_labels: Sequence | np.ndarray,
    gen: np.ndarray,
    gen_labels: Sequence | np.ndarray,
    *,
    classes: Sequence | None = None,
    min_samples: int | None = None,
) -> IntraFIDResult:
    """Per-class FID for ``classes`` (default: labels seen in either set).

    ``min_samples`` (default dim + 1, the fewest that give a full-rank covariance) applies to both sets of a
    class; classes below it are skipped with the reason.
    """
    r = check_features(real, "real features")
    g = check_features(gen, "generated features")
    rl, gl = np.asarray(real_labels), np.asarray(gen_labels)
    if len(rl) != r.shape[0] or len(gl) != g.shape[0]:
        raise UserError(
            f"intra-FID: {len(rl)} real labels for {r.shape[0]} rows, {len(gl)} generated labels for {g.shape[0]}"
        )
    if r.shape[1] != g.shape[1]:
        raise UserError(f"intra-FID: real features are {r.shape[1]}-d but generated are {g.shape[1]}-d")
    dim = r.shape[1]
    need = dim + 1 if min_samples is None else int(min_samples)
    if need < 2:
        raise UserError("intra-FID: min_samples must be at least 2")
    if classes is None:
        classes = sorted(set(rl.tolist()) | set(gl.tolist()), key=str)
    per_class: dict[str, ClassFID] = {}
    skipped: dict[str, str] = {}
    for c in classes:
        rm, gm = rl == c, gl == c
        nr, ng = int(rm.sum()), int(gm.sum())
        if nr < need or ng < need:
            skipped[str(c)] = f"too few samples for a {dim}-d covariance: {nr} real, {ng} generated (need {need})"
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small per-class sets are expected; the counts are reported
            ref = feature_stats(r[rm], f"real features of class {c}", allow_singular=True)
            gs = feature_stats(g[gm], f"generated features of class {c}", allow_singular=True)
        # the real covariance's Cholesky factor (a tenth of the eigh square root fid_from_stats would cache)
        per_class[str(c)] = ClassFID(value=frechet_distance(ref.mu, ref.sigma, gs.mu, gs.sigma), n_real=nr, n_gen=ng)
    if not per_class:
        warnings.warn(f"intra-FID: every class was skipped (need {need} samples per class and set)", stacklevel=2)
    value = float(np.mean([v.value for v in per_class.values()])) if per_class else None
    return IntraFIDResult(
        value=value,
        n_real=int(r.shape[0]),
        n_gen=int(g.shape[0]),
        per_class=per_class,
        skipped=skipped,
        min_samples=need,
    )
