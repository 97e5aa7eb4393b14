"""``train_gan``: the one training loop for all six GANs.

Counts progress in images shown to D (kimg). Each iteration runs ``n_critic`` D steps and one G step through the
model's loss object (``models.gans.losses``), under bf16 autocast with channels_last on CUDA and in fp32 on CPU,
with a non-finite guard that skips and counts. Rank 0 writes checkpoints (atomic, last K kept), sample grids,
``stats.jsonl`` and ``summary.json``. ``resume=True`` restores everything from the newest checkpoint, so a killed run
continues where it left off and, on CPU with a fixed seed, reproduces the uninterrupted run's losses exactly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.config.names import parse_model_id
from core.config.schema import TrainConfig
from core.data.loader import to_float
from core.data.prepared import PreparedDataset
from core.devices import pick_device
from core.errors import UserError
from core.jsonfiles import write_json_atomic
from core.paths import RunPaths
from core.progress import progress_bar
from models.conditions import load_conditions, usable_rows
from models.gans.registry import ARCHITECTURE_KEYS, GanSpec, build_gan
from models.gans.train import checkpoint as ck
from models.gans.train.distributed import average_buffers, barrier, broadcast_module, init_distributed
from models.gans.train.resume import check_resume_matches, check_training_length
from models.gans.train.snapshot import grid_conditions, snapshot_grid
from models.gans.train.stats import StatsWriter, Window, grad_norm, memory_mb, window_means
from models.gans.train.step import NonFiniteError, Stepper, new_counters

SUMMARY = "summary.json"
__all__ = ["NonFiniteError", "TrainResult", "train_gan", "model_is_finished"]


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


def build_for_training(name: str, cfg: TrainConfig, cond_dim: int) -> tuple[GanSpec, dict[str, Any]]:
    """Model id ``name`` (a GAN, or ``gan+condition``) built with its effective per-model settings."""
    m = cfg.for_model(name)
    hp = dict(m.hparams)
    hp.setdefault("batch", m.batch)
    mid = parse_model_id(name)
    spec = build_gan(mid.gan, res=m.res, cond_dim=cond_dim if mid.conditional else 0, size=m.size, **hp)
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
    without marking the model finished.
    """
    device = pick_device(device_kind)
    d = init_distributed(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
    out_dir = run.model(name)
    ckpt_dir = out_dir / "checkpoints"
    mid = parse_model_id(name)
    conditional, condition = mid.conditional, cfg.condition_of(name)
    conditions = load_conditions(ds, condition, run) if conditional else None
    cond_dim = 0 if conditions is None else conditions.shape[1]
    torch.manual_seed(cfg.seed)  # weight init depends on the seed only, not on what ran before in this process
    spec, eff = build_for_training(name, cfg, cond_dim)
    res, batch, kimg = eff["res"], eff["batch"], eff["kimg"]
    check_training_length(kimg, batch, stop_after_kimg)
    if batch % d.world:
        raise UserError(f"batch {batch} is not divisible by the {d.world} processes")
    local_batch = batch // d.world
    if res not in ds.resolutions:
        have = ", ".join(map(str, ds.resolutions))
        raise UserError(
            f"{name} trains at {res} px but dataset {ds.name!r} has {have} px covers "
            f"(synthesise with --res {res}, or --set train.res=...)"
        )

    rows = usable_rows(ds, condition or "none", ds.split_rows("train"))
    if len(rows) < local_batch:
        raise UserError(f"only {len(rows)} training covers for batch {batch}")
    G, D = spec.G.to(device), spec.D.to(device)
    amp = cfg.amp and device.type == "cuda"
    if device.type == "cuda" and cfg.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    G_ema = spec.make_G_ema().to(device) if spec.has_ema else None
    opt_G, opt_D = spec.make_optimizers()
    counters = new_counters()

    start_path = ck.resume_checkpoint(ckpt_dir) if resume else None  # all unreadable: UserError, nothing overwritten
    if resume and start_path is None and (out_dir / SUMMARY).exists():
        start_path = None  # nothing to resume from: start fresh
    if start_path is not None:
        state = ck.load_checkpoint(start_path)
        ident = {"model": name, "dataset": ds.name, "condition": condition}
        ident.update(eff, cond_dim=cond_dim, z_dim=spec.z_dim, hparams=spec.hparams)
        check_resume_matches(out_dir / "train_config.json", state, ident, ARCHITECTURE_KEYS)  # refuse other settings
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        if G_ema is not None and "G_ema" in state:
            G_ema.load_state_dict(state["G_ema"])
        ck.load_optimizer_state(opt_G, state["opt_G"])
        ck.load_optimizer_state(opt_D, state["opt_D"])
        spec.loss.load_state_dict(state["loss"])
        counters.update({k: state["counters"][k] for k in counters if k in state["counters"]})
        rng = state["rng"][d.rank] if d.rank < len(state["rng"]) else state["rng"][0]
    elif out_dir.exists() and ck.list_checkpoints(ckpt_dir) and not resume:
        raise UserError(f"{out_dir} already holds a run of {name}: pass --resume to continue it, or use another --run")
    else:
        rng = None
    broadcast_module(G, d)
    broadcast_module(D, d)
    if G_ema is not None:
        broadcast_module(G_ema, d)
    if rng is not None:
        ck.set_rng_state(rng, device)
    else:
        torch.manual_seed(cfg.seed * 1000 + d.rank)

    from models.gans.train.data import training_loader

    loader = training_loader(
        ds,
        res,
        conditions,
        rows,
        batch=local_batch,
        seed=cfg.seed,
        rank=d.rank,
        world=d.world,
        start_batches=counters["batches"],
        workers=cfg.workers,
    )
    cond_rows = grid_conditions(conditions, ds.genre_idx, 16) if conditions is not None else None
    stats = StatsWriter(out_dir, enabled=d.is_main)
    if d.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            out_dir / "train_config.json",
            {
                "model": name,
                "gan": mid.gan,
                "dataset": ds.name,
                "condition": condition,
                "cond_dim": cond_dim,
                "z_dim": spec.z_dim,
                "res": res,
                "batch": batch,
                "kimg": kimg,
                "size": eff["size"],
                "hparams": spec.hparams,
                "world_size": d.world,
                "device": str(device),
                "amp_bf16": amp,
                "seed": cfg.seed,
            },
        )
        if start_path is not None:
            stats.truncate_after(counters["images_seen"])
    total = int(round(kimg * 1000))
    stop_at = total if stop_after_kimg is None else min(total, int(round(stop_after_kimg * 1000)))
    every = {k: max(batch, int(round(getattr(cfg, f"{k}_kimg") * 1000))) for k in ("snapshot", "checkpoint", "log")}
    window: Window = {}
    t_window, n_window = time.perf_counter(), 0
    t_start = time.perf_counter() - counters["train_seconds"]

    def batches():
        while True:
            images, c = next(loader)
            x = to_float(images.to(device, non_blocking=True))
            if device.type == "cuda" and cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, (c.to(device, non_blocking=True) if conditional else None)

    stepper = Stepper(
        spec,
        G,
        D,
        opt_G,
        opt_D,
        batch=batch,
        local_batch=local_batch,
        G_ema=G_ema,
        dist=d,
        amp=amp,
        max_nonfinite=cfg.max_nonfinite,
        compile=cfg.compile and device.type == "cuda",
        counters=counters,
    )
    feed = batches()

    def state_dict() -> dict[str, Any]:
        from torch.distributed import all_gather_object, is_initialized

        rng = ck.rng_state(device)
        rngs = [rng]
        if d.enabled and is_initialized():
            rngs = [None] * d.world
            all_gather_object(rngs, rng)
        counters["train_seconds"] = time.perf_counter() - t_start
        return {
            "format": 1,
            "model": mid.gan,
            "G": G.state_dict(),
            "D": D.state_dict(),
            "G_ema": G_ema.state_dict() if G_ema is not None else {},
            "opt_G": opt_G.state_dict(),
            "opt_D": opt_D.state_dict(),
            "loss": spec.loss.state_dict(),
            "counters": dict(counters),
            "rng": rngs,
            "meta": json.dumps(
                {
                    "res": res,
                    "cond_dim": cond_dim,
                    "z_dim": spec.z_dim,
                    "size": eff["size"],
                    "hparams": spec.hparams,
                    "condition": condition,
                    "model_id": name,
                }
            ),
        }

    done_before = counters["images_seen"]
    t_resume = time.perf_counter()
    with progress_bar(f"train {name}", total) as bar:
        bar.advance(done_before)
        while counters["images_seen"] < stop_at:
            seen0 = counters["images_seen"]
            for st in stepper.iteration(feed):
                skipped = st.get("skipped")
                for k, v in st.items():
                    if k != "skipped":
                        window.setdefault(k, []).append((v.detach().float().reshape(()), skipped))
            seen = counters["images_seen"]
            n_window += seen - seen0
            bar.advance(seen - seen0)
            crossed = {k: seen // e > seen0 // e or seen >= stop_at for k, e in every.items()}
            if crossed["log"]:
                stepper.sync_nonfinite()
                dt = time.perf_counter() - t_window
                row = {
                    "images_seen": seen,
                    "kimg": seen / 1000,
                    "d_steps": counters["d_steps"],
                    "g_steps": counters["g_steps"],
                    "images_per_s": n_window / max(dt, 1e-9),
                    "s_per_kimg": dt / max(n_window / 1000, 1e-9),
                    "grad_norm/G": grad_norm(G),
                    "grad_norm/D": grad_norm(D),
                    "memory_mb": memory_mb(device),
                    "nonfinite": counters["nonfinite"],
                }
                row.update(window_means(window))
                stats.write(row)
                window, t_window, n_window = {}, time.perf_counter(), 0
            if crossed["snapshot"] and d.is_main:
                snapshot_grid(G_ema or G, spec.z_dim, cond_rows, out_dir / "samples" / f"samples-{seen:09d}.png")
            if crossed["checkpoint"]:
                stepper.sync_nonfinite()
                for module in (G, D, G_ema):
                    if module is not None:
                        average_buffers(module, d)
                state = state_dict()
                if d.is_main:
                    ck.save_checkpoint(state, ckpt_dir, seen, cfg.keep_checkpoints)
                barrier(d)
    stepper.sync_nonfinite()
    seconds = time.perf_counter() - t_start
    finished = counters["images_seen"] >= total
    rate = (counters["images_seen"] - done_before) / max(time.perf_counter() - t_resume, 1e-9)
    result = TrainResult(name, out_dir, counters["images_seen"], finished, seconds, rate, counters["nonfinite"])
    if d.is_main:
        write_json_atomic(
            out_dir / SUMMARY,
            {
                "model": name,
                "finished": finished,
                "images_seen": counters["images_seen"],
                "kimg": kimg,
                "train_seconds": seconds,
                "images_per_s": counters["images_seen"] / max(seconds, 1e-9),
                "nonfinite": counters["nonfinite"],
                "world_size": d.world,
                "device": str(device),
                "final_checkpoint": ck.list_checkpoints(ckpt_dir)[-1].name if ck.list_checkpoints(ckpt_dir) else None,
            },
        )
    stats.close()
    return result
