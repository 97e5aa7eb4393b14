"""Judging generated covers: one code path for a trained checkpoint, a callable, an image folder and a stream.

Every source ends as a :class:`Generated` (features of the covers, what each was asked for, and what only some
sources can give: the same-z shuffled-condition null, the z x condition sensitivity grid, a sample picture).
:class:`RealSide` is the reference: real covers through the extractor, their classes (genre, or k-means clusters
of the condition vectors) and condition vectors. ``judge`` runs the named steps (``STEPS``) over both and writes
``metrics.json`` and plots into one staged folder, so every source produces the same result and files.

Design choices worth knowing when reading ``metrics.json``:
- The asked label of a generated cover is its track's genre (genre condition) or the k-means cluster of its
  condition vector (continuous conditions, clusters fit on the training conditions). Unconditional models are
  scored against random test tracks: the built-in negative control, expected at chance with verdict "no".
- FID/KID/PR-DC compare against the real test split; intra-FID and per-class recall compare each class against
  all real covers of that class (the test split alone holds too few per class for a full-rank covariance).
- Tests a source cannot support (sensitivity without z, the regenerated null without a generator) are skipped
  and named in ``skipped`` and in the verdict's reasons.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.pipeline.labels import RealLabelled, real_labelled
from core.config.names import is_categorical
from core.config.schema import EvalConfig
from core.data.prepared import PreparedDataset
from core.errors import UserError
from core.jsonfiles import jsonable, write_json_atomic
from core.storage import check_writable, staged_outputs
from metrics.conditioning import ConditionClassifier, conditioning_verdict
from metrics.conditioning.per_class import diagnoses_to_dict, per_class_accuracy
from metrics.conditioning.stats import TestResult
from metrics.conditioning.suite import ConditioningData, SuiteSettings, conditioning_suite
from metrics.distribution.cmmd import cmmd_entry
from metrics.distribution.fid import fid
from metrics.distribution.intra_fid import intra_fid
from metrics.distribution.kid import kid
from metrics.distribution.prdc import prdc
from metrics.features.extractors import Extractor, extractor_description, make_extractor, real_features
from metrics.features.guard import GuardResult, extractor_guard
from metrics.features.user_weights import uses_cmmd
from metrics.tsne import save_tsne_plots, tsne_analysis

SCHEMA_VERSION = 3  # 3: source (toolkit/images/callable/stream), per_condition diagnostics, skipped tests
METRICS_FILE = "metrics.json"
RESULT_KEYS = {"accuracy": "conditional_accuracy"}  # suite key -> metrics.json key, where they differ
TOOLKIT = "toolkit"  # source of a generator this toolkit trained; anything else is "external" on the leaderboard


class Evaluation(dict):
    """One judged generator: the ``metrics.json`` document (a dict), with typed shortcuts to what users read."""

    path: Path | None = None  # the folder holding metrics.json and the plots, when written

    @property
    def conditioning_works(self) -> str:
        """``yes``, ``no`` or ``inconclusive``."""
        return self["verdict"]["conditioning_works"]

    @property
    def verdict(self) -> dict[str, Any]:
        return self["verdict"]

    @property
    def metrics(self) -> dict[str, Any]:
        return self["metrics"]

    def value(self, metric: str) -> Any:
        """A metric's value (``fid``, ``conditional_accuracy``, ``retrieval``, ...)."""
        return self["metrics"][metric]["value"]


