"""Power and false-positive rate of the conditioning verdict, measured without training (``bench power``).

A *partial-oracle* generator of strength q answers a request for test track i with the real cover of track i with
probability q, and otherwise with the real cover of a uniformly random test track. Its "generated" features are
therefore rows of the cached real test-cover features: no image is generated and nothing is trained. At q = 0 the
covers ignore the condition exactly (the null every permutation test assumes), so the rate of "yes" verdicts is
the verdict's false-positive rate; as q grows it is the verdict's power against conditioning of that strength.

Each replicate is judged by the evaluation's own code (``metrics.conditioning.suite`` and ``conditioning_verdict``)
on the same real training and test covers, labels and condition vectors as ``bench evaluate``. What does not change
across replicates is fit once: the condition classifier (on real training covers) and the retrieval ceiling.

Left out of the family, and said so in power.json: sensitivity (it needs a z x condition grid from a generator) and
CAS (it trains a classifier per replicate, and is secondary: it never decides). FJD and CFID (continuous
conditions) cost 200 or more permuted Frechet distances per replicate; they join only with ``joint=True``. The
verdict uses the tests that were run, Holm-adjusted over them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmark.pipeline.labels import RealLabelled, real_labelled
from benchmark.pipeline.locks import run_lock
from benchmark.pipeline.power_file import (
    POWER_FILE,
    TARGET_POWER,
    false_positive,
    merge_power,
    q_star,
    q_star_sentence,
    read_power,
)
from benchmark.pipeline.sample_size import check_covers, parse_count, power_bytes_per_cover
from core.config.names import is_categorical
from core.config.schema import EvalConfig
from core.data.fingerprint import KEY as FINGERPRINT
from core.data.prepared import PreparedDataset
from core.errors import UserError
from core.jsonfiles import jsonable, write_json_atomic
from core.paths import RunPaths
from core.progress import progress_bar
from metrics.conditioning import ConditionClassifier, conditioning_verdict
from metrics.conditioning.stats import TestResult, wilson_interval
from metrics.conditioning.suite import (
    ConditioningData,
    SuiteSettings,
    class_tests,
    holm_permutations,
    joint_tests,
    retrieval_ceiling,
    retrieval_test,
)
from metrics.conditioning.verdict import ALPHA, PRIMARY, PRIMARY_CONTINUOUS

STRENGTHS = (0.0, 0.05, 0.1, 0.2, 0.4, 1.0)
SIZES = (200, 1000, 5000)
SEEDS = 50
LEFT_OUT = {
    "sensitivity": "needs a z x condition grid from a generator; a partial oracle has no z",
    "cas": "trains a classifier per replicate; secondary, it never decides the verdict",
}
JOINT_LEFT_OUT = "each replicate costs 200 or more permuted Frechet distances; pass --joint to include them"
RULE = "At your n, conditioning weaker than q* goes unseen: q* is the smallest strength whose yes-rate >= {target}."


def partial_oracle(n_test: int, n: int, strength: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Asked test tracks (uniform, with replacement, as evaluation draws them) and the test track whose real cover
    answers each: its own with probability ``strength``, else a uniformly random one."""
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"strength must lie in [0, 1], got {strength}")
    asked = rng.integers(0, n_test, size=n)
    own = rng.random(n) < strength
    return asked, np.where(own, asked, rng.integers(0, n_test, size=n))


def oracle_data(real: RealLabelled, asked: np.ndarray, source: np.ndarray) -> ConditioningData:
    """The partial oracle's covers as the suite's input: features of the source tracks, asked class and vectors."""
    c = real.test_c
    return ConditioningData(
        train_x=real.train_x, train_y=real.train_y, test_x=real.test_x, test_y=real.test_y,
        gen_x=real.test_x[source], asked_y=real.test_y[asked], n_classes=real.n_classes,
        train_c=real.train_c, test_c=c, gen_c=None if c is None else c[asked],
    )


def family_of(continuous: bool, joint: bool = False) -> list[str]:
    """The primary tests a replicate runs, in the verdict's order (sensitivity never; FJD/CFID only with joint)."""
    run = {"accuracy", "purity"} | ({"retrieval"} | ({"fjd", "cfid"} if joint else set()) if continuous else set())
    return [k for k in (PRIMARY_CONTINUOUS if continuous else PRIMARY) if k in run]


def permutations_for(family: Sequence[str]) -> int:
    """2 m / alpha (200 m): p = (1 + hits) / (B + 1) can pass Holm's alpha / m with up to one null draw at or above
    the observed statistic."""
    return holm_permutations(len(family))


