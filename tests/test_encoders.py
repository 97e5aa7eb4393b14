"""Encoders on a small synthetic genre world: probes above chance, cnn vs pca, determinism, save/load, real clips.

The world: 8 genres x 12 tracks x 1.5 s. Each genre has its own pitch register, number of harmonics, pulse rate
and amount of noise; each track jitters all of them, so genre is learnable but not trivially constant.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.pipeline.encode import encode
from core import paths
from core.config import load_config
from core.config.schema import SplitConfig
from core.data.prepared import ATTRIBUTES, DatasetWriter, PreparedDataset
from models.encoders.base import ENCODER_NAMES, encoder_class, load_encoder, read_state
from models.encoders.store import EMBEDDINGS_FILE, EVAL_FILE, load_embeddings, resolve_names
from tests.conftest import REAL_AUDIO

SR = 22050
GENRES = ("g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7")
FAST = [
    "device=cpu",
    "encoders.epochs=6",
    "encoders.patience=3",
    "encoders.batch_size=16",
    "encoders.lr=0.01",
    "encoders.n_mels=32",
    "encoders.cnn_channels=[8,16]",
    "encoders.rnn_hidden=16",
    "encoders.frame_pool=4",
    "encoders.ae_hidden=[64]",
    "encoders.dim=16",
    "encoders.tsne_points=120",
]


def synth_track(g: int, rng: np.random.Generator, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    f0 = 110.0 * 2 ** ((g * 5 + rng.uniform(-1.5, 1.5)) / 12)
    n_harm = 1 + g % 4
    tone = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h for h in range(1, n_harm + 1))
    rate = (1.5 + g // 2) * rng.uniform(0.9, 1.1)
    env = 0.5 + 0.5 * (np.sin(2 * np.pi * rate * t) > 0)
    noise = (0.02 + 0.15 * (g % 2)) * rng.standard_normal(len(t))
    wave = 0.25 * rng.uniform(0.6, 1.0) * tone / n_harm * env + noise * env
    return wave.astype(np.float32)


def make_world(root: Path, per_genre: int = 12, seconds: float = 1.5, seed: int = 0,
               unlabelled_every: int = 0) -> PreparedDataset:
    """The encoder test world; ``unlabelled_every`` k > 0 drops the genre of every k-th track."""
    rng = np.random.default_rng(seed)
    n = per_genre * len(GENRES)
    w = DatasetWriter(paths.DatasetPaths(root), n, [32], int(seconds * SR), SR, force=True)
    rows = []
    for i in range(n):
        g = i % len(GENRES)
        w.put(i, {32: np.zeros((32, 32, 3), np.uint8)}, synth_track(g, rng, seconds))
        attrs = {a: float(rng.normal(g, 1.0)) for a in ATTRIBUTES}  # attributes weakly carry genre too
        genre = None if unlabelled_every and i % unlabelled_every == 0 else GENRES[g]
        rows.append({**attrs, "track_id": f"t{i:04d}", "artist_id": f"a{i:04d}", "genre": genre})
    split = SplitConfig(train=0.6, val=0.15, test=0.25, seed=seed)
    w.finish(pd.DataFrame(rows), kind="test", source={"test": True}, split=split, genres=list(GENRES))
    return PreparedDataset(paths.DatasetPaths(root))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("enc") / "world")


@pytest.fixture(scope="module")
def cfg():
    return load_config(preset="cpu", overrides=FAST)


@pytest.fixture(scope="module")
def encoded(world, cfg, tmp_path_factory):
    run = paths.RunPaths(tmp_path_factory.mktemp("runs") / "r")
    return run, encode(world, run, "all", cfg, workers=1)


def test_names():
    assert resolve_names("all") == list(ENCODER_NAMES)
    assert resolve_names("cnn,pca") == ["pca", "cnn"]
    from core.errors import UserError

    with pytest.raises(UserError, match="unknown encoder"):
        resolve_names("vae")


def test_every_encoder_probes_well_above_chance(encoded, world):
    run, results = encoded
    assert set(results) == set(ENCODER_NAMES)
    for name, ev in results.items():
        lp = ev["linear_probe"]
        chance = max(lp["chance_majority"], lp["chance_uniform"])
        assert lp["accuracy"] >= chance + 0.35, (name, lp)
        assert ev["knn"]["accuracy"] > chance + 0.1, (name, ev["knn"])
        on_disk = json.loads((run.encoder(name) / EVAL_FILE).read_text())
        assert on_disk["linear_probe"] == lp
        assert (run.encoder(name) / "tsne.png").is_file()
    assert results["genre"]["linear_probe"]["accuracy"] == 1.0
    assert results["genre"]["kmeans"]["purity"] == 1.0


def test_cnn_not_worse_than_pca(encoded):
    _, r = encoded
    assert r["cnn"]["linear_probe"]["accuracy"] >= r["pca"]["linear_probe"]["accuracy"] - 0.1


def test_pca_and_autoencoder_records(encoded, cfg):
    _, r = encoded
    ev = r["pca"]["explained_variance_ratio"]
    assert len(ev) == cfg.encoders.dim and all(a >= b for a, b in zip(ev, ev[1:], strict=False))
    assert 0.0 < r["pca"]["explained_variance"] <= 1.0
    rec = r["autoencoder"]["reconstruction"]
    assert rec["pca_mse_test"] == pytest.approx(r["pca"]["reconstruction_mse_test"], rel=1e-4)
    assert rec["beats_or_matches_pca"] == (rec["autoencoder_mse_test"] <= rec["pca_mse_test"] * 1.01)
    assert ("NOT" in rec["verdict"]) != rec["beats_or_matches_pca"]


def test_embeddings_file_and_save_load_round_trip(encoded, world):
    run, results = encoded
    for name in ENCODER_NAMES:
        d = run.encoder(name)
        df = pd.read_parquet(d / EMBEDDINGS_FILE)
        assert list(df.columns) == ["track_id", "split", "genre_idx", "vector"]
        assert list(df["track_id"]) == list(world.tracks["track_id"])
        x = load_embeddings(run, name, world)
        assert x.dtype == np.float32 and x.shape == (len(world), results[name]["dim"]) and np.isfinite(x).all()
        state = torch.load(d / "model.pt", map_location="cpu", weights_only=True)
        assert state["name"] == name
        enc = load_encoder(d)
        np.testing.assert_allclose(enc.encode(world), x, rtol=1e-5, atol=1e-5)
    assert read_state(run.encoder("cnn"))["meta"]["dim"] == 16


@pytest.mark.parametrize("name", ["autoencoder", "rnn", "cnn"])
def test_trained_encoders_are_deterministic(world, cfg, encoded, name):
    run, _ = encoded
    ecfg = cfg.encoders
    tr, va = world.split_rows("train"), world.split_rows("val")
    a = encoder_class(name)(ecfg, "cpu").fit(world, tr, va, ecfg).encode(world)
    np.testing.assert_array_equal(a, load_embeddings(run, name, world))


def test_rnn_trains_as_a_sequence_autoencoder_on_tracks_without_genre(cfg, tmp_path):
    """Unlabelled training tracks join the rnn's training through reconstruction; weight 0 leaves them out."""
    ds = make_world(tmp_path / "half", unlabelled_every=2)
    tr, va = ds.split_rows("train"), ds.split_rows("val")
    n_unl = int((ds.genre_idx[tr] < 0).sum())
    assert 0 < n_unl < len(tr)
    ecfg = cfg.encoders.model_copy(update={"epochs": 8})
    enc = encoder_class("rnn")(ecfg, "cpu").fit(ds, tr, va, ecfg)
    assert enc.decoder and enc.history["unlabelled_train_tracks"] == n_unl
    x = enc.encode(ds)
    assert x.shape == (len(ds), ecfg.dim) and np.isfinite(x).all()
    # training lowered the reconstruction error of the unlabelled tracks below a fresh network's
    unl = tr[ds.genre_idx[tr] < 0]
    frames = enc._frames(ds)
    fresh = encoder_class("rnn")(ecfg, "cpu")
    fresh.decoder = True
    net0 = fresh.build(ecfg, len(ds.genres))
    net0.frames.load_state_dict(enc.net.frames.state_dict())  # same input standardisation
    with torch.no_grad():
        trained, untrained = (float(n.eval().reconstruction_error(frames(unl)).mean()) for n in (enc.net, net0))
    assert trained < 0.9 * untrained
    # save/load keeps the decoder; weight 0 trains the plain classifier on labelled tracks only
    enc.save(tmp_path / "rnn")
    np.testing.assert_array_equal(load_encoder(tmp_path / "rnn").encode(ds), x)
    plain_cfg = ecfg.model_copy(update={"rnn_recon_weight": 0.0})
    plain = encoder_class("rnn")(plain_cfg, "cpu").fit(ds, tr, va, plain_cfg)
    assert not plain.decoder and plain.history["unlabelled_train_tracks"] == 0
    assert not hasattr(plain.net, "decoder")


