"""``train_gan``: the one training loop for all six GANs and the diffusion model, as named steps over one
``Training`` state.

Counts progress in real images shown (kimg). A GAN iteration runs ``n_critic`` D steps and one G step through the
model's loss object (``models.gans.losses``); a diffusion model has no D (``D`` is None throughout) and one
denoising step per iteration (``models.diffusion.step``); both are built by ``models.registry``. Under
bf16 autocast with channels_last on CUDA and in fp32 on CPU, with a non-finite guard that skips and counts.
Rank 0 writes checkpoints (atomic, last K kept), sample grids, ``stats.jsonl`` and ``summary.json``.
``resume=True`` restores everything from the newest checkpoint, so a killed run continues where it left off
and, on CPU with a fixed seed, reproduces the uninterrupted run's losses exactly.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from core.config.hparams import ARCHITECTURE_KEYS
from core.config.names import parse_model_id
from core.config.schema import TrainConfig
from core.data.fingerprint import KEY as FINGERPRINT
from core.data.loader import to_float
from core.data.prepared import PreparedDataset
from core.devices import pick_device
from core.errors import UserError
from core.jsonfiles import read_json_mapping, write_json_atomic
from core.paths import RunPaths
from core.progress import progress_bar
from models.conditions import load_conditions, usable_rows
from models.diffusion.step import DenoiserStepper
from models.gans.registry import GanSpec
from models.gans.train import checkpoint as ck
from models.gans.train.distributed import Dist, average_buffers, barrier, broadcast_module, init_distributed
from models.gans.train.resume import check_resume_matches, check_same_data, check_training_length
from models.gans.train.snapshot import grid_conditions, snapshot_grid
from models.gans.train.stats import StatsWriter, Window, grad_norm, memory_mb, window_means
from models.gans.train.step import NonFiniteError, Stepper, new_counters
from models.registry import build_model

if TYPE_CHECKING:
    from models.diffusion.registry import DiffusionSpec

SUMMARY = "summary.json"
__all__ = [
    "NonFiniteError", "TrainResult", "check_checkpoint_data", "check_trainable", "check_trained_data",
    "model_is_finished", "train_gan",
]


@dataclass
class TrainResult:
    model: str
    directory: Path
    images_seen: int
    finished: bool
    seconds: float
    images_per_s: float
    nonfinite: int


def model_is_finished(directory: Path) -> bool:
    p = directory / SUMMARY
    return p.is_file() and bool(json.loads(p.read_text()).get("finished"))


def build_for_training(name: str, cfg: TrainConfig, cond_dim: int) -> tuple[GanSpec | DiffusionSpec, dict[str, Any]]:
    """Model id ``name`` (a GAN, or ``gan+condition``) built with its effective per-model settings."""
    m = cfg.for_model(name)
    hp = dict(m.hparams)
    hp.setdefault("batch", m.batch)
    mid = parse_model_id(name)
    spec = build_model(mid.gan, res=m.res, cond_dim=cond_dim if mid.conditional else 0, size=m.size, **hp)
    return spec, {"res": m.res, "kimg": m.kimg, "batch": m.batch, "size": m.size, "hparams": hp}


def train_gan(
    ds: PreparedDataset,
    run: RunPaths,
    name: str,
    cfg: TrainConfig,
    *,
    device_kind: str = "auto",
    resume: bool = False,
    stop_after_kimg: float | None = None,
) -> TrainResult:
    """Train model id ``name`` (a GAN, or ``gan+condition``) on the dataset's training split into ``run.model(name)``.

    ``stop_after_kimg`` ends the process early (as if killed after that point; used by tests and time-boxed runs)
    without marking the model finished. The steps run in this order (the order fixes every random draw).
    """
    t = Training(ds=ds, run=run, name=name, cfg=cfg, stop_after_kimg=stop_after_kimg)
    place(t, device_kind)
    build(t)
    restore(t, resume)
    prepare_data(t)
    write_train_config(t)
    run_iterations(t)
    return write_summary(t)


@dataclass
class Training:
    """What the steps of one ``train_gan`` call share; each step fills in the fields it owns."""

    ds: PreparedDataset
    run: RunPaths
    name: str
    cfg: TrainConfig
    stop_after_kimg: float | None
    device: torch.device = torch.device("cpu")
    dist: Dist | None = None
    condition: str | None = None
    conditions: np.ndarray | None = None  # (N, d) float32 condition per track, None when unconditional
    cond_dim: int = 0
    spec: GanSpec | DiffusionSpec | None = None
    eff: dict[str, Any] = field(default_factory=dict)  # effective res, kimg, batch, size, hparams
    local_batch: int = 0
    rows: np.ndarray | None = None  # training rows usable under the condition
    G: nn.Module | None = None
    D: nn.Module | None = None
    G_ema: nn.Module | None = None
    opt_G: torch.optim.Optimizer | None = None
    opt_D: torch.optim.Optimizer | None = None
    counters: dict[str, Any] = field(default_factory=new_counters)
    amp: bool = False
    start_path: Path | None = None  # the checkpoint resumed from
    loader: Iterator | None = None  # endless (images, condition) batches
    stats: StatsWriter | None = None
    t_start: float = 0.0
    done_before: int = 0  # images seen when this process started
    t_resume: float = 0.0

    @property
    def out_dir(self) -> Path:
        return self.run.model(self.name)

    @property
    def ckpt_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    @property
    def total(self) -> int:
        return int(round(self.eff["kimg"] * 1000))


def place(t: Training, device_kind: str) -> None:
    """The device, and this process's rank when launched by torchrun."""
    t.device = pick_device(device_kind)
    t.dist = init_distributed(t.device.type)
    if t.device.type == "cuda":
        t.device = torch.device("cuda", t.dist.local_rank)


