"""Disk problems as user errors: full disks, read-only folders, permissions, and outputs replaced together.

Every command writes somewhere the user chose (``--data-root``, ``--runs-root``); when that place is full or
not writable the fix is the user's, so it must read as one line, not as a traceback or "internal error".
``disk_error_line`` is the one place that turns ENOSPC/EDQUOT, EROFS and EACCES/EPERM into that line (the CLI's
``main`` uses it for anything that escapes a command); ``disk_errors`` does the same where a write happens and
knows the folder and the size it needed. ``check_writable`` and ``check_free_space`` let a command fail before
its work rather than after it. ``staged_outputs`` makes the files of one result appear together or not at all.
``remove_stale_temp`` cleans the temporary folders of processes that were killed (and puts back a result that a
kill caught in the middle of its swap).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import UserError

NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
READ_ONLY = {errno.EROFS}
DENIED = {errno.EACCES, errno.EPERM}
DISK_ERRNOS = NO_SPACE | READ_ONLY | DENIED
MB = 1 << 20
FULL_BELOW = MB  # free bytes under which a failed write is blamed on a full disk


def _mb(n: float) -> str:
    return f"{n / MB:.0f}" if n >= 10 * MB else f"{n / MB:.1f}"


def find_os_error(exc: BaseException | None) -> OSError | None:
    """The first OSError with a disk errno in ``exc`` or its causes (a pool or a library may wrap it)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def disk_error_line(exc: BaseException, where: str | Path | None = None, need_bytes: int | None = None) -> str | None:
    """One line for a full disk, a read-only file system or a denied permission; None for anything else.

    ``where`` names the folder being written when the error itself carries no file name (``write`` calls);
    ``need_bytes`` adds how much the step needed.
    """
    e = find_os_error(exc)
    if e is None:
        return None
    name = e.filename if e.filename not in (None, "") else None
    if e.errno in NO_SPACE:
        return no_space_line(where if where is not None else (Path(name).parent if name else None), need_bytes)
    target = name if name is not None else where
    if e.errno in READ_ONLY:
        return f"cannot write to {target}: read-only file system" if target else "read-only file system"
    return f"permission denied: {target}" if target else "permission denied"


def no_space_line(where: str | Path | None, need_bytes: int | None = None) -> str:
    line = f"no space left on {where}" if where is not None else "no space left on device"
    if need_bytes:
        free = free_bytes(where) if where is not None else None
        line += f" (need about {_mb(need_bytes)} MB" + (f", {_mb(free)} MB free)" if free is not None else ")")
    return line


@contextmanager
def disk_errors(where: str | Path | None = None, need_bytes: int | None = None) -> Iterator[None]:
    """Turn a disk error raised inside the block into a UserError naming ``where`` (and the size needed).

    With ``where`` given, any failure while its file system has less than ``need_bytes`` (at least 1 MB) free
    counts as a full disk too: libraries report a failed write in their own words (torch: "enforce fail ...
    unexpected pos"; a process pool whose worker died writing into a memory map: BrokenProcessPool).
    """
    try:
        yield
    except UserError:
        raise
    except Exception as e:
        line = disk_error_line(e, where, need_bytes)
        if line is None and where is not None:
            free = free_bytes(where)
            if free is not None and free < max(FULL_BELOW, need_bytes or 0):
                line = no_space_line(where, need_bytes)
        if line is None:
            raise
        raise UserError(line) from e


