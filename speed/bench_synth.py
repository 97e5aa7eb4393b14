"""Synthetic-world throughput: tracks/s per core with 1 and 2 workers, and the default world's wall time.

    .venv/bin/python -m speed.bench_synth [--tracks 400] [--skip-default] [--json out.json]

Besides wall time it reports tracks per CPU-second (user+system time of this process and its workers), which
is less sensitive to other load on a shared machine. The target (issue 2): >= 100 tracks/s per core at 10 s
audio and 64 px covers; the default world (4000 tracks) in under a minute on two cores. Numbers depend on how
busy the machine is: report them with that caveat.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from core.config.schema import SplitConfig, SynthConfig
from core.data.synth.world import synthesize_world
from core.paths import DatasetPaths


def timed_world(root: Path, name: str, cfg: SynthConfig, workers: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process and its finished workers) to synthesise ``cfg``."""
    dest = DatasetPaths(root / name)
    cpu0 = _cpu()
    t0 = time.perf_counter()
    synthesize_world(dest, cfg, SplitConfig(), workers=workers, force=True)
    wall = time.perf_counter() - t0
    cpu = _cpu() - cpu0
    shutil.rmtree(dest.root, ignore_errors=True)
    return wall, cpu


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=400, help="tracks for the per-core measurements")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--skip-default", action="store_true", help="skip the 4000-track default world")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    results: dict[str, float | int | str] = {"cpu_count": os.cpu_count() or 1,
                                             "load_avg_1min": os.getloadavg()[0]}
    root = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        cfg = SynthConfig(tracks=args.tracks, seconds=args.seconds, res=[args.res])
        timed_world(root, "warmup", cfg.model_copy(update={"tracks": 32}), 1)
        for workers in (1, 2):
            wall, cpu = timed_world(root, f"w{workers}", cfg, workers)
            results[f"tracks_per_s_{workers}w"] = args.tracks / wall
            results[f"tracks_per_s_per_core_{workers}w"] = args.tracks / wall / workers
            results[f"tracks_per_cpu_s_{workers}w"] = args.tracks / cpu
            print(f"{workers} worker(s): {args.tracks} tracks in {wall:.2f} s = {args.tracks / wall:.1f} tracks/s "
                  f"({args.tracks / wall / workers:.1f} per core); {args.tracks / cpu:.1f} tracks per CPU-second",
                  flush=True)
        if not args.skip_default:
            wall, cpu = timed_world(root, "default", SynthConfig(), 2)
            results["default_world_wall_s_2w"] = wall
            results["default_world_cpu_s_2w"] = cpu
            print(f"default world (4000 tracks, 10 s, 64 px) on 2 workers: {wall:.1f} s wall, {cpu:.1f} CPU-s",
                  flush=True)
        results["load_avg_1min_end"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
