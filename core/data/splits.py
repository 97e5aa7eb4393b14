"""Train/val/test assignment: stratified by genre and artist-disjoint, so no artist leaks across splits.

Tracks that share content (the same audio or the same cover bytes, see ``content_links``) are tied together like
tracks of one artist, so a clip repeated on a compilation never sits in train and test at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.config.schema import SplitConfig

SPLITS = ("train", "val", "test")


@dataclass
class SplitResult:
    split: np.ndarray  # 'train' / 'val' / 'test' per track
    warnings: list[str] = field(default_factory=list)


def _group_ids(n: int, artists: Sequence[object] | None, links: Sequence[Sequence[object]] = ()) -> np.ndarray:
    """One group id per track: connected components of "same artist" and "same value in any ``links`` column".

    Missing artists (and missing link values) tie nothing: such a track is its own group unless a link joins it.
    """
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(keys: Sequence[object]) -> None:
        first: dict[object, int] = {}
        for i, k in enumerate(keys):
            if k is None or (isinstance(k, float) and np.isnan(k)) or (isinstance(k, str) and not k):
                continue
            if k is pd.NA:
                continue
            j = first.setdefault(k, i)
            if j != i:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)

    if artists is not None:
        join([None if pd.isna(a) else str(a) for a in artists])
    for col in links:
        join(list(col))
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def track_groups(tracks: pd.DataFrame) -> np.ndarray:
    """Group ids of a prepared tracks table, as the splitter forms them (artist, same audio, same cover)."""
    artists = tracks["artist_id"] if "artist_id" in tracks and tracks["artist_id"].notna().any() else None
    links = [tracks[c].tolist() for c in ("cover_hash", "audio_hash") if c in tracks]
    return _group_ids(len(tracks), artists, links)


def split_tracks(
    genres: Sequence[object],
    artists: Sequence[object] | None,
    cfg: SplitConfig | None = None,
    links: Sequence[Sequence[object]] = (),
) -> SplitResult:
    """Assign splits and say what could not be kept (a genre missing from a split, an empty split).

    Tracks are grouped by artist and by shared content (``links``: e.g. audio and cover hashes); each group goes
    wholly to one split. Within each genre stratum (a group's majority genre), groups are visited in a seeded
    random order and each goes to the split furthest below its target share. Then every split with a positive
    share that lacks the stratum gets the smallest group of the split holding most of the stratum's groups, as
    long as that split keeps one: a genre with at least as many groups as splits appears in every split.
    """
    cfg = cfg or SplitConfig()
    n = len(genres)
    targets = np.array([cfg.train, cfg.val, cfg.test])
    wanted = [k for k in range(3) if targets[k] > 0]
    g = pd.Series(list(genres), dtype=object).fillna("__none__").astype(str).to_numpy()
    # a group is named by its smallest artist key, so without links the groups (and their order) are the artists
    if artists is None:
        key = np.array([f"__track{i}" for i in range(n)], dtype=object)
    else:
        key = pd.Series(list(artists), dtype=object).to_numpy()
        missing = pd.isna(key) | (pd.Series(key).astype(str).str.len().to_numpy() == 0)
        key = np.where(missing, [f"__track{i}" for i in range(n)], key.astype(str))
    comp = _group_ids(n, artists, links)
    grp = pd.Series(key).groupby(comp).transform("min").to_numpy()
    frame = pd.DataFrame({"genre": g, "group": grp})
    stratum = frame.groupby("group")["genre"].agg(lambda s: s.value_counts().index[0])
    sizes = frame.groupby("group").size()
    rng = np.random.default_rng(cfg.seed)
    group_split: dict[object, int] = {}
    for genre in sorted(stratum.unique()):
        groups = stratum.index[stratum.to_numpy() == genre].to_numpy()
        groups = groups[rng.permutation(len(groups))]
        counts = np.zeros(3)
        for gr in groups:
            size = sizes[gr]
            k = int(np.argmax(targets * (counts.sum() + size) - counts))
            counts[k] += size
            group_split[gr] = k
        _fill_missing(groups, group_split, sizes, wanted)
    split_idx = np.array([group_split[x] for x in grp], dtype=np.int64)
    out = np.array(SPLITS, dtype=object)[split_idx]
    return SplitResult(out, _warnings(g, grp, split_idx, wanted))


def _fill_missing(groups: np.ndarray, group_split: dict[object, int], sizes: pd.Series, wanted: list[int]) -> None:
    """Move groups so that every wanted split holds one of ``groups`` where there are enough of them."""
    for k in wanted:
        members = {s: [gr for gr in groups if group_split[gr] == s] for s in wanted}
        if members[k]:
            continue
        donor = max(wanted, key=lambda s: (len(members[s]), -s))
        if len(members[donor]) < 2:
            continue  # too few groups: the warning names the genre
        smallest = min(members[donor], key=lambda gr: (sizes[gr], list(groups).index(gr)))
        group_split[smallest] = k


def _warnings(g: np.ndarray, grp: np.ndarray, split_idx: np.ndarray, wanted: list[int]) -> list[str]:
    out = []
    for genre in sorted(set(g) - {"__none__"}):
        mask = g == genre
        absent = [SPLITS[k] for k in wanted if not (split_idx[mask] == k).any()]
        if absent:
            n_groups = len(np.unique(grp[mask]))
            out.append(
                f"genre {genre!r} is absent from {' and '.join(absent)}: its {int(mask.sum())} track(s) come from "
                f"{n_groups} artist group(s), too few to place one in every split"
            )
    for k in wanted:
        if not (split_idx == k).any():
            out.append(
                f"split {SPLITS[k]!r} is empty: the {len(g)} track(s) form {len(np.unique(grp))} artist group(s); "
                f"evaluation needs tracks in {SPLITS[k]} (import more artists or change the split shares)"
            )
    return out


def assign_splits(
    genres: Sequence[object],
    artists: Sequence[object] | None,
    cfg: SplitConfig | None = None,
    links: Sequence[Sequence[object]] = (),
) -> np.ndarray:
    """Return one of 'train'/'val'/'test' per track (``split_tracks`` without the warnings)."""
    return split_tracks(genres, artists, cfg, links).split
