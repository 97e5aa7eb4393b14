"""Evaluation entry points: a trained checkpoint, any callable generator, a set of images; all judged alike.

``evaluate_model`` loads a toolkit checkpoint and hands it to ``evaluate_generator``; ``evaluate_images``
judges covers generated elsewhere, given what each was asked for. All three end in ``judge.judge`` (one code
path, one ``metrics.json`` schema), so the report and ``bench check`` treat an outside model like any other.
Random draws, in order, from one generator seeded with the evaluation seed: the asked test tracks, the z's, the
permutation of the shuffled-condition null (the same order as before the split into sources, so numbers hold).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchmark.pipeline.asked import Asked, check_count, resolve_asked
from benchmark.pipeline.guidance import evaluation_plan
from benchmark.pipeline.inputs import (
    as_dataset,
    as_run,
    condition_vectors,
    eval_settings,
    judged_meta,
    output_folder,
)
from benchmark.pipeline.judge import (
    METRICS_FILE,
    SCHEMA_VERSION,
    TOOLKIT,
    Evaluation,
    Generated,
    RealSide,
    judge,
    real_side,
    timed,
)
from benchmark.pipeline.labels import labelled_test_rows
from benchmark.pipeline.sample_size import check_covers, evaluation_bytes_per_cover
from benchmark.pipeline.sources import (
    generate_covers,
    generator_z_dim,
    grid_from_groups,
    image_sheet_writer,
    sample_sheet_writer,
    sensitivity_covers,
)
from core.config.names import eval_name, model_ids_in, ordered_model_ids, parse_model_id
from core.config.schema import Config, EvalConfig
from core.data.prepared import PreparedDataset
from core.devices import pick_device
from core.errors import UserError
from core.images import ARRAY_SUFFIXES, as_uint8_nhwc, check_square, read_image_array, read_image_files, save_png
from core.jsonfiles import jsonable, read_json_object, write_json_atomic
from core.paths import RunPaths
from core.progress import progress_bar
from core.storage import check_writable
from models.gans.train.checkpoint import load_generator
from models.gans.train.loop import check_checkpoint_data, check_trained_data
from models.gans.train.snapshot import grid_conditions

__all__ = ["SCHEMA_VERSION", "METRICS_FILE", "Evaluation", "evaluate_generator", "evaluate_images", "evaluate_model"]


# ------------------------------------------------------------------------------------ a callable generator
def evaluate_generator(
    G: Any, dataset: PreparedDataset | str, *, condition: str | None, n: int | None = None,
    run: RunPaths | str | None = None, name: str = "external", out_dir: str | Path | None = None,
    features: str | None = None, cfg: EvalConfig | None = None, seed: int | None = None,
    device: str = "auto", value_range: tuple[float, float] = (-1.0, 1.0), provenance: dict[str, Any] | None = None,
) -> Evaluation:
    """Judge any generator ``G(z, c)`` (a :class:`~benchmark.pipeline.sources.Generator`; ``z_dim = 0``: ``G(c)``)
    on ``dataset``: covers for the conditions of ``n`` random real test tracks, every metric and the verdict.

    ``condition``: ``genre``, ``attributes``, an encoder name whose embeddings ``run`` holds, or None for an
    unconditional generator. Writes ``metrics.json`` and plots to ``out_dir`` (default ``run``'s
    ``eval/<name>/``; neither: nothing is written). ``provenance`` is recorded as is (checkpoint, steps, ...).
    """
    ds, run = as_dataset(dataset), as_run(run)
    cfg = eval_settings(cfg, features, n)
    dev = pick_device(device)
    meta = judged_meta(name, (provenance or {}).get("source", "callable"), run, provenance)
    conditions = condition_vectors(ds, condition, run)
    seed = cfg.seed if seed is None else seed
    check_covers(cfg.n, n_test=len(ds.split_rows("test")), where=f"dataset {ds.name!r}",
                 bytes_per_cover=evaluation_bytes_per_cover(max(ds.resolutions)), flag="n")  # fmt: skip
    return _judge_callable(G, ds, condition, conditions, cfg, seed, dev, output_folder(out_dir, run, name), meta,
                           value_range)  # fmt: skip


def _judge_callable(
    G: Any, ds: PreparedDataset, condition: str | None, conditions: np.ndarray | None, cfg: EvalConfig, seed: int,
    dev: torch.device, out_dir: Path | None, meta: dict[str, Any], value_range: tuple[float, float],
    timings: dict[str, float] | None = None,
) -> Evaluation:
    timings = dict(timings or {})
    if out_dir is not None:
        check_writable(out_dir, "evaluation folder")  # before any computing
    z_dim, rng, n = generator_z_dim(G), np.random.default_rng(seed), cfg.n
    kw = {"batch": cfg.batch, "value_range": value_range, "device": dev}
    with timed(timings, "generate"):
        asked, z = _requests(ds, rng, n, z_dim)
        c = None if conditions is None else conditions[asked]
        with progress_bar(f"generate {meta['model']}", 2 if c is not None and z_dim else 1) as bar:
            images = generate_covers(G, z, c, **kw)
            bar.advance()
            null_images = None
            if c is not None and z_dim:
                null_images = generate_covers(G, z, c[rng.permutation(n)], **kw)
                bar.advance()
    res = check_square(images, ds.resolutions, "generator output", f"dataset {ds.name!r}")
    with timed(timings, "real_features"):
        side = real_side(ds, res, condition if conditions is not None else None, conditions, cfg, dev, seed=seed)
    gen = Generated(
        features=side.ext(images), asked_y=side.labels_of_rows(asked), gen_c=c, asked_rows=asked, images=images,
        null_features=None if null_images is None else side.ext(null_images),
    )  # fmt: skip
    _callable_extras(G, z_dim, side, gen, cfg, seed, kw)
    return judge(side, gen, cfg, out_dir, meta=meta, seed=seed, device=dev, timings=timings)


def _requests(
    ds: PreparedDataset, rng: np.random.Generator, n: int, z_dim: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The test tracks the covers are asked for and their z (None for ``G(c)``), in this order from ``rng``:
    :func:`export_samples` draws the same, so judging its files reproduces ``bench evaluate``'s numbers."""
    rows = labelled_test_rows(ds)
    asked = rows[rng.integers(0, len(rows), size=n)]
    return asked, rng.standard_normal((n, z_dim)).astype(np.float32) if z_dim else None


