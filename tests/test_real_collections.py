"""Real collections (issue 14): imports without Spotify attributes, a probe with no model, splits that keep
every genre, exact-duplicate detection, and data strings plotted as text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image
from threadpoolctl import threadpool_limits

from core import paths
from core.config.schema import Config, EvalConfig, ImportConfig, SplitConfig
from core.data.importer.run import import_dataset
from core.data.prepared import ATTRIBUTES, PreparedDataset
from core.data.splits import split_tracks
from core.errors import UserError
from tests.conftest import make_tiny_dataset

HOSTILE = "jazz $\\frac{$"
RATE = 8000
CFG = ImportConfig(res=[32, 64], seconds=1.0, sample_rate=RATE, min_cover_px=64, min_audio_seconds=0.5)


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def write_collection(root: Path, tracks: list[dict], columns: list[str] | None = None) -> Path:
    """A folder of PNG covers (named by album_id), WAV previews (by track_id) and tracks.csv.

    Each track dict has track_id, album_id, artist_id, genre, and optionally ``cover`` (uint8 64x64x3),
    ``audio`` (float waveform at RATE) and attribute values; missing covers/audio are drawn from the track's row.
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, t in enumerate(tracks):
        cover = t.get("cover")
        if cover is None:
            cover = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        cover_path = root / f"{t['album_id']}.png"
        if not cover_path.exists():
            Image.fromarray(cover).save(cover_path)
        audio = t.get("audio")
        if audio is None:
            audio = 0.2 * np.sin(2 * np.pi * (200 + 37 * i) * np.arange(RATE) / RATE) + 0.01 * rng.standard_normal(RATE)
        sf.write(root / f"{t['track_id']}.wav", np.asarray(audio, np.float32), RATE, subtype="FLOAT")
    cols = columns or ["track_id", "album_id", "artist_id", "genre"]
    with open(root / "tracks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for t in tracks:
            w.writerow([t.get(c, "") for c in cols])
    return root


def simple_tracks(n: int, genres: tuple[str, ...] = ("pop", "rock", "jazz"), per_artist: int = 1) -> list[dict]:
    return [
        {"track_id": f"t{i:02d}", "album_id": f"al{i:02d}", "artist_id": f"ar{i // per_artist:02d}",
         "genre": genres[i % len(genres)]}
        for i in range(n)
    ]  # fmt: skip


# -- 1. attribute columns are optional as whole columns ---------------------------------------------------------


def test_import_without_attribute_columns_and_attributes_condition_says_unavailable(tmp_path):
    from benchmark.pipeline.encode import encode
    from models.conditions import load_conditions

    src = write_collection(tmp_path / "src", simple_tracks(12))
    result = import_dataset(src, paths.dataset("noattr"), CFG, SplitConfig(), workers=1)
    ds = PreparedDataset(result.paths)
    assert result.kept == 12 and len(result.rejected) == 0
    assert ds.attributes_available == []
    assert ds.manifest["source"]["absent_attribute_columns"] == list(ATTRIBUTES)
    assert ds.tracks[list(ATTRIBUTES)].isna().all().all()
    assert any("'attributes' condition is unavailable" in n for n in result.notes)

    with pytest.raises(UserError, match="'attributes' condition is unavailable for dataset 'noattr'"):
        load_conditions(ds, "attributes", None)
    run = paths.run("r")
    with pytest.raises(UserError, match="unavailable"):
        encode(ds, run, ["attributes"], Config())
    out = encode(ds, run, ["genre", "attributes"], Config())  # "all" skips it and says why
    assert "no Spotify attribute columns" in out["attributes"]["skipped"]
    assert out["genre"]["dim"] == 3 and not (run.encoder("attributes") / "embeddings.parquet").exists()


def test_present_attribute_column_with_a_bad_value_still_rejects_the_row(tmp_path):
    from models.encoders.plain import AttributesEncoder

    tracks = simple_tracks(12)
    for i, t in enumerate(tracks):
        t["tempo"] = "not-a-number" if i == 5 else str(100 + i)
    src = write_collection(tmp_path / "src", tracks, ["track_id", "album_id", "artist_id", "genre", "tempo"])
    result = import_dataset(src, paths.dataset("tempo"), CFG, SplitConfig(), workers=1)
    ds = PreparedDataset(result.paths)
    assert result.kept == 11
    assert result.rejected["item"].tolist() == ["t05"]
    assert result.rejected["reason"].iat[0].startswith("bad-attribute: tempo='not-a-number'")
    assert ds.attributes_available == ["tempo"]
    enc = AttributesEncoder().fit(ds, ds.split_rows("train"), ds.split_rows("val"))
    x = enc.encode(ds)
    assert enc.dim == 1 and enc.columns == ["tempo"]
    tempo = ds.tracks["tempo"].to_numpy(float)
    train = tempo[ds.split_rows("train")]
    np.testing.assert_allclose(x[:, 0], (tempo - train.mean()) / train.std(), rtol=1e-5)


# -- 3. splits keep every genre; empty splits are said at import time ------------------------------------------------


def test_every_genre_with_enough_artists_is_in_every_split():
    rng = np.random.default_rng(0)
    genres, artists = [], []
    for gn in ("pop", "rock", "jazz", "hiphop", "metal"):
        for a in range(40):
            k = int(rng.integers(1, 10))
            genres += [gn] * k
            artists += [f"{gn}{a}"] * k
    for a, k in enumerate([30, 12, 8, 5, 3, 2]):  # one big artist: greedy filling used to starve test
        genres += ["reggae"] * k
        artists += [f"reg{a}"] * k
    for seed in range(6):
        r = split_tracks(genres, artists, SplitConfig(seed=seed))
        table = pd.crosstab(np.array(genres), r.split)
        assert (table > 0).all().all(), table
        assert r.warnings == []
        df = pd.DataFrame({"a": artists, "s": r.split})
        assert (df.groupby("a")["s"].nunique() == 1).all()


def test_too_few_artists_warn_naming_the_genre_and_the_empty_split():
    genres = ["pop"] * 10 + ["reggae"] * 6
    artists = [f"p{i}" for i in range(10)] + ["r0"] * 3 + ["r1"] * 3
    r = split_tracks(genres, artists)
    absent = {s for s in ("train", "val", "test") if not ((np.array(genres) == "reggae") & (r.split == s)).any()}
    assert len(absent) == 1  # two artist groups: train and one other split
    assert len(r.warnings) == 1
    assert "'reggae'" in r.warnings[0] and absent.pop() in r.warnings[0] and "2 artist group" in r.warnings[0]
    one = split_tracks(["x"] * 5, ["a"] * 5)
    assert set(one.split) == {"train"}
    assert any("split 'val' is empty" in w for w in one.warnings)
    assert any("split 'test' is empty" in w for w in one.warnings)


def test_small_import_fills_val_and_test_and_a_one_artist_import_says_so(tmp_path):
    tracks = simple_tracks(17, genres=("pop", "rock", "jazz", "reggae", "metal", "folk"))
    result = import_dataset(write_collection(tmp_path / "a", tracks), paths.dataset("small"), CFG, SplitConfig(),
                            workers=1)  # fmt: skip
    counts = PreparedDataset(result.paths).tracks["split"].value_counts()
    assert counts.get("val", 0) >= 1 and counts.get("test", 0) >= 1

    one = [dict(t, artist_id="solo") for t in simple_tracks(6)]
    result = import_dataset(write_collection(tmp_path / "b", one), paths.dataset("solo"), CFG, SplitConfig(),
                            workers=1)  # fmt: skip
    assert any("split 'test' is empty" in n for n in result.notes)
    assert PreparedDataset(result.paths).manifest["split_warnings"] == [
        n for n in result.notes if n.startswith(("split ", "genre "))
    ]


# -- 4. exact duplicates: reported and kept in one split ------------------------------------------------------------


def test_duplicate_audio_and_covers_are_reported_and_kept_together(tmp_path):
    rng = np.random.default_rng(1)
    tracks = simple_tracks(30, per_artist=1)
    clip = 0.3 * rng.standard_normal(RATE)
    same = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for i in (3, 17, 26):  # one clip on three tracks by three artists (a compilation)
        tracks[i]["audio"] = clip
    for i in (5, 11):  # one cover under two album ids
        tracks[i]["cover"] = same
    result = import_dataset(write_collection(tmp_path / "src", tracks), paths.dataset("dups"), CFG, SplitConfig(),
                            workers=1)  # fmt: skip
    ds = PreparedDataset(result.paths)
    dup = ds.manifest["duplicates"]
    assert dup["audio"] == {"groups": 1, "tracks": 3, "examples": [["t03", "t17", "t26"]]}
    assert dup["covers"] == {"groups": 1, "tracks": 2, "examples": [["t05", "t11"]]}
    split = dict(zip(ds.tracks["track_id"], ds.tracks["split"], strict=True))
    assert split["t03"] == split["t17"] == split["t26"] and split["t05"] == split["t11"]
    # the workers' fingerprints are those of the stored arrays (what finish would compute for a synthetic world)
    from core.data.prepared import content_hash

    audio, covers = ds.audio(), ds.covers(64)
    for i in range(len(ds)):
        assert ds.tracks["audio_hash"].iat[i] == content_hash(audio[i, : ds.tracks["audio_len"].iat[i]])
        assert ds.tracks["cover_hash"].iat[i] == content_hash(covers[i])
    # same check against many seeds of the splitter (without the links, these land apart)
    t = ds.tracks
    for seed in range(8):
        s = split_tracks(t["genre"], t["artist_id"], SplitConfig(seed=seed),
                         links=[t["audio_hash"].tolist(), t["cover_hash"].tolist()]).split  # fmt: skip
        d = dict(zip(t["track_id"], s, strict=True))
        assert d["t03"] == d["t17"] == d["t26"] and d["t05"] == d["t11"]
    apart = [split_tracks(t["genre"], t["artist_id"], SplitConfig(seed=seed)).split for seed in range(8)]
    assert any(len({dict(zip(t["track_id"], s, strict=True))[k] for k in ("t03", "t17", "t26")}) > 1 for s in apart)


# -- 2. the relationship probe without a model ----------------------------------------------------------------------


def test_audio_r2_interval_contains_its_value():
    """Issue 13 found value -0.0043 with interval [-0.0123, -0.0046]: the bootstrap R^2 is biased low."""
    from metrics.relationship import _bootstrap_r2, audio_probe

    raw_below = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        x, e = rng.normal(size=(248, 16)), rng.normal(size=(248, 8))
        r = audio_probe(x, e, folds=5, n_permutations=200, n_bootstrap=400, seed=seed)
        assert r.interval[0] <= r.value <= r.interval[1]
        assert r.effect_interval[0] <= r.value - r.null_mean <= r.effect_interval[1]
        # the cause: resampled R^2 sits about (1 - R^2)/n below the value
        y = (e - e.mean(0)) / e.std(0)
        boot = _bootstrap_r2(y, np.zeros_like(y), 2000, np.random.default_rng(seed))
        assert np.median(boot) == pytest.approx(-1 / 248, abs=0.002)
        raw_below += int(np.quantile(boot, 0.975) < 0.0)
    assert raw_below >= 1  # the raw percentile interval of a zero-R^2 predictor can exclude 0


def test_artist_grouped_folds_do_not_reward_recognising_artists():
    """Covers carry the artist (a style per artist), not the genre: only artist-disjoint folds see chance."""
    from metrics.relationship import genre_probe

    rng = np.random.default_rng(0)
    n_art, per = 40, 8
    artist = np.repeat(np.arange(n_art), per)
    genre_of_artist = rng.integers(0, 4, n_art)
    y = genre_of_artist[artist]
    x = rng.normal(size=(n_art, 10))[artist] * 3 + rng.normal(size=(n_art * per, 10))
    leaky = genre_probe(x, y, folds=5, n_permutations=200, n_bootstrap=100, seed=0)
    grouped = genre_probe(x, y, folds=5, n_permutations=200, n_bootstrap=100, seed=0, groups=artist)
    assert leaky.value > 0.45 and leaky.p_value < 0.01  # measured 0.58: a fold "knows" most artists' genres
    assert grouped.value < 0.35 and grouped.p_value > 0.05  # measured 0.23, chance 0.25
    assert grouped.details["grouped"] and grouped.details["n_groups"] == n_art


def test_grouped_probe_p_values_hold_their_level_where_cover_level_shuffles_do_not():
    """No genre in the covers, but each artist has a style and one genre: shuffling single covers' genres (the
    cover-level null) rejects far too often; shuffling genres among artist groups stays near the level."""
    from sklearn.model_selection import GroupKFold

    from metrics.conditioning.classifier import ConditionClassifier
    from metrics.conditioning.stats import permutation_p, permuted_accuracy
    from metrics.relationship import genre_probe

    grouped, cover_level = [], []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        artist = np.repeat(np.arange(30), 8)
        y = rng.integers(0, 3, 30)[artist]
        x = rng.normal(size=(30, 6))[artist] * 2 + rng.normal(size=(240, 6))
        r = genre_probe(x, y, folds=5, n_permutations=200, n_bootstrap=50, seed=seed, groups=artist)
        grouped.append(r.p_value)
        assert r.interval[0] <= r.value <= r.interval[1]
        pred, fold = np.empty_like(y), np.empty_like(y)  # the same folds and predictions, shuffled per cover
        for f, (tr, te) in enumerate(GroupKFold(5, shuffle=True, random_state=seed).split(x, y, artist)):
            pred[te] = ConditionClassifier(seed=seed).fit(x[tr], y[tr]).predict(x[te])
            fold[te] = f
        cover_level.append(permutation_p(float((pred == y).mean()), permuted_accuracy(pred, y, 200, rng, fold)))
    rate_grouped = float(np.mean(np.array(grouped) < 0.1))
    rate_cover = float(np.mean(np.array(cover_level) < 0.1))
    assert rate_grouped <= 0.2  # measured 0.13 (300 seeds: 0.12) at level 0.1
    assert rate_cover >= rate_grouped + 0.1  # measured 0.27


def _planted_embeddings(ds: PreparedDataset, run, name: str = "pca") -> np.ndarray:  # noqa: ANN001
    """Encoder output that is the genre plus noise, written as `bench encode` would."""
    from core.jsonfiles import write_json_atomic
    from models.encoders.store import write_embeddings

    rng = np.random.default_rng(3)
    onehot = np.eye(len(ds.genres), dtype=np.float32)[ds.genre_idx]
    x = np.concatenate([onehot, 0.1 * rng.normal(size=(len(ds), 2)).astype(np.float32)], axis=1)
    d = run.encoder(name)
    d.mkdir(parents=True)
    write_embeddings(d / "embeddings.parquet", ds, x)
    write_json_atomic(d / "eval.json", {"encoder": name, "dataset": ds.name})
    return x


def test_data_probe_cli_writes_probe_json_and_evaluate_reuses_it(tmp_path, monkeypatch):
    from benchmark.cli.app import main
    from benchmark.pipeline.evaluate import evaluate_relationship
    from core.data.info import probe_path, read_probe
    from metrics.features import color

    make_tiny_dataset(n=48)
    ds = PreparedDataset.open("tiny")
    _planted_embeddings(ds, paths.run("enc"))
    other = make_tiny_dataset(name="other", n=12)  # a run of another dataset must not be used
    _planted_embeddings(PreparedDataset(other), paths.run("elsewhere"), "cnn")
    calls = []
    real = color.color_features
    monkeypatch.setattr(color, "color_features", lambda im, *a: calls.append(len(im)) or real(im, *a))

    with pytest.raises(SystemExit) as e:
        main(["--quiet", "data", "probe", "tiny", "--features", "colour", "--folds", "3", "--permutations", "200"])
    assert e.value.code in (0, None)
    probe = json.loads(probe_path(ds).read_text())
    g = probe["genre"]
    assert probe["extractor"] == "colour" and probe["folds"] == 3 and g["n"] == 48
    assert probe["n_groups"] == 16  # three tracks per artist
    assert g["value"] == 1.0 and g["chance"] == 0.25 and g["p_value"] < 0.01  # genres have distinct colours
    assert probe["audio_embeddings"] == [{"encoder": "pca", "run": "enc"}]
    # the planted embedding is the genre (4 of 6 standardised dims; the other 2 are noise, R^2 0): at most 4/6
    assert 0.5 < probe["audio"]["pca"]["value"] <= 4 / 6 + 1e-6
    assert sum(calls) == 48

    run = paths.run("r1")
    rel = evaluate_relationship(ds, run, EvalConfig(relationship_folds=3, features="colour"), device_kind="cpu")
    assert rel["probe_source"].startswith("bench data probe") and rel["genre"]["value"] == g["value"]
    assert json.loads((run.root / "eval" / "relationship.json").read_text())["audio"]["pca"]["value"] == (
        probe["audio"]["pca"]["value"])
    assert sum(calls) == 48  # reused: nothing extracted again

    # a changed dataset makes the saved probe stale; the features cache is keyed by content too
    stale = dict(probe, dataset_files={"tracks.parquet": "0" * 64})
    probe_path(ds).write_text(json.dumps(stale))
    assert read_probe(ds) is None and read_probe(ds, fresh_only=False)["folds"] == 3
    with pytest.raises(SystemExit):
        main(["--quiet", "data", "probe", "tiny", "--features", "colour", "--folds", "3", "--permutations", "200"])
    assert sum(calls) == 48  # same content: features came from the cache


# -- 5. data strings are plotted as text ---------------------------------------------------------------------------


def test_hostile_genre_names_plot_as_text(tmp_path):
    import matplotlib

    from metrics.tsne import save_tsne_plots, tsne_analysis
    from models.encoders.evaluate import tsne_map
    from reports.plots import training_curves

    rng = np.random.default_rng(0)
    genres = [HOSTILE, "rock $x$", "pop"]
    x = rng.normal(size=(30, 5))
    y = np.arange(30) % 3
    images = rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    with matplotlib.rc_context({"text.usetex": True}):  # even a user's LaTeX setting must not reach data strings
        p = tsne_map(x, y, genres, tmp_path / "enc.png", title=f"pca on {HOSTILE}")
        res = tsne_analysis(x, y, images, seed=0)
        files = save_tsne_plots(res, tmp_path, genres, real_images=images)
        stats = tmp_path / "stats.jsonl"
        stats.write_text("\n".join(json.dumps({"kimg": k, "loss/G": 1.0 / (k + 1)}) for k in range(3)))
        curves = training_curves(stats, tmp_path / "curves.png", title=HOSTILE)
    for f in (p, files["genre"], files["colour"], curves):
        assert Image.open(f).size[0] > 100
    from core.plot_text import plain

    assert plain(HOSTILE) == "jazz \\$\\frac{\\$"
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    t = ax.text(0, 0, plain(HOSTILE))
    fig.canvas.draw()  # mathtext would raise "Expected end of text" on the raw string
    assert t.get_text() == plain(HOSTILE)
    plt.close(fig)


# -- 3. evaluation states absent classes and scores only the present ones ----------------------------------------


def test_encoder_probe_macro_f1_over_present_classes():
    from sklearn.metrics import f1_score

    from models.encoders.evaluate import evaluate_embeddings, linear_probe

    rng = np.random.default_rng(0)
    y_tr = np.repeat(np.arange(3), 20)
    x_tr = np.eye(3)[y_tr] * 5 + rng.normal(size=(60, 3)) * 0.1
    y_te = np.repeat([0, 1], 10)  # class 2 has no test tracks
    x_te = np.eye(3)[y_te] * 5 + rng.normal(size=(20, 3)) * 0.1
    out = linear_probe(x_tr, y_tr, x_te, y_te, 3)
    assert out["accuracy"] == 1.0 and out["macro_f1"] == 1.0 and out["classes_absent"] == [2]
    assert f1_score(y_te, y_te, average="macro", labels=[0, 1, 2], zero_division=0) == pytest.approx(2 / 3)
    splits = np.array(["train"] * 60 + ["test"] * 20)
    ev = evaluate_embeddings(np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te]), splits, ["a", "b", HOSTILE])
    assert ev["classes_absent_from_test"] == [HOSTILE] and ev["linear_probe"]["macro_f1"] == 1.0


