"""Train/val/test assignment: stratified by genre and artist-disjoint, so no artist leaks across splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from benchmark.config.schema import SplitConfig

SPLITS = ("train", "val", "test")


def assign_splits(
    genres: Sequence[object], artists: Sequence[object] | None, cfg: SplitConfig | None = None
) -> np.ndarray:
    """Return one of 'train'/'val'/'test' per track.

    Tracks are grouped by artist (each track is its own group where artist ids are missing); each group goes
    wholly to one split. Within each genre stratum (a group's majority genre), groups are visited in a seeded
    random order and each goes to the split furthest below its target share.
    """
    cfg = cfg or SplitConfig()
    n = len(genres)
    targets = np.array([cfg.train, cfg.val, cfg.test])
    g = pd.Series(list(genres), dtype=object).fillna("__none__").astype(str).to_numpy()
    if artists is None:
        a = np.array([f"__track{i}" for i in range(n)], dtype=object)
    else:
        a = pd.Series(list(artists), dtype=object).to_numpy()
        missing = pd.isna(a) | (pd.Series(a).astype(str).str.len().to_numpy() == 0)
        a = np.where(missing, [f"__track{i}" for i in range(n)], a.astype(str))
    frame = pd.DataFrame({"genre": g, "artist": a})
    stratum = frame.groupby("artist")["genre"].agg(lambda s: s.value_counts().index[0])
    sizes = frame.groupby("artist").size()
    rng = np.random.default_rng(cfg.seed)
    group_split: dict[object, str] = {}
    for genre in sorted(stratum.unique()):
        groups = stratum.index[stratum.to_numpy() == genre].to_numpy()
        groups = groups[rng.permutation(len(groups))]
        counts = np.zeros(3)
        for grp in groups:
            size = sizes[grp]
            deficit = targets * (counts.sum() + size) - counts
            # never leave val/test empty while there is more than a couple of groups to hand out
            k = int(np.argmax(deficit))
            counts[k] += size
            group_split[grp] = SPLITS[k]
    return np.array([group_split[x] for x in a], dtype=object)