def build(t: Training) -> None:
    """Conditions, networks (initialised from the seed alone) and optimisers, after checking the schedule fits."""
    mid = parse_model_id(t.name)
    t.condition = t.cfg.condition_of(t.name)
    t.conditions = load_conditions(t.ds, t.condition, t.run) if mid.conditional else None
    t.cond_dim = 0 if t.conditions is None else t.conditions.shape[1]
    torch.manual_seed(t.cfg.seed)  # weight init depends on the seed only, not on what ran before in this process
    t.spec, t.eff = build_for_training(t.name, t.cfg, t.cond_dim)
    _check_fits(t)
    t.G, t.D = t.spec.G.to(t.device), (t.spec.D.to(t.device) if t.spec.D is not None else None)
    t.amp = t.cfg.amp and t.device.type == "cuda"
    if t.device.type == "cuda" and t.cfg.channels_last:
        t.G = t.G.to(memory_format=torch.channels_last)
        t.D = t.D.to(memory_format=torch.channels_last) if t.D is not None else None
    t.G_ema = t.spec.make_G_ema().to(t.device) if t.spec.has_ema else None
    t.opt_G, t.opt_D = t.spec.make_optimizers()


def _check_fits(t: Training) -> None:
    t.rows = usable_rows(t.ds, t.condition or "none", t.ds.split_rows("train"))
    t.local_batch = check_fits(t.name, t.eff, t.ds, len(t.rows), t.dist.world, t.stop_after_kimg)


def check_fits(name: str, eff: dict[str, Any], ds: PreparedDataset, n_rows: int, world: int,
               stop_after_kimg: float | None = None) -> int:
    """UserError unless the schedule, the batch and the resolution fit the dataset; returns the per-rank batch."""
    res, batch = eff["res"], eff["batch"]
    check_training_length(eff["kimg"], batch, stop_after_kimg)
    if batch % world:
        raise UserError(f"batch {batch} is not divisible by the {world} processes")
    if res not in ds.resolutions:
        have = ", ".join(map(str, ds.resolutions))
        raise UserError(
            f"{name} trains at {res} px but dataset {ds.name!r} has {have} px covers "
            f"(synthesise with --res {res}, or --set train.res=...)"
        )
    if n_rows < batch // world:
        raise UserError(f"only {n_rows} training covers for batch {batch}")
    return batch // world


