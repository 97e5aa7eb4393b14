"""Clip features against librosa's own functions, robustness, real clips, and dataset-level extraction."""

from __future__ import annotations

import os

import librosa
import numpy as np
import pandas as pd
import pytest
import scipy.stats

from core import paths
from core.audio import features as F
from core.audio import transforms as T
from core.audio.extract import (
    extract_features,
    features_path,
    load_features,
    load_skipped,
    merge_feature_shards,
    parse_shard,
    shard_of,
)
from core.data.prepared import ATTRIBUTES, DatasetWriter, PreparedDataset
from core.errors import UserError
from tests.conftest import REAL_AUDIO

SR = 22050


def music(seconds: float, seed: int, f0: float = 220.0, bpm: float = 120.0) -> np.ndarray:
    """A plucked-note melody over a noise pulse: tonal, rhythmic, and different per seed."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    beat = 60.0 / bpm
    y = np.zeros(n)
    for k, start in enumerate(np.arange(0, seconds, beat / 2)):
        i = int(start * SR)
        seg = t[: n - i]
        note = f0 * 2 ** (rng.integers(0, 12) / 12)
        env = np.exp(-seg * 6.0)
        y[i:] += 0.3 * env * (np.sin(2 * np.pi * note * seg) + 0.3 * np.sin(4 * np.pi * note * seg))
        if k % 2 == 0:
            y[i : i + 800] += 0.2 * rng.standard_normal(min(800, n - i)) * np.exp(-np.arange(min(800, n - i)) / 150)
    return (y / max(1.0, np.abs(y).max()) + 0.003 * rng.standard_normal(n)).astype(np.float32)


def real_clips(seconds: float = 8.0, limit: int = 4) -> dict[str, np.ndarray]:
    sf = pytest.importorskip("soundfile")
    files = sorted(REAL_AUDIO.glob("*.ogg"))
    assert len(files) >= limit, f"tests/data/audio lost its clips: {files}"
    out = {}
    for p in files[:limit]:
        y, sr = sf.read(p, dtype="float32", always_2d=True)
        y = librosa.resample(y.mean(axis=1), orig_sr=sr, target_sr=SR)
        out[p.stem] = y[: int(seconds * SR)].astype(np.float32)
    return out


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return music(6.0, seed=1)


# -- names and statistics ------------------------------------------------------------------------------------


def test_feature_names_are_the_fma_set_plus_rhythm():
    names = F.feature_names()
    assert F.N_STATS_FEATURES == 518
    assert len(names) == 518 + len(F.RHYTHM) and len(set(names)) == len(names)
    assert names[: len(F.STATS)] == tuple(f"chroma_stft_01_{s}" for s in F.STATS)
    for expected in ("mfcc_03_mean", "mfcc_20_kurtosis", "tonnetz_06_max", "spectral_contrast_07_min",
                     "rms_std", "zcr_median", "chroma_cens_12_skew", "rhythm_tempo"):  # fmt: skip
        assert expected in names
    assert sum(n.startswith("rhythm_") for n in names) == len(F.RHYTHM) >= 10


@pytest.mark.filterwarnings("ignore:Precision loss occurred")
def test_summarise_matches_scipy_and_defines_constant_rows():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.gamma(2.0, size=(3, 500)), np.full((1, 500), 0.7), np.zeros((1, 500))])
    got = F.summarise(x)
    assert got.shape == (5, 7)
    ref = np.stack(
        [x.mean(1), x.std(1), scipy.stats.skew(x, 1), scipy.stats.kurtosis(x, 1), np.median(x, 1), x.min(1), x.max(1)],
        axis=1,
    )
    np.testing.assert_allclose(got[:3], ref[:3], rtol=1e-10)
    np.testing.assert_array_equal(got[3], [0.7, 0, 0, 0, 0.7, 0.7, 0.7])
    np.testing.assert_array_equal(got[4], np.zeros(7))


# -- each fast transform equals the librosa definition -------------------------------------------------------


def test_transforms_match_librosa(clip):
    y = clip
    stft = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    power = T.power_spectrogram(y)
    np.testing.assert_allclose(power, stft**2, rtol=1e-4, atol=1e-6 * float((stft**2).max()))
    mag = np.sqrt(power)
    c, b = T.centroid_bandwidth(mag, SR, 2048)
    np.testing.assert_allclose(c, librosa.feature.spectral_centroid(S=stft, sr=SR)[0], rtol=1e-4)
    np.testing.assert_allclose(b, librosa.feature.spectral_bandwidth(S=stft, sr=SR)[0], rtol=1e-4)
    roll = librosa.feature.spectral_rolloff(S=mag, sr=SR)[0]
    np.testing.assert_array_equal(T.rolloff(mag, SR, 2048), roll)
    np.testing.assert_allclose(T.spectral_contrast(mag, SR, 2048), librosa.feature.spectral_contrast(S=mag, sr=SR),
                               rtol=1e-5, atol=1e-4)  # fmt: skip
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512)[0]
    np.testing.assert_array_equal(T.zero_crossing_rate(y), zcr)
    cqt = np.abs(librosa.cqt(y, sr=SR, hop_length=512, n_bins=84, bins_per_octave=12, tuning=0.0))
    ours = T.cqt_magnitude(y, SR, 512)
    assert ours.shape == cqt.shape
    np.testing.assert_allclose(ours, cqt, rtol=1e-3, atol=1e-5 * float(cqt.max()))
    half = librosa.resample(y, orig_sr=2, target_sr=1, res_type="soxr_hq", scale=True)
    np.testing.assert_allclose(T.halve_rate(y), half, atol=1e-6)
    env = librosa.onset.onset_strength(y=y, sr=SR, aggregate=np.median)
    assert T.tempo(env, SR, 512) == pytest.approx(float(librosa.feature.tempo(onset_envelope=env, sr=SR)[0]))


def test_zero_crossings_count_signed_zeros_and_thresholds_like_librosa():
    rng = np.random.default_rng(3)
    y = rng.standard_normal(9000).astype(np.float32)
    y[::7] = 0.0
    y[1::11] = -0.0
    y[2::13] = 1e-12
    y[3::17] = -1e-12
    ref = librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512)[0]
    np.testing.assert_array_equal(T.zero_crossing_rate(y), ref)


# -- the whole pipeline against the naive one ----------------------------------------------------------------


def assert_agree(ours: np.ndarray, naive: np.ndarray) -> None:
    """Same definitions, different arithmetic order: equal up to float32 rounding (and a rare rolloff bin)."""
    names = np.array(F.feature_names())
    scale = np.abs(naive) + 1e-2
    rel = np.abs(ours - naive) / scale
    worst = np.argsort(-rel)[:3]
    assert rel.max() < 2e-3, f"largest differences: {list(zip(names[worst], ours[worst], naive[worst], strict=True))}"


def test_agrees_with_naive_pipeline(clip):
    ours, naive = F.clip_features(clip), F.naive_features(clip)
    assert ours.shape == naive.shape == (len(F.feature_names()),)
    assert ours.dtype == np.float32 and np.isfinite(ours).all()
    assert_agree(ours, naive)
    # the rhythm block is measured, not a constant: a 120 bpm pulse gives a tempo near 120 (or its octave)
    tempo = ours[F.feature_names().index("rhythm_tempo")]
    assert min(abs(tempo - 120), abs(tempo - 60), abs(tempo - 240)) < 8


def test_agrees_with_naive_on_a_real_clip():
    name, y = next(iter(real_clips(seconds=6.0, limit=1).items()))
    assert_agree(F.clip_features(y), F.naive_features(y))


def test_deterministic(clip):
    np.testing.assert_array_equal(F.clip_features(clip), F.clip_features(clip.copy()))


def test_other_sample_rates_are_resampled(clip):
    y44 = librosa.resample(clip, orig_sr=SR, target_sr=44100)
    a, b = F.clip_features(clip), F.clip_features(y44, 44100)
    names = F.feature_names()
    i = [names.index(n) for n in ("mfcc_01_mean", "rms_mean", "chroma_cqt_05_mean", "rhythm_tempo")]
    np.testing.assert_allclose(a[i], b[i], rtol=0.02)


# -- broken, silent and tiny clips ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["silent", "tiny", "empty", "nan", "inf", "dc", "one_sample_spike"],
)
def test_degenerate_clips_give_finite_features(case, clip):
    y = {
        "silent": np.zeros(3 * SR, np.float32),
        "tiny": clip[: int(0.01 * SR)],
        "empty": np.zeros(0, np.float32),
        "nan": np.where(np.arange(len(clip)) % 97 == 0, np.nan, clip).astype(np.float32),
        "inf": np.concatenate([clip[:SR], [np.inf, -np.inf], clip[SR : 2 * SR]]).astype(np.float32),
        "dc": np.full(2 * SR, 0.5, np.float32),
        "one_sample_spike": np.eye(1, 2 * SR, SR, dtype=np.float32)[0],
    }[case]
    got = F.clip_features(y)
    assert got.shape == (len(F.feature_names()),) and np.isfinite(got).all()
    if case == "silent":
        names = F.feature_names()
        assert got[names.index("rhythm_tempo")] == 0.0
        assert got[names.index("rms_max")] == 0.0
    if case == "nan":  # NaN samples count as silence: close to the clip with zeros there
        zeroed = np.where(np.isnan(y), 0.0, y).astype(np.float32)
        np.testing.assert_array_equal(got, F.clip_features(zeroed))


def test_rejects_multichannel():
    with pytest.raises(ValueError, match="mono"):
        F.clip_features(np.zeros((2, 100), np.float32))


# -- real clips ----------------------------------------------------------------------------------------------


def test_real_clips_are_finite_and_differ():
    clips = real_clips(seconds=5.0, limit=4)
    feats = {k: F.clip_features(v) for k, v in clips.items()}
    assert all(np.isfinite(v).all() for v in feats.values())
    keys = list(feats)
    names = F.feature_names()
    mfcc = [i for i, n in enumerate(names) if n.startswith("mfcc_") and n.endswith("_mean")]
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            a, b = feats[keys[i]], feats[keys[j]]
            assert np.mean(~np.isclose(a, b, rtol=1e-3)) > 0.5, (keys[i], keys[j])
            assert np.linalg.norm(a[mfcc] - b[mfcc]) > 5.0, (keys[i], keys[j])


# -- dataset-level extraction --------------------------------------------------------------------------------


def build_dataset(name: str = "feat", n: int = 10, seconds: float = 2.0, empty_rows=(3,)) -> PreparedDataset:
    """A tiny prepared dataset written with DatasetWriter: melodies, noise, one silent and some empty tracks."""
    rng = np.random.default_rng(0)
    w = DatasetWriter(paths.dataset(name), n, [8], int(seconds * SR), SR, force=True)
    rows = []
    for i in range(n):
        if i in empty_rows:
            wave = np.zeros(0, np.float32)
        elif i == n - 1:
            wave = np.zeros(int(seconds * SR), np.float32)
        elif i % 4 == 1:
            wave = 0.2 * rng.standard_normal(int(seconds * SR)).astype(np.float32)
        else:
            wave = music(seconds, seed=i, f0=110.0 * (1 + i % 3), bpm=90 + 10 * i)
        length = w.put(i, {8: np.zeros((8, 8, 3), np.uint8)}, wave)
        rows.append({**{a: 0.5 for a in ATTRIBUTES}, "track_id": f"tr{i:03d}", "genre": "ab"[i % 2],
                     "audio_len": length})  # fmt: skip
    w.finish(pd.DataFrame(rows), kind="test", source={"test": True}, genres=["a", "b"])
    return PreparedDataset.open(name)


def test_extract_cache_load_and_skips():
    ds = build_dataset()
    out = extract_features(ds, workers=1)
    assert out == ds.paths.features_dir / "fma.parquet"
    feats = load_features(ds)
    ids = ds.tracks["track_id"].tolist()
    assert feats.index.name == "track_id"
    assert feats.index.tolist() == [t for t in ids if t != "tr003"]  # dataset order, skipped one absent
    assert list(feats.columns) == list(F.feature_names())
    assert (feats.dtypes == np.float32).all() and np.isfinite(feats.to_numpy()).all()
    skipped = load_skipped(ds)
    assert skipped["track_id"].tolist() == ["tr003"] and "no audio" in skipped["reason"].iat[0]
    assert (ds.paths.features_dir / "skipped.csv").is_file()
    # the row for one track equals features computed on that track directly
    np.testing.assert_array_equal(feats.loc["tr002"].to_numpy(), F.clip_features(ds.waveform(2), SR))
    assert feats.loc["tr009", "rhythm_tempo"] == 0.0  # the silent track
    # cached: a second call does not recompute; force does
    mtime = out.stat().st_mtime_ns
    assert extract_features(ds, workers=1) == out and out.stat().st_mtime_ns == mtime
    extract_features(ds, workers=1, force=True)
    assert out.stat().st_mtime_ns != mtime
    pd.testing.assert_frame_equal(load_features(ds), feats)


def test_broken_clips_are_recorded_not_fatal(monkeypatch):
    ds = build_dataset("broken", n=4, seconds=0.5, empty_rows=())
    real = F.clip_features
    calls = []

    def flaky(y, sr=SR):  # rows are processed in order in-process: the third call is track tr002
        calls.append(1)
        if len(calls) == 3:
            raise F.BadAudio("non-finite features: planted")
        return real(y, sr)

    monkeypatch.setattr(F, "clip_features", flaky)
    extract_features(ds, workers=1)
    assert load_features(ds).index.tolist() == ["tr000", "tr001", "tr003"]
    skipped = load_skipped(ds)
    assert (
        skipped["track_id"].tolist() == ["tr002"]
        and "BadAudio: non-finite features: planted" in skipped["reason"].iat[0]
    )

    def broken(y, sr=SR):
        raise F.BadAudio("always")

    monkeypatch.setattr(F, "clip_features", broken)
    with pytest.raises(RuntimeError, match="every track failed"):
        extract_features(ds, workers=1, force=True)


def test_shards_cover_every_track_once_and_merge_equals_full_run(monkeypatch):
    ds = build_dataset("sharded", n=12, seconds=1.0, empty_rows=(5,))
    n = 3
    parts = []
    for i in range(n):
        p = extract_features(ds, workers=1, shard=(i, n))
        assert p.name == f"fma.shard-{i}-of-{n}.parquet"
        parts.append(pd.read_parquet(p)["track_id"].tolist())
    skipped = [pd.read_csv(ds.paths.features_dir / f"skipped.shard-{i}-of-{n}.csv")["track_id"].tolist()
               for i in range(n)]  # fmt: skip
    covered = [t for part in parts + skipped for t in part]
    assert sorted(covered) == sorted(ds.tracks["track_id"]) and len(covered) == len(set(covered))
    assert all(parts), "every shard should get some tracks"
    expected = shard_of(ds.tracks["track_id"], n)
    for i, part in enumerate(parts):
        assert all(expected[int(t[2:])] == i for t in part)

    with pytest.raises(UserError, match="bench features merge"):
        load_features(ds)
    merged_path = merge_feature_shards(ds)
    merged = load_features(ds)
    merged_skips = load_skipped(ds)
    full_path = extract_features(ds, workers=1, force=True)
    assert full_path == merged_path
    pd.testing.assert_frame_equal(merged, load_features(ds))
    pd.testing.assert_frame_equal(merged_skips, load_skipped(ds))

    # torchrun: RANK / WORLD_SIZE pick the shard when none is given
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    p = extract_features(ds, workers=1)
    assert p == features_path(ds, (1, 2))


def test_merge_reports_missing_shards_and_shard_ids_are_stable():
    ds = build_dataset("partial", n=6, seconds=0.5, empty_rows=())
    extract_features(ds, workers=1, shard=(0, 2))
    with pytest.raises(UserError, match="missing shards 1/2"):
        merge_feature_shards(ds)
    with pytest.raises(UserError, match="bench features extract"):
        merge_feature_shards(build_dataset("none", n=2, seconds=0.5, empty_rows=()))
    # the hash depends on the id only, not on the order or the process
    ids = ["a", "b", "c", "tr001"]
    np.testing.assert_array_equal(shard_of(ids, 7), shard_of(ids[::-1], 7)[::-1])
    assert shard_of(["tr001"], 1000)[0] == shard_of(pd.Series(["tr001"]), 1000)[0]


def test_load_features_without_extraction_says_what_to_run():
    ds = build_dataset("fresh", n=2, seconds=0.5, empty_rows=())
    with pytest.raises(UserError, match="bench features extract fresh"):
        load_features(ds)


@pytest.mark.parametrize("text", ["abc", "1", "2/2", "-1/3", "1/0", "1/2/3"])
def test_bad_shard_text_is_a_user_error(text):
    with pytest.raises(UserError):
        parse_shard(text)


def test_parse_shard():
    assert parse_shard("0/4") == (0, 4) and parse_shard(" 3 / 4 ") == (3, 4) and parse_shard(None) is None


@pytest.mark.slow  # each worker process imports librosa (numba) first: seconds per process on a busy machine
def test_worker_processes_give_the_same_table():
    ds = build_dataset("pool", n=18, seconds=0.5, empty_rows=(4,))
    extract_features(ds, workers=1)
    single = load_features(ds)
    extract_features(ds, workers=2, force=True)
    pd.testing.assert_frame_equal(load_features(ds), single)
    assert load_skipped(ds)["track_id"].tolist() == ["tr004"]


def test_cli_extract_merge_and_bad_shard(capsys):
    from benchmark.cli.app import main

    ds = build_dataset("cli", n=4, seconds=0.5, empty_rows=())
    root = os.environ[paths.DATA_ROOT_ENV]

    def bench(*args: str) -> int:
        with pytest.raises(SystemExit) as e:
            main(["--data-root", root, "-q", "features", *args])
        return e.value.code or 0

    assert bench("extract", "cli", "--shard", "x/2") == 2
    assert "--shard" in capsys.readouterr().err
    for i in range(2):
        assert bench("extract", "cli", "--shard", f"{i}/2", "--workers", "1") == 0
    assert bench("merge", "cli") == 0
    assert len(load_features(ds)) == 4