@dataclass
class PowerModel:
    """What every replicate shares: the real covers, the fitted condition classifier and the retrieval ceiling."""

    real: RealLabelled
    continuous: bool
    classifier: ConditionClassifier
    ceiling: TestResult | None
    joint: bool
    n_permutations: int

    @property
    def family(self) -> list[str]:
        return family_of(self.continuous, self.joint)


def fit_power_model(real: RealLabelled, continuous: bool, *, joint: bool = False, n_permutations: int | None = None,
                    seed: int = 0) -> PowerModel:
    if continuous and real.test_c is None:
        raise UserError("a continuous condition needs condition vectors")
    b = n_permutations or permutations_for(family_of(continuous, joint))
    clf = ConditionClassifier(seed=seed).fit(real.train_x, real.train_y)
    ceiling = None
    if continuous:
        dummy = oracle_data(real, np.arange(2), np.arange(2))
        ceiling = retrieval_ceiling(dummy, SuiteSettings(n_permutations=b, seed=seed))
    return PowerModel(real, continuous, clf, ceiling, joint, b)


def judge(model: PowerModel, data: ConditioningData, seed: int) -> dict[str, Any]:
    """The verdict (``conditioning_works``: yes, no, inconclusive; ``reasons``) on one generated set, from the
    family's tests only."""
    s = SuiteSettings(n_permutations=model.n_permutations, seed=seed, joint_permutations=200, joint_bootstrap=0)
    results: dict[str, TestResult] = class_tests(data, s, classifier=model.classifier, cas=False)
    if model.continuous:
        results["retrieval"] = retrieval_test(data, s, ceiling=model.ceiling)
        if model.joint:  # bootstrap off: FJD/CFID effect intervals are reported, never used by the decision
            results.update(joint_tests(data, s))
    return conditioning_verdict(results, continuous=model.continuous)


def replicate_rng(seed: int, strength: float, n: int) -> np.random.Generator:
    """One stream per (seed, strength, n): a row does not depend on which other rows were run."""
    return np.random.default_rng([seed, n, int(round(strength * 1_000_000))])


def power_row(model: PowerModel, condition: str, strength: float, n: int, seeds: int,
              on_replicate: Callable[[], None] | None = None) -> dict[str, Any]:
    """Yes/no/inconclusive rates of ``seeds`` partial-oracle replicates, with the Wilson interval of the yes rate."""
    counts = {"yes": 0, "no": 0, "inconclusive": 0}
    why: dict[str, int] = {}  # what held inconclusive replicates back (the verdict's fixed reason lines)
    for seed in range(seeds):
        asked, source = partial_oracle(len(model.real.test_y), n, strength, replicate_rng(seed, strength, n))
        verdict = judge(model, oracle_data(model.real, asked, source), seed)
        counts[verdict["conditioning_works"]] += 1
        if verdict["conditioning_works"] == "inconclusive":
            for reason in verdict["reasons"]:
                why[reason] = why.get(reason, 0) + 1
        if on_replicate is not None:
            on_replicate()
    return {
        "condition": condition, "strength": float(strength), "n": int(n), "seeds": int(seeds),
        **{k: v / seeds for k, v in counts.items()},
        "yes_interval": list(wilson_interval(counts["yes"], seeds)), "counts": counts, "inconclusive_reasons": why,
    }


def parse_strengths(text: str) -> tuple[float, ...]:
    """``"0,0.1,1"`` -> (0.0, 0.1, 1.0); one clear line for anything outside [0, 1] or not a number."""
    out = []
    for part in str(text).split(","):
        try:
            q = float(part)
        except ValueError:
            msg = f"--strength takes numbers in [0, 1] separated by commas; {part.strip()!r} is not one"
            raise UserError(msg) from None
        if not (math.isfinite(q) and 0.0 <= q <= 1.0):
            raise UserError(f"--strength {part.strip()} is outside [0, 1]: it is the chance of the asked track's cover")
        out.append(q)
    return tuple(sorted(set(out)))


def parse_sizes(text: str) -> tuple[int, ...]:
    """``--n 200,1000,1e4``: each part read as ``bench evaluate --n`` reads its one (``parse_count``)."""
    return tuple(sorted({parse_count(part) for part in str(text).split(",")}))