@dataclass
class RealSide:
    """The real covers every generated set is compared with, and how classes are read from conditions."""

    ds: PreparedDataset
    res: int
    condition: str | None  # None: an unconditional model (the negative control)
    conditions: np.ndarray | None  # (n_tracks, dc) condition vectors in dataset row order
    ext: Extractor
    real: dict[str, tuple[Any, np.ndarray]]  # split -> (cached features, dataset rows)
    guard: GuardResult
    lab: RealLabelled

    @property
    def continuous(self) -> bool:
        return self.condition is not None and not is_categorical(self.condition)

    @property
    def n_classes(self) -> int:
        return len(self.ds.genres)

    @property
    def class_names(self) -> list[str]:
        return [f"cluster {i}" for i in range(self.n_classes)] if self.continuous else list(self.ds.genres)

    def labels_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """The class of dataset rows: genre, or the cluster of their condition vectors (continuous conditions)."""
        return self.lab.clusters.labels(self.conditions[rows]) if self.continuous else self.ds.genre_idx[rows]

    def labels_of_vectors(self, c: np.ndarray, where: str = "asked") -> np.ndarray:
        """The class of condition vectors given directly: the cluster, or the genre of a one-hot row."""
        if self.conditions is None or c.shape[1] != self.conditions.shape[1]:
            have = None if self.conditions is None else self.conditions.shape[1]
            raise UserError(f"{where}: condition vectors are {c.shape[1]}-d but {self.condition!r} is {have}-d")
        if self.continuous:
            return self.lab.clusters.labels(c)
        one_hot = np.isin(c, (0.0, 1.0)).all(axis=1) & (c.sum(axis=1) == 1)
        if not one_hot.all():
            row = int(np.flatnonzero(~one_hot)[0]) + 1
            raise UserError(f"{where} row {row}: a genre condition is a one-hot vector")
        return c.argmax(axis=1).astype(np.int64)


def real_side(
    ds: PreparedDataset, res: int, condition: str | None, conditions: np.ndarray | None, cfg: EvalConfig,
    device: torch.device, *, features: str | None = None, seed: int | None = None,
) -> RealSide:
    """Real features of every split through ``features`` (default ``cfg.features``), the extractor guard, and
    the labelled real covers (classes from genre or from clusters of ``conditions``)."""
    if res not in ds.resolutions:
        have = ", ".join(f"{r} px" for r in ds.resolutions)
        raise UserError(f"covers are {res} px but dataset {ds.name!r} has {have} covers")
    if len(ds.genres) < 2:
        raise UserError(f"dataset {ds.name!r} has fewer than two genres: the conditioning metrics need classes")
    ext = make_extractor(ds, features or cfg.features, res, cfg, device)
    real = {split: real_features(ds, split, res, ext) for split in ("train", "test", "val")}
    guard = extractor_guard(ext.info, len(ds.genres), real["test"][0].features)
    lab = real_labelled(ds, real, conditions, condition, cfg.seed if seed is None else seed)
    return RealSide(ds, res, condition, conditions, ext, real, guard, lab)


@dataclass
class Generated:
    """What a source produced, as features; the optional parts are what only some sources can give."""

    features: np.ndarray  # (n, d) through the real side's extractor
    asked_y: np.ndarray  # asked class per cover
    gen_c: np.ndarray | None  # condition vector each cover was generated from (None: unconditional)
    asked_rows: np.ndarray | None = None  # dataset rows of the asked tracks, where tracks were named
    images: np.ndarray | None = None  # uint8 NHWC covers for the t-SNE thumbnails: all, or those of image_rows
    image_rows: np.ndarray | None = None  # which covers ``images`` holds (None: all, in order)
    null_features: np.ndarray | None = None  # the same z with the conditions permuted (needs a generator)
    grid: np.ndarray | None = None  # (n_z, n_c, d) sensitivity grid features
    draw_samples: Callable[[Path], Path] | None = None  # writes samples.png into the given folder
    skipped: dict[str, str] = field(default_factory=dict)  # test -> why this source cannot give it

    @property
    def n(self) -> int:
        return len(self.features)


@dataclass
class EvalState:
    """What the judging steps share: the real side, the generated side, and everything each step adds."""

    side: RealSide
    gen: Generated
    cfg: EvalConfig
    seed: int
    device: torch.device
    out_dir: Path | None  # None: nothing is written (no t-SNE map, no sample picture)
    meta: dict[str, Any]  # who is judged: model, source, checkpoint, ...
    timings: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    verdict: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)
    classifier: ConditionClassifier | None = None

    @property
    def data(self) -> ConditioningData:
        lab, g = self.side.lab, self.gen
        return ConditioningData(
            train_x=lab.train_x, train_y=lab.train_y, test_x=lab.test_x, test_y=lab.test_y, gen_x=g.features,
            asked_y=g.asked_y, n_classes=lab.n_classes, train_c=lab.train_c, test_c=lab.test_c, gen_c=g.gen_c,
        )  # fmt: skip


