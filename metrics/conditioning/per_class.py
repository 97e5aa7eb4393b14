"""Per-condition diagnostics: which classes (genres, or clusters of condition vectors) does a generator follow?

A model can pass the overall accuracy test on a few easy classes while ignoring the rest. For each class k the
classifier's predictions on the covers asked for k are compared with its own null: shuffling the asked labels
among the generated covers (exactly what the overall permutation test does) makes the count of covers asked for
k and predicted k hypergeometric, so the one-sided p-value is exact without sampling:
  x_k ~ Hypergeom(N = all generated, K = predicted k, n = asked k),   null accuracy = K / N.
Each class is read back on real test covers too (its ceiling, with the same exact test): where real covers of a
class are not recognisable above chance, the instrument cannot see that class and says so instead of calling it
ignored. Status per class, Holm-corrected over the classes:
  follows     adjusted p < alpha and the effect reaches its margin;
  ignored     the 95 % upper bound of the effect (Wilson, minus the fixed null) is below the margin, and the class
              is readable;
  unreadable  real covers of the class are not recognised above chance (Holm-adjusted p >= alpha);
  unclear     anything else (usually too few covers asked for the class).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import hypergeom

from .accuracy import MARGIN_SHARE, MIN_MARGIN
from .stats import holm, wilson_interval
from .verdict import ALPHA


@dataclass
class ClassDiagnosis:
    """One class: generated accuracy against its own null, the real-cover ceiling, and a status."""

    index: int
    name: str
    n: int  # generated covers asked for this class
    accuracy: float | None
    interval: tuple[float, float] | None
    null: float | None
    effect: float | None
    effect_interval: tuple[float, float] | None
    p_value: float | None
    p_holm: float | None
    margin: float
    ceiling: float | None
    ceiling_n: int
    ceiling_p_holm: float | None
    status: str


def _exact_test(pred: np.ndarray, labels: np.ndarray, k: int) -> tuple[int, int, float | None, float | None]:
    """(n asked k, hits, accuracy, exact one-sided p) of predictions ``pred`` against asked ``labels``."""
    asked = labels == k
    n_k, hits = int(asked.sum()), int((pred[asked] == k).sum())
    if n_k == 0:
        return 0, 0, None, None
    K = int((pred == k).sum())
    return n_k, hits, hits / n_k, float(hypergeom.sf(hits - 1, len(pred), K, n_k))


def per_class_accuracy(
    gen_pred: np.ndarray, asked: np.ndarray, test_pred: np.ndarray, test_labels: np.ndarray,
    class_names: list[str], *, alpha: float = ALPHA,
) -> list[ClassDiagnosis]:
    """Diagnose every class from the classifier's predictions on generated and real test covers."""
    gen_pred, asked = np.asarray(gen_pred), np.asarray(asked)
    test_pred, test_labels = np.asarray(test_pred), np.asarray(test_labels)
    k_all = range(len(class_names))
    gen = [_exact_test(gen_pred, asked, k) for k in k_all]
    real = [_exact_test(test_pred, test_labels, k) for k in k_all]
    p_gen = holm([1.0 if g[3] is None else g[3] for g in gen])
    p_real = holm([1.0 if r[3] is None else r[3] for r in real])
    out = []
    for k in k_all:
        out.append(_diagnose(k, class_names[k], gen[k], real[k], p_gen[k], p_real[k], gen_pred, test_pred, alpha))
    return out


def _diagnose(k, name, gen, real, p_gen, p_real, gen_pred, test_pred, alpha) -> ClassDiagnosis:  # noqa: ANN001
    n_k, hits, acc, p = gen
    real_n, _, ceiling, _ = real
    real_null = float((test_pred == k).mean()) if len(test_pred) else 0.0
    lift = 0.0 if ceiling is None else max(0.0, ceiling - real_null)
    margin = max(MIN_MARGIN, MARGIN_SHARE * lift)
    readable = ceiling is not None and p_real < alpha
    if acc is None:
        return ClassDiagnosis(k, name, 0, None, None, None, None, None, None, None, margin, ceiling, real_n,
                              float(p_real), "unreadable" if not readable else "unclear")  # fmt: skip
    null = float((gen_pred == k).mean())
    lo, hi = wilson_interval(hits, n_k)
    effect_iv = (lo - null, hi - null)
    if not readable:
        status = "unreadable"
    elif p_gen < alpha and acc - null >= margin:
        status = "follows"
    elif effect_iv[1] < margin:
        status = "ignored"
    else:
        status = "unclear"
    return ClassDiagnosis(k, name, n_k, acc, (lo, hi), null, acc - null, effect_iv, p, float(p_gen), margin,
                          ceiling, real_n, float(p_real), status)  # fmt: skip


def diagnoses_to_dict(rows: list[ClassDiagnosis]) -> dict:
    """``metrics.json`` form: every class, and the names of those the model ignores (or cannot be judged on)."""
    return {
        "classes": [asdict(r) for r in rows],
        "ignored": [r.name for r in rows if r.status == "ignored"],
        "followed": [r.name for r in rows if r.status == "follows"],
        "unreadable": [r.name for r in rows if r.status == "unreadable"],
        "test": "exact hypergeometric (shuffled asked labels), Holm over classes",
    }