def power_analysis(
    ds: PreparedDataset, run: RunPaths, cfg: EvalConfig, condition: str = "genre", *,
    strengths: Sequence[float] = STRENGTHS, sizes: Sequence[int] = SIZES, seeds: int = SEEDS,
    res: int | None = None, joint: bool = False, device_kind: str = "cpu", write: bool = True,
) -> dict[str, Any]:
    """Sweep strengths x sizes x seeds for one condition at cover size ``res`` (default: the smallest the dataset
    holds); merge into ``runs/<run>/eval/power.json`` (``power_file``: every earlier row is kept), which is read and
    checked first, and the run locked while it is written."""

    if seeds < 1:
        raise UserError("--seeds must be at least 1")
    with run_lock(run) if write else nullcontext():
        old = read_power(run)  # before the sweep: a damaged file is one line now, not a lost sweep later
        new = _sweep(ds, run, cfg, condition, strengths, sizes, seeds, res, joint, device_kind)
        out = jsonable(merge_power(old, new))
        if write:
            (run.root / "eval").mkdir(parents=True, exist_ok=True)
            write_json_atomic(run.root / "eval" / POWER_FILE, out)
    return out


def _sweep(ds: PreparedDataset, run: RunPaths, cfg: EvalConfig, condition: str, strengths: Sequence[float],
           sizes: Sequence[int], seeds: int, res: int | None, joint: bool, device_kind: str) -> dict[str, Any]:
    """One condition's rows and metadata, as a power.json of that condition alone."""
    from core.devices import pick_device
    from metrics.features.extractors import make_extractor, real_features
    from metrics.features.guard import extractor_guard
    from models.conditions import load_conditions

    t0 = time.perf_counter()
    res = res or min(ds.resolutions)
    if res not in ds.resolutions:
        raise UserError(f"dataset {ds.name!r} has no {res} px covers (it holds {sorted(ds.resolutions)})")
    if len(ds.genres) < 2:
        raise UserError(f"dataset {ds.name!r} has fewer than two genres: the conditioning metrics need classes")
    check_covers(max(sizes, default=0), n_test=len(ds.split_rows("test")), bytes_per_cover=power_bytes_per_cover(),
                 where=f"dataset {ds.name!r}")  # before any feature is computed
    conditions = load_conditions(ds, condition, run)
    continuous = not is_categorical(condition)
    ext = make_extractor(ds, cfg.features, res, cfg, pick_device(device_kind))
    real = {split: real_features(ds, split, res, ext) for split in ("train", "test")}
    guard = extractor_guard(ext.info, len(ds.genres), real["test"][0].features)
    with threadpool_limits(1):  # per-replicate KMeans/eigensolves ran ~10x faster on one thread of a busy box
        labelled = real_labelled(ds, real, conditions, condition, cfg.seed)
        model = fit_power_model(labelled, continuous, joint=joint, seed=cfg.seed)
        rows = []
        with progress_bar(f"power {condition}", len(strengths) * len(sizes) * seeds) as bar:
            for n in sizes:
                for q in strengths:
                    rows.append(power_row(model, condition, q, n, seeds, bar.advance))
    qs = q_star(rows, condition)
    left_out = dict(LEFT_OUT) if joint or not continuous else {**LEFT_OUT, "fjd": JOINT_LEFT_OUT,
                                                                  "cfid": JOINT_LEFT_OUT}
    meta = {
        "kind": "continuous" if continuous else "categorical", "labels": labelled.label_kind,
        "family": model.family, "left_out": left_out, "n_permutations": model.n_permutations,
        "n_train": int(len(labelled.train_y)), "n_test": int(len(labelled.test_y)),
        "q_star": qs, "sentence": q_star_sentence(condition, qs), "false_positive": false_positive(rows, condition),
        "res": int(res), "extractor_guard": guard.to_dict(), "refused": None if guard.ok else guard.reason,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    new = {
        "schema_version": 1, "run": run.name, "dataset": ds.name, FINGERPRINT: ds.fingerprint, "extractor": ext.name,
        "preprocessing": ext.preprocessing, "alpha": ALPHA, "target_power": TARGET_POWER,
        "rule": RULE.format(target=TARGET_POWER),
        "generator": "partial oracle: the real test cover of the asked track with probability q (strength), else "
                     "that of a uniformly random test track; asked tracks drawn from the test split with replacement",
        "permutations_rule": (
            f"B = 2 m / alpha = {holm_permutations(1)} m for a family of m tests (Holm at alpha {ALPHA} needs "
            f"p < {ALPHA}/m; the smallest permutation p is 1/(B+1)); bench evaluate uses {cfg.n_permutations} and "
            "a larger family (sensitivity, and FJD/CFID for continuous conditions)"
        ),
        "condition_names": [condition], "rows": rows, "conditions": {condition: meta},
    }
    return new
