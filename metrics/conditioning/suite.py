"""Every conditioning test on one set of generated covers, for evaluation and for the power analysis alike.

Inputs are arrays only (features, labels, condition vectors), so a trained generator, a planted oracle or a
partial oracle are judged by the same code. Class-based tests (accuracy, CAS, purity) read the asked class back:
the genre for a categorical condition, a k-means cluster of condition vectors for a continuous one. Track-level
tests (retrieval, joint and conditional Frechet distances) use the vectors themselves and run for continuous
conditions (retrieval) or any condition (FJD, CFID).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrics.distribution.basis import DEFAULT_COMPONENTS

from .accuracy import conditional_accuracy
from .cas import classification_accuracy_score
from .classifier import ConditionClassifier
from .joint_tests import joint_conditioning_tests
from .purity import cluster_purity
from .retrieval import FittedRegressor, condition_retrieval, fit_condition_regressor
from .sensitivity import condition_sensitivity
from .stats import SequentialRule, TestResult
from .verdict import ALPHA, PRIMARY_CONTINUOUS

SEQUENTIAL_HITS = 10  # Besag-Clifford: stop once this many null draws reach the observed statistic


@dataclass
class ConditioningData:
    """Real training and test covers with their labels, and generated covers with the labels they were asked for.

    ``*_c`` are condition vectors (None for unconditional models); for generated covers, the vectors they were
    generated from.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    gen_x: np.ndarray
    asked_y: np.ndarray
    n_classes: int
    train_c: np.ndarray | None = None
    test_c: np.ndarray | None = None
    gen_c: np.ndarray | None = None


@dataclass(frozen=True)
class SuiteSettings:
    """How many draws the nulls take, and where the joint tests' batched null runs.

    ``joint_permutations``: the first stage of the FJD/CFID sequential null (``joint_tests``);
    ``joint_components``: the most principal components of its reduced basis; ``device``: None picks a GPU when
    present (``core.devices``); ``exact``: the reference paths (full-space joint null, fixed permutation counts).
    """

    n_permutations: int = 2000
    seed: int = 0
    joint_permutations: int = 200
    joint_bootstrap: int = 50
    joint_components: int = DEFAULT_COMPONENTS
    device: str | None = None
    exact: bool = False


def class_tests(
    d: ConditioningData, s: SuiteSettings, null_x: np.ndarray | None = None, *,
    classifier: ConditionClassifier | None = None, cas: bool = True,
) -> dict[str, TestResult]:
    """Conditional accuracy (with the generated-with-shuffled-conditions null when ``null_x`` is given), CAS and
    cluster purity.

    ``classifier``: one already fit on (train_x, train_y), for callers that judge many generated sets against the
    same real covers (the power analysis); ``cas=False`` skips CAS, which trains a classifier on every call.
    """
    clf = classifier if classifier is not None else ConditionClassifier(seed=s.seed).fit(d.train_x, d.train_y)
    acc = conditional_accuracy(
        d.train_x, d.train_y, d.test_x, d.test_y, d.gen_x, d.asked_y,
        n_classes=d.n_classes, n_permutations=s.n_permutations, seed=s.seed, classifier=clf,
    )
    if null_x is not None:
        acc.details["accuracy_shuffled_generator"] = float((clf.predict(null_x) == d.asked_y).mean())
    pur = cluster_purity(
        d.gen_x, d.asked_y, d.test_x, d.test_y, n_classes=d.n_classes,
        n_permutations=min(1000, s.n_permutations), seed=s.seed,
    )
    if not cas:
        return {"accuracy": acc, "purity": pur}
    cas_result = classification_accuracy_score(
        d.gen_x, d.asked_y, d.test_x, d.test_y, n_classes=d.n_classes, ceiling=acc.details.get("ceiling"),
        n_permutations=min(200, s.n_permutations), seed=s.seed,
    )
    return {"accuracy": acc, "cas": cas_result, "purity": pur}


def retrieval_ceiling(d: ConditioningData, s: SuiteSettings, *, regressor: FittedRegressor | None = None
                      ) -> TestResult:
    """The retrieval measure on the real test covers: what reproducing real covers of the tracks would score."""
    return condition_retrieval(d.train_x, d.train_c, d.test_x, d.test_c, n_permutations=s.n_permutations, seed=s.seed,
                               regressor=regressor)


