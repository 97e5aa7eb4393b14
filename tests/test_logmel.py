"""Torch log-mel against librosa, batching, top_db per clip, and streaming a prepared dataset."""

from __future__ import annotations

import librosa
import numpy as np
import pandas as pd
import pytest
import torch

from core import paths
from core.audio.logmel import LogMel, logmel_dataset
from core.data.prepared import ATTRIBUTES, DatasetWriter, PreparedDataset
from tests.conftest import REAL_AUDIO

SR = 22050


def reference(y: np.ndarray, top_db: float | None = None, **kw) -> np.ndarray:
    """librosa's log-mel in float64 (librosa 0.11 defaults: centred, zero padding, Slaney mel)."""
    mel = librosa.feature.melspectrogram(y=np.asarray(y, np.float64), sr=SR, n_fft=2048, hop_length=512, **kw)
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=top_db)


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    """Three 3 s clips of very different loudness: a chord with noise, a quiet one, one half silent."""
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220, 277.2, 329.6)) / 3
    a = 0.5 * chord + 0.05 * rng.standard_normal(len(t))
    b = 1e-4 * rng.standard_normal(len(t))
    c = a.copy()
    c[: len(t) // 2] = 0.0
    return np.stack([a, b, c]).astype(np.float32)


def test_float64_matches_librosa_exactly(clips):
    out = LogMel()(torch.from_numpy(clips.astype(np.float64))).numpy()
    assert out.shape == (3, 128, 1 + clips.shape[1] // 512)
    for i in range(3):
        np.testing.assert_allclose(out[i], reference(clips[i]), atol=1e-6)


def test_float32_within_1e3_db(clips):
    out = LogMel()(torch.from_numpy(clips)).numpy()
    assert out.dtype == np.float32
    for i in range(3):
        assert np.abs(out[i] - reference(clips[i])).max() < 1e-3


def test_top_db_is_relative_to_each_clip(clips):
    out = LogMel(top_db=80.0)(torch.from_numpy(clips.astype(np.float64))).numpy()
    for i in range(3):
        np.testing.assert_allclose(out[i], reference(clips[i], top_db=80.0), atol=1e-6)
    # the quiet clip keeps values below the loud clip's floor: the floor is per clip, not per batch
    assert out[1].min() < out[0].max() - 80.0
    assert out[2].min() == pytest.approx(out[2].max() - 80.0)  # the silent half sits on its own floor


def test_batch_equals_single_and_int16_input(clips):
    m = LogMel()
    batch = m(torch.from_numpy(clips))
    torch.testing.assert_close(m(torch.from_numpy(clips[1])), batch[1], atol=1e-4, rtol=0)
    pcm = torch.from_numpy(np.round(clips * 32767).astype(np.int16))
    torch.testing.assert_close(m(pcm), m(pcm.float() / 32767.0))


def test_other_parameters_follow_librosa(clips):
    m = LogMel(sr=SR, n_fft=1024, hop=256, n_mels=64, fmin=50.0, fmax=8000.0)
    out = m(torch.from_numpy(clips[0].astype(np.float64))).numpy()
    mel = librosa.feature.melspectrogram(y=clips[0].astype(np.float64), sr=SR, n_fft=1024, hop_length=256,
                                         n_mels=64, fmin=50.0, fmax=8000.0)  # fmt: skip
    np.testing.assert_allclose(out, librosa.power_to_db(mel, top_db=None), atol=1e-6)


def test_real_clips_float64_exact_and_float32_within_1e3_db_of_the_loud_part():
    """float32 FFT rounding (~1e-7 of a frame's peak) shows only in bins far below the clip's peak."""
    sf = pytest.importorskip("soundfile")
    files = sorted(REAL_AUDIO.glob("*.ogg"))[:3]
    assert len(files) == 3
    m = LogMel()
    for p in files:
        y, sr = sf.read(p, dtype="float32", always_2d=True)
        y = librosa.resample(y.mean(axis=1), orig_sr=sr, target_sr=SR)[: 5 * SR].astype(np.float32)
        ref = reference(y)
        np.testing.assert_allclose(m(torch.from_numpy(y.astype(np.float64))).numpy(), ref, atol=1e-6)
        diff = np.abs(m(torch.from_numpy(y)).numpy() - ref)
        assert diff[ref > ref.max() - 60].max() < 1e-3, p.name
        assert diff.max() < 0.1, p.name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_librosa(clips):
    out = LogMel().cuda()(torch.from_numpy(clips).cuda()).cpu().numpy()
    for i in range(3):
        assert np.abs(out[i] - reference(clips[i])).max() < 1e-3


def build_dataset(n: int = 7, seconds: float = 1.0) -> PreparedDataset:
    rng = np.random.default_rng(1)
    w = DatasetWriter(paths.dataset("lm"), n, [8], int(seconds * SR), SR, force=True)
    rows = []
    for i in range(n):
        wave = 0.3 * rng.standard_normal(int(seconds * SR * (0.5 if i == 2 else 1.0)))
        length = w.put(i, {8: np.zeros((8, 8, 3), np.uint8)}, wave)
        rows.append({**{a: 0.0 for a in ATTRIBUTES}, "track_id": f"t{i}", "genre": "x", "audio_len": length})
    w.finish(pd.DataFrame(rows), kind="test", source={"test": True}, genres=["x"])
    return PreparedDataset.open("lm")


def test_logmel_dataset_streams_every_row_in_order():
    ds = build_dataset()
    m = LogMel()
    seen, mels = [], []
    for rows, batch in logmel_dataset(ds, batch_size=3, device="cpu", logmel=m):
        assert batch.shape[0] == len(rows) <= 3
        seen.extend(rows.tolist())
        mels.append(batch)
    assert seen == list(range(len(ds)))
    full = torch.cat(mels)
    audio = torch.from_numpy(np.asarray(ds.audio()).astype(np.float32) / 32767.0)
    torch.testing.assert_close(full, m(audio))
    # a subset, in the order given, and a short track padded with the dataset's zeros
    got = torch.cat([b for _, b in logmel_dataset(ds, batch_size=2, device="cpu", rows=[5, 2, 0], logmel=m)])
    torch.testing.assert_close(got, m(audio[[5, 2, 0]]))
    assert got[1, :, -5:].max() == pytest.approx(-100.0)  # silence past audio_len -> amin floor


def test_logmel_dataset_stops_cleanly_when_abandoned():
    ds = build_dataset()
    it = logmel_dataset(ds, batch_size=2, device="cpu")
    next(it)
    it.close()  # the reader thread must not hang
