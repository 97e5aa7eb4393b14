"""State and options shared by every ``bench`` command."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console

from core.config import Config, load_config

console = Console()
err_console = Console(stderr=True)


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