def _entry(value: Any, n: int, extractor: str, seed: int, **extra: Any) -> dict[str, Any]:
    return jsonable({"value": value, "n": n, "extractor": extractor, "seed": seed, **extra})


def _distribution(s: EvalState) -> None:
    """FID, KID and precision/recall/density/coverage against the real test covers."""
    te_cache, name, gen_x, seed = s.side.real["test"][0], s.side.ext.name, s.gen.features, s.seed
    f = fid(te_cache.stats, gen_x, n_boot=s.cfg.n_bootstrap, seed=seed, allow_singular=True)
    s.metrics["fid"] = _entry(f.value, f.n_gen, name, seed, n_real=f.n_real, interval=f.interval, n_boot=f.n_boot)
    k = kid(te_cache.features, gen_x, num_subsets=s.cfg.kid_subsets, max_subset_size=s.cfg.kid_subset_size, seed=seed)
    s.metrics["kid"] = _entry(
        k.value, k.n_gen, name, seed, n_real=k.n_real, std=k.std, interval=k.interval,
        subset_size=k.subset_size, num_subsets=k.num_subsets,
    )  # fmt: skip
    if uses_cmmd(name):  # your own feature network (file:PATH): CMMD beside FID (Jayasumana et al. 2024)
        c = cmmd_entry(te_cache.features, gen_x, seed=seed, n_boot=s.cfg.n_bootstrap, device=s.device)
        s.metrics["cmmd"] = {**c, "extractor": name, "seed": seed}
    p = prdc(te_cache.features, gen_x, device=s.device if s.device.type == "cuda" else None)
    for key in ("precision", "recall", "density", "coverage"):
        k_nn = p.k_pr if key in ("precision", "recall") else p.k_dc
        s.metrics[key] = _entry(getattr(p, key), p.n_gen, name, seed, n_real=p.n_real, k=k_nn)


def _all_real(s: EvalState) -> tuple[np.ndarray, np.ndarray]:
    """Every labelled real cover's features and class: the per-class reference (intra-FID, per-class recall)."""
    real = s.side.real
    caches = [real[split][0].features for split in ("train", "val", "test")]
    rows = np.concatenate([real[split][1] for split in ("train", "val", "test")])
    labelled = s.side.ds.genre_idx[rows] >= 0
    return np.concatenate(caches)[labelled], s.side.labels_of_rows(rows[labelled])


def _intra_fid(s: EvalState) -> None:
    """Per-class FID of the generated covers against all real covers of their asked class."""
    all_x, all_y = _all_real(s)
    ifid = intra_fid(all_x, all_y, s.gen.features, s.gen.asked_y, classes=list(range(s.side.n_classes)))
    s.metrics["intra_fid"] = _entry(
        ifid.value, ifid.n_gen, s.side.ext.name, s.seed, n_real=ifid.n_real, reference="all real covers of the class",
        min_samples=ifid.min_samples, per_class=ifid.to_dict()["per_class"], skipped=ifid.skipped,
    )  # fmt: skip


def _test_entry(r: TestResult, extractor: str) -> dict[str, Any]:
    d = r.to_dict()
    d["extractor"] = extractor
    return d


def _conditioning(s: EvalState) -> None:
    """Every conditioning test the source supports, then the verdict by the pre-registered rule."""
    settings = SuiteSettings(
        n_permutations=s.cfg.n_permutations, seed=s.seed, joint_permutations=min(200, s.cfg.n_permutations),
        joint_bootstrap=min(50, s.cfg.n_bootstrap),
    )  # fmt: skip
    lab = s.side.lab
    s.classifier = ConditionClassifier(seed=s.seed).fit(lab.train_x, lab.train_y)
    results = conditioning_suite(
        s.data, settings, continuous=s.side.continuous, null_x=s.gen.null_features, sensitivity_grid=s.gen.grid,
        classifier=s.classifier,
    )  # fmt: skip
    acc = results["accuracy"].details
    acc["labels"] = lab.label_kind
    names = s.side.class_names
    acc["classes_absent_from_test_names"] = [names[c] for c in acc.get("classes_absent_from_test", [])]
    for key, r in results.items():
        s.metrics[RESULT_KEYS.get(key, key)] = _test_entry(r, s.side.ext.name)
    s.verdict = conditioning_verdict(results, continuous=s.side.continuous)
    for test, why in s.gen.skipped.items():
        s.verdict.setdefault("reasons", []).append(f"{test} not run: {why}")
    if not s.side.guard.ok:  # every metric is still computed and written; only the judgement is withheld
        s.verdict.update(conditioning_works="inconclusive", refused=s.side.guard.reason,
                         reasons=[f"refused to judge: {s.side.guard.reason}"])  # fmt: skip


