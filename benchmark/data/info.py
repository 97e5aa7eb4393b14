"""What ``bench data info`` shows, as plain data (so the report can reuse it)."""

from __future__ import annotations

from typing import Any

from benchmark.data.prepared import PreparedDataset
from benchmark.data.splits import SPLITS


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
        "audio": f"{m['audio_samples'] / sr:g} s at {sr} Hz (mean valid {t['audio_len'].mean() / sr:.1f} s)",
        "artists": int(t["artist_id"].nunique()) if t["artist_id"].notna().any() else "n/a",
        "created": m.get("created"),
    }
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
    }
