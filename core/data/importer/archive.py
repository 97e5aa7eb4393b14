"""Safe extraction of a zipped dump.

A dump may come from anywhere, so a member is written only when its path stays inside the target folder: absolute
paths, drive letters, '..' components and symlinks are refused, and the total unpacked size is capped (media files
barely compress, so a large unpacked-to-packed ratio means a zip bomb). Refused members are returned as rejections
rather than raised, so one bad member does not stop an otherwise good import.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.errors import UserError

# Media barely compresses; allow generous headroom over the packed size before calling it a bomb.
MAX_RATIO = 20
MIN_CAP_BYTES = 64 << 20
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass
class Extracted:
    root: Path
    files: int = 0
    bytes: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (member name, "code: detail")


def default_cap(zip_path: Path) -> int:
    """Unpacked-size cap: MAX_RATIO times the archive's size (at least MIN_CAP_BYTES)."""
    return max(MIN_CAP_BYTES, MAX_RATIO * Path(zip_path).stat().st_size)


def member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member may not be extracted, as "code: detail", or None when it is safe."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        return "unsafe-path: absolute path"
    if ".." in PurePosixPath(name).parts:
        return "unsafe-path: '..' component"
    if "\x00" in name:
        return "unsafe-path: NUL in name"
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        return "unsafe-path: symbolic link"
    if mode and not info.is_dir() and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        return "unsafe-path: not a regular file"
    return None


def safe_extract(zip_path: Path, dest: Path, max_bytes: int | None = None) -> Extracted:
    """Extract the regular files of ``zip_path`` under ``dest`` (created), refusing unsafe members."""
    zip_path = Path(zip_path)
    cap = default_cap(zip_path) if max_bytes is None else int(max_bytes)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    out = Extracted(root=dest)
    seen: set[str] = set()
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{zip_path} is not a readable zip archive ({e})") from e
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            problem = member_problem(info)
            rel = info.filename.replace("\\", "/").lstrip("/")
            target = (dest / rel).resolve() if problem is None else None
            if target is not None and not target.is_relative_to(root):
                problem = "unsafe-path: resolves outside the extraction folder"
            if problem is None and rel in seen:
                problem = "duplicate-file: member name repeated in the archive"
            if problem is None and out.bytes + info.file_size > cap:
                problem = f"zip-too-large: unpacking would exceed {cap} bytes"
            if problem is not None:
                out.refused.append((info.filename, problem))
                continue
            seen.add(rel)
            assert target is not None
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                out.bytes += _copy_member(zf, info, target, cap - out.bytes)
                out.files += 1
            except _TooLarge:
                target.unlink(missing_ok=True)
                out.refused.append((info.filename, f"zip-too-large: unpacking would exceed {cap} bytes"))
                out.bytes = cap
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
                target.unlink(missing_ok=True)
                out.refused.append((info.filename, f"bad-zip-member: {type(e).__name__}: {e}"))
    return out


class _TooLarge(Exception):
    pass


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> int:
    """Stream one member to ``target``, counting real bytes (a lying header cannot beat the cap)."""
    written = 0
    with zf.open(info) as src, open(target, "wb") as dst:
        while block := src.read(_CHUNK):
            written += len(block)
            if written > budget:
                raise _TooLarge
            dst.write(block)
    return written


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
