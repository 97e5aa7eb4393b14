"""State and options shared by every ``bench`` command."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console, ConsoleDimensions

from core.config import Config, load_config

PIPED_WIDTH = 4096  # wider than any table the commands print: piped output is never cut to fit


class PipeFriendlyConsole(Console):
    """A rich console that lays tables out at their natural width when its output is not a terminal.

    Rich falls back to 80 columns when it finds no terminal (a pipe, a file, CI logs), and a table then cuts its
    cells (``enco…``): text meant for grep and diff loses exactly what it was piped for. ``COLUMNS`` still wins.
    """

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
            return ConsoleDimensions(PIPED_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = PipeFriendlyConsole()
err_console = PipeFriendlyConsole(stderr=True)


@dataclass
class State:
    debug: bool = False
    preset: str | None = None
    overrides: list[str] = field(default_factory=list)


state = State()

PresetOpt = Annotated[
    str | None, typer.Option("--preset", help="cpu or gpu (default: gpu when CUDA is available, else cpu)")
]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a config value: key.sub=value (repeatable)")]


def config(
    preset: str | None = None, overrides: list[str] | None = None, values: dict[str, Any] | None = None
) -> Config:
    """The resolved config: global --preset/--set, then the command's own, then explicit flag values."""
    return load_config(
        preset=preset or state.preset,
        overrides=[*state.overrides, *(overrides or [])],
        values=values,
    )


def drop_none(tree: dict[str, Any]) -> dict[str, Any]:
    """Flag values the user did not give are None: leave those to the config layers."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            v = drop_none(v)
            if v:
                out[k] = v
        elif v is not None and v != []:
            out[k] = v
    return out