def check_trainable(ds: PreparedDataset, run: RunPaths, name: str, cfg: TrainConfig, *, resume: bool,
                    stop_after_kimg: float | None = None, conditions: bool = True) -> None:
    """What ``train_gan`` would refuse, found before anything is written (the run's config.yaml included): the
    condition vectors (``conditions=False`` skips them: ``train all`` fits its encoders afterwards), the networks'
    settings, the schedule against the dataset, and the run a resume continues (same settings, same data)."""
    mid = parse_model_id(name)
    condition = cfg.condition_of(name)
    cond_dim = 1 if mid.conditional else 0  # the networks' shape checks do not depend on it
    if mid.conditional and conditions:
        cond_dim = load_conditions(ds, condition, run).shape[1]
    spec, eff = build_for_training(name, cfg, cond_dim)
    rows = usable_rows(ds, condition or "none", ds.split_rows("train"))
    check_fits(name, eff, ds, len(rows), int(os.environ.get("WORLD_SIZE", "1")), stop_after_kimg)
    out_dir = run.model(name)
    if not ck.list_checkpoints(out_dir / "checkpoints"):
        return
    if not resume:
        raise UserError(_ALREADY.format(out_dir=out_dir, name=name))
    now = {"model": name, "dataset": ds.name, "condition": condition, **eff, "z_dim": spec.z_dim,
           "hparams": spec.hparams, FINGERPRINT: ds.fingerprint}
    check_resume_matches(out_dir / "train_config.json", {}, now, ARCHITECTURE_KEYS)


def check_trained_data(ds: PreparedDataset, run: RunPaths, name: str) -> None:
    """UserError when model ``name`` of ``run`` was trained on content of ``ds`` that was replaced since (as its
    ``train_config.json`` records; a missing or unreadable one says nothing)."""
    saved = read_json_mapping(run.model(name) / "train_config.json")
    if saved is not None:
        check_checkpoint_data(ds, run.model(name), name, saved)


def check_checkpoint_data(ds: PreparedDataset, directory: Path, name: str, meta: dict[str, Any]) -> None:
    """UserError when a training record (a checkpoint's own ``meta``, which travels without its train_config.json,
    or train_config.json) says it was trained on content of ``ds`` replaced since; records older than the
    fingerprint pass."""
    check_same_data(directory / "train_config.json", meta, {"model": name, "dataset": ds.name,
                                                             FINGERPRINT: ds.fingerprint})


_ALREADY = "{out_dir} already holds a run of {name}: pass --resume to continue it, or use another --run"


def restore(t: Training, resume: bool) -> None:
    """Continue from the newest readable checkpoint (refusing other settings), or start fresh; then every rank
    holds the same weights and its own RNG stream."""
    ckpt_dir, out_dir = t.ckpt_dir, t.out_dir
    start_path = ck.resume_checkpoint(ckpt_dir) if resume else None  # all unreadable: UserError, nothing overwritten
    rng = None
    if start_path is not None:
        rng = _load_state(t, ck.load_checkpoint(start_path))
    elif out_dir.exists() and ck.list_checkpoints(ckpt_dir) and not resume:
        raise UserError(_ALREADY.format(out_dir=out_dir, name=t.name))
    t.start_path = start_path
    for module in (t.G, t.D, t.G_ema):
        if module is not None:
            broadcast_module(module, t.dist)
    if rng is not None:
        ck.set_rng_state(rng, t.device)
    else:
        torch.manual_seed(t.cfg.seed * 1000 + t.dist.rank)


def _load_state(t: Training, state: dict[str, Any]) -> Any:
    """Load a checkpoint into the built networks, optimisers, loss and counters; returns this rank's RNG state."""
    ident = {"model": t.name, "dataset": t.ds.name, "condition": t.condition, FINGERPRINT: t.ds.fingerprint}
    ident.update(t.eff, cond_dim=t.cond_dim, z_dim=t.spec.z_dim, hparams=t.spec.hparams)
    check_checkpoint_data(t.ds, t.out_dir, t.name, json.loads(state.get("meta") or "{}"))  # its own record first
    check_resume_matches(t.out_dir / "train_config.json", state, ident, ARCHITECTURE_KEYS)  # refuse other settings
    t.G.load_state_dict(state["G"])
    if t.D is not None:
        t.D.load_state_dict(state["D"])
    if t.G_ema is not None and "G_ema" in state:
        t.G_ema.load_state_dict(state["G_ema"])
    ck.load_optimizer_state(t.opt_G, state["opt_G"])
    if t.opt_D is not None:
        ck.load_optimizer_state(t.opt_D, state["opt_D"])
    t.spec.loss.load_state_dict(state["loss"])
    t.counters.update({k: state["counters"][k] for k in t.counters if k in state["counters"]})
    rank = t.dist.rank
    return state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0]


