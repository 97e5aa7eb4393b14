"""``evaluate_model``: one trained generator against the real test covers, every metric, one verdict.

Evaluation is a short table of named steps (``STEPS``), each adding its part to the shared ``EvalState``; every
result is written with its own ``to_dict()``. Design choices worth knowing when reading ``metrics.json``:

- Generated covers are drawn for conditions of real TEST tracks (paired at random, seeded); their "asked" label is
  that track's genre (genre condition) or its k-means cluster of condition vectors (continuous conditions, clusters
  fit on the training conditions). Unconditional models are scored the same way against random test tracks: they
  are the built-in negative control and should come out at chance with verdict "no".
- Continuous conditions (audio embeddings, attributes) are also measured per track: retrieval of each cover's own
  condition vector among the candidates (with the same measure on real test covers as ceiling), FJD and CFID
  against the real test (cover, condition) pairs. The verdict for them needs a track-level test to pass.
- The null for conditional accuracy is computed twice: analytically (labels shuffled against fixed images, the
  pre-registered test) and empirically, by generating from the same z with the conditions permuted.
- FID/KID/PR-DC compare against the real test split; intra-FID compares each class against all real covers of that
  class (the test split alone holds too few per class for a full-rank covariance).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.pipeline.guidance import evaluation_plan
from benchmark.pipeline.labels import real_labelled
from core.config.names import eval_name, is_categorical, model_ids_in, ordered_model_ids, parse_model_id
from core.config.schema import Config, EvalConfig
from core.data.prepared import PreparedDataset
from core.devices import pick_device
from core.errors import UserError
from core.jsonfiles import jsonable, write_json_atomic
from core.paths import RunPaths
from core.paths import dataset as dataset_paths
from core.progress import progress_bar
from core.storage import check_writable, staged_outputs
from metrics.conditioning import ConditionClusters, conditioning_verdict
from metrics.conditioning.stats import TestResult
from metrics.conditioning.suite import ConditioningData, SuiteSettings, conditioning_suite
from metrics.distribution.fid import fid
from metrics.distribution.intra_fid import intra_fid
from metrics.distribution.kid import kid
from metrics.distribution.prdc import prdc
from metrics.features.extractors import Extractor, make_extractor, real_features
from metrics.features.guard import GuardResult, extractor_guard
from metrics.tsne import save_tsne_plots, tsne_analysis
from models.conditions import load_conditions
from models.gans.train.checkpoint import load_generator
from models.gans.train.snapshot import generate, grid_conditions, snapshot_grid

SCHEMA_VERSION = 2  # 2: continuous conditions add retrieval (rank score), fjd and cfid; verdict.kind
METRICS_FILE = "metrics.json"
RESULT_KEYS = {"accuracy": "conditional_accuracy"}  # suite key -> metrics.json key, where they differ


def _entry(value: Any, n: int, extractor: str, seed: int, **extra: Any) -> dict[str, Any]:
    return jsonable({"value": value, "n": n, "extractor": extractor, "seed": seed, **extra})


def _test_entry(r: TestResult, extractor: str) -> dict[str, Any]:
    d = r.to_dict()
    d["extractor"] = extractor
    return d


@dataclass
class EvalState:
    """What the steps share: inputs, then everything each step adds."""

    ds: PreparedDataset
    run: RunPaths
    model: str
    cfg: EvalConfig
    device: torch.device
    kind: str
    n: int
    seed: int
    out_dir: Path
    timings: dict[str, float] = field(default_factory=dict)
    rng: np.random.Generator | None = None  # seeded once: the asked tracks, z and the shuffled conditions
    G: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    ext: Extractor | None = None
    real: dict[str, tuple[Any, np.ndarray]] = field(default_factory=dict)  # split -> (cached features, rows)
    data: ConditioningData | None = None
    conditions: np.ndarray | None = None
    clusters: ConditionClusters | None = None
    label_kind: str = "genre"
    asked: np.ndarray | None = None
    images: np.ndarray | None = None
    null_x: np.ndarray | None = None
    grid_reps: np.ndarray | None = None
    guard: GuardResult | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    verdict: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)
    guidance: float | None = None  # diffusion models: the classifier-free guidance scale set on the loaded G

    @property
    def res(self) -> int:
        return int(self.meta["res"])

    @property
    def conditional(self) -> bool:
        return self.meta["cond_dim"] > 0

    @property
    def condition(self) -> str | None:
        return self.meta.get("condition") if self.conditional else None

    @property
    def continuous(self) -> bool:
        return self.conditional and not is_categorical(self.condition)

    @property
    def n_classes(self) -> int:
        return len(self.ds.genres)

    @property
    def class_names(self) -> list[str]:
        return [f"cluster {i}" for i in range(self.n_classes)] if self.continuous else list(self.ds.genres)

    def labels_of(self, rows: np.ndarray) -> np.ndarray:
        """The class of dataset rows: genre, or the cluster of their condition vectors (continuous conditions)."""
        return self.clusters.labels(self.conditions[rows]) if self.continuous else self.ds.genre_idx[rows]


def _load(s: EvalState) -> None:
    s.G, s.meta = load_generator(s.run.model(s.model), s.device, guidance=s.guidance)
    if s.res not in s.ds.resolutions:
        raise UserError(f"{s.model} was trained at {s.res} px but dataset {s.ds.name!r} has no {s.res} px covers")
    if s.n_classes < 2:
        raise UserError(f"dataset {s.ds.name!r} has fewer than two genres: the conditioning metrics need classes")


def _real_features(s: EvalState) -> None:
    s.ext = make_extractor(s.ds, s.kind, s.res, s.cfg, s.device)
    for split in ("train", "test", "val"):
        s.real[split] = real_features(s.ds, split, s.res, s.ext)
    s.guard = extractor_guard(s.ext.info, s.n_classes, s.real["test"][0].features)


def _labels(s: EvalState) -> None:
    """Real labelled rows, their classes (genre, or k-means clusters of condition vectors) and conditions."""
    s.conditions = load_conditions(s.ds, s.condition, s.run) if s.conditional else None
    lab = real_labelled(s.ds, s.real, s.conditions, s.condition, s.seed)
    s.clusters, s.label_kind = lab.clusters, lab.label_kind
    s.asked = lab.test_rows[s.rng.integers(0, len(lab.test_rows), size=s.n)]
    c = s.conditions
    s.data = ConditioningData(
        train_x=lab.train_x, train_y=lab.train_y, test_x=lab.test_x, test_y=lab.test_y,
        gen_x=np.zeros((0, 0), np.float32), asked_y=s.labels_of(s.asked), n_classes=s.n_classes,
        train_c=lab.train_c, test_c=lab.test_c, gen_c=None if c is None else c[s.asked],
    )
    s.grid_reps = None if c is None else grid_conditions(lab.train_c, lab.train_y)  # one per class


def _generate(s: EvalState) -> None:
    """Covers for the asked conditions, and from the same z with the conditions shuffled (the empirical null)."""
    rng = s.rng
    z = torch.from_numpy(rng.standard_normal((s.n, s.meta["z_dim"])).astype(np.float32))
    c = s.data.gen_c
    with progress_bar(f"generate {s.model}", 2 if c is not None else 1) as bar:
        s.images = generate(s.G, z, c, s.cfg.batch)
        bar.advance()
        null_images = None
        if c is not None:
            null_images = generate(s.G, z, c[rng.permutation(s.n)], s.cfg.batch)
            bar.advance()
    s.data.gen_x = s.ext(s.images)
    s.null_x = s.ext(null_images) if null_images is not None else None


def _distribution(s: EvalState) -> None:
    """FID, KID and precision/recall/density/coverage against the real test covers."""
    te_cache, name, gen_x, seed = s.real["test"][0], s.ext.name, s.data.gen_x, s.seed
    f = fid(te_cache.stats, gen_x, n_boot=s.cfg.n_bootstrap, seed=seed, allow_singular=True)
    s.metrics["fid"] = _entry(f.value, f.n_gen, name, seed, n_real=f.n_real, interval=f.interval, n_boot=f.n_boot)
    k = kid(te_cache.features, gen_x, num_subsets=s.cfg.kid_subsets, max_subset_size=s.cfg.kid_subset_size, seed=seed)
    s.metrics["kid"] = _entry(
        k.value, k.n_gen, name, seed, n_real=k.n_real, std=k.std, interval=k.interval,
        subset_size=k.subset_size, num_subsets=k.num_subsets,
    )
    p = prdc(te_cache.features, gen_x, device=s.device if s.device.type == "cuda" else None)
    for key in ("precision", "recall", "density", "coverage"):
        k_nn = p.k_pr if key in ("precision", "recall") else p.k_dc
        s.metrics[key] = _entry(getattr(p, key), p.n_gen, name, seed, n_real=p.n_real, k=k_nn)


def _intra_fid(s: EvalState) -> None:
    """Per-class FID of the generated covers against all real covers of their asked class."""
    caches = [s.real[split][0].features for split in ("train", "val", "test")]
    rows = np.concatenate([s.real[split][1] for split in ("train", "val", "test")])
    labelled = s.ds.genre_idx[rows] >= 0
    all_x, all_y = np.concatenate(caches)[labelled], s.labels_of(rows[labelled])
    ifid = intra_fid(all_x, all_y, s.data.gen_x, s.data.asked_y, classes=list(range(s.n_classes)))
    s.metrics["intra_fid"] = _entry(
        ifid.value, ifid.n_gen, s.ext.name, s.seed, n_real=ifid.n_real, reference="all real covers of the class",
        min_samples=ifid.min_samples, per_class=ifid.to_dict()["per_class"], skipped=ifid.skipped,
    )


def _conditioning(s: EvalState) -> None:
    """Every conditioning test, then the verdict by the pre-registered rule for this kind of condition."""
    grid = _sensitivity_grid(s.G, s.meta, s.grid_reps, s.n_classes, s.cfg, s.ext, s.seed)
    settings = SuiteSettings(
        n_permutations=s.cfg.n_permutations, seed=s.seed, joint_permutations=min(200, s.cfg.n_permutations),
        joint_bootstrap=min(50, s.cfg.n_bootstrap),
    )
    results = conditioning_suite(s.data, settings, continuous=s.continuous, null_x=s.null_x, sensitivity_grid=grid)
    acc = results["accuracy"].details
    acc["labels"] = s.label_kind
    names = s.class_names
    acc["classes_absent_from_test_names"] = [names[c] for c in acc.get("classes_absent_from_test", [])]
    for key, r in results.items():
        s.metrics[RESULT_KEYS.get(key, key)] = _test_entry(r, s.ext.name)
    s.verdict = conditioning_verdict(results, continuous=s.continuous)
    if not s.guard.ok:  # every metric is still computed and written; only the judgement is withheld
        s.verdict.update(conditioning_works="inconclusive", refused=s.guard.reason,
                         reasons=[f"refused to judge: {s.guard.reason}"])


def _tsne_step(s: EvalState) -> None:
    (tr_cache, _), (te_cache, _) = s.real["train"], s.real["test"]
    s.metrics["tsne"] = _tsne(
        s.ds, s.model, s.out_dir, s.ext, tr_cache, te_cache, s.images, s.data.gen_x, s.asked, s.cfg, s.seed, s.res
    )


def _plots(s: EvalState) -> None:
    path = snapshot_grid(s.G, s.meta["z_dim"], s.grid_reps, s.out_dir / "samples.png", seed=1234)
    s.plots["samples"] = Path(path).name


STEPS: tuple[tuple[str, Callable[[EvalState], None]], ...] = (
    ("load", _load),
    ("real_features", _real_features),
    ("labels", _labels),
    ("generate", _generate),
    ("fid_kid_prdc", _distribution),
    ("intra_fid", _intra_fid),
    ("conditioning", _conditioning),
    ("tsne", _tsne_step),
    ("plots", _plots),
)


@contextmanager
def _timed(timings: dict[str, float], name: str):
    t0 = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - t0, 3)


def evaluate_model(
    ds: PreparedDataset,
    run: RunPaths,
    model: str,
    cfg: EvalConfig,
    *,
    device_kind: str = "auto",
    features: str | None = None,
    n: int | None = None,
    seed: int | None = None,
    guidance: float | None = None,
) -> dict[str, Any]:
    """Evaluate ``run``'s ``model`` (a GAN name or gan+condition id); writes ``eval/<model>/metrics.json`` with
    plots and returns the metrics. ``guidance``: a diffusion model's scale, written to ``eval/<model>@w<scale>/``."""
    t_all = time.perf_counter()
    folder = run.eval(eval_name(model, guidance))
    s = EvalState(
        ds=ds, run=run, model=model, cfg=cfg, device=pick_device(device_kind), kind=features or cfg.features,
        n=n or cfg.n, seed=cfg.seed if seed is None else seed, out_dir=folder, guidance=guidance,
    )
    s.rng = np.random.default_rng(s.seed)
    check_writable(s.out_dir, "evaluation folder")  # before any computing
    with staged_outputs(folder) as s.out_dir:  # metrics.json and every plot replace the old ones together
        for name, step in STEPS:
            with _timed(s.timings, name):
                step(s)
        s.timings["total"] = round(time.perf_counter() - t_all, 3)
        report = jsonable(_report(s))
        write_json_atomic(s.out_dir / METRICS_FILE, report)
    s.out_dir = folder
    return report


