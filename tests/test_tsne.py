"""t-SNE analyses tell a genre-organised map from a colour-organised one (planted), and place generated covers."""

from __future__ import annotations

import numpy as np

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
