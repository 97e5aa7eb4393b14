"""Feature-extractor guard: refuse to judge generated covers through an extractor that cannot see real ones.

Every metric here (FID, KID, PR/DC, the conditioning tests) compares generated and real covers *in feature space*.
An extractor that does not separate real covers (a covernet stopped after a few epochs, an untrained or collapsed
network) maps noise and real covers to the same place, and then anything passes: noise-like samples have scored
FID 3.7e-6 that way. So before judging, two written rules, checked on the real covers' features:

- **Accuracy floor** (extractors trained on the dataset, which record ``val_accuracy`` on held-out real covers):
  floor = min(2 / k, (1 + 1 / k) / 2), twice chance for k genres, but never more than halfway from chance to
  perfect (for k = 2 twice chance would demand 100 %). Pretrained extractors (Inception) record no accuracy here.
- **Not degenerate**: the real features must vary across covers and span more than one direction:
  ``variance_share`` = trace(cov) / mean squared norm >= 1e-3 (features are not a constant vector plus a whisper),
  and ``effective_rank`` = exp(entropy of the normalised covariance eigenvalues) >= min(2, k - 1) (k classes need
  k - 1 directions to be told apart; one direction is enough for two).

Measured on a 480-track, 4-genre world: a covernet stopped early (val accuracy 0.27) has variance share 3e-6 and
gives noise FID 1e-6; trained until it sees (0.98) it has 0.58 and noise FID 160 to 260, real held-out covers 1 to 3.

When a rule fails, ``ok`` is False and ``reason`` says which, in one line; the caller writes no verdict. On a
world whose covers carry no genre at all (coupling 0) a genre-trained extractor cannot pass the floor either: there
is then nothing it could have seen, and the reason says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MIN_VARIANCE_SHARE = 1e-3
# What to do about a trained extractor that cannot see. Training covernet longer rarely helps on small real covers
# (32 px covers of a real collection: 0.31 against a 0.33 floor, while pretrained Inception read the same covers at
# 0.47), so the advice is the pretrained extractor, and the probe that tells whether any extractor could see.
SUGGESTION = ("Use the pretrained extractor: --features inception (or --set eval.features=inception); "
              "`bench data probe DATASET --features inception` says whether the covers carry genre at all")
MAX_RANK_FLOOR = 2.0
RULE = (
    "refuse to judge when the extractor's validation accuracy on real covers is below min(2/k, (1 + 1/k)/2), "
    f"or its real-cover features are degenerate (variance share < {MIN_VARIANCE_SHARE:g} "
    f"or effective rank < min({MAX_RANK_FLOOR:g}, k - 1))"
)


@dataclass(frozen=True)
class GuardResult:
    """The guard's decision and the extractor quality it was based on (all of it goes into metrics.json)."""

    ok: bool
    floor: float
    chance: float
    val_accuracy: float | None
    variance_share: float
    effective_rank: float
    n_real: int
    reason: str = ""
    rule: str = RULE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def accuracy_floor(n_classes: int) -> float:
    """Twice chance, capped halfway between chance and perfect: 0.75 for 2 classes, 0.5 for 4, 0.25 for 8."""
    if n_classes < 2:
        raise ValueError(f"need at least 2 classes, got {n_classes}")
    return min(2.0 / n_classes, (1.0 + 1.0 / n_classes) / 2.0)


def feature_spread(features: np.ndarray) -> tuple[float, float]:
    """(variance share, effective rank) of features (N, d): how much they vary, and in how many directions."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or not np.isfinite(x).all():
        return 0.0, 0.0
    centred = x - x.mean(axis=0)
    second = float((x * x).sum(axis=1).mean())
    # eigenvalues of the covariance from the singular values of the centred data (d may exceed N)
    sv = np.linalg.svd(centred / math.sqrt(x.shape[0] - 1), compute_uv=False)
    eig = sv * sv
    total = float(eig.sum())
    if second <= 0 or total <= 0:
        return 0.0, 0.0
    p = eig[eig > 0] / total
    return total / second, float(math.exp(-(p * np.log(p)).sum()))


def extractor_guard(info: dict[str, Any] | None, n_classes: int, features: np.ndarray) -> GuardResult:
    """Whether the extractor can be trusted to judge: ``info`` as the extractor records it (``val_accuracy``
    where it was trained on this dataset), ``features`` of real covers (the test split is what FID compares to)."""
    floor, chance = accuracy_floor(n_classes), 1.0 / n_classes
    raw = (info or {}).get("val_accuracy")
    acc = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
    share, rank = feature_spread(features)
    rank_floor = min(MAX_RANK_FLOOR, n_classes - 1.0)
    n = int(np.asarray(features).shape[0]) if np.ndim(features) == 2 else 0
    reasons = []
    if acc is not None and not acc >= floor:
        reasons.append(
            f"the feature extractor reads genre on held-out real covers at {acc:.3f}, below the floor {floor:.3f} "
            f"(chance {chance:.3f}): it cannot tell covers apart well enough to judge. {SUGGESTION}"
        )
    if share < MIN_VARIANCE_SHARE or rank < rank_floor:
        reasons.append(
            f"the real covers' features are degenerate (variance share {share:.2g}, effective rank {rank:.3g}; "
            f"need >= {MIN_VARIANCE_SHARE:g} and >= {rank_floor:g}): every image would look alike"
        )
    return GuardResult(not reasons, floor, chance, acc, share, rank, n, "; ".join(reasons))
