"""Real-dataset import: every valid pair kept and true to its source, every broken input rejected with its reason."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.config.schema import ImportConfig, SplitConfig
from core.data.importer.archive import safe_extract
from core.data.importer.images import load_cover
from core.data.importer.reject import Reject
from core.data.importer.run import import_dataset, rejected_list_path
from core.data.prepared import ATTRIBUTES, PreparedDataset
from core.errors import UserError
from core.paths import DatasetPaths
from tests.import_corpus import SECONDS, build_corpus, sines

RATE = 16000  # differs from the sources' 22,050 Hz, so resampling is exercised
CFG = ImportConfig(
    res=[32, 64], seconds=SECONDS, sample_rate=RATE, min_cover_px=64, max_pixels=4_000_000, max_reject_share=0.5
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("dump"))


@pytest.fixture(scope="module")
def imported(corpus, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    result = import_dataset(corpus.root, DatasetPaths(data / "spot"), CFG, SplitConfig(), workers=2)
    return result, PreparedDataset(result.paths)


def _block_mean(a: np.ndarray, res: int) -> np.ndarray:
    f = a.shape[0] // res
    return a[: res * f, : res * f].reshape(res, f, res, f, 3).mean(axis=(1, 3))


def _best_lag_corr(x: np.ndarray, y: np.ndarray, max_lag: int = 2000) -> float:
    """Largest normalised correlation of x and y over shifts up to max_lag (mp3 adds encoder delay)."""
    n = min(len(x), len(y)) - max_lag
    best = -1.0
    ref = y[max_lag // 2 : max_lag // 2 + n]
    for lag in range(0, max_lag, 2):
        seg = x[lag : lag + n]
        c = float(np.dot(seg, ref) / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-12))
        best = max(best, c)
    return best


def test_every_valid_pair_kept_and_every_broken_input_rejected(corpus, imported):
    result, ds = imported
    expected = corpus.expected()
    valid = {tid for tid, code in expected.items() if code == "ok"}
    assert set(ds.tracks["track_id"]) == valid
    assert result.kept == len(valid) == 22
    rej = result.rejected
    codes = rej["reason"].str.split(":").str[0]
    by_item = {}
    for item, code in zip(rej["item"], codes, strict=True):
        by_item.setdefault(item, []).append(code)
    for tid, code in expected.items():
        if code != "ok":
            assert by_item.get(tid) == [code], (tid, by_item.get(tid))
    assert by_item["t000"] == ["duplicate-id"]  # the later duplicate row, the first kept
    assert by_item[""] == ["missing-id"]
    assert by_item["nobody"] == by_item["nobody2"] == ["orphan-file"]
    kinds = set(codes)
    assert len(kinds) >= 10, kinds
    bad = rej[codes == "bad-attribute"]["reason"]
    assert any("energy" in r for r in bad) and any("tempo" in r and "fast" in r for r in bad)
    # the rejected list is on disk too, with the same rows
    on_disk = ds.rejected()
    assert len(on_disk) == len(rej) and list(on_disk.columns) == ["item", "source", "reason"]


def test_covers_match_their_sources(corpus, imported):
    _, ds = imported
    by_id = {t.track_id: t for t in corpus.tracks}
    for res, tol in ((64, 6.0), (32, 6.0)):
        covers = ds.covers(res)
        assert covers.dtype == np.uint8 and covers.shape[1:] == (res, res, 3)
        refs = {tid: _block_mean(by_id[tid].cover_ref, res) for tid in ds.tracks["track_id"]}
        for row, tid in enumerate(ds.tracks["track_id"]):
            got = covers[row].astype(np.float64)
            err = np.abs(got - refs[tid]).mean()
            assert err < tol, (tid, res, err)
            # and it is not just similar to everything: its own source is the closest one
            others = [np.abs(got - r).mean() for k, r in refs.items() if by_id[k].album_id != by_id[tid].album_id]
            assert err < min(others) / 3, (tid, err, min(others))


def test_alpha_is_composited_on_white_and_gray_stays_gray(imported):
    _, ds = imported
    t = ds.tracks.set_index("track_id")
    c = ds.covers(64)
    rgba = c[int(t.loc["t017", "row"])]  # the RGBA cover: right half transparent
    assert rgba[:, 36:].min() >= 245
    gray = c[int(t.loc["t015", "row"])].astype(int)  # grayscale JPEG
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 2 and np.abs(gray[..., 1] - gray[..., 2]).max() <= 2


def test_audio_matches_its_source(corpus, imported):
    _, ds = imported
    by_id = {t.track_id: t for t in corpus.tracks}
    samples = round(SECONDS * RATE)
    assert ds.audio().shape == (len(ds), samples)
    for row, tid in enumerate(ds.tracks["track_id"]):
        got = ds.waveform(row)
        assert len(got) >= 0.9 * samples
        chans = by_id[tid].freqs
        want = np.mean([sines(c, RATE, SECONDS) for c in chans], axis=0)
        assert _best_lag_corr(got, want) > 0.9, tid
        other = next(t for t in corpus.tracks if t.freqs and t.track_id != tid)
        wrong = np.mean([sines(c, RATE, SECONDS) for c in other.freqs], axis=0)
        assert _best_lag_corr(got, wrong) < 0.5, tid


def test_metadata_round_trips(corpus, imported):
    result, ds = imported
    by_id = {t.track_id: t for t in corpus.tracks}
    t = ds.tracks
    for _, row in t.iterrows():
        src = by_id[row["track_id"]]
        assert row["album_id"] == src.album_id and row["artist_id"] == src.artist_id
        assert row["artist"] == src.artist  # the CSV was cp1252: accents survive
        assert row["genre"] == src.genre
        for a in ATTRIBUTES:
            assert float(row[a]) == pytest.approx(float(src.attrs[a])), a
    assert t.set_index("track_id").loc["t000", "energy"] == pytest.approx(by_id["t000"].attrs["energy"])
    source = ds.manifest["source"]
    assert source["csv_encoding"] == "cp1252" and "popularity" in source["extra_columns"]
    assert any("cp1252" in n for n in result.notes)


def test_splits_are_artist_disjoint(imported):
    _, ds = imported
    per_artist = ds.tracks.groupby("artist_id")["split"].nunique()
    assert (per_artist == 1).all()
    assert set(ds.tracks["split"]) <= {"train", "val", "test"}


def test_zip_import_matches_folder_and_refuses_unsafe_members(corpus, imported, tmp_path):
    _, folder_ds = imported
    zpath = tmp_path / "inner" / "dump.zip"
    zpath.parent.mkdir()
    outside_abs = tmp_path / "abs_evil.jpg"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(corpus.root.rglob("*")):
            if p.is_file():
                zf.write(p, "dump/" + p.relative_to(corpus.root).as_posix())
        zf.writestr(zipfile.ZipInfo("../evil.jpg"), b"x" * 10)
        zf.writestr(zipfile.ZipInfo("dump/../../evil2.jpg"), b"x" * 10)
        zf.writestr(zipfile.ZipInfo(str(outside_abs)), b"x" * 10)
        link = zipfile.ZipInfo("dump/covers/link.jpg")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    data = tmp_path / "data"
    result = import_dataset(zpath, DatasetPaths(data / "z"), CFG, SplitConfig(), workers=1)
    ds = PreparedDataset(result.paths)
    assert list(ds.tracks["track_id"]) == list(folder_ds.tracks["track_id"])
    # worker count does not change a byte
    assert np.array_equal(ds.covers(64), folder_ds.covers(64))
    assert np.array_equal(ds.audio(), folder_ds.audio())
    assert (ds.tracks["split"] == folder_ds.tracks["split"]).all()
    rej = result.rejected.set_index("item")
    for name in ("../evil.jpg", "dump/../../evil2.jpg", str(outside_abs), "dump/covers/link.jpg"):
        assert rej.loc[name, "reason"].startswith("unsafe-path"), name
    assert not (tmp_path / "evil.jpg").exists() and not (tmp_path / "evil2.jpg").exists()
    assert not outside_abs.exists() and not (tmp_path / "inner" / "evil.jpg").exists()
    assert sorted(p.name for p in data.iterdir()) == ["z"]  # the unpacked staging folder is gone


def test_zip_size_cap(tmp_path):
    zpath = tmp_path / "big.zip"
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.bin", b"\0" * 4000)
        zf.writestr("b.bin", b"\0" * 4000)
    out = safe_extract(zpath, tmp_path / "x", max_bytes=5000)
    assert out.files == 1 and (tmp_path / "x" / "a.bin").is_file() and not (tmp_path / "x" / "b.bin").exists()
    assert out.refused == [("b.bin", "zip-too-large: unpacking would exceed 5000 bytes")]


def test_pil_decompression_bomb_guard_is_caught(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 300), (1, 2, 3)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # PIL warns above this, errors above twice it
    with pytest.raises(Reject) as e:
        load_cover(path, [64], min_px=64, max_aspect=1.25, max_pixels=10**9)
    assert e.value.code == "decompression-bomb"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60_000)  # warning range only
    with pytest.raises(Reject) as e:
        load_cover(path, [64], min_px=64, max_aspect=1.25, max_pixels=10**9)
    assert e.value.code == "decompression-bomb"


def test_missing_track_id_column_is_a_user_error(corpus, tmp_path):
    # attribute columns are optional (tests/test_real_collections.py); track_id is not
    frame = pd.read_csv(corpus.csv, encoding="cp1252", dtype=str, keep_default_na=False)
    src = tmp_path / "src"
    src.mkdir()
    frame.drop(columns=["track_id"]).to_csv(src / "tracks.csv", index=False)
    with pytest.raises(UserError, match="track_id"):
        import_dataset(src, DatasetPaths(tmp_path / "d" / "x"), CFG, SplitConfig(), workers=1)
    assert not (tmp_path / "d" / "x").exists()


def test_genre_and_names_are_optional(tmp_path):
    c = build_corpus(tmp_path / "src", seed=1, n_valid=4, genre=False)
    frame = pd.read_csv(c.csv, encoding="cp1252", dtype=str, keep_default_na=False)
    frame = frame.drop(columns=["artist_name", "album_name", "track_name"])
    frame.to_csv(c.root / "other_name.csv", index=False)
    c.csv.unlink()
    cfg = CFG.model_copy(update={"max_reject_share": 0.9})
    result = import_dataset(c.root, DatasetPaths(tmp_path / "d" / "g"), cfg, SplitConfig(), workers=1)
    ds = PreparedDataset(result.paths)
    assert result.kept == sum(1 for t in c.tracks if t.expect == "ok")
    assert ds.tracks["genre"].isna().all() and ds.tracks["artist"].isna().all()
    assert set(ds.manifest["source"]["absent_optional_columns"]) >= {"genre", "artist", "album", "track"}


def test_cli_summary_and_too_many_rejected(corpus, tmp_path, capsys):
    from benchmark.cli.app import main

    data = tmp_path / "data"
    base = ["--data-root", str(data), "--quiet", "--preset", "cpu", "--set", "data.import.max_pixels=4000000"]
    with pytest.raises(SystemExit) as e:
        main([*base, "data", "import", str(corpus.root), "--name", "ok", "--res", "32", "--workers", "2"])
    assert e.value.code in (0, None)
    out = capsys.readouterr().out
    assert "import summary" in out and "corrupt-cover" in out and "22" in out and "cp1252" in out
    manifest = json.loads((data / "ok" / "manifest.json").read_text())
    assert manifest["kind"] == "import" and manifest["counts"]["tracks"] == 22

    with pytest.raises(SystemExit) as e:
        main([*base, "data", "import", str(corpus.root), "--name", "bad", "--max-reject-share", "0.3"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "not created" in err and "rejected" in err
    assert not (data / "bad").exists()  # 6 of 37 rows fail before decoding, 15 after: the late check fired
    saved = pd.read_csv(rejected_list_path(DatasetPaths(data / "bad")), dtype=str, keep_default_na=False)
    assert "corrupt-cover" in set(saved["reason"].str.split(":").str[0])
    assert not any(p.name.startswith(".bad.tmp") for p in data.iterdir())


def test_existing_dataset_needs_force(imported):
    result, _ = imported
    with pytest.raises(UserError, match="already exists"):
        import_dataset(Path("."), result.paths, CFG, SplitConfig())
