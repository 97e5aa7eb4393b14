"""``bench``: the entry point. Each command group lives in its own module and is registered here."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from benchmark.cli import (
    calibrate_cmd,
    check_cmd,
    config_cmd,
    data_cmd,
    encode_cmd,
    evaluate_cmd,
    features_cmd,
    perf_cmd,
    power_cmd,
    report_cmd,
    train_cmd,
)
from benchmark.cli.common import PresetOpt, SetOpt, err_console, state
from core import __version__, locks, paths, progress
from core.errors import UserError
from core.storage import disk_error_line

app = typer.Typer(
    name="bench",
    help="coverbench: does a conditional image generator really use its condition?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cmd.app, name="data")
app.add_typer(config_cmd.app, name="config")
app.add_typer(features_cmd.app, name="features")
app.add_typer(perf_cmd.app, name="perf")
app.command("encode")(encode_cmd.encode)
app.command("train")(train_cmd.train)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("export")(evaluate_cmd.export)
app.command("report")(report_cmd.report)
app.command("check")(check_cmd.check)
app.command("calibrate")(calibrate_cmd.calibrate)
app.command("power")(power_cmd.power)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"coverbench {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="show full tracebacks")] = False,
    data_root: Annotated[
        Path | None, typer.Option("--data-root", envvar=paths.DATA_ROOT_ENV, help="where datasets live (./data)")
    ] = None,
    runs_root: Annotated[
        Path | None, typer.Option("--runs-root", envvar=paths.RUNS_ROOT_ENV, help="where runs live (./runs)")
    ] = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="when another bench command is writing the same run or dataset, wait up "
                            "to this many seconds for it (inf: as long as it takes) instead of stopping at once")
    ] = 0.0,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    state.debug = debug
    state.preset = preset
    state.overrides = list(set_ or [])
    paths.set_roots(data_root, runs_root)
    progress.enable(not quiet)
    locks.set_wait(wait)


def _short_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 - warnings API
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> None:
    """Run ``bench``; user errors become one red line and exit code 2, tracebacks only with --debug."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if not debug:
        warnings.formatwarning = _short_warning
    locks.set_command(" ".join(["bench", *args]))  # what a writer refused by this one's lock is told
    try:
        app(args=args, prog_name="bench", standalone_mode=True)
    except UserError as e:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        sys.exit(130)
    except Exception as e:  # a bug, not the user's fault: still one line unless --debug
        if debug:
            raise
        line = disk_error_line(e)  # a full disk, a read-only folder, a denied permission: the user's to fix
        if line is not None:
            err_console.print(f"[bold red]error:[/] {escape(line)}", markup=True, highlight=False, soft_wrap=True)
            sys.exit(2)
        err_console.print(
            f"[bold red]internal error:[/] {type(e).__name__}: {escape(str(e))} (rerun with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
