"""``evaluate_model``: one trained generator against the real test covers, every metric, one verdict.

Design choices worth knowing when reading ``metrics.json``:

- Generated covers are drawn for conditions of real TEST tracks (paired at random, seeded); their "asked" label is
  that track's genre (genre condition) or its k-means cluster of condition vectors (continuous conditions, clusters
  fit on the training conditions). Unconditional models are scored the same way against random test tracks: they
  are the built-in negative control and should come out at chance with verdict "no".
- The null for conditional accuracy is computed twice: analytically (labels shuffled against fixed images, the
  pre-registered test) and empirically, by generating from the same z with the conditions permuted.
- FID/KID/PR-DC compare against the real test split; intra-FID compares each class against all real covers of that
  class (the test split alone holds too few per class for a full-rank covariance).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.config.schema import EvalConfig
from benchmark.data.prepared import PreparedDataset, write_json_atomic
from benchmark.errors import UserError
from benchmark.paths import RunPaths
from benchmark.pipeline.extractors import Extractor, make_extractor, real_features
from benchmark.progress import progress_bar
from metrics.conditioning import (
    ConditionClassifier,
    ConditionClusters,
    classification_accuracy_score,
    cluster_purity,
    condition_retrieval,
    condition_sensitivity,
    conditional_accuracy,
    conditioning_verdict,
)
from metrics.conditioning.stats import TestResult, _jsonable
from metrics.distribution.fid import fid
from metrics.distribution.intra_fid import intra_fid
from metrics.distribution.kid import kid
from metrics.distribution.prdc import prdc
from metrics.tsne import save_tsne_plots, tsne_analysis
from models.conditions import load_conditions
from models.gans.train.loop import load_generator, pick_device
from models.gans.train.snapshot import generate, grid_conditions, snapshot_grid

SCHEMA_VERSION = 1
METRICS_FILE = "metrics.json"


def _entry(value: Any, n: int, extractor: str, seed: int, **extra: Any) -> dict[str, Any]:
    return _jsonable({"value": value, "n": n, "extractor": extractor, "seed": seed, **extra})


def _test_entry(r: TestResult, extractor: str) -> dict[str, Any]:
    d = r.to_dict()
    d["extractor"] = extractor
    return d


class _Timer:
    def __init__(self) -> None:
        self.t: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Ctx:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.t[name] = round(time.perf_counter() - self.t0, 3)

        return _Ctx()


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
) -> dict[str, Any]:
    """Evaluate ``run``'s ``model``; writes ``eval/<model>/metrics.json`` with plots and returns the metrics."""
    device = pick_device(device_kind)
    kind = features or cfg.features
    n = n or cfg.n
    seed = cfg.seed if seed is None else seed
    timer = _Timer()
    t_all = time.perf_counter()
    out_dir = run.eval(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    with timer("load"):
        G, meta = load_generator(run.model(model), device)
    res = meta["res"]
    conditional = meta["cond_dim"] > 0
    source = meta.get("condition") if conditional else None
    if res not in ds.resolutions:
        raise UserError(f"{model} was trained at {res} px but dataset {ds.name!r} has no {res} px covers")
    n_genres = len(ds.genres)
    if n_genres < 2:
        raise UserError(f"dataset {ds.name!r} has fewer than two genres: the conditioning metrics need classes")

    with timer("real_features"):
        ext = make_extractor(ds, kind, res, cfg, device)
        tr_cache, train_rows = real_features(ds, "train", res, ext)
        te_cache, test_rows = real_features(ds, "test", res, ext)
        va_cache, val_rows = real_features(ds, "val", res, ext)
    genre = ds.genre_idx
    keep_tr, keep_te = genre[train_rows] >= 0, genre[test_rows] >= 0
    train_x, test_x = tr_cache.features[keep_tr], te_cache.features[keep_te]
    train_rows, test_rows = train_rows[keep_tr], test_rows[keep_te]
    if len(test_rows) < 2 * n_genres:
        raise UserError(f"the test split holds only {len(test_rows)} labelled covers: too few to evaluate")

    conditions = load_conditions(ds, source, run) if conditional else None
    continuous = conditional and source != "genre"
    clusters = None
    if continuous:
        clusters = ConditionClusters(n_clusters=n_genres, seed=seed).fit(conditions[train_rows])
        train_y, test_y = clusters.labels(conditions[train_rows]), clusters.labels(conditions[test_rows])
        label_kind = f"k-means cluster (k={n_genres}) of {source} condition vectors"
    else:
        train_y, test_y = genre[train_rows], genre[test_rows]
        label_kind = "genre"

    rng = np.random.default_rng(seed)
    asked = test_rows[rng.integers(0, len(test_rows), size=n)]
    asked_y = clusters.labels(conditions[asked]) if continuous else genre[asked]
    z = torch.from_numpy(rng.standard_normal((n, meta["z_dim"])).astype(np.float32))
    c = conditions[asked] if conditional else None
    with timer("generate"), progress_bar(f"generate {model}", 2 if conditional else 1) as bar:
        images = generate(G, z, c, cfg.batch)
        bar.advance()
        null_images = None
        if conditional:
            null_images = generate(G, z, c[rng.permutation(n)], cfg.batch)
            bar.advance()
    with timer("gen_features"):
        gen_x = ext(images)
        null_x = ext(null_images) if null_images is not None else None

    m: dict[str, Any] = {}
    with timer("fid_kid_prdc"):
        f = fid(te_cache.stats, gen_x, n_boot=cfg.n_bootstrap, seed=seed, allow_singular=True)
        m["fid"] = _entry(f.value, f.n_gen, ext.name, seed, n_real=f.n_real, interval=f.interval, n_boot=f.n_boot)
        k = kid(te_cache.features, gen_x, num_subsets=cfg.kid_subsets, max_subset_size=cfg.kid_subset_size, seed=seed)
        m["kid"] = _entry(
            k.value,
            k.n_gen,
            ext.name,
            seed,
            n_real=k.n_real,
            std=k.std,
            interval=k.interval,
            subset_size=k.subset_size,
            num_subsets=k.num_subsets,
        )
        p = prdc(te_cache.features, gen_x, device=device if device.type == "cuda" else None)
        for name in ("precision", "recall", "density", "coverage"):
            m[name] = _entry(
                getattr(p, name),
                p.n_gen,
                ext.name,
                seed,
                n_real=p.n_real,
                k=p.k_pr if name in ("precision", "recall") else p.k_dc,
            )
    with timer("intra_fid"):
        all_x = np.concatenate([tr_cache.features, va_cache.features, te_cache.features])
        all_rows = np.concatenate([ds.split_rows("train"), val_rows, ds.split_rows("test")])
        all_y = clusters.labels(conditions[all_rows]) if continuous else genre[all_rows]
        ok = all_y >= 0
        ifid = intra_fid(all_x[ok], all_y[ok], gen_x, asked_y, classes=list(range(n_genres)))
        m["intra_fid"] = _entry(
            ifid.value,
            ifid.n_gen,
            ext.name,
            seed,
            n_real=ifid.n_real,
            reference="all real covers of the class",
            min_samples=ifid.min_samples,
            per_class=ifid.to_dict()["per_class"],
            skipped=ifid.skipped,
        )
    with timer("conditioning"):
        clf = ConditionClassifier(seed=seed).fit(train_x, train_y)
        acc = conditional_accuracy(
            train_x,
            train_y,
            test_x,
            test_y,
            gen_x,
            asked_y,
            n_classes=n_genres,
            n_permutations=cfg.n_permutations,
            seed=seed,
            classifier=clf,
        )
        if null_x is not None:
            null_acc = float((clf.predict(null_x) == asked_y).mean())
            acc.details["accuracy_shuffled_generator"] = null_acc
        acc.details["labels"] = label_kind
        ceiling = acc.details.get("ceiling")
        cas = classification_accuracy_score(
            gen_x,
            asked_y,
            test_x,
            test_y,
            n_classes=n_genres,
            ceiling=ceiling,
            n_permutations=min(200, cfg.n_permutations),
            seed=seed,
        )
        pur = cluster_purity(
            gen_x, asked_y, test_x, test_y, n_classes=n_genres, n_permutations=min(1000, cfg.n_permutations), seed=seed
        )
        reps = grid_conditions(conditions[train_rows], train_y) if conditional else None  # one per class
        grid = _sensitivity_grid(G, meta, reps, n_genres, cfg, ext, seed)
        sens = condition_sensitivity(grid, n_permutations=cfg.n_permutations, seed=seed)
        results: dict[str, TestResult] = {"accuracy": acc, "cas": cas, "purity": pur, "sensitivity": sens}
        if continuous:
            results["retrieval"] = condition_retrieval(
                train_x, conditions[train_rows], gen_x, c, n_permutations=cfg.n_permutations, seed=seed
            )
        for key, r in results.items():
            m[{"accuracy": "conditional_accuracy"}.get(key, key)] = _test_entry(r, ext.name)
        verdict = conditioning_verdict(results)
    with timer("tsne"):
        tsne_scores = _tsne(ds, model, out_dir, ext, tr_cache, te_cache, images, gen_x, asked, cfg, seed, res)
        m["tsne"] = tsne_scores
    with timer("plots"):
        plots = {"samples": snapshot_grid(G, meta["z_dim"], reps, out_dir / "samples.png", seed=1234)}

    report = {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "run": run.name,
        "dataset": ds.name,
        "dataset_kind": ds.manifest.get("kind"),
        "coupling": ds.manifest.get("synth", {}).get("coupling"),
        "checkpoint": meta.get("checkpoint"),
        "images_seen": meta.get("images_seen"),
        "conditional": conditional,
        "condition": source,
        "labels": label_kind,
        "n_classes": n_genres,
        "class_names": ds.genres if not continuous else [f"cluster {i}" for i in range(n_genres)],
        "extractor": {"name": ext.name, "preprocessing": ext.preprocessing, **ext.info},
        "n_generated": n,
        "n_real_test": int(len(te_cache.features)),
        "seeds": {"eval": seed},
        "device": str(device),
        "metrics": m,
        "verdict": verdict,
        "plots": {k: str(Path(v).name) for k, v in plots.items()},
        "timings_s": {**timer.t, "total": round(time.perf_counter() - t_all, 3)},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }
    report = _jsonable(report)
    write_json_atomic(out_dir / METRICS_FILE, report)
    return report


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
    out = _jsonable({**probe, "schema_version": SCHEMA_VERSION, "probe_schema": probe.get("schema_version"),
                     "probe_source": source})
    (run.root / "eval").mkdir(parents=True, exist_ok=True)
    write_json_atomic(run.root / "eval" / "relationship.json", out)
    return out


def read_metrics(run: RunPaths, model: str) -> dict[str, Any] | None:
    path = run.eval(model) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else None
