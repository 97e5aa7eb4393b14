"""The StyleGAN FIR filters alone, per implementation (``FIR_IMPLS``), at the shapes one training iteration uses.

Where does a FIR implementation win or lose, apart from the rest of the network? Records every filter pass
(``Resampler.filter``) of one G forward and one D forward of the real model (batch 1 on the CPU, so the shapes are
exact), then times each call site at the requested batch for every implementation, in three modes:
  * ``fwd``: the filter alone;
  * ``fwd+bwd``: filter and its gradient (what a plain G or D step does);
  * ``double``: gradient with ``create_graph`` and a backward through it (what R1 and path-length steps do).
On CUDA the inputs are bf16 and channels_last (what training uses); on CPU fp32 NCHW. Sums over call sites are
"FIR milliseconds per G+D forward" at that batch.

    python -m speed.bench_fir --res 256 --batch 32 [--device cuda] [--channel-base 32768] [--json F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from models.gans.ops import FIR_IMPLS, Resampler, make_resampler
from models.gans.registry import build_gan
from speed.harness import synchronize


def call_sites(res: int, channel_base: int | None) -> list[dict]:
    """Every filter pass (shape without batch, pad, gain, stride) of one G and one D forward, deduplicated."""
    hp = {"channel_base": channel_base} if channel_base else {}
    spec = build_gan("stylegan_cond", res=res, cond_dim=8, **hp)
    seen: dict[tuple, dict] = {}

    def recording(real):
        def record(x, pad, gain=1.0, stride=1):
            key = (tuple(x.shape[1:]), pad, gain, stride)
            seen.setdefault(key, {"shape": list(x.shape[1:]), "pad": pad, "gain": gain, "stride": stride, "calls": 0})
            seen[key]["calls"] += 1
            return real(x, pad, gain, stride)
        return record

    # the model is built for this call only: wrap each of its resamplers' filter in place
    for m in [*spec.G.modules(), *spec.D.modules()]:
        if isinstance(m, Resampler):
            m.filter = recording(m.filter)
    with torch.no_grad():
        img = spec.G(torch.randn(1, spec.z_dim), torch.eye(8)[:1])
        spec.D(img, torch.eye(8)[:1])
    return list(seen.values())


def time_site(site: dict, impl: str, mode: str, batch: int, dev: torch.device, reps: int) -> float:
    """Median milliseconds of one call of this site in this mode."""
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    fmt = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    x = torch.randn(batch, *site["shape"], device=dev, dtype=dtype).contiguous(memory_format=fmt)
    resample = make_resampler(impl).to(dev)
    x.requires_grad_(mode != "fwd")

    def run():
        y = resample.filter(x, site["pad"], site["gain"], site["stride"])
        if mode == "fwd":
            return
        if mode == "fwd+bwd":
            y.backward(torch.ones_like(y))
            return
        (g,) = torch.autograd.grad(y.float().square().sum(), x, create_graph=True)
        g.float().square().sum().backward()

    run()  # warm-up (cuDNN algorithm choice)
    times = []
    for _ in range(reps):
        synchronize(dev)
        t = time.perf_counter()
        run()
        synchronize(dev)
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--channel-base", type=int, default=None, help="StyleGAN channel_base (default: the model's)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    # "fold" has no lone filter (it merges the filter into the next conv; a lone call runs as "pool")
    ap.add_argument("--impls", default=",".join(i for i in FIR_IMPLS if i != "fold"))
    ap.add_argument("--modes", default="fwd,fwd+bwd,double")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    sites = call_sites(args.res, args.channel_base)
    impls, modes = args.impls.split(","), args.modes.split(",")
    out = {"res": args.res, "batch": args.batch, "channel_base": args.channel_base, "device": str(dev),
           "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "torch": torch.__version__, "threads": torch.get_num_threads(), "sites": sites, "totals_ms": {}}
    print(f"{len(sites)} FIR call sites; ms per call at batch {args.batch} on {out['device_name']}")
    print(f"{'shape':>18} pad gain s calls " + " ".join(f"{i + ':' + m:>16}" for i in impls for m in modes))
    for site in sites:
        site["ms"] = {f"{i}:{m}": time_site(site, i, m, args.batch, dev, args.reps) for i in impls for m in modes}
        print(f"{str(tuple(site['shape'])):>18} {site['pad']:>3} {site['gain']:>4} {site['stride']} "
              f"{site['calls']:>5} " + " ".join(f"{site['ms'][f'{i}:{m}']:16.3f}" for i in impls for m in modes),
              flush=True)
    for key in sites[0]["ms"]:
        out["totals_ms"][key] = sum(s["ms"][key] * s["calls"] for s in sites)
    print("totals (ms, every call of one G + D forward): "
          + ", ".join(f"{k} {v:.1f}" for k, v in out["totals_ms"].items()))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
