"""``bench check``: metric thresholds and baseline regressions of a run, as an exit status for CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from benchmark.cli import common
from core import paths
from core.errors import UserError
from core.jsonfiles import read_json_mapping


def check(
    thresholds: Annotated[
        Path | None, typer.Option("--thresholds", help="YAML: model -> metric -> {min, max, equals}")
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="run name (default: the config's run)")] = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="baseline JSON to compare against")] = None,
    tolerance: Annotated[
        float, typer.Option("--tolerance", min=0.0, help="relative worsening allowed against the baseline")
    ] = 0.1,
    write_baseline: Annotated[
        Path | None, typer.Option("--write-baseline", help="collect this run's metrics into a baseline JSON")
    ] = None,
    preset: common.PresetOpt = None,
    set_: common.SetOpt = None,
) -> None:
    """Exit 0 when every check passes, 1 naming each failure, 2 when the thresholds file is malformed."""
    from reports import check as checks

    cfg = common.config(preset, set_, common.drop_none({"run": run}))
    rp = paths.run(cfg.run)
    if thresholds is None and baseline is None and write_baseline is None:
        raise UserError("nothing to check: pass --thresholds FILE and/or --baseline FILE (or --write-baseline FILE)")
    if write_baseline is not None:
        out = checks.write_baseline(rp, write_baseline)
        common.console.print(f"baseline of run {escape(rp.name)} written to {escape(str(out))}")
        _print_notes(read_json_mapping(out) or {})  # the notes the baseline records
        if thresholds is None and baseline is None:
            return
    result = checks.check_thresholds(rp, thresholds, baseline=baseline, tolerance=tolerance)
    _print_notes({"notes": result.notes})
    table = Table(title=f"bench check: run {escape(rp.name)}")
    for col in ("model", "check", "expected", "actual", "result"):
        table.add_column(col, justify="right" if col == "actual" else "left", overflow="fold")
    for r in result.results:
        actual = f"{r.actual:.4g}" if isinstance(r.actual, float) else "-" if r.actual is None else str(r.actual)
        status = "[green]pass[/]" if r.ok else f"[bold red]FAIL[/] {escape(r.message)}"
        table.add_row(escape(r.model), escape(r.path), escape(r.expected), escape(actual), status)
    common.console.print(table)
    if not result.failures:
        common.console.print(f"[green]all {len(result.results)} checks passed[/]")
        return
    for r in result.failures:
        common.err_console.print(f"FAIL {escape(r.line())}", highlight=False, soft_wrap=True)
    common.err_console.print(f"[bold red]{len(result.failures)} of {len(result.results)} checks failed[/]")
    raise typer.Exit(1)


def _print_notes(doc: dict) -> None:
    """What the checks could not tell (an evaluation that records no dataset fingerprint), in yellow."""
    for note in doc.get("notes") or []:
        common.console.print(f"[yellow]note:[/] {escape(str(note))}")