def _callable_extras(
    G: Any, z_dim: int, side: RealSide, gen: Generated, cfg: EvalConfig, seed: int, kw: dict
) -> None:
    """What only a generator that can be asked again gives: the sensitivity grid and the sample picture."""
    lab = side.lab
    reps = None if gen.gen_c is None else grid_conditions(lab.train_c, lab.train_y)  # one per class
    if not z_dim:
        gen.skipped["sensitivity"] = "the generator takes no z (G(c)): nothing to hold fixed"
        gen.skipped["shuffled-condition regeneration"] = "the generator takes no z (G(c))"
    elif reps is not None:
        covers = sensitivity_covers(G, z_dim, reps, cfg.sensitivity_z, seed, **kw)
        gen.grid = side.ext(covers).reshape(cfg.sensitivity_z, len(reps), -1)
    gen.draw_samples = sample_sheet_writer(G, z_dim, reps, **kw)


def evaluate_model(
    ds: PreparedDataset, run: RunPaths, model: str, cfg: EvalConfig, *, device_kind: str = "auto",
    features: str | None = None, n: int | None = None, seed: int | None = None, guidance: float | None = None,
) -> Evaluation:
    """Evaluate ``run``'s trained ``model`` (a GAN name or gan+condition id): load its checkpoint, then judge it
    as :func:`evaluate_generator` judges any generator; writes ``eval/<model>/metrics.json`` with plots.
    ``guidance``: a diffusion model's scale, written to ``eval/<model>@w<scale>/``."""
    cfg = eval_settings(cfg, features, n)
    seed = cfg.seed if seed is None else seed
    dev = pick_device(device_kind)
    timings: dict[str, float] = {}
    with timed(timings, "load"):
        G, meta = load_generator(run.model(model), dev, guidance=guidance)
    check_checkpoint_data(ds, run.model(model), model, meta)
    if meta["res"] not in ds.resolutions:
        res = meta["res"]
        raise UserError(f"{model} was trained at {res} px but dataset {ds.name!r} has no {res} px covers")
    condition = meta.get("condition") if meta["cond_dim"] > 0 else None
    conditions = condition_vectors(ds, condition, run)
    provenance = {k: meta.get(k) for k in ("checkpoint", "images_seen", "guidance")} | {"gan": meta.get("model")}
    info = judged_meta(model, TOOLKIT, run, provenance)
    out = run.eval(eval_name(model, guidance))
    return _judge_callable(G, ds, condition, conditions, cfg, seed, dev, out, info, (-1.0, 1.0), timings)


