"""Exclusive locks on a run or a dataset, so that two writers never mix their files.

A lock is an ``fcntl.flock`` on a small file beside the folder it guards (``<runs root>/.<run>.lock``,
``<data root>/.<name>.lock``): beside it, not inside, because a dataset or a staged result is replaced by a rename
and its lock must stay where it is. The kernel drops the lock when its holder ends, however it ends (``kill -9``
included), so a lock is never stale; the file holds the holder's pid, command and start time only so that a
refused writer can say who is writing, and is removed when the lock is released (a killed holder leaves it, empty
of meaning: the next writer simply takes it). A process may take a lock it already holds (``train all`` encodes,
``calibrate`` trains and evaluates): the lock is released when the outermost block ends.

Where the lock file cannot be created (a read-only or foreign folder) no one can write through this process
anyway: the block runs without the lock and the command's own write check says what is wrong.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import UserError

POLL_S = 0.2
_UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}
_held: dict[str, list[int]] = {}  # lock file -> [descriptor, depth, owning pid]
_settings: dict[str, object] = {"wait": 0.0, "command": None}


def set_wait(seconds: float | None) -> None:
    """How long a refused writer of this process waits for the holder to finish (0: refuse at once; inf: forever)."""
    s = 0.0 if seconds is None else float(seconds)
    if math.isnan(s) or s < 0:
        raise UserError(f"--wait {seconds}: give the seconds to wait, 0 or more (inf waits for as long as it takes)")
    _settings["wait"] = s


def set_command(command: str | None) -> None:
    """The command line a lock's holder shows to a refused writer (default: this process's arguments)."""
    _settings["command"] = command


def lock_file(folder: str | Path) -> Path:
    """The lock file that guards ``folder``: a hidden sibling, so it survives the folder's replacement."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


def holder(path: str | Path) -> dict | None:
    """What the lock file says about its last holder (pid, command, since), or None when it says nothing."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


@contextmanager
def exclusive(folder: str | Path, what: str, *, wait: float | None = None, hint: str = "") -> Iterator[Path | None]:
    """Hold the exclusive lock of ``folder`` for the block; yields the lock file (None where it cannot exist).

    Another holder makes this wait up to ``wait`` seconds (default: ``set_wait``), then raise a UserError naming
    ``what``, the holder's pid and command, and ``hint`` (how to wait).
    """
    path = lock_file(folder)
    key = str(path.absolute())
    mine = _held.get(key)
    if mine is not None and mine[2] == os.getpid():  # taken further up in this process: nest
        mine[1] += 1
        try:
            yield path
        finally:
            mine[1] -= 1
        return
    fd = _locked(path, what, _settings["wait"] if wait is None else wait, hint)  # type: ignore[arg-type]
    if fd is None:
        yield None
        return
    try:
        _record_holder(fd)
        _held[key] = [fd, 1, os.getpid()]
        try:
            yield path
        finally:
            del _held[key]
            try:
                os.unlink(path)  # while still held: a waiter that then gets the old file sees it is gone
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _locked(path: Path, what: str, wait: float, hint: str) -> int | None:
    """A descriptor holding the lock on the file now at ``path`` (None where no lock file can exist).

    The holder removes its lock file when it is done, so a file locked after waiting may be one that was already
    removed; then a fresh one is taken (the usual lock-file protocol: lock, then check it is still the file there).
    """
    t0 = time.monotonic()
    while True:
        fd = _open(path)
        if fd is None:
            return None
        try:
            _acquire(fd, path, what, max(0.0, wait - (time.monotonic() - t0)), hint)
        except BaseException:
            os.close(fd)
            raise
        if _is_current(fd, path):
            return fd
        os.close(fd)


def _is_current(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)


def _open(path: Path) -> int | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno not in _UNWRITABLE:
            raise
    try:  # an existing lock file in a folder we cannot write: a shared descriptor still takes the lock
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _acquire(fd: int, path: Path, what: str, wait: float, hint: str) -> None:
    t0 = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waited = time.monotonic() - t0
        if waited >= wait:
            raise UserError(busy_line(path, what, waited if wait > 0 else None, hint))
        time.sleep(min(POLL_S, wait - waited))


def busy_line(path: Path, what: str, waited: float | None = None, hint: str = "") -> str:
    """One line: who holds the lock of ``what`` (pid, command, since when) and what to do about it."""
    info = holder(path) or {}
    who = f"process {info['pid']}" if info.get("pid") else "another process"
    if info.get("command"):
        who += f" ({info['command']}"
        who += f", since {info['since']})" if info.get("since") else ")"
    still = f" still after {waited:.0f} s" if waited is not None else ""
    tail = f": wait for it to finish{', or ' + hint if hint else ''}" if waited is None else ""
    return f"{what} is in use by {who}{still}{tail}"


def _command() -> str:
    command = _settings["command"]
    if command is None:
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else f"pid {os.getpid()}"
    text = str(command)
    return text if len(text) <= 160 else text[:157] + "..."


def _record_holder(fd: int) -> None:
    """Write who holds the lock into its file (best effort: a full disk must not fail the command here)."""
    info = {"pid": os.getpid(), "command": _command(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    except OSError:
        pass
