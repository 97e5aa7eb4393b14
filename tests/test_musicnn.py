"""musicnn: our TF-checkpoint reader and PyTorch port, checked against what the pretrained tagger must hear in real
recordings (a planted signal: a ragtime piano, a string orchestra, speech, a solo trumpet), plus the encoder."""

from __future__ import annotations

import importlib.util

import librosa
import numpy as np
import pytest
import soundfile as sf

from core.errors import UserError
from models.encoders.tf_checkpoint import read_tf_checkpoint
from tests.conftest import REAL_AUDIO

needs_weights = pytest.mark.skipif(importlib.util.find_spec("musicnn") is None,
                                   reason="musicnn weights not installed (pip install --no-deps musicnn==0.1.0)")


def test_reader_refuses_what_is_not_a_checkpoint(tmp_path):
    with pytest.raises(UserError, match="no TensorFlow checkpoint index"):
        read_tf_checkpoint(tmp_path / "model")
    (tmp_path / "model.index").write_bytes(b"\0" * 64)
    with pytest.raises(UserError, match="bad magic number"):
        read_tf_checkpoint(tmp_path / "model")


@needs_weights
def test_reader_gives_every_variable_with_its_shape():
    from models.encoders.musicnn import checkpoint_prefix

    w = read_tf_checkpoint(checkpoint_prefix("MSD_musicnn"))
    assert w["conv2d/kernel"].shape == (7, 38, 1, 204)  # timbral 7 x 0.4*96 filters, 1.6 * 128 of them
    assert w["conv2d_5/kernel"].shape == (7, 561, 1, 64)  # mid end over the 561 front-end features
    assert w["dense/kernel"].shape == (1506, 200) and w["dense_1/kernel"].shape == (200, 50)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in w.values())
    assert (w["batch_normalization_9/moving_variance"] > 0).all()


def _clip(stem: str) -> tuple[np.ndarray, int]:
    y, sr = sf.read(REAL_AUDIO / f"{stem}.ogg", dtype="float32", always_2d=True)
    return y.mean(axis=1), sr


def _top(net, tags, stem: str, k: int = 3) -> list[str]:
    from models.encoders.musicnn import clip_embedding

    _, prob = clip_embedding(net, *_clip(stem))
    return [tags[i] for i in np.argsort(-prob)[:k]]


@needs_weights
def test_pretrained_tags_match_what_the_recordings_are():
    """A wrong port (a transposed kernel, batch norm after the max, TF's interleaved pooling order missed) gives
    near-uniform or arbitrary tags; the real network names the instruments and voices."""
    from models.encoders.musicnn import MSD_TAGS, MTT_TAGS, load_musicnn

    mtt = load_musicnn("MTT_musicnn")
    assert _top(mtt, MTT_TAGS, "Karissa_Hobbs_-_Lets_Go_Fishin")[0] == "guitar"  # an acoustic-guitar song
    orchestra = _top(mtt, MTT_TAGS, "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra)")
    assert orchestra[0] == "classical" and {"violin", "strings"} <= set(orchestra)
    assert {"female", "woman"} & set(_top(mtt, MTT_TAGS, "198-209-0000"))  # LibriSpeech, a woman reading
    assert {"male", "man", "male vocal"} & set(_top(mtt, MTT_TAGS, "3436-172162-0000"))  # a man reading
    msd = load_musicnn("MSD_musicnn")
    assert _top(msd, MSD_TAGS, "sorohanro_-_solo-trumpet-06", 1) == ["jazz"]


def test_log_mel_stays_finite_on_loud_audio_where_float16_overflows():
    from models.encoders.musicnn import N_FFT, N_MELS, PATCH, SR, musicnn_patches

    t = np.arange(4 * SR) / SR
    loud = (8.0 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # clipped masters reach such power
    mel = librosa.feature.melspectrogram(y=loud, sr=SR, n_fft=N_FFT, hop_length=256, n_mels=N_MELS)
    with np.errstate(over="ignore"):
        assert np.isinf(np.log10(10000 * mel.astype(np.float16) + 1)).any()  # the package's own preprocessing
    patches = musicnn_patches(loud, SR)
    assert patches.shape == (1, PATCH, N_MELS) and np.isfinite(patches).all() and patches.max() > 4.8
    short = musicnn_patches(loud[: SR // 2], SR)  # half a second is repeated to one 3 s patch
    assert short.shape == (1, PATCH, N_MELS) and np.isfinite(short).all()


@needs_weights
def test_encoder_embeds_deterministically_and_round_trips(tiny_dataset, tmp_path):
    from core.data.prepared import PreparedDataset
    from models.encoders.base import create_encoder, load_encoder

    ds = PreparedDataset(tiny_dataset)
    rows = np.arange(6)
    enc = create_encoder("musicnn").fit(ds, rows, rows)
    x = enc.encode(ds, rows)
    assert x.shape == (6, 200) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.abs(x[0] - x[1]).max() > 1e-3  # different tones, different embeddings
    np.testing.assert_array_equal(x, enc.encode(ds, rows))
    enc.save(tmp_path / "m")
    np.testing.assert_array_equal(load_encoder(tmp_path / "m").encode(ds, rows), x)


def test_musicnn_is_named_explicitly_not_part_of_all():
    from models.encoders.base import ENCODER_NAMES
    from models.encoders.store import resolve_names

    assert "musicnn" not in resolve_names("all") and resolve_names("all") == list(ENCODER_NAMES)
    assert resolve_names("cnn,musicnn") == ["cnn", "musicnn"]
