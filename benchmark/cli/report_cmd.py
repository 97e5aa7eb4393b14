"""``bench report [--run RUN] [--thresholds FILE]``: the static HTML report of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from benchmark.cli import common
from core import paths


def report(
    run: Annotated[str | None, typer.Option("--run", help="run name (default: the config's run)")] = None,
    thresholds: Annotated[
        Path | None,
        typer.Option("--thresholds", help="thresholds YAML to mark pass/fail (default: the preset's, if any)"),
    ] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="dataset (default: the one it trained on)")] = None,
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Write runs/<run>/report/: leaderboard, a page per model, encoders, data and environment."""
    from benchmark.pipeline.locks import report_lock
    from reports.build import build_report

    cfg = common.config(preset, set_, common.drop_none({"run": run}))
    with report_lock(paths.run(cfg.run)):
        index = build_report(paths.run(cfg.run), dataset=dataset, thresholds=thresholds)
    common.console.print(f"report: {escape(str(index.resolve()))}")
