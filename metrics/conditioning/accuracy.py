"""Conditional classifier accuracy: do generated covers show the class they were asked for?

A classifier trained on real training covers is scored on real test covers (the ceiling) and on covers
generated from the test-split conditions (acc_gen). The null is the same generated images with their
conditions shuffled: if the generator ignores its condition, images and asked labels are exchangeable, so
the permutation test is exact. Predictions are computed once; only labels are permuted, and since accuracy
depends on the (prediction, label) table alone, each permutation is drawn as that table
(``stats.permutation_tables``, the same law) instead of shuffling n labels.
"""

from __future__ import annotations

import numpy as np

from .classifier import ConditionClassifier
from .stats import (
    TestResult,
    bootstrap_tables,
    check_features,
    check_labels,
    contingency,
    expected_accuracy_under_independence,
    n_classes_of,
    percentile_interval,
    permutation_p,
    permuted_accuracy_tables,
    wilson_interval,
)

MIN_MARGIN = 0.01  # absolute floor of the meaningful effect (accuracy points)
MARGIN_SHARE = 0.10  # a meaningful effect recovers at least 10 % of the ceiling's lift over its null


def conditional_accuracy(
    train_features: np.ndarray, train_labels: np.ndarray,
    test_features: np.ndarray, test_labels: np.ndarray,
    gen_features: np.ndarray, gen_labels: np.ndarray,
    *, n_classes: int | None = None, n_permutations: int = 2000, n_bootstrap: int = 2000, seed: int = 0,
    classifier: ConditionClassifier | None = None,
) -> TestResult:
    """Fit the condition classifier on real train features, then :func:`accuracy_from_predictions`.

    Pass an already fitted ``classifier`` to reuse it (e.g. across models of one run).
    """
    if classifier is None:
        classifier = ConditionClassifier(seed=seed).fit(train_features, train_labels)
    test_x = check_features(test_features, "real test features")
    gen_x = check_features(gen_features, "generated features")
    return accuracy_from_predictions(
        classifier.predict(test_x), test_labels, classifier.predict(gen_x), gen_labels,
        n_classes=n_classes, n_permutations=n_permutations, n_bootstrap=n_bootstrap, seed=seed,
    )


def accuracy_from_predictions(
    pred_test: np.ndarray, test_labels: np.ndarray, pred_gen: np.ndarray, gen_labels: np.ndarray,
    *, n_classes: int | None = None, n_permutations: int = 2000, n_bootstrap: int = 2000, seed: int = 0,
) -> TestResult:
    """Accuracy of fixed predictions against the asked labels, with ceiling, null, p-value and effect.

    value = acc_gen; null_mean = expected accuracy with the labels shuffled (sum over classes of
    share predicted * share asked, exact mean of the permutation null); effect = acc_gen - null_mean with a
    multinomial-bootstrap interval; margin = max(0.01, 0.1 * (ceiling - ceiling_null)).
    """
    pred_test = check_labels(pred_test, name="test predictions")
    test_labels = check_labels(test_labels, pred_test.size, "real test labels")
    pred_gen = check_labels(pred_gen, name="generated predictions")
    gen_labels = check_labels(gen_labels, pred_gen.size, "generated-cover condition labels")
    k = n_classes_of(pred_test, test_labels, pred_gen, gen_labels, n_classes=n_classes)
    rng = np.random.default_rng(seed)
    n = gen_labels.size

    acc_gen = float((pred_gen == gen_labels).mean())
    null = permuted_accuracy_tables(pred_gen, gen_labels, k, n_permutations, rng)
    acc_null = expected_accuracy_under_independence(pred_gen, gen_labels, k)

    ceiling = float((pred_test == test_labels).mean())
    ceiling_null = expected_accuracy_under_independence(pred_test, test_labels, k)
    ceiling_p = permutation_p(ceiling, permuted_accuracy_tables(pred_test, test_labels, k, n_permutations, rng))

    boot = bootstrap_tables(contingency(pred_gen, gen_labels, k, k), n_bootstrap, rng)
    b_acc = np.trace(boot, axis1=1, axis2=2) / n
    b_null = np.einsum("bi,bi->b", boot.sum(axis=2), boot.sum(axis=1)) / (n * n)
    effect = acc_gen - acc_null
    gap = ceiling - ceiling_null
    normalised = effect / gap if gap > 0 else float("nan")
    return TestResult(
        name="conditional_accuracy",
        value=acc_gen,
        n=n,
        chance=1.0 / k,
        interval=wilson_interval(acc_gen * n, n),
        p_value=permutation_p(acc_gen, null),
        null_mean=acc_null,
        effect=effect,
        effect_interval=percentile_interval(b_acc - b_null),
        margin=max(MIN_MARGIN, MARGIN_SHARE * gap),
        n_permutations=n_permutations,
        seed=seed,
        details={
            "n_classes": k,
            "majority_share": float(np.bincount(gen_labels, minlength=k).max() / n),
            "null_permutation_mean": float(null.mean()) if null.size else None,
            "null_q99": float(np.quantile(null, 0.99)) if null.size else None,
            "ceiling": ceiling,
            "ceiling_n": int(test_labels.size),
            "ceiling_interval": wilson_interval(ceiling * test_labels.size, test_labels.size),
            "ceiling_null": ceiling_null,
            "ceiling_p_value": ceiling_p,
            "effect_normalised": normalised,
            "n_bootstrap": n_bootstrap,
            # classes (indices) the ceiling cannot speak for: no real test cover carries them
            "classes_absent_from_test": [int(c) for c in np.flatnonzero(np.bincount(test_labels, minlength=k) == 0)],
        },
    )
