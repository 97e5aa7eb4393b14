"""A collection without any previews imports as a covers-only dataset (issue 14, point 1).

The genre side of the relationship probe and genre-conditioned training work on it; everything that needs audio
refuses it in one line. A folder that has previews for some tracks still rejects the tracks that lack one.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import paths
from core.config.schema import Config, ImportConfig, SplitConfig, TrainConfig
from core.data.importer.run import import_dataset
from core.data.prepared import PreparedDataset
from core.errors import UserError
from tests.import_corpus import build_corpus

CFG = ImportConfig(res=[32, 64], seconds=1.0, sample_rate=8000, min_cover_px=64, max_pixels=4_000_000)
# what a missing or broken preview costs a track when there is audio; without any audio these tracks are kept
AUDIO_CODES = {"corrupt-audio", "truncated-audio", "short-audio", "missing-preview"}
NO_AUDIO = "was imported without audio (covers only)"


pytestmark = pytest.mark.usefixtures("one_thread")


def _block_mean(a: np.ndarray, res: int) -> np.ndarray:
    f = a.shape[0] // res
    return a[: res * f, : res * f].reshape(res, f, res, f, 3).mean(axis=(1, 3))


def colour_collection(root: Path, n: int = 24, genres: tuple[str, ...] = ("pop", "rock", "jazz")) -> Path:
    """PNG covers whose dominant channel is the genre (one artist per track), tracks.csv, and no audio at all."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(root / "tracks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["track_id", "album_id", "artist_id", "genre"])
        for i in range(n):
            g = i % len(genres)
            img = rng.integers(0, 40, (64, 64, 3), dtype=np.uint8)
            img[..., g] += 180
            Image.fromarray(img).save(root / f"al{i:02d}.png")
            w.writerow([f"t{i:02d}", f"al{i:02d}", f"ar{i:02d}", genres[g]])
    return root


def test_a_dump_without_previews_imports_covers_only_and_rejects_only_cover_and_table_faults(tmp_path):
    from core.data.info import dataset_summary

    corpus = build_corpus(tmp_path / "src", n_valid=6)
    shutil.rmtree(corpus.root / "previews")  # every audio file of the dump lives there
    result = import_dataset(corpus.root, paths.dataset("covers"), CFG, SplitConfig(), workers=2)

    kept = {t.track_id for t in corpus.tracks if t.expect == "ok" or t.expect in AUDIO_CODES}
    ds = PreparedDataset.open("covers")
    assert set(ds.tracks["track_id"]) == kept and result.kept == len(kept) == 18
    codes = result.rejected["reason"].str.split(":").str[0]
    assert not set(codes) & AUDIO_CODES and not result.rejected["reason"].str.contains("preview").any()
    expected_rejects = {t.track_id: t.expect for t in corpus.tracks if t.expect not in AUDIO_CODES | {"ok"}}
    got = dict(zip(result.rejected["item"], codes, strict=True))
    assert {k: got.get(k) for k in expected_rejects} == expected_rejects
    assert any("imported covers only" in n for n in result.notes)

    assert ds.manifest["audio"] is False and ds.manifest["audio_samples"] == 0 and not ds.has_audio
    assert not ds.paths.audio.exists() and "audio.npy" not in ds.manifest["files"]
    assert (ds.tracks["audio_len"] == 0).all() and ds.tracks["audio_hash"].isna().all()
    assert ds.tracks["cover_hash"].notna().all()
    assert sorted(ds.manifest["counts"]["splits"].values()) != [0, 0, len(kept)]  # split as usual
    assert sum(ds.manifest["counts"]["splits"].values()) == len(kept)
    by_id = {t.track_id: t for t in corpus.tracks}
    covers = ds.covers(64)
    for row, tid in enumerate(ds.tracks["track_id"]):  # each cover is its own source's pixels
        err = np.abs(covers[row].astype(float) - _block_mean(by_id[tid].cover_ref, 64)).mean()
        assert err < 6.0, (tid, err)
    with pytest.raises(UserError, match=re.escape(f"dataset 'covers' {NO_AUDIO}: reading its audio")):
        ds.audio()
    assert dataset_summary(ds)["facts"]["audio"].startswith("none: covers only")


