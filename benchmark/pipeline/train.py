"""``bench train all`` as a library call: the encoders the run needs, then every GAN the preset lists.

Designed to be rerun: an encoder whose embeddings exist is not fitted again, a GAN whose ``summary.json`` says
finished is skipped, and one with checkpoints resumes from its newest, so a rerun after a crash carries on.

Which encoders: ``"needed"`` (the default) fits ``genre`` and ``attributes`` (no training, instant) plus every
encoder a model of the GAN x condition matrix is conditioned on (``stylegan_cond+cnn`` needs ``cnn``; a plain
conditional GAN needs ``train.condition``); ``"all"`` fits every encoder (rnn and cnn are the slow ones);
``"none"`` fits nothing; or a comma-separated list. A condition that is no built-in encoder is an outside embedding
(``bench encode --from-file``): never fitted, it must be registered in the run before any GAN trains.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.config.load import dump_config
from core.config.names import is_builtin_condition
from core.config.schema import Config
from core.data.prepared import PreparedDataset
from core.paths import RunPaths
from models.gans.train.checkpoint import latest_checkpoint
from models.gans.train.distributed import is_main_process
from models.gans.train.loop import model_is_finished, train_gan

CHEAP_ENCODERS = ("genre", "attributes")


@dataclass
class StageResult:
    """What one stage of ``train_all`` did: ``trained``, ``resumed``, ``skipped``, ``stopped`` or ``registered``
    (an outside embedding the run holds already)."""

    kind: str  # "encoder" or "gan"
    name: str
    status: str
    seconds: float
    images_seen: int = 0
    images_per_s: float = 0.0
    directory: Path | None = None


def write_run_config(run: RunPaths, cfg: Config) -> Path:
    """The resolved configuration of the run, for people and for later stages (rank 0 only)."""
    if is_main_process():
        run.root.mkdir(parents=True, exist_ok=True)
        tmp = run.config.with_name(f".{run.config.name}.tmp")
        tmp.write_text(dump_config(cfg), encoding="utf-8")
        tmp.replace(run.config)
    return run.config


def encoders_for(cfg: Config, which: str | Sequence[str] = "needed") -> list[str]:
    """Resolve the ``encoders`` choice of ``train_all`` to encoder names (canonical order)."""
    from models.encoders.store import resolve_names

    if isinstance(which, str) and which.strip() == "none":
        return []
    if isinstance(which, str) and which.strip() == "needed":
        needed = {cfg.train.condition_of(m) for m in cfg.train.models} - {None}
        return resolve_names([*CHEAP_ENCODERS, *sorted(n for n in needed if is_builtin_condition(n))])
    return resolve_names(which)


def outside_conditions(cfg: Config, models: Sequence[str] | None = None) -> list[str]:
    """Conditions of the models that no built-in encoder makes: outside embeddings, registered, never fitted."""
    found = {cfg.train.condition_of(m) for m in models or cfg.train.models} - {None}
    return sorted(n for n in found if not is_builtin_condition(n))


def check_outside_conditions(ds: PreparedDataset, run: RunPaths, cfg: Config, models: Sequence[str] | None = None
                             ) -> list[StageResult]:
    """Every outside embedding the models need is registered in ``run`` for ``ds`` (else the one line that says
    how to register it), before anything is fitted or trained."""
    from models.encoders.external import load_external

    out = []
    for name in outside_conditions(cfg, models):
        load_external(ds, name, run)
        out.append(StageResult("encoder", name, "registered", 0.0, directory=run.encoder(name)))
    return out


def encoder_done(run: RunPaths, name: str) -> bool:
    from models.encoders.store import EMBEDDINGS_FILE, EVAL_FILE

    d = run.encoder(name)
    return (d / EMBEDDINGS_FILE).is_file() and (d / EVAL_FILE).is_file()


def train_all(
    ds: PreparedDataset,
    run: RunPaths,
    cfg: Config,
    *,
    encoders: str | Sequence[str] = "needed",
    models: Sequence[str] | None = None,
    stop_after_kimg: float | None = None,
) -> list[StageResult]:
    """Fit the encoders, then train each GAN of ``cfg.train.models`` (or ``models``), skipping finished work."""
    write_run_config(run, cfg)
    out: list[StageResult] = check_outside_conditions(ds, run, cfg, models)
    todo = [e for e in encoders_for(cfg, encoders) if e != "attributes" or ds.attributes_available]
    if todo and is_main_process():
        from benchmark.pipeline.encode import encode

        for name in todo:
            t0 = time.perf_counter()
            if encoder_done(run, name):
                out.append(StageResult("encoder", name, "skipped", 0.0, directory=run.encoder(name)))
                continue
            encode(ds, run, [name], cfg, workers=cfg.data.workers)
            out.append(StageResult("encoder", name, "trained", time.perf_counter() - t0, directory=run.encoder(name)))
    for name in models or cfg.train.models:
        directory = run.model(name)
        if model_is_finished(directory):
            out.append(StageResult("gan", name, "skipped", 0.0, directory=directory))
            continue
        resuming = latest_checkpoint(directory / "checkpoints") is not None
        t0 = time.perf_counter()
        r = train_gan(ds, run, name, cfg.train, device_kind=cfg.device, resume=True, stop_after_kimg=stop_after_kimg)
        status = "stopped" if not r.finished else ("resumed" if resuming else "trained")
        out.append(StageResult("gan", name, status, time.perf_counter() - t0, r.images_seen, r.images_per_s, directory))
    return out