def test_seed_changes_the_encoder(world, cfg, encoded):
    run, _ = encoded
    other = cfg.encoders.model_copy(update={"seed": cfg.encoders.seed + 1})
    enc = encoder_class("autoencoder")(other, "cpu")
    b = enc.fit(world, world.split_rows("train"), world.split_rows("val"), other).encode(world)
    assert not np.allclose(b, load_embeddings(run, "autoencoder", world), atol=1e-3)


def test_attributes_use_train_statistics(world, cfg):
    enc = encoder_class("attributes")().fit(world, world.split_rows("train"), world.split_rows("val"), cfg.encoders)
    x = enc.encode(world)
    tr = world.split_rows("train")
    np.testing.assert_allclose(x[tr].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x[tr].std(axis=0), 1.0, atol=1e-4)
    assert not np.allclose(x[world.split_rows("test")].mean(axis=0), 0.0, atol=1e-3)


def _real_dataset(root: Path) -> PreparedDataset:
    import librosa

    files = sorted(REAL_AUDIO.glob("*.ogg"))
    seconds = 4.0
    w = DatasetWriter(paths.DatasetPaths(root), len(files), [32], int(seconds * SR), SR, force=True)
    rows = []
    for i, f in enumerate(files):
        y, _ = librosa.load(f, sr=SR, mono=True, duration=seconds)
        n = w.put(i, {32: np.zeros((32, 32, 3), np.uint8)}, y)
        rows.append({**{a: 0.0 for a in ATTRIBUTES}, "track_id": f.stem, "genre": GENRES[i % 8], "audio_len": n})
    w.finish(pd.DataFrame(rows), kind="test", source={"clips": True}, genres=list(GENRES))
    return PreparedDataset(paths.DatasetPaths(root))