def test_conditional_accuracy_names_classes_absent_from_test():
    from metrics.conditioning.accuracy import accuracy_from_predictions

    test = np.array([0, 1, 1, 0, 3, 3])
    gen = np.array([0, 1, 2, 3, 0, 1])
    r = accuracy_from_predictions(test, test, gen, gen, n_classes=4, n_permutations=100, n_bootstrap=50)
    assert r.details["classes_absent_from_test"] == [2] and r.details["ceiling"] == 1.0


# -- 6. pictures ----------------------------------------------------------------------------------------------------


def test_sample_strip_is_the_first_column_of_the_grid(tmp_path):
    from models.gans.train.snapshot import save_grid
    from reports.pictures import sample_strip

    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (4 * 8, 16, 16, 3), dtype=np.uint8)  # 4 conditions x 8 z, as snapshot_grid lays out
    grid = save_grid(tiles, 8, tmp_path / "samples.png")
    out = sample_strip(grid, tmp_path / "strip.png")
    strip = np.asarray(Image.open(out))
    assert strip.shape == (16 + 4, 4 * 18 + 2, 3)
    for r in range(4):  # tile r of the strip is grid row r, column 0: one z, condition r
        np.testing.assert_array_equal(strip[2:18, 2 + r * 18 : 18 + r * 18], tiles[r * 8])
    (tmp_path / "odd.png").write_bytes(b"not an image")
    assert sample_strip(tmp_path / "odd.png", tmp_path / "x.png") is None
    assert sample_strip(tmp_path / "missing.png", tmp_path / "y.png") is None