# ----------------------------------------------------------------------------------------- a set of images
def load_images(images: Any, asked: Asked | None = None, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Images as uint8 NHWC: a folder (files named by the manifest), an ``.npy``/``.npz`` array, or an array."""
    if isinstance(images, (str, Path)):
        path = Path(images)
        if path.is_dir():
            if asked is None or asked.files is None:
                raise UserError(f"{path} is a folder: give a manifest with file,track_id[,z_id] columns")
            return read_image_files(path, asked.files, asked.source)
        if path.suffix.lower() in ARRAY_SUFFIXES and path.is_file():
            return as_uint8_nhwc(read_image_array(path), value_range, str(path))
        raise UserError(f"no image folder or .npy/.npz array at {path}")
    return as_uint8_nhwc(images, value_range)


def evaluate_images(
    images: Any, asked: Any, dataset: PreparedDataset | str, *, condition: str | None,
    run: RunPaths | str | None = None, name: str = "external", out_dir: str | Path | None = None,
    features: str | None = None, cfg: EvalConfig | None = None, seed: int | None = None, device: str = "auto",
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> Evaluation:
    """Judge covers generated elsewhere: ``images`` (a folder, an ``.npy``/``.npz`` (N, H, W, 3) uint8 array, or an
    array/tensor) and ``asked``, what each was generated for: a CSV/Parquet manifest ``file,track_id[,z_id]``,
    track ids, or (N, d) condition vectors. Images sharing a ``z_id`` give the sensitivity test; without them it
    is skipped and the verdict says so. Other arguments as :func:`evaluate_generator`.
    """
    ds, run = as_dataset(dataset), as_run(run)
    cfg = eval_settings(cfg, features, None)
    seed = cfg.seed if seed is None else seed
    dev, timings = pick_device(device), {}
    conditions = condition_vectors(ds, condition, run)
    folder = isinstance(images, (str, Path)) and Path(images).is_dir()
    with timed(timings, "load"):
        who = None if asked is None else resolve_asked(ds, asked, need_files=folder)
        if who is None and conditions is not None:
            raise UserError("a conditional judgement needs `asked`: what each image was generated for")
        pixels = load_images(images, who, value_range)
        who = who or _random_tracks(ds, len(pixels), seed)
        check_count(who, len(pixels))
    out = output_folder(out_dir, run, name)
    if out is not None:
        check_writable(out, "evaluation folder")
    res = check_square(pixels, ds.resolutions, "images", f"dataset {ds.name!r}")
    with timed(timings, "real_features"):
        side = real_side(ds, res, condition if conditions is not None else None, conditions, cfg, dev, seed=seed)
    gen = generated_from_images(side, who, pixels)
    meta = judged_meta(name, "images", run, {"inputs": {"images": _describe(images), "asked": who.source}})
    return judge(side, gen, cfg, out, meta=meta, seed=seed, device=dev, timings=timings)


def _describe(images: Any) -> str:
    return str(images) if isinstance(images, (str, Path)) else f"array {tuple(np.shape(images))}"


def _random_tracks(ds: PreparedDataset, n: int, seed: int) -> Asked:
    """An unconditional set is scored against random test tracks (the negative control), drawn as evaluation does."""
    rows = labelled_test_rows(ds)
    drawn = rows[np.random.default_rng(seed).integers(0, len(rows), size=n)]
    return Asked(rows=drawn, vectors=None, files=None, z_ids=None, source="random test tracks")


def generated_from_images(
    side: RealSide, who: Asked, pixels: np.ndarray | None, *, features: np.ndarray | None = None,
    image_rows: np.ndarray | None = None,
) -> Generated:
    """The generated side from fixed covers (or their ``features``, with the pixels of ``image_rows`` only)."""
    conditional = side.conditions is not None
    if who.rows is not None:
        asked_y, gen_c = side.labels_of_rows(who.rows), side.conditions[who.rows] if conditional else None
    else:
        if not conditional:
            raise UserError("condition vectors were given as `asked` but no condition: name the condition")
        asked_y, gen_c = side.labels_of_vectors(who.vectors, who.source), who.vectors
    feats = side.ext(pixels) if features is None else features
    gen = Generated(features=feats, asked_y=asked_y, gen_c=gen_c if conditional else None, asked_rows=who.rows,
                    images=pixels, image_rows=image_rows)  # fmt: skip
    if pixels is not None and image_rows is None:
        gen.draw_samples = image_sheet_writer(pixels, asked_y, side.n_classes)
    gen.skipped["shuffled-condition regeneration"] = "fixed images cannot be generated again"
    if not conditional:
        return gen
    if who.z_ids is None:
        gen.skipped["sensitivity"] = "no z_id column: no images share a latent"
        return gen
    keys = who.rows.tolist() if who.rows is not None else [v.tobytes() for v in who.vectors]
    gen.grid, why = grid_from_groups(feats, who.z_ids, keys)
    if gen.grid is None:
        gen.skipped["sensitivity"] = why
    return gen


# ------------------------------------------------------------------------------------- exporting samples
def export_samples(
    run: RunPaths, model: str, out_dir: str | Path, cfg: EvalConfig, *, n: int | None = None,
    seed: int | None = None, device_kind: str = "auto",
) -> Path:
    """Covers of a trained model as PNG files plus ``manifest.csv`` (file,track_id,z_id): exactly the covers
    ``bench evaluate`` draws with the same n and seed, so judging them with :func:`evaluate_images` reproduces
    its numbers (every test that does not need to generate again)."""
    cfg = eval_settings(cfg, None, n)
    G, meta = load_generator(run.model(model), pick_device(device_kind))
    ds = PreparedDataset.open(trained_on(run, model))
    check_checkpoint_data(ds, run.model(model), model, meta)
    condition = meta.get("condition") if meta["cond_dim"] > 0 else None
    conditions = condition_vectors(ds, condition, run)
    rng, n = np.random.default_rng(cfg.seed if seed is None else seed), cfg.n
    asked, z = _requests(ds, rng, n, meta["z_dim"])
    images = generate_covers(G, z, None if conditions is None else conditions[asked], batch=cfg.batch)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [f"{i:06d}.png" for i in range(n)]
    for f, img in zip(files, images, strict=True):
        save_png(img, out / f)
    ids = ds.tracks["track_id"].astype(str).to_numpy()[asked]
    pd.DataFrame({"file": files, "track_id": ids, "z_id": [str(i) for i in range(n)]}).to_csv(
        out / "manifest.csv", index=False
    )
    return out / "manifest.csv"


# ------------------------------------------------------------------------------------------------- runs
def evaluate_relationship(ds: PreparedDataset, run: RunPaths, cfg: EvalConfig, *, device_kind: str = "auto") -> dict:
    """The relationship probe on real pairs (no model): do real covers predict genre (and audio)?

    Reuses ``data/<name>/probe.json`` (``bench data probe``: artist-grouped k-fold over all labelled covers) while
    the dataset's content, the extractor (``cfg.features``) and the fold count are unchanged; otherwise runs the
    same probe here with ``cfg.features`` (covernet scores val+test covers only, never the covers it was fit on)
    and this run's audio embeddings.
    """
    from benchmark.pipeline.probe import probe_dataset, probe_matches, read_probe

    probe = read_probe(ds)
    source = "bench data probe (data/<name>/probe.json)"
    if not probe_matches(probe, cfg.features, cfg.relationship_folds):  # the verdicts' extractor, not another
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
    """The dataset ``model`` was trained on, as its training recorded it (its folder when opened by path)."""
    saved = json.loads((run.model(model) / "train_config.json").read_text())
    return saved.get("dataset_path") or saved["dataset"]


def check_evaluation_n(run: RunPaths, cfg: Config, model: str = "all", dataset: str | None = None) -> None:
    """``cfg.eval.n`` against the caps of every model ``bench evaluate`` would evaluate (their datasets' test
    tracks, their cover size), before any of them is loaded."""
    for m in models_to_evaluate(run, cfg, model):
        train_cfg = read_json_object(run.model(m) / "train_config.json", "training record",
                                     f"train {m} again (`bench train {m} --run {run.name}`)")
        ds = PreparedDataset.open(dataset or trained_on(run, m))
        res = int(train_cfg.get("res") or max(ds.resolutions))
        check_covers(cfg.eval.n, n_test=len(ds.split_rows("test")), bytes_per_cover=evaluation_bytes_per_cover(res),
                     where=f"dataset {ds.name!r}")


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
        data = PreparedDataset.open(dataset or trained_on(run, m))  # issue 23: a name, or the folder it was given
        if dataset is None:  # the data it was trained on, unless replaced since (bench data ... --force)
            check_trained_data(data, run, m)
        check_writable(run.eval(eval_name(m, w)), "evaluation folder")
        check_writable(data.paths.cache_dir, "the dataset's feature cache")
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