def test_a_folder_with_some_previews_still_rejects_the_tracks_that_lack_one(tmp_path):
    corpus = build_corpus(tmp_path / "src", n_valid=6)
    gone = [t.track_id for t in corpus.tracks if t.expect == "ok"][2:4]
    for tid in gone:
        (corpus.root / "previews" / f"{tid}.mp3").unlink()
    cfg = CFG.model_copy(update={"max_reject_share": 0.8})  # the corpus is mostly broken on purpose
    result = import_dataset(corpus.root, paths.dataset("mixed"), cfg, SplitConfig(), workers=2)
    ds = PreparedDataset.open("mixed")
    assert ds.has_audio and ds.manifest["audio"] is True and ds.audio().shape == (len(ds), 8000)
    rej = result.rejected.set_index("item")["reason"]
    missing = sorted(i for i, r in rej.items() if r.startswith("missing-preview"))
    planted = [t.track_id for t in corpus.tracks if t.expect == "missing-preview"]
    assert missing == sorted([*gone, *planted])
    assert not set(gone) & set(ds.tracks["track_id"])


def test_probe_works_on_covers_only_and_audio_needs_refuse_in_one_line(tmp_path):
    from benchmark.cli.app import main
    from benchmark.pipeline.encode import encode
    from core.audio.extract import extract_features
    from core.data.info import probe_path
    from models.conditions import load_conditions

    import_dataset(colour_collection(tmp_path / "src"), paths.dataset("art"), CFG, SplitConfig(), workers=1)
    ds = PreparedDataset.open("art")
    assert not ds.has_audio and len(ds) == 24

    with pytest.raises(SystemExit) as e:
        main(["--quiet", "data", "probe", "art", "--features", "colour", "--folds", "3", "--permutations", "200"])
    assert e.value.code in (0, None)
    probe = json.loads(probe_path(ds).read_text())
    g = probe["genre"]
    assert g["n"] == 24 and g["chance"] == pytest.approx(1 / 3)
    assert g["value"] == 1.0 and g["p_value"] < 0.01  # the genre is the dominant colour channel
    assert probe["audio"] == {} and "no audio" in probe["audio_skipped"]

    from reports.build import build_report
    from tests.test_report import Page

    report_run = paths.run("rep")
    report_run.root.mkdir(parents=True)
    page = Page((build_report(report_run, dataset=ds).parent / "data.html").read_text(encoding="utf-8"))
    facts = {r[0]: r[1] for r in page.rows["facts"]}
    assert facts["audio"].startswith("none: covers only")
    rel = page.rows["relationship"]
    assert rel[0][:2] == ["cover → genre accuracy", "1"]
    assert rel[1] == ["cover → audio embedding R²", "not run (the dataset has no audio: it was imported covers only)"]

    run = paths.run("r")
    for call, what in (
        (lambda: encode(ds, run, ["pca"], Config()), "encoder pca needs audio"),
        (lambda: encode(ds, run, ["genre", "cnn", "rnn"], Config()), "encoders rnn, cnn need audio"),
        (lambda: extract_features(ds, workers=1), "audio feature extraction needs audio"),
        (lambda: load_conditions(ds, "musicnn", run), "the 'musicnn' condition needs audio"),
    ):
        with pytest.raises(UserError) as err:
            call()
        msg = str(err.value)
        assert msg.startswith(f"dataset 'art' {NO_AUDIO}: {what}") and "\n" not in msg, msg
    assert not (run.encoder("genre") / "embeddings.parquet").exists()  # refused before anything was fitted
    assert not ds.paths.features_dir.exists()

    with pytest.raises(SystemExit) as e:  # the CLI prints the line and exits 2
        main(["--quiet", "encode", "--encoder", "pca", "--dataset", "art", "--run", "r"])
    assert e.value.code == 2

    out = encode(ds, run, ["genre"], Config())  # table encoders need no audio
    assert out["genre"]["dim"] == 3


def test_genre_conditioned_training_reads_only_covers_and_a_music_condition_refuses(tmp_path):
    from models.gans.train.loop import train_gan

    import_dataset(colour_collection(tmp_path / "src"), paths.dataset("art"), CFG, SplitConfig(), workers=1)
    ds = PreparedDataset.open("art")
    c = dict(batch=8, kimg=0.016, checkpoint_kimg=0.016, log_kimg=0.008, snapshot_kimg=0.016, seed=3)
    r = train_gan(ds, paths.run("g"), "dcgan_cond", TrainConfig(**c), device_kind="cpu")
    assert r.finished and r.images_seen >= 16
    with pytest.raises(UserError, match=r"covers only\): the 'cnn' condition needs audio"):
        train_gan(ds, paths.run("m"), "dcgan_cond", TrainConfig(condition="cnn", **c), device_kind="cpu")