def _report(s: EvalState) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "model": s.model,
        "gan": s.meta.get("model"),
        "run": s.run.name,
        "dataset": s.ds.name,
        "dataset_kind": s.ds.manifest.get("kind"),
        "coupling": s.ds.manifest.get("synth", {}).get("coupling"),
        "checkpoint": s.meta.get("checkpoint"),
        "images_seen": s.meta.get("images_seen"),
        "guidance": s.meta.get("guidance"),
        "conditional": s.conditional,
        "condition": s.condition,
        "condition_kind": None if not s.conditional else ("continuous" if s.continuous else "categorical"),
        "labels": s.label_kind,
        "n_classes": s.n_classes,
        "class_names": s.class_names,
        "extractor": {"name": s.ext.name, "preprocessing": s.ext.preprocessing, **s.ext.info,
                      "guard": s.guard.to_dict()},
        "refused": None if s.guard.ok else s.guard.reason,
        "n_generated": s.n,
        "n_real_test": int(len(s.real["test"][0].features)),
        "seeds": {"eval": s.seed},
        "device": str(s.device),
        "metrics": s.metrics,
        "verdict": s.verdict,
        "plots": s.plots,
        "timings_s": s.timings,
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }


def _sensitivity_grid(G, meta, reps: np.ndarray | None, k: int, cfg: EvalConfig, ext: Extractor, seed: int):
    """Features of G(z_i, c_j): n_z fixed z's crossed with one representative condition per class."""
    n_c = len(reps) if reps is not None else k
    gen = torch.Generator().manual_seed(seed + 1)
    z = torch.randn(cfg.sensitivity_z, meta["z_dim"], generator=gen)
    zz = z.repeat_interleave(n_c, dim=0)
    cc = None if reps is None else np.tile(reps, (cfg.sensitivity_z, 1))
    feats = ext(generate(G, zz, cc, cfg.batch))
    return feats.reshape(cfg.sensitivity_z, n_c, -1)