def existing_ancestor(path: str | Path) -> Path:
    """``path`` or its nearest parent that exists (a folder a command is about to create is not there yet)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: str | Path) -> int | None:
    """Bytes free to this user on the file system holding ``path`` (None when that cannot be asked)."""
    try:
        return shutil.disk_usage(existing_ancestor(path)).free
    except OSError:
        return None


def check_free_space(path: str | Path, need_bytes: int, what: str = "") -> None:
    """UserError before the work when the file system of ``path`` has less than ``need_bytes`` free."""
    free = free_bytes(path)
    if free is not None and free < need_bytes:
        label = f" for {what}" if what else ""
        raise UserError(f"no space left on {path}{label} (need about {_mb(need_bytes)} MB, {_mb(free)} MB free)")


def check_writable(path: str | Path, what: str = "") -> None:
    """UserError unless a file can be created in ``path`` (or in the parent it would be created in).

    A real probe file, not ``os.access``: root passes permission checks, and only a write finds some read-only
    mounts. The folder itself is not created.
    """
    base = existing_ancestor(path)
    if not base.is_dir():
        raise UserError(f"cannot write to {path}: {base} is not a folder")
    label = f" ({what})" if what else ""
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=base)
    except OSError as e:
        if e.errno in NO_SPACE:
            return  # writable but full: the write that needs the space reports it, with the size
        if e.errno in READ_ONLY:
            raise UserError(f"cannot write to {path}{label}: read-only file system") from e
        if e.errno in DENIED:
            raise UserError(f"permission denied: {path}{label}") from e
        raise
    os.close(fd)
    os.unlink(probe)


def reserve(f, size: int) -> None:  # noqa: ANN001 - an open file or a descriptor
    """Allocate ``size`` bytes of a file now (``posix_fallocate``), so a full disk fails here, not on a later
    write into a memory map (which kills the writing process with SIGBUS). No-op where unsupported."""
    fd = f if isinstance(f, int) else f.fileno()
    if size <= 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in NO_SPACE:
            raise
        # EOPNOTSUPP/EINVAL: the file system cannot preallocate; the free-space check before is all we have


def reserve_file(path: str | Path) -> None:
    """``reserve`` a file already sized on disk (a sparse ``np.lib.format.open_memmap`` file)."""
    with open(path, "r+b") as f:
        reserve(f, os.fstat(f.fileno()).st_size)


@contextmanager
def staged_outputs(final_dir: str | Path) -> Iterator[Path]:
    """Write a result's files into a sibling folder and swap it in only when the block succeeds.

    Yields the staging folder. On success the old ``final_dir`` (if any) is renamed aside, the staging folder
    renamed into place, and the old one removed; on any error the staging folder is removed and ``final_dir`` is
    untouched, so its files still belong to one earlier result. A writer killed with SIGKILL leaves its
    ``.NAME.stage-PID`` folder (or, between the two renames, ``.NAME.old-PID``): the next ``staged_outputs`` in
    the same folder removes the first and puts the second back (``remove_stale_temp``).
    """
    final = Path(final_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(final.parent)  # what killed writers left here: their stage folders, an interrupted swap
    stage = final.parent / f".{final.name}.stage-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    with disk_errors(final.parent):
        stage.mkdir()
    try:
        yield stage
        with disk_errors(final.parent):
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            if final.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
            try:
                os.replace(stage, final)
            except BaseException:
                if old.exists() and not final.exists():
                    os.replace(old, final)
                raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


_TEMP_RE = re.compile(r"^\.(.+)\.(tmp|unzip|old|stage)-(\d+)$")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp(root: str | Path) -> list[Path]:
    """Remove ``.<name>.tmp-PID`` (and ``unzip``/``old``/``stage``) entries in ``root`` whose process is gone.

    They are what a killed import, synthesis or staged write leaves; a live process's folders are left alone.
    ``.<name>.old-PID`` is the previous result moved aside for a swap: when ``<name>`` is missing the swap never
    finished, so it is put back instead of removed (the one copy there is). Returns what was removed.
    """
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for p in root.iterdir():
        m = _TEMP_RE.match(p.name)
        if m is None or int(m.group(3)) == os.getpid() or pid_alive(int(m.group(3))):
            continue
        try:
            if m.group(2) == "old" and not os.path.lexists(root / m.group(1)):
                os.replace(p, root / m.group(1))
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except OSError:
            continue  # read-only or busy: not worth failing the command over
        removed.append(p)
    return removed