def test_real_clips_give_finite_distinct_embeddings(encoded, tmp_path):
    from core.audio.extract import extract_features

    run, _ = encoded
    real = _real_dataset(tmp_path / "real")
    assert len(real) >= 3
    extract_features(real, workers=1)
    for name in ("pca", "autoencoder", "rnn", "cnn"):
        x = load_encoder(run.encoder(name)).encode(real)
        assert x.shape[0] == len(real) and np.isfinite(x).all(), name
        dist = np.linalg.norm(x[:, None] - x[None], axis=-1)
        off = dist[~np.eye(len(x), dtype=bool)]
        assert off.min() > 1e-4 * (np.abs(x).mean() + 1e-12), name


def test_cli_encode_plain_encoders(world, capsys):
    from benchmark.cli.app import main

    root = world.paths.root
    args = ["--data-root", str(root.parent), "-q", "encode", "--dataset", root.name, "--run", "cli"]
    with pytest.raises(SystemExit) as ok:
        main([*args, "-e", "genre,attributes"])
    assert ok.value.code == 0
    out = capsys.readouterr().out
    assert "encoders on world" in out and "chance" in out
    run = paths.run("cli")
    assert (run.encoder("genre") / EVAL_FILE).is_file() and not run.encoder("cnn").exists()
    with pytest.raises(SystemExit) as e:
        main(["--data-root", str(root.parent), "encode", "--dataset", root.name, "-e", "vae"])
    assert e.value.code == 2 and "unknown encoder" in capsys.readouterr().err


def test_mel_encoders_share_one_log_mel_pass(tmp_path, cfg, monkeypatch):
    """`bench encode --encoder rnn,cnn` computes each clip's log-mel once, not once per encoder (fit and embed)."""
    from models.encoders import train_utils

    world = make_world(tmp_path / "w", per_genre=6)
    computed: list[int] = []
    original = train_utils.LogMelFrames._compute

    def counting(self, rows):
        computed.append(len(rows))
        return original(self, rows)

    monkeypatch.setattr(train_utils.LogMelFrames, "_compute", counting)
    encode(world, paths.RunPaths(tmp_path / "r"), "rnn,cnn", cfg, workers=1)
    assert sum(computed) == len(world) + 1  # every track once, plus the one-row probe that sizes the frames
    assert not train_utils._FRAMES_MEMO  # released when encode returns
