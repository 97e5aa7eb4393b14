"""The synthetic album world end to end: determinism, coupling truth, artists, CLI, and the real-layout export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmark.cli.app import main
from core import paths
from core.config.schema import SplitConfig, SynthConfig
from core.data.prepared import PreparedDataset
from core.data.synth.covers import COVER_ATTRS, render_cover
from core.data.synth.export import CSV_COLUMNS, export_world
from core.data.synth.world import GENRE_NAMES, synthesize_world, world_plan
from core.errors import UserError


def synth(name: str, workers: int = 1, root=None, **kw) -> PreparedDataset:
    cfg = SynthConfig(**{"tracks": 64, "seconds": 1.0, "res": [32], **kw})
    dest = paths.DatasetPaths(root / name) if root is not None else paths.dataset(name)
    return PreparedDataset(synthesize_world(dest, cfg, SplitConfig(), workers=workers))


@pytest.fixture(scope="module")
def half_world(tmp_path_factory) -> PreparedDataset:
    return synth("half", workers=2, root=tmp_path_factory.mktemp("half"), tracks=160, coupling=0.5)


def colour_histograms(covers: np.ndarray, bins: int = 4) -> np.ndarray:
    q = (covers.astype(np.int64) * bins) // 256
    code = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    code = code.reshape(len(covers), -1)
    hist = np.stack([np.bincount(c, minlength=bins**3) for c in code]).astype(float)
    return hist / hist.sum(1, keepdims=True)


def cv_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.5))
    return float(cross_val_score(clf, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean())


# ---------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_across_worker_counts():
    a = synth("a", workers=1)
    b = synth("b", workers=2)
    c = synth("c", workers=2, seed=1)
    for fname in ("covers_32.npy", "audio.npy", "tracks.parquet"):
        assert a.manifest["files"][fname]["sha256"] == b.manifest["files"][fname]["sha256"], fname
        assert a.manifest["files"][fname]["sha256"] != c.manifest["files"][fname]["sha256"], fname
    assert np.array_equal(np.asarray(a.covers(32)), np.asarray(b.covers(32)))
    pd.testing.assert_frame_equal(a.tracks, b.tracks)


def test_world_table_ids_artists_and_genres(half_world):
    ds = half_world
    t = ds.tracks
    assert t["track_id"].is_unique and t["album_id"].is_unique
    assert t["track_id"].str.fullmatch(r"[0-9A-Za-z]{22}").all()
    assert set(t["genre"]) == set(GENRE_NAMES[:8])
    per_artist = t.groupby("artist_id")
    assert (per_artist["genre"].nunique() == 1).all(), "an artist must stick to one genre"
    assert (per_artist["artist"].nunique() == 1).all()
    assert 2.5 <= per_artist.size().mean() <= 6.0
    counts = t["genre"].value_counts()
    assert counts.max() - counts.min() <= 6, "genres should be balanced"
    # artist-disjoint splits (done by the prepared format) hold for the synthetic artists
    assert (per_artist["split"].nunique() == 1).all()
    assert len(ds.audio()[0]) == 22050 and (t["audio_len"] == 22050).all()


def test_plan_respects_tracks_per_artist():
    plan = world_plan(SynthConfig(tracks=4000, tracks_per_artist=8.0))
    sizes = np.bincount(plan.artist)
    assert abs(sizes.mean() - 8.0) < 0.5
    assert np.array_equal(plan.genre, plan.artist_genre[plan.artist])


# ---------------------------------------------------------------------------------------------- coupling


def test_coupling_truth_columns(half_world):
    ds = half_world
    t = ds.tracks
    k = int(t["coupled"].sum())
    assert stats.binomtest(k, len(t), 0.5).pvalue > 0.001
    own = t[t["coupled"]]
    other = t[~t["coupled"]]
    assert (own["cover_genre"] == own["genre_idx"]).all()
    # uncoupled covers come from a genre drawn independently of the track (own genre included, ~1/8 of them)
    assert 0 < (other["cover_genre"] == other["genre_idx"]).sum() < 0.4 * len(other)
    for a in COVER_ATTRS:
        assert np.allclose(own[f"cover_{a}"], own[a])
        assert not np.allclose(other[f"cover_{a}"], other[a])
    # stored covers are exactly render_cover of the stored arguments (so export can re-render them)
    covers = ds.covers(32)
    for r in (0, 7, 42):
        row = t.iloc[r]
        img = render_cover(int(row["cover_genre"]), 8, {a: row[f"cover_{a}"] for a in COVER_ATTRS},
                           int(row["cover_seed"]), 32, palette_overlap=0.25, title=row["album"])
        assert np.array_equal(img, covers[r])


@pytest.fixture(scope="module")
def coupling_worlds(tmp_path_factory):
    out = {}
    root = tmp_path_factory.mktemp("coupling")
    for c in (1.0, 0.0):
        cfg = SynthConfig(tracks=240, seconds=1.0, res=[32], coupling=c, seed=4)
        ds = PreparedDataset(synthesize_world(paths.DatasetPaths(root / f"c{c}"), cfg, SplitConfig(), workers=2))
        out[c] = (colour_histograms(np.asarray(ds.covers(32))), ds.genre_idx)
    return out


def test_coupled_covers_predict_genre(coupling_worlds):
    x, y = coupling_worlds[1.0]
    acc = cv_accuracy(x, y)
    chance = 1 / 8
    assert acc > chance + 0.25, f"colour-histogram accuracy {acc:.3f} with coupling 1"


def test_uncoupled_covers_stay_at_chance(coupling_worlds):
    """With C=0 the accuracy must be inside the binomial null band of a guesser at 1/8."""
    x, y = coupling_worlds[0.0]
    acc = cv_accuracy(x, y)
    n = len(y)
    upper = stats.binom.ppf(0.999, n, 1 / 8) / n
    assert acc <= upper, f"colour-histogram accuracy {acc:.3f} > null bound {upper:.3f} with coupling 0"


# ---------------------------------------------------------------------------------------------- CLI + export


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_synth_info_and_export(tmp_path, capsys):
    root = tmp_path / "root"
    export = tmp_path / "dump"
    code, out, err = run_cli(
        ["--data-root", str(root), "-q", "data", "synth", "--name", "cli", "--tracks", "24", "--seconds", "1",
         "--res", "32", "--coupling", "0.25", "--workers", "2", "--export", str(export),
         "--set", "data.synth.export_res=64"], capsys)
    assert code == 0, err
    assert (root / "cli" / "manifest.json").is_file()
    code, out, err = run_cli(["--data-root", str(root), "data", "info", "cli"], capsys)
    assert code == 0, err
    assert "coupling" in out and "0.25" in out

    table = pd.read_csv(export / "tracks.csv", encoding="utf-8")
    assert tuple(table.columns) == CSV_COLUMNS
    ds = PreparedDataset.open(root / "cli")
    assert list(table["track_id"]) == list(ds.tracks["track_id"])
    for _, row in table.iterrows():
        with Image.open(export / "covers" / f"{row['album_id']}.jpg") as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (64, 64)
    wave, sr = sf.read(export / "previews" / f"{table['track_id'][0]}.mp3", dtype="float32")
    assert sr == 22050 and wave.ndim == 1
    assert abs(len(wave) - 22050) < 3000
    ref = ds.waveform(0)
    assert abs(20 * np.log10(np.sqrt(np.mean(wave**2)) / np.sqrt(np.mean(ref**2)))) < 1.0

    # the exported cover is the stored one, re-rendered larger: downsampled it matches the 32 px array
    with Image.open(export / "covers" / f"{table['album_id'][0]}.jpg") as im:
        small = np.asarray(im.resize((32, 32), Image.BOX), dtype=float)
    assert np.abs(small - ds.covers(32)[0].astype(float)).mean() < 12

    # a non-empty export folder is refused without --force, replaced with it
    with pytest.raises(UserError, match="not empty"):
        export_world(ds, export, res=64, workers=1)
    export_world(ds, export, res=64, workers=1, force=True)
    assert len(list((export / "covers").iterdir())) == 24


def test_export_then_import_round_trips(tmp_path):
    """The importer reads the export back: every track kept, ids, names and attributes unchanged."""
    from core.config.schema import ImportConfig
    from core.data.importer.run import import_dataset

    ds = synth("src", tracks=24)
    export_world(ds, tmp_path / "dump", res=64, workers=2)
    result = import_dataset(tmp_path / "dump", paths.dataset("back"), ImportConfig(res=[32], seconds=1.0),
                            SplitConfig(), workers=1)
    back = PreparedDataset(result.paths)
    assert result.kept == len(ds) and len(result.rejected) == 0
    got = back.tracks.set_index("track_id").loc[ds.tracks["track_id"]]
    for col in ("album_id", "artist_id", "artist", "album", "track", "genre", "key", "mode", "duration_ms"):
        assert list(got[col].astype(str)) == list(ds.tracks[col].astype(str)), col
    for col in ("tempo", "energy", "valence", "loudness"):
        assert np.allclose(got[col].to_numpy(float), ds.tracks[col].to_numpy(float), atol=1e-6), col
