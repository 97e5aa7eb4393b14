"""How much memory this machine can give a computation now: sizes are checked against it before allocating, so an
absurd request is one line instead of a MemoryError (or a swapping machine) half-way through."""

from __future__ import annotations

import os
from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def available_bytes() -> int | None:
    """Memory available without swapping (Linux ``MemAvailable``; elsewhere free physical pages), None if unknown."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def gib(n: float) -> str:
    """Bytes as GiB for messages: ``12.3 GiB`` (``0.004 GiB`` for small sizes, never ``0.0``)."""
    x = n / 2**30
    return f"{x:.3g} GiB" if x < 10 else f"{x:,.0f} GiB"