def prepare_data(t: Training) -> None:
    """The training batches, resuming at the batch the checkpoint stopped at."""
    from models.gans.train.data import training_loader

    t.loader = training_loader(
        t.ds,
        t.eff["res"],
        t.conditions,
        t.rows,
        batch=t.local_batch,
        seed=t.cfg.seed,
        rank=t.dist.rank,
        world=t.dist.world,
        start_batches=t.counters["batches"],
        workers=t.cfg.workers,
    )


def write_train_config(t: Training) -> None:
    """``train_config.json`` (what the run is, for people and for resume checks); rank 0 only."""
    t.stats = StatsWriter(t.out_dir, enabled=t.dist.is_main)
    if not t.dist.is_main:
        return
    t.out_dir.mkdir(parents=True, exist_ok=True)
    eff, spec = t.eff, t.spec
    write_json_atomic(
        t.out_dir / "train_config.json",
        {
            "model": t.name,
            "gan": parse_model_id(t.name).gan,
            "dataset": t.ds.name,
            FINGERPRINT: t.ds.fingerprint,
            **({} if t.ds.location == t.ds.name else {"dataset_path": t.ds.location}),  # evaluate reopens it there
            "condition": t.condition,
            "cond_dim": t.cond_dim,
            "z_dim": spec.z_dim,
            "res": eff["res"],
            "batch": eff["batch"],
            "kimg": eff["kimg"],
            "size": eff["size"],
            "hparams": spec.hparams,
            "world_size": t.dist.world,
            "device": str(t.device),
            "amp_bf16": t.amp,
            "seed": t.cfg.seed,
        },
    )
    if t.start_path is not None:
        t.stats.truncate_after(t.counters["images_seen"])