def retrieval_test(d: ConditioningData, s: SuiteSettings, *, ceiling: TestResult | None = None) -> TestResult:
    """Retrieval of each generated cover's own condition, with the same measure on real test covers as ceiling
    (``ceiling``: :func:`retrieval_ceiling` computed once, for callers judging many generated sets). The ridge
    map is fit once for both (the same training pairs give the same map)."""
    reg = fit_condition_regressor(d.train_x, d.train_c, seed=s.seed)
    r = condition_retrieval(d.train_x, d.train_c, d.gen_x, d.gen_c, n_permutations=s.n_permutations, seed=s.seed,
                            regressor=reg)
    if ceiling is None:
        ceiling = retrieval_ceiling(d, s, regressor=reg)
    r.details["ceiling"] = ceiling.value
    r.details["ceiling_interval"] = ceiling.interval
    r.details["ceiling_p_value"] = ceiling.p_value
    r.details["ceiling_n"] = ceiling.n
    for key in ("top1", "top5", "median_rank"):
        if key in ceiling.details:
            r.details[f"ceiling_{key}"] = ceiling.details[key]
    return r


def joint_tests(d: ConditioningData, s: SuiteSettings) -> dict[str, TestResult]:
    """FJD and CFID of the generated (cover, condition) pairs against the real test pairs.

    The null is sequential (``stats.SequentialRule``): ``joint_permutations`` draws first; when fewer than
    ``SEQUENTIAL_HITS`` of them reach the observed distance it goes on, up to ``holm_permutations(...)`` draws in
    all, enough for the smallest p-value, 1/(B+1), to pass Holm across the whole continuous family, and stops
    as soon as that many draws have reached it (Besag-Clifford). ``s.exact``: the reference path, which reran a
    fresh ``holm_permutations`` null whenever the first stage's p sat at its floor.
    """
    enough = holm_permutations(len(PRIMARY_CONTINUOUS))
    if s.exact:
        return _joint_tests_exact(d, s, enough)
    rule = SequentialRule(first=s.joint_permutations, most=max(enough, s.joint_permutations), hits=SEQUENTIAL_HITS)
    return joint_conditioning_tests(
        d.test_x, d.test_c, d.gen_x, d.gen_c, n_boot=s.joint_bootstrap, seed=s.seed, allow_singular=True,
        sequential=rule, max_components=s.joint_components, device=s.device,
    )


def _joint_tests_exact(d: ConditioningData, s: SuiteSettings, enough: int) -> dict[str, TestResult]:
    def run(n_permutations: int) -> dict[str, TestResult]:
        return joint_conditioning_tests(
            d.test_x, d.test_c, d.gen_x, d.gen_c, n_permutations=n_permutations, n_boot=s.joint_bootstrap,
            seed=s.seed, allow_singular=True, exact=True,
        )

    results = run(s.joint_permutations)
    floor = 1.0 / (s.joint_permutations + 1)
    if s.joint_permutations < enough and any(r.p_value <= floor * (1 + 1e-9) for r in results.values()):
        results = run(enough)
    return results


def holm_permutations(family_size: int, alpha: float = ALPHA) -> int:
    """Permutations for the smallest permutation p-value, 1/(B+1), to pass Holm over ``family_size`` tests."""
    return int(np.ceil(2 * family_size / alpha))


def conditioning_suite(
    d: ConditioningData, s: SuiteSettings, *, continuous: bool,
    null_x: np.ndarray | None = None, sensitivity_grid: np.ndarray | None = None,
    classifier: ConditionClassifier | None = None,
) -> dict[str, TestResult]:
    """All tests that apply: class tests always; sensitivity when a z x condition grid is given; retrieval for
    continuous conditions; FJD and CFID whenever generated covers carry condition vectors.

    ``classifier``: one already fit on (train_x, train_y) by the caller, who reuses its predictions."""
    results = class_tests(d, s, null_x, classifier=classifier)
    if sensitivity_grid is not None:
        results["sensitivity"] = condition_sensitivity(sensitivity_grid, n_permutations=s.n_permutations, seed=s.seed)
    if continuous and d.gen_c is not None:
        results["retrieval"] = retrieval_test(d, s)
    if d.gen_c is not None and d.test_c is not None:
        results.update(joint_tests(d, s))
    return results
