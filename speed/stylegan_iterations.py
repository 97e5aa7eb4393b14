"""Where a StyleGAN training iteration's time goes: each iteration timed alone, by kind (plain, R1, path length).

``bench perf train`` gives the average over a regulariser period; this splits it. Builds the model once through
the engine's own ``Stepper`` (same settings as ``bench perf train``), warms up one period, then times every
iteration with a device sync around it and prints it as it goes, then (``--profile DIR``) writes torch.profiler
operator tables of one plain iteration and one path-length iteration.

    python -m speed.stylegan_iterations --res 256 --batch 32 --iters 32 [--device cuda] [--json F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from core.config.load import parse_override
from models.gans.train.step import Stepper
from speed.harness import bench_stepper, synchronize, write_profile


def kinds(stepper: Stepper) -> str:
    """Which lazy regularisers the next iteration runs."""
    loss, c = stepper.spec.loss, stepper.counters
    r1 = loss.r1_gamma > 0 and loss.r1_every > 0 and c["d_steps"] % loss.r1_every == 0
    pl = loss.pl_weight > 0 and loss.pl_every > 0 and c["g_steps"] % loss.pl_every == 0
    return "+".join(k for k, on in (("r1", r1), ("pl", pl)) if on) or "plain"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="stylegan_cond")
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=32)
    ap.add_argument("--size", default="full")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--profile", type=Path, help="folder for the operator tables")
    ap.add_argument("--hparam", action="append", default=[], help="model setting key=value (repeatable), "
                    "e.g. channel_base=32768 fir_impl=pool")
    args = ap.parse_args()
    hp = {".".join(k): v for k, v in map(parse_override, args.hparam)}
    b = bench_stepper(args.model, res=args.res, batch=args.batch, size=args.size, device=args.device, hparams=hp)
    stepper, feed, dev, period, spec = b.stepper, b.feed, b.device, b.period, b.spec
    cuda = dev.type == "cuda"
    t0 = time.perf_counter()
    for _ in range(period + 2):
        stepper.iteration(feed)
    synchronize(dev)
    out: dict = {"model": args.model, "res": args.res, "batch": args.batch, "hparams": hp, "device": str(dev),
                 "device_name": torch.cuda.get_device_name(dev) if cuda else "cpu", "torch": torch.__version__,
                 "warmup_seconds": time.perf_counter() - t0, "iterations": []}
    print(f"warm-up {out['warmup_seconds']:.1f} s", flush=True)
    for i in range(args.iters):
        kind = kinds(stepper)
        synchronize(dev)
        t = time.perf_counter()
        stepper.iteration(feed)
        synchronize(dev)
        ms = 1000 * (time.perf_counter() - t)
        out["iterations"].append({"kind": kind, "ms": ms})
        print(f"iteration {i:3d} {kind:6s} {ms:8.1f} ms", flush=True)
    by_kind: dict[str, list[float]] = {}
    for it in out["iterations"]:
        by_kind.setdefault(it["kind"], []).append(it["ms"])
    out["median_ms_by_kind"] = {k: statistics.median(v) for k, v in by_kind.items()}
    total = sum(it["ms"] for it in out["iterations"]) / 1000
    out["s_per_kimg_synced"] = total / (args.iters * args.batch * spec.n_critic) * 1000
    out["share_by_kind"] = {k: sum(v) / 1000 / total for k, v in by_kind.items()}
    print(json.dumps({k: out[k] for k in ("median_ms_by_kind", "share_by_kind", "s_per_kimg_synced")}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        stem = "-".join([args.model, str(args.res), *(f"{k}={v}" for k, v in hp.items())])
        while kinds(stepper) != "plain":
            stepper.iteration(feed)
        write_profile(lambda: stepper.iteration(feed), dev, str(args.profile / f"{stem}-plain.txt"), rows=30)
        if spec.loss.pl_weight > 0:
            while "pl" not in kinds(stepper).split("+"):
                stepper.iteration(feed)
            write_profile(lambda: stepper.iteration(feed), dev, str(args.profile / f"{stem}-pl.txt"), rows=30)
        print("profiles written", flush=True)


if __name__ == "__main__":
    main()