def run_iterations(t: Training) -> None:
    """Iterate until the schedule (or ``stop_after_kimg``) is reached, logging, drawing and checkpointing on the
    way at their kimg intervals."""
    cfg, batch = t.cfg, t.eff["batch"]
    stop_at = t.total if t.stop_after_kimg is None else min(t.total, int(round(t.stop_after_kimg * 1000)))
    every = {k: max(batch, int(round(getattr(cfg, f"{k}_kimg") * 1000))) for k in ("snapshot", "checkpoint", "log")}
    log = LogWindow()
    t.t_start = time.perf_counter() - t.counters["train_seconds"]
    cond_rows = grid_conditions(t.conditions, t.ds.genre_idx, 16) if t.conditions is not None else None
    stepper = _stepper(t)
    feed = _batches(t)
    t.done_before = t.counters["images_seen"]
    t.t_resume = time.perf_counter()
    with progress_bar(f"train {t.name}", t.total) as bar:
        bar.advance(t.done_before)
        while t.counters["images_seen"] < stop_at:
            seen0 = t.counters["images_seen"]
            for st in stepper.iteration(feed):
                log.add(st)
            seen = t.counters["images_seen"]
            log.n += seen - seen0
            bar.advance(seen - seen0)
            crossed = {k: seen // e > seen0 // e or seen >= stop_at for k, e in every.items()}
            if crossed["log"]:
                stepper.sync_nonfinite()
                t.stats.write(log.row(t, seen))
                log = LogWindow()
            if crossed["snapshot"] and t.dist.is_main:
                grid = t.out_dir / "samples" / f"samples-{seen:09d}.png"
                snapshot_grid(t.G_ema or t.G, t.spec.z_dim, cond_rows, grid)
            if crossed["checkpoint"]:
                stepper.sync_nonfinite()
                save_checkpoint(t, seen)
    stepper.sync_nonfinite()


class LogWindow:
    """The per-step values since the last ``stats.jsonl`` line, the images they cover and when it began."""

    def __init__(self) -> None:
        self.values: Window = {}
        self.n = 0
        self.t0 = time.perf_counter()

    def add(self, step: dict[str, Any]) -> None:
        skipped = step.get("skipped")
        for k, v in step.items():
            if k != "skipped":
                self.values.setdefault(k, []).append((v.detach().float().reshape(()), skipped))

    def row(self, t: Training, seen: int) -> dict[str, Any]:
        dt = time.perf_counter() - self.t0
        row = {
            "images_seen": seen,
            "kimg": seen / 1000,
            "d_steps": t.counters["d_steps"],
            "g_steps": t.counters["g_steps"],
            "images_per_s": self.n / max(dt, 1e-9),
            "s_per_kimg": dt / max(self.n / 1000, 1e-9),
            "grad_norm/G": grad_norm(t.G),
            "grad_norm/D": grad_norm(t.D) if t.D is not None else None,  # dropped below for a diffusion model
            "memory_mb": memory_mb(t.device),
            "nonfinite": t.counters["nonfinite"],
        }
        row.update(window_means(self.values))
        if t.D is None:
            del row["grad_norm/D"]
        return row


def _stepper(t: Training) -> Stepper:
    cfg = t.cfg
    kind = Stepper if t.spec.D is not None else DenoiserStepper  # a diffusion model: denoising steps, no D
    return kind(
        t.spec,
        t.G,
        t.D,
        t.opt_G,
        t.opt_D,
        batch=t.eff["batch"],
        local_batch=t.local_batch,
        G_ema=t.G_ema,
        dist=t.dist,
        amp=t.amp,
        max_nonfinite=cfg.max_nonfinite,
        compile=cfg.compile and t.device.type == "cuda",
        counters=t.counters,
    )


def _batches(t: Training):
    """Endless (images in [-1, 1], condition or None) batches on the training device."""
    channels_last = t.device.type == "cuda" and t.cfg.channels_last
    while True:
        images, c = next(t.loader)
        x = to_float(images.to(t.device, non_blocking=True))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, (c.to(t.device, non_blocking=True) if t.conditions is not None else None)


def save_checkpoint(t: Training, seen: int) -> None:
    """Average replicated buffers, gather every rank's RNG and write the checkpoint (rank 0), then wait."""
    for module in (t.G, t.D, t.G_ema):
        if module is not None:
            average_buffers(module, t.dist)
    state = checkpoint_state(t)
    if t.dist.is_main:
        ck.save_checkpoint(state, t.ckpt_dir, seen, t.cfg.keep_checkpoints)
    barrier(t.dist)


def checkpoint_state(t: Training) -> dict[str, Any]:
    """Everything a resume needs, as tensors and plain values (loadable with ``weights_only=True``)."""
    from torch.distributed import all_gather_object, is_initialized

    rng = ck.rng_state(t.device)
    rngs = [rng]
    if t.dist.enabled and is_initialized():
        rngs = [None] * t.dist.world
        all_gather_object(rngs, rng)
    t.counters["train_seconds"] = time.perf_counter() - t.t_start
    spec, eff = t.spec, t.eff
    meta = {"res": eff["res"], "cond_dim": t.cond_dim, "z_dim": spec.z_dim, "size": eff["size"],
            "hparams": spec.hparams, "condition": t.condition, "model_id": t.name, "dataset": t.ds.name,
            FINGERPRINT: t.ds.fingerprint}  # the data it learnt from, checked where it is loaded
    return {
        "format": 1,
        "model": parse_model_id(t.name).gan,
        "G": t.G.state_dict(),
        "D": t.D.state_dict() if t.D is not None else {},
        "G_ema": t.G_ema.state_dict() if t.G_ema is not None else {},
        "opt_G": t.opt_G.state_dict(),
        "opt_D": t.opt_D.state_dict() if t.opt_D is not None else {},
        "loss": spec.loss.state_dict(),
        "counters": dict(t.counters),
        "rng": rngs,
        "meta": json.dumps(meta),
    }


def write_summary(t: Training) -> TrainResult:
    """``summary.json`` (finished or not, how fast) and the result handed back to the caller."""
    seen, counters = t.counters["images_seen"], t.counters
    seconds = time.perf_counter() - t.t_start
    finished = seen >= t.total
    rate = (seen - t.done_before) / max(time.perf_counter() - t.t_resume, 1e-9)
    result = TrainResult(t.name, t.out_dir, seen, finished, seconds, rate, counters["nonfinite"])
    if t.dist.is_main:
        checkpoints = ck.list_checkpoints(t.ckpt_dir)
        write_json_atomic(
            t.out_dir / SUMMARY,
            {
                "model": t.name,
                "finished": finished,
                "images_seen": seen,
                "kimg": t.eff["kimg"],
                "train_seconds": seconds,
                "images_per_s": seen / max(seconds, 1e-9),
                "nonfinite": counters["nonfinite"],
                "world_size": t.dist.world,
                "device": str(t.device),
                "final_checkpoint": checkpoints[-1].name if checkpoints else None,
            },
        )
    t.stats.close()
    return result