def _per_condition(s: EvalState) -> None:
    """Which classes the model follows, ignores, or cannot be judged on, with per-class intra-FID, precision
    and recall beside each class's accuracy against its own null."""
    lab, g, names = s.side.lab, s.gen, s.side.class_names
    rows = per_class_accuracy(
        s.classifier.predict(g.features), g.asked_y, s.classifier.predict(lab.test_x), lab.test_y, names
    )
    out = diagnoses_to_dict(rows)
    ifid = (s.metrics.get("intra_fid") or {}).get("per_class") or {}
    pr = _per_class_prdc(s)
    for row in out["classes"]:
        k = str(row["index"])
        row["intra_fid"] = (ifid.get(k) or {}).get("value")
        row.update(pr[row["name"]])
    out.update(labels=lab.label_kind, n=g.n, extractor=s.side.ext.name, seed=s.seed)
    s.metrics["per_condition"] = jsonable(out)


def _per_class_prdc(s: EvalState) -> dict[str, Any]:
    """Precision and recall (k=3) of each class's generated covers against all real covers of that class."""
    all_x, all_y = _all_real(s)
    out: dict[str, Any] = {}
    for k, name in enumerate(s.side.class_names):
        real_k, gen_k = all_x[all_y == k], s.gen.features[s.gen.asked_y == k]
        if min(len(real_k), len(gen_k)) < 6:  # k_dc = 5 neighbours need 6 points per set
            out[name] = {"precision": None, "recall": None,
                         "prdc_skipped": f"too few covers: {len(real_k)} real, {len(gen_k)} generated (need 6)"}
            continue
        p = prdc(real_k, gen_k)
        out[name] = {"precision": p.precision, "recall": p.recall, "prdc_n_real": p.n_real}
    return out


def _tsne_step(s: EvalState) -> None:
    s.metrics["tsne"] = _tsne(s)


def _plots(s: EvalState) -> None:
    if s.gen.draw_samples is not None:
        s.plots["samples"] = Path(s.gen.draw_samples(s.out_dir)).name


STEPS: tuple[tuple[str, Callable[[EvalState], None]], ...] = (
    ("fid_kid_prdc", _distribution),
    ("intra_fid", _intra_fid),
    ("conditioning", _conditioning),
    ("per_condition", _per_condition),
    ("tsne", _tsne_step),
    ("plots", _plots),
)


@contextmanager
def timed(timings: dict[str, float], name: str):
    t0 = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - t0, 3)


def judge(
    side: RealSide, gen: Generated, cfg: EvalConfig, out_dir: Path | None, *, meta: dict[str, Any], seed: int,
    device: torch.device, timings: dict[str, float] | None = None,
) -> Evaluation:
    """Run ``STEPS``; with an ``out_dir``, write ``metrics.json`` and the plots there (replacing the folder as a
    whole). Without one nothing is written and the t-SNE map and sample picture are skipped."""
    t_all = time.perf_counter() - sum((timings or {}).values())
    s = EvalState(side=side, gen=gen, cfg=cfg, seed=seed, device=device, out_dir=out_dir, meta=meta,
                  timings=dict(timings or {}))  # fmt: skip
    if out_dir is None:
        gen.skipped.setdefault("tsne", "no output folder to draw the map into")
        return Evaluation(_run_steps(s, t_all))
    check_writable(out_dir, "evaluation folder")
    with staged_outputs(out_dir) as s.out_dir:  # metrics.json and every plot replace the old ones together
        report = Evaluation(_run_steps(s, t_all))
        write_json_atomic(s.out_dir / METRICS_FILE, report)
    report.path = Path(out_dir)
    return report


