"""Finding the dump's parts: the metadata CSV and the media files, indexed by file stem (the id).

Files may sit in any subfolder. When two files share a stem, the one in the expected folder (``covers/`` or
``previews/``) wins, then the shallower, then the first by name; the others are recorded as duplicates.

Symbolic links (to files or folders) are never followed: a link can point anywhere on the machine, and what the
importer reads must be the source the user named. They are listed instead (``MediaIndex.links``), so a row whose
cover is a link, or a dump whose ``covers/`` folder is one, is rejected saying so, not as a missing cover.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.data.importer import audio, images
from core.errors import UserError

SKIP_DIRS = {"__MACOSX"}
PREFERRED_DIR = {"cover": "covers", "preview": "previews"}
MEDIA_DIRS = set(PREFERRED_DIR.values())


@dataclass
class MediaIndex:
    covers: dict[str, Path] = field(default_factory=dict)
    previews: dict[str, Path] = field(default_factory=dict)
    duplicates: list[tuple[str, Path, Path]] = field(default_factory=list)  # (stem, ignored file, kept file)
    links: list[Path] = field(default_factory=list)  # symbolic links, not followed (files and folders)
    linked: dict[str, dict[str, Path]] = field(default_factory=lambda: {"cover": {}, "preview": {}})  # kind: stem

    def linked_folders(self) -> list[Path]:
        return [p for p in self.links if p.is_dir()]

    def link_note(self, root: Path, limit: int = 3) -> str:
        """``3 symbolic links not followed (covers/, a.jpg, ...)``, or "" when there are none."""
        if not self.links:
            return ""
        names = [p.relative_to(root).as_posix() + ("/" if p.is_dir() else "") for p in self.links]
        more = f", ... {len(names) - limit} more" if len(names) > limit else ""
        return (f"{len(names)} symbolic link(s) not followed ({', '.join(names[:limit])}{more}): the importer reads "
                "only real files inside the source; copy the linked files in")


def _visible(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return not any(p.startswith(".") or p in SKIP_DIRS for p in parts)


def index_media(root: Path) -> MediaIndex:
    """Index every cover image and audio preview below ``root`` by stem."""
    found: dict[str, dict[str, list[Path]]] = {"cover": {}, "preview": {}}
    index = MediaIndex()
    for path in sorted(root.rglob("*")):  # rglob lists a link but never descends into a linked folder
        if not _visible(path, root):
            continue
        kind = _kind(path)
        if path.is_symlink():
            if kind is not None or path.is_dir():
                index.links.append(path)
            if kind is not None:
                index.linked[kind].setdefault(path.stem, path)
            continue
        if kind is not None and path.is_file():
            found[kind].setdefault(path.stem, []).append(path)
    for kind, target in (("cover", index.covers), ("preview", index.previews)):
        for stem, paths in found[kind].items():
            ranked = sorted(
                paths,
                key=lambda p: (PREFERRED_DIR[kind] not in p.relative_to(root).parts[:-1], len(p.parts), str(p)),
            )
            target[stem] = ranked[0]
            index.duplicates.extend((stem, p, ranked[0]) for p in ranked[1:])
    return index


def _kind(path: Path) -> str | None:
    ext = path.suffix.lower()
    return "cover" if ext in images.EXTENSIONS else "preview" if ext in audio.EXTENSIONS else None


def find_metadata(root: Path, metadata: Path | None) -> Path:
    """The CSV to read: ``metadata`` if given (also tried relative to ``root``), else tracks.csv, else the one CSV."""
    if metadata is not None:
        metadata = Path(metadata)
        for cand in (metadata, root / metadata):
            if cand.is_file():
                return cand
        raise UserError(f"metadata file {metadata} not found")
    if (root / "tracks.csv").is_file():
        return root / "tracks.csv"
    csvs = sorted(p for p in root.glob("*") if p.is_file() and p.suffix.lower() == ".csv" and _visible(p, root))
    if len(csvs) == 1:
        return csvs[0]
    if not csvs:
        raise UserError(f"no CSV found at the top of {root}: pass the track table with --metadata PATH")
    names = ", ".join(p.name for p in csvs)
    raise UserError(f"several CSVs at the top of {root} ({names}): choose one with --metadata PATH")


def descend_single_folder(root: Path) -> Path:
    """Zips often wrap everything in one folder: step into it while it is the only visible entry."""
    while True:
        entries = [p for p in root.iterdir() if not p.name.startswith(".") and p.name not in SKIP_DIRS]
        single = entries[0] if len(entries) == 1 else None
        if single is not None and single.is_dir() and not single.is_symlink() and single.name not in MEDIA_DIRS:
            root = single
        else:
            return root
