"""The prepared format: atomic write, manifest, compaction of rejected rows, splits and the cover loader."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core import paths
from core.config.schema import SplitConfig
from core.data.loader import CoverDataset, cover_loader, to_float
from core.data.prepared import ATTRIBUTES, DatasetWriter, PreparedDataset, file_sha256
from core.data.splits import assign_splits
from core.errors import UserError
from tests.conftest import make_tiny_dataset


def test_layout_and_manifest(tiny_dataset):
    ds = PreparedDataset.open("tiny")
    assert len(ds) == 40 and ds.genres == ["a", "b", "c", "d"]
    assert ds.covers(32).shape == (40, 32, 32, 3) and ds.covers(32).dtype == np.uint8
    assert ds.audio().dtype == np.int16
    m = ds.manifest
    assert m["counts"]["tracks"] == 40 and sum(m["counts"]["splits"].values()) == 40
    for fname, info in m["files"].items():
        assert file_sha256(ds.paths.root / fname) == info["sha256"]
    assert "numpy" in m["versions"] and "python" in m["versions"]
    assert list(ds.rejected().columns) == ["item", "source", "reason"]
    assert not any(p.name.startswith(".") for p in ds.paths.root.parent.iterdir())


def test_waveform_round_trip(tiny_dataset):
    ds = PreparedDataset.open("tiny")
    w = ds.waveform(1)
    t = np.arange(len(w)) / 22050
    ref = 0.3 * np.sin(2 * np.pi * 330 * t)
    assert np.abs(w - ref).max() < 0.06  # int16 quantisation + the fixture's small noise


def test_refuses_existing_without_force(tiny_dataset):
    with pytest.raises(UserError, match="already exists"):
        DatasetWriter(paths.dataset("tiny"), 4, [32], 100, 22050)


def test_missing_resolution_is_user_error(tiny_dataset):
    with pytest.raises(UserError, match="no 64 px covers"):
        PreparedDataset.open("tiny").covers(64)


def test_finish_compacts_rejected_rows():
    w = DatasetWriter(paths.dataset("c"), 6, [32], 10, 22050)
    for i in range(6):
        w.put(i, {32: np.full((32, 32, 3), i, np.uint8)}, np.full(10 - i, 0.5))
    keep = np.array([0, 2, 5])
    rows = [{**{a: 0.0 for a in ATTRIBUTES}, "track_id": f"t{i}", "genre": "g", "audio_len": 10 - i} for i in keep]
    w.finish(pd.DataFrame(rows), kind="test", source={}, rows=keep)
    ds = PreparedDataset.open("c")
    assert [int(ds.covers(32)[j, 0, 0, 0]) for j in range(3)] == [0, 2, 5]
    assert list(ds.tracks["audio_len"]) == [10, 8, 5]
    assert ds.audio()[2, 5:].tolist() == [0] * 5


def test_splits_stratified_and_artist_disjoint():
    rng = np.random.default_rng(1)
    n = 2000
    artists = rng.integers(0, 500, n)
    genres = np.array([f"g{a % 8}" for a in artists])
    s = assign_splits(genres, artists, SplitConfig(seed=3))
    df = pd.DataFrame({"a": artists, "g": genres, "s": s})
    assert (df.groupby("a")["s"].nunique() == 1).all()
    shares = df["s"].value_counts(normalize=True)
    assert abs(shares["train"] - 0.8) < 0.03 and abs(shares["test"] - 0.1) < 0.03
    per_genre = df.groupby("g")["s"].apply(lambda x: (x == "test").mean())
    assert per_genre.between(0.05, 0.16).all()
    assert (assign_splits(genres, artists, SplitConfig(seed=3)) == s).all()
    assert not (assign_splits(genres, artists, SplitConfig(seed=4)) == s).all()


def test_splits_without_artists_are_per_track():
    g = ["x"] * 50 + ["y"] * 50
    s = assign_splits(g, None)
    assert abs((s == "train").sum() - 80) <= 2
    assert (s[:50] == "test").sum() == 5 and (s[50:] == "test").sum() == 5


def test_manifest_is_valid_json_and_atomic(tiny_dataset):
    text = (tiny_dataset.root / "manifest.json").read_text()
    assert json.loads(text)["name"] == "tiny"


def test_cover_loader_batches(tiny_dataset):
    ds = PreparedDataset.open("tiny")
    cond = np.arange(len(ds) * 2, dtype=np.float32).reshape(-1, 2)
    data = CoverDataset(ds, 32, "train", cond)
    img, c, y = data[3]
    row = data.rows[3]
    assert torch_equal(img.permute(1, 2, 0), ds.covers(32)[row])
    assert c.tolist() == cond[row].tolist() and int(y) == ds.genre_idx[row]
    seen = []
    for imgs, cs, ys in cover_loader(ds, 32, "train", batch_size=7, conditions=cond, seed=0):
        assert imgs.shape[1:] == (3, 32, 32) and imgs.dtype.is_floating_point is False
        for k in range(len(imgs)):
            r = int(cs[k, 0]) // 2
            assert torch_equal(imgs[k].permute(1, 2, 0), ds.covers(32)[r]) and int(ys[k]) == ds.genre_idx[r]
            seen.append(r)
    assert sorted(seen) == sorted(data.rows.tolist())
    x = to_float(imgs)
    assert float(x.min()) >= -1 and float(x.max()) <= 1


def test_loader_is_seeded(tiny_dataset):
    ds = PreparedDataset.open("tiny")
    a = [y.tolist() for _, _, y in cover_loader(ds, 32, None, batch_size=8, seed=5)]
    b = [y.tolist() for _, _, y in cover_loader(ds, 32, None, batch_size=8, seed=5)]
    assert a == b


def test_conditions_must_match_rows(tiny_dataset):
    ds = PreparedDataset.open("tiny")
    with pytest.raises(ValueError, match="rows"):
        CoverDataset(ds, 32, None, np.zeros((3, 2)))


def test_info_summary_counts():
    from core.data.info import dataset_summary

    make_tiny_dataset("info", n=24, artists=False)
    s = dataset_summary(PreparedDataset.open("info"))
    assert s["tracks"] == 24 and sum(s["split_counts"].values()) == 24
    assert sum(sum(v.values()) for v in s["per_genre"].values()) == 24


def torch_equal(t, arr) -> bool:
    return bool(np.array_equal(t.numpy(), np.asarray(arr)))
