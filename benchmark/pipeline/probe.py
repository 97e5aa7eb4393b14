"""``bench data probe``: is there a cover <-> music relationship to learn at all? No trained model needed.

Cover features -> genre, by artist-grouped k-fold over every labelled cover, and -> each audio embedding that runs
already hold for this dataset (``runs/*/encoders/<name>/embeddings.parquet``). Features are cached by dataset content
(``metrics.features.cache``). The result goes to ``data/<name>/probe.json``.

Which extractor: the same rule as ``bench evaluate`` and ``bench power``, so the probe answers "can *this* extractor
see genre on these covers?" for the extractor that will judge the models: the config's ``eval.features``
(``covernet`` in the cpu preset, ``inception`` in the gpu preset), unless ``--features`` names another. ``covernet``
is trained on the train split, so it scores val+test covers only; Inception and any other extractor score every
labelled cover at the largest stored size. ``bench evaluate`` reuses probe.json only while the dataset's content,
the extractor and the fold count are unchanged (``probe_matches``).
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from benchmark.pipeline.locks import dataset_lock
from core import paths as P
from core.config.schema import EvalConfig
from core.data.fingerprint import is_stale
from core.data.info import dataset_fingerprint, probe_path, read_probe  # noqa: F401 - read_probe re-exported
from core.data.prepared import PreparedDataset
from core.data.splits import grouping, track_groups
from core.errors import UserError
from core.jsonfiles import jsonable, write_json_atomic
from core.paths import RunPaths

PROBE_SCHEMA = 1
GROUP_NAMES = {"artist": "artist", "audio": "same audio", "cover": "same cover"}
NOT_AUDIO = ("genre", "attributes")  # the label itself, and Spotify metadata: not embeddings of the audio


@dataclass(frozen=True)
class AudioSource:
    encoder: str
    run: RunPaths


def audio_sources(ds: PreparedDataset, runs: list[RunPaths] | None = None) -> list[AudioSource]:
    """Encoders whose embeddings were made from this dataset as it is (their ``eval.json`` names it and its
    content fingerprint), newest per name.

    ``runs`` defaults to every run under the runs root.
    """
    if runs is None:
        root = P.runs_root()
        runs = [RunPaths(p) for p in sorted(root.iterdir()) if p.is_dir()] if root.is_dir() else []
    found: dict[str, tuple[float, AudioSource]] = {}
    for run in runs:
        enc_dir = run.root / "encoders"
        if not enc_dir.is_dir():
            continue
        for d in sorted(enc_dir.iterdir()):
            emb, ev = d / "embeddings.parquet", d / "eval.json"
            if d.name in NOT_AUDIO or d.name.startswith(".") or not (emb.is_file() and ev.is_file()):  # .stage-PID
                continue
            try:
                made = json.loads(ev.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if made.get("dataset") != ds.name or is_stale(made.get("dataset_fingerprint"), ds.fingerprint):
                continue  # another dataset, or an earlier version of this one
            mtime = emb.stat().st_mtime
            if d.name not in found or mtime > found[d.name][0]:
                found[d.name] = (mtime, AudioSource(d.name, run))
    return [src for _, src in sorted(found.values(), key=lambda t: t[1].encoder)]


def _cover_features(
    ds: PreparedDataset, features: str, cfg: EvalConfig, device_kind: str
) -> tuple[np.ndarray, np.ndarray, Any, int, str]:
    """(rows, their cached features, extractor, resolution, which covers)."""
    import torch

    from metrics.features.extractors import make_extractor, real_features

    device = torch.device("cuda" if device_kind in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    # Inception resizes to 299 px itself: give it the most detail there is; covernet was trained at the smallest
    res = min(ds.resolutions) if features == "covernet" else max(ds.resolutions)
    ext = make_extractor(ds, features, res, cfg, device)
    if features == "covernet":  # trained on train covers: scoring them would reward memory
        parts = [real_features(ds, s, res, ext, stats=False) for s in ("val", "test") if len(ds.split_rows(s))]
        if not parts:
            raise UserError(f"dataset {ds.name!r} has no val or test covers for a covernet probe: use --features "
                            "inception or colour")
        x = np.concatenate([c.features for c, _ in parts])
        rows = np.concatenate([r for _, r in parts])
        return rows, x, ext, res, "val+test (held out from covernet training)"
    cached, rows = real_features(ds, None, res, ext, stats=False)
    return rows, cached.features, ext, res, "all covers"


def probe_matches(probe: dict[str, Any] | None, features: str, folds: int) -> bool:
    """Whether a saved probe answers for ``features`` with ``folds`` folds (older files name only the extractor)."""
    if probe is None:
        return False
    return probe.get("folds") == folds and probe.get("features", probe.get("extractor")) == features


def probe_dataset(
    ds: PreparedDataset,
    features: str | None = None,
    folds: int = 5,
    *,
    runs: list[RunPaths] | None = None,
    cfg: EvalConfig | None = None,
    n_permutations: int = 1000,
    seed: int = 0,
    device_kind: str = "auto",
    write: bool = True,
) -> dict[str, Any]:
    """Run the relationship probe on ``ds`` and (with ``write``) save it as ``data/<name>/probe.json``, holding the
    dataset's lock as its other writers do (``data synth/import --force`` would replace what it probes).

    ``features`` None: ``cfg.features``, the extractor evaluation uses (see the module docstring)."""
    with dataset_lock(ds.paths) if write else nullcontext():
        return _probe(ds, features, folds, runs, cfg, n_permutations, seed, device_kind, write)


def _probe(ds: PreparedDataset, features: str | None, folds: int, runs: list[RunPaths] | None,
           cfg: EvalConfig | None, n_permutations: int, seed: int, device_kind: str, write: bool) -> dict[str, Any]:
    from metrics.relationship import audio_probe, genre_probe

    cfg = cfg or EvalConfig()
    features = features or cfg.features
    t0 = time.perf_counter()
    sources = audio_sources(ds, runs) if ds.has_audio else []
    why = genre_skip_reason(ds, ds.genre_idx)
    if why and not sources:  # before any feature is computed: there would be nothing to score
        raise UserError(f"nothing to probe on dataset {ds.name!r}: {why}, and no run holds audio embeddings of it "
                        "(`bench encode --dataset NAME` makes some)")
    rows, x, ext, res, covers = _cover_features(ds, features, cfg, device_kind)
    group_by = grouping((ds.manifest.get("split") or {}).get("group_by"))  # the ties the dataset was split by
    groups_all = track_groups(ds.tracks, group_by)
    y = ds.genre_idx[rows]
    ok = y >= 0
    out: dict[str, Any] = {
        "schema_version": PROBE_SCHEMA,
        "dataset": ds.name,
        "dataset_files": dataset_fingerprint(ds),
        "features": features,
        "dataset_fingerprint": ds.fingerprint,
        "extractor": ext.name,
        "preprocessing": ext.preprocessing,
        "res": res,
        "covers": f"{covers}: {int(ok.sum())} with a genre",
        "n_covers": int(len(rows)),
        "cv": f"artist-grouped {folds}-fold (groups: {', '.join(GROUP_NAMES[k] for k in group_by) or 'none'})",
        "folds": folds,
        "n_groups": int(len(np.unique(groups_all[rows]))),
        "seed": seed,
        "genre": None,
        "audio": {},
        "audio_embeddings": [],
    }
    why = genre_skip_reason(ds, y)
    if why is None:
        r = genre_probe(x[ok], y[ok], folds=folds, n_permutations=n_permutations, seed=seed,
                        groups=groups_all[rows[ok]], class_names=list(ds.genres))
        out["genre"] = r.to_dict()
    else:
        out["genre_skipped"] = f"{why} ({covers})"
    if not ds.has_audio:
        out["audio_skipped"] = "the dataset has no audio: it was imported covers only"
    for src in sources:
        from models.encoders.store import load_embeddings

        emb = load_embeddings(src.run, src.encoder, ds)[rows]
        if emb.ndim != 2 or emb.shape[1] == 0:
            continue
        r = audio_probe(x, emb, folds=folds, n_permutations=n_permutations, seed=seed, groups=groups_all[rows])
        out["audio"][src.encoder] = r.to_dict()
        out["audio_embeddings"].append({"encoder": src.encoder, "run": src.run.name})
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = jsonable(out)
    if write:
        write_json_atomic(probe_path(ds), out)
    return out


def genre_skip_reason(ds: PreparedDataset, genre_idx: np.ndarray) -> str | None:
    """Why covers with these genre indices cannot be probed for genre (None: they can)."""
    labelled = np.unique(genre_idx[genre_idx >= 0])
    if labelled.size == 0:
        return "no cover has a genre (the track table's genre column is missing or empty)"
    if labelled.size < 2:
        return (f"every cover with a genre is {ds.genres[int(labelled[0])]!r}: genre accuracy needs two genres or "
                "more (chance would be 1)")
    return None


def probe_table(probe: dict[str, Any]) -> pd.DataFrame:
    """One row per probe target (genre, then each audio embedding): value, interval, chance/null, p-value."""
    rows = []
    targets = [("genre accuracy", probe.get("genre"))]
    targets += [(f"audio R^2 ({k})", v) for k, v in (probe.get("audio") or {}).items()]
    for label, r in targets:
        if not r:
            continue
        iv = r.get("interval") or (None, None)
        rows.append({"target": label, "value": r["value"], "lo": iv[0], "hi": iv[1], "null": r.get("null_mean"),
                     "p": r.get("p_value"), "n": r.get("n")})
    return pd.DataFrame(rows)