def _tsne(ds, model, out_dir, ext, tr_cache, te_cache, images, gen_x, asked, cfg: EvalConfig, seed, res) -> dict:
    rng = np.random.default_rng(seed + 2)
    real_rows = np.concatenate([ds.split_rows("train"), ds.split_rows("test")])
    real_x = np.concatenate([tr_cache.features, te_cache.features])
    labelled = ds.genre_idx[real_rows] >= 0
    real_rows, real_x = real_rows[labelled], real_x[labelled]
    pick = rng.choice(len(real_rows), size=min(cfg.tsne_real, len(real_rows)), replace=False)
    g_pick = rng.choice(len(gen_x), size=min(cfg.tsne_gen, len(gen_x)), replace=False)
    real_images = np.asarray(ds.covers(res)[np.sort(real_rows[pick])])
    order = np.argsort(real_rows[pick])
    real_x_sorted, real_y = real_x[pick][order], ds.genre_idx[np.sort(real_rows[pick])]
    result = tsne_analysis(
        real_x_sorted,
        real_y,
        real_images,
        gen_features=gen_x[g_pick] if len(g_pick) else None,
        gen_conditions=ds.genre_idx[asked[g_pick]] if len(g_pick) else None,
        gen_images=images[g_pick] if len(g_pick) else None,
        seed=seed,
    )
    files = save_tsne_plots(result, out_dir, ds.genres, real_images=real_images)
    scores = dict(result["scores"])
    scores["plots"] = {k: Path(v).name for k, v in files.items()}
    scores["extractor"] = ext.name
    return scores


