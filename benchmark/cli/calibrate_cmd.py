"""``bench calibrate``: a thresholds file from the spread of N seeds (see benchmark/pipeline/calibrate.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from benchmark.cli import common


def calibrate(
    seeds: Annotated[int, typer.Option("--seeds", min=2, help="seeds 0..N-1, one run each (5 or more advised)")] = 5,
    run_prefix: Annotated[str, typer.Option("--run-prefix", help="runs are named PREFIX0, PREFIX1, ...")] = "seed",
    out: Annotated[Path, typer.Option("--out", help="thresholds YAML to write")] = Path("thresholds.yaml"),
    reuse: Annotated[
        bool, typer.Option("--reuse", help="read runs that already hold evaluations; train only the missing ones")
    ] = False,
    from_runs: Annotated[
        bool, typer.Option("--from-runs", help="only read existing runs (no training or evaluation)")
    ] = False,
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Train and evaluate seeds 0..N-1 (or read their runs), then write bounds that follow from the spread."""
    from benchmark.pipeline import calibrate as cal

    cfg = common.config(preset, set_)

    def progress(seed: int, what: str) -> None:
        verb = "reading" if what == "read" else "training and evaluating"
        common.console.print(f"[bold]seed {seed}[/]: {verb} run {escape(run_prefix)}{seed}")

    note = f"Preset {cfg.preset}, dataset {cfg.data.name}." if not from_runs else ""
    result = cal.calibrate(cfg, seeds, run_prefix, out, reuse=reuse, from_runs=from_runs, note=note,
                             on_seed=progress)
    table = Table(title=f"calibration over {len(result.runs)} seeds")
    for col in ("model", "FID mean", "FID sd", "acc mean", "acc sd", "verdicts", "bounds"):
        table.add_column(col, justify="left" if col in ("model", "verdicts", "bounds") else "right",
                         ratio=3 if col == "bounds" else None, overflow="fold")
    for name, s in result.spreads.items():
        fm, fs, _, _ = cal._stats(s.fid)
        am, asd, _, _ = cal._stats(s.accuracy)
        verdicts = " ".join(f"{v}:{s.verdicts.count(v)}" for v in sorted(set(s.verdicts)))
        bounds = cal.describe_bounds(result.thresholds[name])
        bounds = bounds.replace("conditional_accuracy.p_value", "p").replace("conditional_accuracy", "acc")
        bounds = bounds.replace("verdict.conditioning_works", "verdict")
        table.add_row(escape(name), f"{fm:.3g}", f"{fs:.2g}", f"{am:.3f}", f"{asd:.3f}", verdicts, escape(bounds))
    common.console.print(table)
    for w in result.warnings:
        common.err_console.print(f"warning: {escape(w)}", highlight=False, soft_wrap=True)
    common.console.print(f"thresholds written to {escape(str(result.out))}")
