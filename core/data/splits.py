"""Train/val/test assignment: stratified by genre and artist-disjoint, so no artist leaks across splits.

Tracks that share content (the same audio or the same cover bytes) are tied together like tracks of one artist, so
a clip repeated on a compilation never sits in train and test at once. ``SplitConfig.group_by`` says which ties
count (``artist``, ``audio``, ``cover``; ``[]``: none). Left unset it means all three, checked: when the content ties
cost a split a genre (or a whole split) that artist grouping alone would fill, the split is refused naming the
largest duplicate groups (``split_frame``). A collection that reuses one preview for many tracks otherwise merges
whole genres into one group that lands in train, and every held-out score is then computed without those genres.
The user chooses: ``--group-by artist`` (duplicates may then sit in train and test) or an explicit
``--group-by artist,audio,cover`` (keep them together, accept the gaps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.config.schema import SplitConfig
from core.errors import UserError

SPLITS = ("train", "val", "test")
GROUP_BY = ("artist", "audio", "cover")
LINK_COLUMNS = {"audio": "audio_hash", "cover": "cover_hash"}  # prepared tracks columns (exact-content hashes)


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


def grouping(group_by: Sequence[str] | None) -> tuple[str, ...]:
    """The ties in effect: ``group_by`` in canonical order (None: all of ``GROUP_BY``)."""
    return GROUP_BY if group_by is None else tuple(k for k in GROUP_BY if k in group_by)


def _ties(tracks: pd.DataFrame, keys: Sequence[str]) -> tuple[pd.Series | None, list[list[object]]]:
    """(artist ids or None, content link columns) of a prepared tracks table for the ties ``keys``."""
    has_artists = "artist" in keys and "artist_id" in tracks and tracks["artist_id"].notna().any()
    links = [tracks[LINK_COLUMNS[k]].tolist() for k in keys if k in LINK_COLUMNS and LINK_COLUMNS[k] in tracks]
    return (tracks["artist_id"] if has_artists else None), links


def track_groups(tracks: pd.DataFrame, group_by: Sequence[str] | None = None) -> np.ndarray:
    """Group ids of a prepared tracks table, as the splitter forms them (``group_by``: as the dataset's split)."""
    artists, links = _ties(tracks, grouping(group_by))
    return _group_ids(len(tracks), artists, links)


def split_frame(tracks: pd.DataFrame, cfg: SplitConfig | None = None) -> SplitResult:
    """The split of a prepared tracks table (track_id, genre, artist_id, audio_hash, cover_hash) by ``cfg``.

    With ``group_by`` unset, refused (UserError naming the largest duplicate groups and the options) when the
    content ties leave a split without a genre, or empty, where artist grouping alone would not.
    """
    cfg = cfg or SplitConfig()
    artists, links = _ties(tracks, grouping(cfg.group_by))
    result = split_tracks(tracks["genre"], artists, cfg, links)
    if cfg.group_by is None and links:
        plain = split_tracks(tracks["genre"], artists, cfg)
        lost = split_gaps(tracks["genre"], result.split, cfg) - split_gaps(tracks["genre"], plain.split, cfg)
        if lost:
            raise UserError(_merge_message(tracks, artists, links, lost))
    return result


def split_gaps(genres: Sequence[object], split: np.ndarray, cfg: SplitConfig) -> set[tuple[str | None, str]]:
    """Every (genre, split) with a share but none of the genre's tracks, and (None, split) for an empty split."""
    g = pd.Series(list(genres), dtype=object).fillna("__none__").astype(str).to_numpy()
    split = np.asarray(split)
    wanted = [name for name, share in zip(SPLITS, (cfg.train, cfg.val, cfg.test), strict=True) if share > 0]
    out = {(None, sp) for sp in wanted if not (split == sp).any()}
    for genre in set(g) - {"__none__"}:
        out |= {(genre, sp) for sp in wanted if not (split[g == genre] == sp).any()}
    return out


def _merge_message(tracks: pd.DataFrame, artists: pd.Series | None, links: list[list[object]],
                   lost: set[tuple[str | None, str]]) -> str:
    """One line: what the content ties cost, the largest duplicate groups, and the two ways out."""
    n = len(tracks)
    comp, plain = _group_ids(n, artists, links), _group_ids(n, artists)
    big = comp == np.bincount(comp).argmax()
    genres = tracks["genre"].astype(object).to_numpy()
    empty = [sp for sp in SPLITS if (None, sp) in lost]
    absent = sorted({(sp, g) for g, sp in lost if g is not None and sp not in empty})
    costs = ([f"split {' and '.join(empty)} left empty"] if empty else []) + [
        f"{sp} without genre(s) {', '.join(repr(g) for s2, g in absent if s2 == sp)}"
        for sp in dict.fromkeys(sp for sp, _ in absent)
    ]
    dups = []
    for key, col in LINK_COLUMNS.items():
        h = tracks[col] if col in tracks else pd.Series(dtype=object)
        for value, count in h[h.notna()].value_counts().head(2).items():
            if count > 1:
                rows = np.flatnonzero((h == value).to_numpy())
                ids = ", ".join(tracks["track_id"].astype(str).iloc[rows[:3]]) + (", ..." if count > 3 else "")
                dups.append((count, f"one {key} on {count} tracks of {len(np.unique(plain[rows]))} artist group(s) "
                                    f"({ids})"))
    kinds = " or ".join(f"{k}s" if k == "cover" else k for k, c in LINK_COLUMNS.items() if c in tracks)
    largest = "; ".join(d for _, d in sorted(dups, key=lambda t: -t[0])[:3])
    return (
        f"identical {kinds} tie {int(big.sum())} of {n} tracks ({pd.Series(genres[big]).nunique()} genres, "
        f"{len(np.unique(plain[big]))} artist groups) into one split group: {'; '.join(costs[:3])}; largest "
        f"duplicates: {largest}. Import again with --group-by artist (duplicates may then sit in train and test), "
        "--group-by artist,audio,cover to keep them together anyway, or remove the duplicates"
    )


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
