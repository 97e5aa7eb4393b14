"""Which lock each writer takes: a run's (encode, registering an outside embedding, train, evaluate, power,
calibrate), its report's, a dataset's (data synth, import, probe).

Every stage that writes into a run holds the run's exclusive lock (``core.locks``) for its whole duration, so a
second writer of the same run waits or stops with one line naming the first; two runs never block each other.
``bench report`` only reads the run's results (each replaced atomically) and writes ``report/``: it holds the
report's own lock, so it can be built while a long training runs. ``bench data synth/import/probe`` hold the
dataset's.

Under torchrun every rank runs the same command and only rank 0 writes, so only rank 0 takes the lock (the other
ranks would otherwise find it held by rank 0).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from core import locks
from core.paths import DatasetPaths, RunPaths
from models.gans.train.distributed import is_main_process

WAIT_HINT = "rerun with `bench --wait SECONDS ...` to wait for it"


def run_lock(run: RunPaths) -> AbstractContextManager[Path | None]:
    """Exclusive use of ``run`` by this process (a no-op on torchrun ranks other than 0)."""
    if not is_main_process():
        return nullcontext()
    return locks.exclusive(run.root, f"run {run.name!r}", hint=WAIT_HINT)


def report_lock(run: RunPaths) -> AbstractContextManager[Path | None]:
    """Exclusive use of ``run``'s report folder: one ``bench report`` at a time, beside any other writer."""
    if not run.root.is_dir():  # its lock file lives in the run: taking it must not create a run that is not there
        return nullcontext()
    return locks.exclusive(run.report, f"the report of run {run.name!r}", hint=WAIT_HINT)


def dataset_lock(dest: DatasetPaths) -> AbstractContextManager[Path | None]:
    """Exclusive use of dataset ``dest`` while it is synthesised, imported or probed (probe.json is written in it)."""
    return locks.exclusive(dest.root, f"dataset {dest.name!r}", hint=WAIT_HINT)
