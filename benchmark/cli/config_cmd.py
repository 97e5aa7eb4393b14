"""``bench config show``."""

from __future__ import annotations

import typer

from benchmark.cli import common
from core.config.load import dump_config

app = typer.Typer(help="Inspect the resolved configuration.", no_args_is_help=True)


@app.command("show")
def show(preset: common.PresetOpt = None, set_: common.SetOpt = None) -> None:
    """Print the resolved configuration (defaults, data YAML, preset, --set) as YAML."""
    cfg = common.config(preset, set_)
    common.console.print(dump_config(cfg), markup=False, highlight=False)
