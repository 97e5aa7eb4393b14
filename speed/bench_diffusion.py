"""Sampling and training speed of the diffusion model on CPU: what an evaluation of n covers per guidance scale costs.

Each sample takes ``sample_steps`` network calls, twice the batch when 0 < w != 1 (the conditional and the
unconditional branch in one doubled batch); an evaluation draws n covers for the asked conditions and n more for
the shuffled-condition null. Reports wall images/s and images per CPU-second (the better estimate of one idle
core's rate on a loaded machine, with ``--threads 1``). Random weights: the speed does not depend on them.

    python -m speed.bench_diffusion [--res 32] [--size tiny] [--threads 2] [--steps 8,12,20] [--n 256]
"""

from __future__ import annotations

import argparse
import time

import torch

from models.diffusion import build_diffusion


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def sampling(res: int, size: str, steps: int, w: float, n: int, batch: int) -> tuple[float, float]:
    """(images/s wall, images per CPU-second) drawing n images in batches, as ``generate`` does."""
    torch.manual_seed(0)
    G = build_diffusion("diffusion_cond", res=res, cond_dim=8, size=size, sample_steps=steps, guidance=w).G.eval()
    z = torch.randn(n, G.z_dim)
    c = torch.eye(8)[torch.arange(n) % 8]
    G(z[:8], c[:8])  # warm-up

    def draw() -> None:
        for s in range(0, n, batch):
            G(z[s : s + batch], c[s : s + batch])

    wall, cpu = _timed(draw)
    return n / wall, n / max(cpu, 1e-9)


def training(res: int, size: str, batch: int, iters: int) -> tuple[float, float]:
    """(images/s wall, images per CPU-second) of denoising steps (loss, backward, fused Adam), no data loading."""
    torch.manual_seed(0)
    spec = build_diffusion("diffusion_cond", res=res, cond_dim=8, size=size)
    G, opt = spec.G, spec.make_optimizers()[0]
    real = torch.rand(batch, 3, res, res) * 2 - 1
    c = torch.eye(8)[torch.arange(batch) % 8]

    def step() -> None:
        loss, _ = spec.loss.step(G.net, G.alphas, real, c)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()

    def steps() -> None:
        for _ in range(iters):
            step()

    wall, cpu = _timed(steps)
    return iters * batch / wall, iters * batch / max(cpu, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--size", default="tiny", choices=("tiny", "full"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", default="8,12,20", help="DDIM steps to time, comma-separated")
    ap.add_argument("--n", type=int, default=256, help="images drawn per measurement")
    ap.add_argument("--batch", type=int, default=256, help="sampling batch (eval.batch)")
    ap.add_argument("--train-iters", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"diffusion_cond {a.size} {a.res} px, {a.threads} thread(s), torch {torch.__version__}")
    for steps in (int(s) for s in a.steps.split(",")):
        for w in (1.0, 2.0):
            rate, per_cpu = sampling(a.res, a.size, steps, w, a.n, a.batch)
            per_eval = 2 * 2000 / rate  # the asked covers and the shuffled null of an n = 2000 evaluation
            print(f"sample {steps:3d} steps w={w:g}: {rate:8.1f} img/s wall {per_cpu:8.1f} img/CPU-s "
                  f"-> {per_eval:6.0f} s of sampling per n=2000 evaluation")
    rate, per_cpu = training(a.res, a.size, 32, a.train_iters)
    print(f"train batch 32: {rate:8.1f} img/s wall {per_cpu:8.1f} img/CPU-s")


if __name__ == "__main__":
    main()