def evaluate_relationship(ds: PreparedDataset, run: RunPaths, cfg: EvalConfig, *, device_kind: str = "auto") -> dict:
    """The relationship probe on real pairs (no model): do real covers predict genre (and audio)?

    Reuses ``data/<name>/probe.json`` (``bench data probe``: artist-grouped k-fold over all labelled covers,
    Inception by default) while the dataset's content and the fold count are unchanged; otherwise runs the same
    probe here with ``cfg.features`` (covernet scores val+test covers only, never the covers it was fit on)
    and this run's audio embeddings.
    """
    from benchmark.pipeline.probe import probe_dataset, read_probe

    probe = read_probe(ds)
    source = "bench data probe (data/<name>/probe.json)"
    if probe is None or probe.get("folds") != cfg.relationship_folds:
        probe = probe_dataset(
            ds, cfg.features, cfg.relationship_folds, runs=[run], cfg=cfg,
            n_permutations=min(cfg.n_permutations, 1000), seed=cfg.seed, device_kind=device_kind, write=False,
        )  # fmt: skip
        source = "bench evaluate"
    out = jsonable({**probe, "schema_version": SCHEMA_VERSION, "probe_schema": probe.get("schema_version"),
                     "probe_source": source})
    (run.root / "eval").mkdir(parents=True, exist_ok=True)
    write_json_atomic(run.root / "eval" / "relationship.json", out)
    return out