def test_data_page_shows_real_covers_per_genre_duplicates_warnings_and_the_probe(tmp_path):
    from benchmark.pipeline.probe import probe_dataset
    from reports.build import build_report
    from tests.test_report import Page, _text

    make_tiny_dataset(n=24, genres=("rock", HOSTILE, "pop"), res=(32, 64))
    ds = PreparedDataset.open("tiny")
    probe_dataset(ds, "colour", 3, n_permutations=100)
    run = paths.run("r")
    run.root.mkdir(parents=True)
    report = build_report(run, dataset=ds).parent
    page = Page((report / "data.html").read_text(encoding="utf-8"))
    grid = page.rows["cover-grid"]
    assert [r[0] for r in grid] == ["rock (8)", f"{HOSTILE} (8)", "pop (8)"]
    srcs = [s for s in page.attrs("img", "src") if s.startswith("img/data/")]
    assert srcs == ["img/data/genre-0.png", "img/data/genre-1.png", "img/data/genre-2.png"]
    strip = np.asarray(Image.open(report / srcs[1]))
    assert strip.shape == (68, 8 * 66 + 2, 3)  # 8 covers of 64 px (the 64 px store, not resized)
    covers = ds.covers(64)
    first = strip[2:66, 2:66]
    assert any(np.array_equal(first, covers[r]) for r in np.flatnonzero(ds.genre_idx == 1))
    dup = {r[0]: r for r in page.rows["duplicates"]}
    assert dup["audio"][1:3] == ["0", "0"] and dup["covers"][1:3] == ["0", "0"]
    rel = page.rows["relationship"]
    assert rel[0][0] == "cover → genre accuracy" and rel[0][1] == "1"
    assert "colour features at 64 px; artist-grouped 3-fold" in _text(page)


