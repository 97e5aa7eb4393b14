"""What ``bench data info`` shows, as plain data (so the report can reuse it), and the saved relationship probe."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from core.data.prepared import PreparedDataset
from core.data.splits import SPLITS


def dataset_summary(ds: PreparedDataset) -> dict[str, Any]:
    t = ds.tracks
    m = ds.manifest
    sr = ds.sample_rate
    facts: dict[str, Any] = {
        "kind": m.get("kind"),
        "folder": str(ds.paths.root),
        "tracks": len(t),
        "rejected": m.get("counts", {}).get("rejected", 0),
        "genres": len(ds.genres),
        "cover resolutions (px)": ", ".join(str(r) for r in ds.resolutions),
        "audio": (
            f"{m['audio_samples'] / sr:g} s at {sr} Hz (mean valid {t['audio_len'].mean() / sr:.1f} s)"
            if ds.has_audio
            else "none: covers only (imported without previews; audio encoders and music conditions are off)"
        ),
        "artists": int(t["artist_id"].nunique()) if t["artist_id"].notna().any() else "n/a",
        "created": m.get("created"),
    }
    if "attributes_available" in m:
        have = len(m["attributes_available"])
        facts["Spotify attributes"] = f"{have} of 12 columns" if have else "none (the 'attributes' condition is off)"
    dups = m.get("duplicates") or {}
    if dups:
        facts["exact duplicates"] = (
            f"audio: {dups.get('audio', {}).get('tracks', 0)} tracks in {dups.get('audio', {}).get('groups', 0)} "
            f"groups; covers across albums: {dups.get('covers', {}).get('tracks', 0)} tracks in "
            f"{dups.get('covers', {}).get('groups', 0)} groups (each group kept in one split)"
        )
    if ds.is_synthetic:
        synth = m.get("synth", {})
        facts["coupling (configured)"] = synth.get("coupling")
        if "coupled" in t.columns:
            facts["coupled share (actual)"] = f"{t['coupled'].mean():.3f}"
        facts["seed"] = synth.get("seed")
    per_genre = {}
    labels = t["genre"].astype("object").where(t["genre"].notna(), "(none)")
    for g in [*ds.genres, "(none)"]:
        mask = labels == g
        if g == "(none)" and not mask.any():
            continue
        per_genre[g] = {s: int((mask & (t["split"] == s)).sum()) for s in SPLITS}
    return {
        "name": ds.name,
        "tracks": len(t),
        "facts": facts,
        "splits": list(SPLITS),
        "split_counts": {s: int((t["split"] == s).sum()) for s in SPLITS},
        "per_genre": per_genre,
        "warnings": list(m.get("split_warnings") or []),
        "duplicates": dups,
    }


PROBE_FILE = "probe.json"


def probe_path(ds: PreparedDataset) -> Path:
    """Where ``bench data probe`` saves its result: ``data/<name>/probe.json``."""
    return ds.paths.root / PROBE_FILE


def dataset_fingerprint(ds: PreparedDataset) -> dict[str, str]:
    """The dataset's content identity: each file's sha256 from the manifest (a re-import changes it)."""
    return {name: str(f.get("sha256")) for name, f in sorted((ds.manifest.get("files") or {}).items())}


def dataset_identity(ds: PreparedDataset) -> str:
    """What makes two datasets of one name the same dataset, as a short tag.

    A synthetic world is its recipe (the synthesis settings and the split settings, ``synth:<hash>``): the same
    recipe makes the same world, and the tag does not hang on the last bit of floating-point synthesis on another
    CPU. An imported collection is its content (every file's sha256, ``files:<hash>``): re-importing other files
    under the same name changes it.
    """
    m = ds.manifest
    if ds.is_synthetic and m.get("synth"):
        return recipe_identity(m["synth"], m.get("split") or {})
    return "files:" + _digest(dataset_fingerprint(ds))


def _digest(tree: Any) -> str:
    return hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def recipe_identity(synth: dict[str, Any], split: dict[str, Any]) -> str:
    """``dataset_identity`` of the world a synthesis config would make, without making it."""
    return "synth:" + _digest({"synth": dict(synth), "split": dict(split)})


def read_probe(ds: PreparedDataset, *, fresh_only: bool = True) -> dict[str, Any] | None:
    """The saved probe, or None when missing, unreadable or (``fresh_only``) made from other dataset content."""
    path = probe_path(ds)
    if not path.is_file():
        return None
    try:
        probe = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if fresh_only and probe.get("dataset_files") != dataset_fingerprint(ds):
        return None
    return probe