def _run_steps(s: EvalState, t_all: float) -> dict[str, Any]:
    for name, step in STEPS:
        if name in ("tsne", "plots") and s.out_dir is None:
            continue
        with timed(s.timings, name):
            step(s)
    s.timings["total"] = round(time.perf_counter() - t_all, 3)
    return jsonable(_report(s))


def _report(s: EvalState) -> dict[str, Any]:
    side, meta = s.side, s.meta
    return {
        "schema_version": SCHEMA_VERSION,
        "model": meta["model"],
        "source": meta.get("source", TOOLKIT),
        "gan": meta.get("gan"),
        "run": meta.get("run"),
        "dataset": side.ds.name,
        "dataset_fingerprint": side.ds.fingerprint,  # the content judged against (bench data ... --force changes it)
        **({} if side.ds.location == side.ds.name else {"dataset_path": side.ds.location}),  # where it was opened
        "dataset_kind": side.ds.manifest.get("kind"),
        "coupling": side.ds.manifest.get("synth", {}).get("coupling"),
        "checkpoint": meta.get("checkpoint"),
        "images_seen": meta.get("images_seen"),
        "guidance": meta.get("guidance"),
        "inputs": meta.get("inputs"),
        "conditional": side.condition is not None,
        "condition": side.condition,
        "condition_kind": None if side.condition is None else ("continuous" if side.continuous else "categorical"),
        "labels": side.lab.label_kind,
        "n_classes": side.n_classes,
        "class_names": side.class_names,
        "extractor": {**extractor_description(side.ext), "guard": side.guard.to_dict()},
        "refused": None if side.guard.ok else side.guard.reason,
        "n_generated": s.gen.n,
        "n_real_test": int(len(side.real["test"][0].features)),
        "seeds": {"eval": s.seed},
        "device": str(s.device),
        "metrics": s.metrics,
        "verdict": s.verdict,
        "skipped": s.gen.skipped,
        "plots": s.plots,
        "timings_s": s.timings,
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }


def _tsne(s: EvalState) -> dict[str, Any]:
    ds, cfg, seed, res = s.side.ds, s.cfg, s.seed, s.side.res
    (tr_cache, _), (te_cache, _) = s.side.real["train"], s.side.real["test"]
    rng = np.random.default_rng(seed + 2)
    real_rows = np.concatenate([ds.split_rows("train"), ds.split_rows("test")])
    real_x = np.concatenate([tr_cache.features, te_cache.features])
    labelled = ds.genre_idx[real_rows] >= 0
    real_rows, real_x = real_rows[labelled], real_x[labelled]
    pick = rng.choice(len(real_rows), size=min(cfg.tsne_real, len(real_rows)), replace=False)
    images, where = s.gen.images, s.gen.image_rows
    candidates = np.arange(s.gen.n) if images is None or where is None else where
    picked = rng.choice(len(candidates), size=min(cfg.tsne_gen, len(candidates)), replace=False)
    g_pick = candidates[picked]
    gen_images = None
    if len(g_pick) and images is not None:  # images[i] is the cover of candidates[i] when only some are kept
        gen_images = images[g_pick] if where is None else images[picked]
    real_images = np.asarray(ds.covers(res)[np.sort(real_rows[pick])])
    order = np.argsort(real_rows[pick])
    real_x_sorted, real_y = real_x[pick][order], ds.genre_idx[np.sort(real_rows[pick])]
    rows = s.gen.asked_rows
    gen_genre = ds.genre_idx[rows[g_pick]] if rows is not None else None
    if rows is None and not s.side.continuous:  # one-hot genre vectors: the asked class is the genre
        gen_genre = s.gen.asked_y[g_pick]
    has = len(g_pick) > 0
    result = tsne_analysis(
        real_x_sorted, real_y, real_images,
        gen_features=s.gen.features[g_pick] if has else None,
        gen_conditions=gen_genre if has else None,
        gen_images=gen_images,
        seed=seed,
        map_store=ds.paths.cache_dir / "tsne",  # the real map is fitted once per dataset, features and seed
    )  # fmt: skip
    files = save_tsne_plots(result, s.out_dir, ds.genres, real_images=real_images)
    scores = dict(result["scores"])
    scores["plots"] = {k: Path(v).name for k, v in files.items()}
    scores["extractor"] = s.side.ext.name
    return scores
