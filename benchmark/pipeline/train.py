"""``bench train all`` as a library call: the encoders the run needs, then every GAN the preset lists.

Designed to be rerun: an encoder whose embeddings exist (made from the dataset's current content) is not fitted
again, a GAN whose ``summary.json`` says finished is skipped, and one with checkpoints resumes from its newest, so
a rerun after a crash carries on. Every GAN is checked before anything is written, and the run is locked.

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

from benchmark.pipeline.locks import run_lock
from core.config.load import dump_config
from core.config.names import is_builtin_condition, model_family
from core.config.schema import Config
from core.data.fingerprint import KEY as FINGERPRINT
from core.data.prepared import PreparedDataset
from core.paths import RunPaths
from models.gans.train.checkpoint import latest_checkpoint
from models.gans.train.distributed import is_main_process
from models.gans.train.loop import TrainResult, check_trainable, check_trained_data, model_is_finished, train_gan

CHEAP_ENCODERS = ("genre", "attributes")


@dataclass
class StageResult:
    """What one stage of ``train_all`` did: ``trained``, ``resumed``, ``skipped``, ``stopped`` or ``registered``
    (an outside embedding the run holds already)."""

    kind: str  # "encoder" or "gan" (any generator, diffusion included: the stages callers tell apart)
    name: str
    status: str
    seconds: float
    images_seen: int = 0
    images_per_s: float = 0.0
    directory: Path | None = None

    @property
    def label(self) -> str:
        """What the stage is, for people: ``encoder``, or the generator's family (``gan``, ``diffusion``)."""
        return model_family(self.name) if self.kind == "gan" else self.kind


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


def encoder_done(run: RunPaths, name: str, ds: PreparedDataset | None = None) -> bool:
    """Whether encoder ``name`` of ``run`` is complete (embeddings and eval.json; encodes are staged, so both are
    there or neither) and, given ``ds``, was made from that dataset's current content (else it is fitted again)."""
    from models.encoders.store import EMBEDDINGS_FILE, read_encoder_eval

    ev = read_encoder_eval(run, name)
    if ev is None or not (run.encoder(name) / EMBEDDINGS_FILE).is_file():
        return False
    return ds is None or (ev.get("dataset") == ds.name and ev.get(FINGERPRINT) == ds.fingerprint)


def train_model(
    ds: PreparedDataset, run: RunPaths, name: str, cfg: Config, *, resume: bool = False,
    stop_after_kimg: float | None = None,
) -> TrainResult:
    """``bench train MODEL``: checked first (nothing is written on a refusal, config.yaml included), then the
    run's config and the training, under the run's lock."""
    with run_lock(run):
        check_trainable(ds, run, name, cfg.train, resume=resume, stop_after_kimg=stop_after_kimg)
        write_run_config(run, cfg)
        return train_gan(ds, run, name, cfg.train, device_kind=cfg.device, resume=resume,
                         stop_after_kimg=stop_after_kimg)


def train_all(
    ds: PreparedDataset,
    run: RunPaths,
    cfg: Config,
    *,
    encoders: str | Sequence[str] = "needed",
    models: Sequence[str] | None = None,
    stop_after_kimg: float | None = None,
) -> list[StageResult]:
    """Fit the encoders, then train each GAN of ``cfg.train.models`` (or ``models``), skipping finished work.

    Every GAN is checked before anything is written (a refusal leaves the run as it was); the run is locked."""
    with run_lock(run):
        names = list(models or cfg.train.models)
        registered = check_outside_conditions(ds, run, cfg, names)  # outside embeddings: there, never fitted
        for name in names:
            if model_is_finished(run.model(name)):
                check_trained_data(ds, run, name)  # skipped below: only if made from the data there now
            else:
                check_trainable(ds, run, name, cfg.train, resume=True, stop_after_kimg=stop_after_kimg,
                                conditions=False)
        write_run_config(run, cfg)
        out = registered + _fit_encoders(ds, run, cfg, encoders)
        out += [_train_or_skip(ds, run, name, cfg, stop_after_kimg) for name in names]
    return out


def _fit_encoders(ds: PreparedDataset, run: RunPaths, cfg: Config, encoders: str | Sequence[str]) -> list[StageResult]:
    """The encoders ``train_all`` needs (rank 0 only): each fitted unless complete and made from ``ds`` as it is."""
    out: list[StageResult] = []
    todo = [e for e in encoders_for(cfg, encoders) if e != "attributes" or ds.attributes_available]
    if todo and is_main_process():
        from benchmark.pipeline.encode import encode

        for name in todo:
            t0 = time.perf_counter()
            if encoder_done(run, name, ds):
                out.append(StageResult("encoder", name, "skipped", 0.0, directory=run.encoder(name)))
                continue
            encode(ds, run, [name], cfg, workers=cfg.data.workers)
            out.append(StageResult("encoder", name, "trained", time.perf_counter() - t0, directory=run.encoder(name)))
    return out


def _train_or_skip(ds: PreparedDataset, run: RunPaths, name: str, cfg: Config, stop_after_kimg: float | None
                   ) -> StageResult:
    """One GAN of ``train_all``: skipped when finished, else trained (resumed from its newest checkpoint)."""
    directory = run.model(name)
    if model_is_finished(directory):
        return StageResult("gan", name, "skipped", 0.0, directory=directory)
    resuming = latest_checkpoint(directory / "checkpoints") is not None
    t0 = time.perf_counter()
    r = train_gan(ds, run, name, cfg.train, device_kind=cfg.device, resume=True, stop_after_kimg=stop_after_kimg)
    status = "stopped" if not r.finished else ("resumed" if resuming else "trained")
    return StageResult("gan", name, status, time.perf_counter() - t0, r.images_seen, r.images_per_s, directory)
