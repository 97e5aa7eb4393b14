"""``bench perf train``: training throughput of one GAN, through the engine's own iteration (``step.Stepper``).

Builds the model with ``build_gan``, feeds batches that already sit on the device (random images, or real covers
when a dataset is given, so data loading is not measured), warms up (compiles, autotunes), then times N full
iterations (``n_critic`` D steps + one G step + EMA). FLOPs of the average iteration are counted once with
``torch.utils.flop_counter``'s formulas over one regulariser period (StyleGAN's lazy R1 and path-length steps
run every k-th step), so the utilisation estimate includes them at their real rate. The counter sees matmuls and
convolutions (the bulk of the work), so utilisation is a slight underestimate.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from core.devices import resolve_device
from core.errors import UserError
from models.gans.losses import StyleGANLoss
from models.gans.registry import MODELS, build_gan
from models.gans.train.stats import memory_mb
from models.gans.train.step import Batch, Stepper

# Dense peak FLOP/s per device family: (bf16, fp32). fp32 means plain fp32 CUDA cores, not TF32.
PEAK_FLOPS = {
    "H200": (989e12, 67e12),
    "H100": (989e12, 67e12),
    "A100": (312e12, 19.5e12),
    "L40S": (362e12, 91.6e12),
    "L4": (121e12, 30.3e12),
}


def device_peak(device: torch.device, amp: bool) -> tuple[str, float | None]:
    """(device name, peak FLOP/s for the precision used), peak None when unknown (e.g. CPUs)."""
    if device.type != "cuda":
        return platform.processor() or platform.machine() or "cpu", None
    name = torch.cuda.get_device_name(device)
    for key, (bf16, fp32) in PEAK_FLOPS.items():
        if key in name.upper():
            return name, bf16 if amp else fp32
    return name, None


def regulariser_period(spec) -> int:
    """Iterations after which the lazy regulariser pattern repeats (1 for DCGAN/WGAN-GP)."""
    loss = spec.loss
    if not isinstance(loss, StyleGANLoss):
        return 1
    r1 = loss.r1_every if loss.r1_gamma > 0 and loss.r1_every > 0 else 1
    pl = loss.pl_every if loss.pl_weight > 0 and loss.pl_every > 0 else 1
    return max(1, math.lcm(r1 * spec.n_critic, pl) // spec.n_critic) if spec.n_critic else 1


def _device_batches(
    n_pool: int, batch: int, res: int, cond_dim: int, device: torch.device, channels_last: bool, dataset=None
) -> Iterator[Batch]:
    """Endless batches from a small pool already on the device."""
    gen = torch.Generator().manual_seed(0)
    pool = []
    if dataset is not None:
        from core.data.loader import to_float

        if res not in dataset.resolutions:
            raise UserError(f"dataset {dataset.name!r} has no {res} px covers")
        covers = dataset.covers(res)
        labels = dataset.genre_idx
        rng = np.random.default_rng(0)
    for _ in range(n_pool):
        if dataset is not None:
            idx = np.sort(rng.choice(len(covers), size=batch, replace=len(covers) < batch))
            x = to_float(torch.from_numpy(np.asarray(covers[idx])).permute(0, 3, 1, 2))
            g = torch.from_numpy(np.maximum(labels[idx], 0) % max(cond_dim, 1))
        else:
            x = torch.rand(batch, 3, res, res, generator=gen) * 2 - 1
            g = torch.randint(0, max(cond_dim, 1), (batch,), generator=gen)
        x = x.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        c = torch.nn.functional.one_hot(g, cond_dim).float().to(device) if cond_dim else None
        pool.append((x, c))
    i = 0
    while True:
        yield pool[i % n_pool]
        i += 1


class FlopCount(TorchDispatchMode):
    """FLOPs of matmuls and convolutions, by ``torch.utils.flop_counter``'s formulas.

    ``FlopCounterMode`` itself also tracks modules with backward hooks, which breaks ``autograd.grad`` with
    ``create_graph`` (R1, gradient penalty); this counts the same operators without the module tracking.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_profile(fn, dev: torch.device, path: str, rows: int = 40) -> None:
    """Run ``fn`` once under torch.profiler; write the top operators by self device (or CPU) time to ``path``."""
    from pathlib import Path

    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        fn()
        synchronize(dev)
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    Path(path).write_text(prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=60) + "\n")


def iteration_flops(model: str, *, res: int, batch: int, size: str = "full", cond_dim: int = 8,
                    hparams: dict[str, Any] | None = None) -> float:
    """FLOPs of the average training iteration over one regulariser period, counted from shapes alone: the model
    runs on the meta device, so nothing is computed and even a 256 px model at batch 32 counts in seconds."""
    cdim = cond_dim if model.endswith("_cond") else 0
    hp = dict(hparams or {})
    hp.setdefault("batch", batch)
    spec = build_gan(model, res=res, cond_dim=cdim, size=size, **hp)
    meta = torch.device("meta")
    G, D = spec.G.to(meta), spec.D.to(meta)
    opt_G, opt_D = spec.make_optimizers()
    G_ema = spec.make_G_ema() if spec.has_ema else None
    stepper = Stepper(spec, G, D, opt_G, opt_D, batch=batch, local_batch=batch, G_ema=G_ema, guard=False)
    feed = _device_batches(1, batch, res, cdim, meta, False)
    period = regulariser_period(spec)
    with FlopCount() as fc:
        for _ in range(period):
            stepper.iteration(feed)
    return fc.total / period


