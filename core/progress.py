"""Progress bars for loops over tracks, images or steps.

Library code calls ``track(...)`` or ``progress_bar(...)`` unconditionally; bars are shown only when the CLI
has switched them on (``enable(True)``) so library use and tests stay quiet.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
console = Console(stderr=True)
_enabled = False


def enable(on: bool = True) -> None:
    global _enabled
    _enabled = on


def enabled() -> bool:
    return _enabled


class _Quiet:
    """Stand-in for a rich Progress task when bars are off."""

    def advance(self, n: int = 1) -> None:  # noqa: D401 - mirrors the Bar API
        pass


class Bar:
    def __init__(self, progress: Progress, task_id: int):
        self._p, self._t = progress, task_id

    def advance(self, n: int = 1) -> None:
        self._p.advance(self._t, n)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Bar | _Quiet]:
    """``with progress_bar("tracks", n) as bar: ... bar.advance()``."""
    if not _enabled:
        yield _Quiet()
        return
    with _progress() as p:
        yield Bar(p, p.add_task(description, total=total))


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_bar(description, total) as bar:
        for item in items:
            yield item
            bar.advance()