def test_inception_probe_uses_the_largest_covers_and_caches_features_only():
    """The gpu preset's extractor, end to end on 15 covers (Inception runs ~1-12 covers/s on a CPU)."""
    from benchmark.pipeline.probe import probe_dataset
    from metrics.features.inception import inception_features

    make_tiny_dataset(n=15, genres=("a", "b", "c"), res=(16, 32))
    ds = PreparedDataset.open("tiny")
    out = probe_dataset(ds, "inception", folds=3, n_permutations=100, device_kind="cpu")
    assert out["extractor"] == "inception" and out["res"] == 32 and out["genre"]["n"] == 15
    keys = list((ds.paths.cache_dir / "features").glob("*.key.json"))
    assert len(keys) == 1 and json.loads(keys[0].read_text())["key_parts"]["split"] == "all"
    feats = np.load(str(keys[0]).replace(".key.json", ".features.npy"))
    assert feats.shape == (15, 2048)
    assert not list((ds.paths.cache_dir / "features").glob("*.stats.npz"))  # no 2048-d covariance square root
    np.testing.assert_allclose(feats[:2], inception_features(np.array(ds.covers(32)[:2]), device="cpu"), rtol=1e-5,
                               atol=1e-5)  # fmt: skip


def test_an_empty_split_is_one_clear_line_at_evaluation_not_an_empty_feature_array():
    from metrics.features.extractors import make_extractor, real_features

    make_tiny_dataset(n=6, genres=("a", "b"))
    ds = PreparedDataset.open("tiny")
    tracks = ds.tracks.assign(split="train")  # what a one-artist import produces
    tracks.to_parquet(ds.paths.tracks, index=False)
    ds = PreparedDataset.open("tiny")
    import torch

    ext = make_extractor(ds, "colour", 32, EvalConfig(), torch.device("cpu"))
    with pytest.raises(UserError, match="dataset 'tiny' has no test covers: the split was left empty at import"):
        real_features(ds, "test", 32, ext)
    assert real_features(ds, "train", 32, ext)[0].features.shape[0] == 6


def test_leaderboard_shows_a_sample_strip_per_evaluated_model(tmp_path):
    from models.gans.train.snapshot import save_grid
    from reports.build import build_report
    from tests.test_report import Page

    run = paths.run("r")
    edir = run.eval("dcgan_cond")
    edir.mkdir(parents=True)
    tiles = np.random.default_rng(0).integers(0, 256, (3 * 8, 16, 16, 3), dtype=np.uint8)
    save_grid(tiles, 8, edir / "samples.png")
    doc = {"model": "dcgan_cond", "metrics": {}, "plots": {"samples": "samples.png"}}
    (edir / "metrics.json").write_text(json.dumps(doc))
    report = build_report(run).parent
    page = Page((report / "index.html").read_text(encoding="utf-8"))
    assert page.rows["leaderboard"][0][0] == "dcgan_cond"
    assert "img/dcgan_cond/strip.png" in page.attrs("img", "src")
    strip = np.asarray(Image.open(report / "img" / "dcgan_cond" / "strip.png"))
    np.testing.assert_array_equal(strip[2:18, 2 + 18 : 18 + 18], tiles[8])  # condition 1, first z
