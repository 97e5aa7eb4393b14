"""Worker processes that end with their parent.

A pool worker whose parent was killed (``kill -9``, the OOM killer) otherwise waits on its task queue forever,
holding memory and open files. Pools pass ``die_with_parent`` as their initializer.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel kill this process when its parent dies (Linux ``PR_SET_PDEATHSIG``; elsewhere a no-op).

    ``parent``, the parent's pid as the parent saw it, catches a parent that died before this call.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            return
    if parent is not None and os.getppid() != parent:
        os._exit(1)
