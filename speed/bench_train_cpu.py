"""Time `bench train all --preset cpu` (the 5-minute budget on two cores) and each GAN's CPU throughput.

Reports wall time and the CPU seconds the child used (on a loaded machine the CPU seconds, with
``--threads 1``, are the better estimate of the wall time on one idle core), plus per-model images/s from each
``summary.json``. Usage:

    python -m speed.bench_train_cpu --dataset default --run cpu-bench [--threads 2] [--fresh]
    python -m speed.bench_train_cpu --perf   # per-model `bench perf train` rates only (32 px, tiny, batch 32)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from core.config.names import GAN_NAMES

ROOT = Path(__file__).resolve().parents[1]
MODELS = GAN_NAMES


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd: list[str], threads: int) -> tuple[float, float, int]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    c0, t0 = child_cpu(), time.perf_counter()
    rc = subprocess.run(cmd, env=env, cwd=ROOT).returncode
    return time.perf_counter() - t0, child_cpu() - c0, rc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="default")
    ap.add_argument("--run", default="cpu-bench")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fresh", action="store_true", help="delete the run folder first")
    ap.add_argument("--perf", action="store_true", help="only per-model perf rates")
    a = ap.parse_args()
    bench = [sys.executable, "-m", "benchmark.cli.app", "-q"]
    if a.perf:
        for m in MODELS:
            out = Path(f"/tmp/perf-{m}.json")
            cmd = [*bench, "perf", "train", "--model", m, "--res", "32", "--batch", "32", "--steps", "8"]
            wall, cpu, rc = run([*cmd, "--size", "tiny", "--device", "cpu", "--json", str(out)], a.threads)
            if rc == 0:
                r = json.loads(out.read_text())
                print(f"{m:14s} {r['images_per_s']:8.1f} img/s wall  {r['images_per_cpu_s']:8.1f} img/CPU-s")
        return
    from core import paths

    run_dir = paths.run(a.run).root
    if a.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    wall, cpu, rc = run([*bench, "train", "all", "--preset", "cpu", "--dataset", a.dataset, "--run", a.run], a.threads)
    print(f"train all: rc={rc} wall={wall:.1f}s cpu={cpu:.1f}s threads={a.threads}")
    for m in MODELS:
        p = run_dir / "models" / m / "summary.json"
        if p.is_file():
            s = json.loads(p.read_text())
            kimg, secs, rate = s["images_seen"] / 1000, s["train_seconds"], s["images_per_s"]
            print(f"{m:14s} {kimg:6.1f} kimg {secs:7.1f}s {rate:7.1f} img/s")


if __name__ == "__main__":
    main()