@dataclasses.dataclass
class BenchStepper:
    """A model ready to time: its spec, the engine's Stepper, an endless feed of on-device batches."""

    spec: Any
    stepper: Stepper
    feed: Iterator[Batch]
    device: torch.device
    channels_last: bool
    period: int  # iterations after which the lazy-regulariser pattern repeats


def bench_stepper(
    model: str,
    *,
    res: int,
    batch: int,
    size: str = "full",
    device: str = "auto",
    amp: bool = True,
    channels_last: bool = True,
    compile: bool = False,
    compile_mode: str | None = None,
    cond_dim: int = 8,
    hparams: dict[str, Any] | None = None,
    dataset=None,
    seed: int = 0,
) -> BenchStepper:
    """Build ``model`` as ``bench perf train`` times it (bf16, channels_last and compile apply on CUDA only)."""
    if model not in MODELS:
        raise UserError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if batch < 2:
        raise UserError("--batch must be >= 2")
    dev = resolve_device(device, hint="use --device cpu")
    on_cuda = dev.type == "cuda"
    amp, channels_last, compile = amp and on_cuda, channels_last and on_cuda, compile and on_cuda
    if on_cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(seed)
    cdim = cond_dim if model.endswith("_cond") else 0
    hp = dict(hparams or {})
    hp.setdefault("batch", batch)
    spec = build_gan(model, res=res, cond_dim=cdim, size=size, **hp)
    G, D = spec.G.to(dev), spec.D.to(dev)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    G_ema = spec.make_G_ema().to(dev) if spec.has_ema else None
    opt_G, opt_D = spec.make_optimizers()
    stepper = Stepper(spec, G, D, opt_G, opt_D, batch=batch, local_batch=batch, G_ema=G_ema, amp=amp,
                      max_nonfinite=10**9, compile=compile, compile_mode=compile_mode)
    feed = _device_batches(4, batch, res, cdim, dev, channels_last, dataset)
    return BenchStepper(spec, stepper, feed, dev, channels_last, regulariser_period(spec))


def perf_train(
    model: str,
    *,
    res: int,
    batch: int,
    steps: int = 20,
    warmup: int | None = None,
    size: str = "full",
    device: str = "auto",
    amp: bool = True,
    channels_last: bool = True,
    compile: bool = False,
    compile_mode: str | None = None,
    cond_dim: int = 8,
    hparams: dict[str, Any] | None = None,
    dataset=None,
    count_flops: bool = True,
    seed: int = 0,
    profile_path: str | None = None,
) -> dict[str, Any]:
    """Time ``steps`` training iterations of ``model``; returns images/s, s/kimg, memory and FLOP figures.

    ``profile_path``: after timing, run one regulariser period under ``torch.profiler`` and write its
    operators, sorted by device time (self), as a text table there: where the time of an iteration goes.
    """
    if steps < 1:
        raise UserError("--steps must be >= 1")
    b = bench_stepper(model, res=res, batch=batch, size=size, device=device, amp=amp, channels_last=channels_last,
                      compile=compile, compile_mode=compile_mode, cond_dim=cond_dim, hparams=hparams,
                      dataset=dataset, seed=seed)
    spec, stepper, feed, dev, period = b.spec, b.stepper, b.feed, b.device, b.period
    amp, channels_last, compile = stepper.amp, b.channels_last, stepper.compile
    G, D, cdim = stepper.G, stepper.D, spec.cond_dim
    steps = int(math.ceil(steps / period) * period)
    warmup = period + 2 if warmup is None else warmup

    t0 = time.perf_counter()
    for _ in range(warmup):
        stepper.iteration(feed)
    synchronize(dev)
    warmup_s = time.perf_counter() - t0

    flops = None
    if count_flops:
        flops = iteration_flops(model, res=res, batch=batch, size=size, cond_dim=cond_dim, hparams=hparams)

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    nonfinite0 = stepper.sync_nonfinite()
    synchronize(dev)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        stepper.iteration(feed)
    synchronize(dev)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if profile_path:
        write_profile(lambda: [stepper.iteration(feed) for _ in range(period)], dev, profile_path)
    images = steps * spec.n_critic * batch
    name, peak = device_peak(dev, amp)
    out: dict[str, Any] = {
        "model": model,
        "res": res,
        "batch": batch,
        "size": size,
        "cond_dim": cdim,
        "device": name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "amp_bf16": amp,
        "channels_last": channels_last,
        "compile": compile,
        "compile_mode": compile_mode if compile else None,
        "n_critic": spec.n_critic,
        "iterations": steps,
        "images": images,
        "warmup_iterations": warmup,
        "warmup_seconds": warmup_s,
        "seconds": wall,
        "cpu_seconds": cpu,
        "images_per_s": images / wall,
        "images_per_cpu_s": images / max(cpu, 1e-9),
        "s_per_kimg": wall / images * 1000,
        "peak_memory_mb": memory_mb(dev),
        "nonfinite": stepper.sync_nonfinite() - nonfinite0,
        "params_G": sum(p.numel() for p in G.parameters()),
        "params_D": sum(p.numel() for p in D.parameters()),
        "hparams": {k: v for k, v in spec.hparams.items() if isinstance(v, int | float | str | bool | None)},
        "flops_per_iteration": flops,
        "flops_per_image": flops / (spec.n_critic * batch) if flops else None,
        "achieved_tflops": flops * steps / wall / 1e12 if flops else None,
        "peak_tflops": peak / 1e12 if peak else None,
        "flop_utilisation": flops * steps / wall / peak if flops and peak else None,
    }
    return out
