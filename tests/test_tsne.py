"""t-SNE analyses tell a genre-organised map from a colour-organised one (planted), and place generated covers."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.tsne import knn_agreement, save_tsne_plots, tsne_analysis

PALETTE = np.array([[230, 40, 40], [40, 200, 60], [40, 60, 230], [230, 220, 40]], np.uint8)


def _world(n=320, seed=0):
    rng = np.random.default_rng(seed)
    genres = np.arange(n) % 4
    colour = rng.integers(0, 4, n)  # colour independent of genre
    images = np.broadcast_to(PALETTE[colour][:, None, None, :], (n, 8, 8, 3)).copy()
    return rng, genres, colour, images


def test_knn_agreement_chance_and_perfect():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(400, 2))
    labels = rng.integers(0, 4, 400)
    s = knn_agreement(xy, labels, k=10)
    assert abs(s["agreement"] - s["chance"]) < 0.05 and abs(s["lift"]) < 0.08
    xy2 = np.concatenate([rng.normal(size=(100, 2)) + 20 * g for g in range(4)])
    s2 = knn_agreement(xy2, np.repeat(np.arange(4), 100), k=10)
    assert s2["agreement"] > 0.99 and s2["lift"] > 0.98


def test_genre_organised_map():
    rng, genres, colour, images = _world()
    centers = rng.normal(scale=6, size=(4, 16))
    feats = centers[genres] + rng.normal(size=(len(genres), 16))
    gen_cond = np.arange(80) % 4
    gen = centers[gen_cond] + rng.normal(size=(80, 16))
    r = tsne_analysis(feats, genres, images, gen_features=gen, gen_conditions=gen_cond, seed=0)
    s = r["scores"]
    assert s["organised_by"] == "genre"
    assert s["genre"]["lift"] > 0.8 and abs(s["colour"]["lift"]) < 0.15
    assert s["trustworthiness"] > 0.85
    assert r["gen_xy"].shape == (80, 2)
    assert s["generated_genre_agreement"]["agreement"] > 0.8


def test_colour_organised_map_and_ignoring_generator(tmp_path):
    rng, genres, colour, images = _world(seed=1)
    feats = np.concatenate([images.reshape(len(images), -1)[:, :3] / 255.0 * 10, rng.normal(size=(len(genres), 6))], 1)
    feats[:, :3] += rng.normal(scale=0.3, size=(len(genres), 3))
    gen_cond = np.arange(80) % 4
    gen = feats[rng.integers(0, len(feats), 80)]  # ignores the condition
    r = tsne_analysis(feats, genres, images, gen_features=gen, gen_conditions=gen_cond, gen_images=images[:80])
    s = r["scores"]
    assert s["organised_by"] == "colour" and s["colour"]["lift"] > 0.8
    g = s["generated_genre_agreement"]
    assert abs(g["agreement"] - g["chance"]) < 0.1
    written = save_tsne_plots(r, tmp_path, ["a", "b", "c", "d"], real_images=images)
    for p in written.values():
        assert p.is_file() and p.stat().st_size > 1000


def test_real_map_fitted_once_per_process_gives_a_fresh_fits_numbers(monkeypatch):
    """`evaluate --model all` places every model into one map of the real covers: the map is optimised once per
    process, and the kept map gives a fresh fit's numbers (same seed); other features or seeds get their own."""
    from openTSNE import TSNE

    import metrics.tsne as T

    rng, genres, _, images = _world(200)
    feats = rng.normal(size=(200, 16)) + 3 * np.eye(16)[genres * 4]
    gen = rng.normal(size=(40, 16))
    T._maps.clear()
    first = tsne_analysis(feats, genres, images, gen_features=gen, gen_conditions=genres[:40], seed=1)
    with monkeypatch.context() as m:
        m.setattr(TSNE, "fit", lambda *a, **k: pytest.fail("the kept map was optimised again"))
        again = tsne_analysis(feats, genres, images, gen_features=gen, gen_conditions=genres[:40], seed=1)
    T._maps.clear()
    fresh = tsne_analysis(feats, genres, images, gen_features=gen, gen_conditions=genres[:40], seed=1)
    for r in (again, fresh):
        assert np.array_equal(r["real_xy"], first["real_xy"]) and np.array_equal(r["gen_xy"], first["gen_xy"])
        assert r["scores"] == first["scores"]
    other_seed = tsne_analysis(feats, genres, images, seed=2)["real_xy"]
    other_rows = tsne_analysis(feats[:-1], genres[:-1], images[:-1], seed=1)["real_xy"]
    assert not np.array_equal(other_seed, first["real_xy"]) and len(other_rows) == 199
    assert len(T._maps) == 3


def test_stored_real_map_is_rebuilt_to_place_covers_as_the_fit_did(tmp_path, monkeypatch):
    """The map's coordinates saved in the dataset's cache: a later process rebuilds the map around them without
    optimising (no fit) and places generated covers exactly where the fitted map did; a damaged file is refitted;
    a cache that cannot be written (full, read-only) only costs the fit."""
    import metrics.tsne as T

    rng, genres, _, images = _world(200)
    feats = rng.normal(size=(200, 16)) + 3 * np.eye(16)[genres * 4]
    gen = rng.normal(size=(40, 16))
    kw = dict(gen_features=gen, gen_conditions=genres[:40], seed=0, map_store=tmp_path / "tsne")
    T._maps.clear()
    fitted = tsne_analysis(feats, genres, images, **kw)
    (stored,) = (tmp_path / "tsne").glob("tsne-*.npy")
    assert np.array_equal(np.load(stored), fitted["real_xy"])
    T._maps.clear()
    from openTSNE import TSNE

    monkeypatch.setattr(TSNE, "fit", lambda *a, **k: pytest.fail("the stored map was fitted again"))
    rebuilt = tsne_analysis(feats, genres, images, **kw)
    assert np.array_equal(rebuilt["gen_xy"], fitted["gen_xy"]) and rebuilt["scores"] == fitted["scores"]
    assert np.array_equal(rebuilt["real_xy"], fitted["real_xy"])
    monkeypatch.undo()
    T._maps.clear()
    stored.write_bytes(b"not a map")
    again = tsne_analysis(feats, genres, images, **kw)
    assert np.array_equal(again["gen_xy"], fitted["gen_xy"]) and np.array_equal(np.load(stored), fitted["real_xy"])
    T._maps.clear()
    stored.unlink()

    def full_disk(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("metrics.features.cache.atomic_write", full_disk)
    assert np.array_equal(tsne_analysis(feats, genres, images, **kw)["gen_xy"], fitted["gen_xy"])
    assert not stored.exists()