def models_to_evaluate(run: RunPaths, cfg: Config, model: str = "all") -> list[str]:
    """The trained models ``model`` names in ``run`` (``all``: the config's list, else every trained one)."""
    if model == "all":
        names = cfg.eval.models or ordered_model_ids(model_ids_in(run.root / "models"), cfg.train.models)
    else:
        names = [parse_model_id(model).name]
    trained = [m for m in names if (run.model(m) / "checkpoints").is_dir()]
    if model != "all" and not trained:
        raise UserError(
            f"no trained {model!r} in run {run.name!r} (train it with `bench train {model} --run {run.name}`)"
        )
    if not trained:
        raise UserError(f"run {run.name!r} has no trained models (run `bench train all --run {run.name}`)")
    return trained


def trained_on(run: RunPaths, model: str) -> str:
    """The dataset ``model`` was trained on, as its training recorded it."""
    return json.loads((run.model(model) / "train_config.json").read_text())["dataset"]


def evaluate_run(
    run: RunPaths, cfg: Config, models: Sequence[str] | str = "all", *, dataset: str | None = None,
    announce: Callable[[str, PreparedDataset], None] | None = None, guidance: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate ``models`` of ``run`` (``all``: every trained one), then the relationship probe on the data.

    Every output folder and feature cache is checked writable before any computing; ``announce(model, dataset)``
    is called before each model (the CLI prints a line). ``guidance``: scales at which each diffusion model is
    evaluated, one folder each (``benchmark.pipeline.guidance``).
    """
    names = models_to_evaluate(run, cfg, models) if isinstance(models, str) else list(models)
    plan = evaluation_plan(names, guidance, explicit=models != "all")
    for m, w in plan:  # fail now, not after all the computing, when results or feature caches cannot be written
        check_writable(run.eval(eval_name(m, w)), "evaluation folder")
        check_writable(dataset_paths(dataset or trained_on(run, m)).cache_dir, "the dataset's feature cache")
    results, ds = [], None
    for m, w in plan:
        ds = PreparedDataset.open(dataset or trained_on(run, m))
        if announce is not None:
            announce(eval_name(m, w), ds)
        results.append(evaluate_model(ds, run, m, cfg.eval, device_kind=cfg.device, guidance=w))
    if ds is not None:
        evaluate_relationship(ds, run, cfg.eval, device_kind=cfg.device)
    return results


def read_metrics(run: RunPaths, model: str) -> dict[str, Any] | None:
    path = run.eval(model) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else None
