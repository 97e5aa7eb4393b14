"""The procedural cover renderer: determinism, resolution consistency, genre recognisability, attribute effects.

Classifier and attribute checks use features computed here (colour histograms, grayscale gradient/FFT statistics,
HSV saturation, R-B warmth), not the renderer's internals, so they test what a downstream model can see.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.data.synth.covers import COVER_ATTRS, render_cover, render_sheet
from core.errors import UserError

G = 8
BASE = {"energy": 0.5, "valence": 0.5, "tempo": 120.0, "danceability": 0.5, "acousticness": 0.5}


def _rand_attrs(rng: np.random.Generator) -> dict[str, float]:
    a = dict(zip(COVER_ATTRS, rng.random(len(COVER_ATTRS)).tolist(), strict=True))
    a["tempo"] = float(rng.uniform(60, 200))
    return a


def _world(overlap: float, per_genre: int, n_genres: int = G, res: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    imgs, labels = [], []
    for g in range(n_genres):
        for _ in range(per_genre):
            seed_k = int(rng.integers(1 << 30))
            imgs.append(render_cover(g, n_genres, _rand_attrs(rng), seed_k, res, palette_overlap=overlap))
            labels.append(g)
    return np.stack(imgs), np.array(labels)


def _colour_hist(imgs: np.ndarray, bins: int = 4) -> np.ndarray:
    q = imgs.astype(np.int64) * bins // 256
    idx = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    h = np.stack([np.bincount(i.ravel(), minlength=bins**3) for i in idx]).astype(float)
    return h / h.sum(1, keepdims=True)


def _structure(imgs: np.ndarray) -> np.ndarray:
    """Colour-free features: per-image z-scored luminance -> gradient orientations, radial FFT power, layout."""
    g = imgs.astype(np.float32).mean(-1)
    g = (g - g.mean((1, 2), keepdims=True)) / (g.std((1, 2), keepdims=True) + 1e-3)
    gx, gy = np.diff(g, axis=2)[:, :-1], np.diff(g, axis=1)[:, :, :-1]
    mag, ang = np.hypot(gx, gy), np.mod(np.arctan2(gy, gx), np.pi)
    ob = np.minimum((ang / np.pi * 8).astype(int), 7)
    ori = np.stack([np.bincount(o.ravel(), weights=m.ravel(), minlength=8) for o, m in zip(ob, mag, strict=True)])
    ori /= ori.sum(1, keepdims=True) + 1e-9
    power = np.abs(np.fft.fft2(g)) ** 2
    n = g.shape[1]
    r = np.sqrt(np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None] ** 2)
    rb = np.minimum((r / 0.5 * 6).astype(int), 5).ravel()
    rad = np.log(np.stack([np.bincount(rb, weights=p.ravel(), minlength=6) for p in power]) + 1e-6)
    layout = g.reshape(len(g), 4, n // 4, 4, n // 4).mean((2, 4)).reshape(len(g), -1)
    return np.concatenate([ori, rad, layout, mag.mean((1, 2))[:, None]], 1)


def _cv_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(cross_val_score(clf, x, y, cv=4).mean())


# ------------------------------------------------------------------------------------------------ basics
@pytest.mark.parametrize("res", [32, 64, 256, 640])
def test_shape_dtype_and_not_blank(res):
    img = render_cover(3, G, BASE, 7, res)
    assert img.shape == (res, res, 3) and img.dtype == np.uint8 and img.flags["C_CONTIGUOUS"]
    assert img.astype(float).std() > 5


def test_deterministic_and_seed_sensitive():
    a = render_cover(2, G, BASE, 11, 64)
    assert a.tobytes() == render_cover(2, G, dict(BASE), 11, 64).tobytes()
    other = render_cover(2, G, BASE, 12, 64)
    assert np.abs(a.astype(int) - other).mean() > 10


def test_title_changes_glyphs_only_a_little():
    a = render_cover(7, G, BASE, 5, 128, title="NIGHT DRIVE")  # genre 7: minimal, always a big title block
    b = render_cover(7, G, BASE, 5, 128, title="NIGHT DRIVE")
    c = render_cover(7, G, BASE, 5, 128, title="SUMMER HEAT")
    assert a.tobytes() == b.tobytes()
    changed = np.abs(a.astype(int) - c).max(-1) > 20
    assert 0.005 < changed.mean() < 0.3  # glyph pixels differ, the artwork around them does not


def test_resolution_consistency():
    rng = np.random.default_rng(1)
    same, other = [], []
    for i in range(16):
        attrs, g, s = _rand_attrs(rng), i % G, int(rng.integers(1 << 30))
        small = render_cover(g, G, attrs, s, 32).astype(float)
        big = render_cover(g, G, attrs, s, 256).astype(float).reshape(32, 8, 32, 8, 3).mean((1, 3))
        same.append(np.abs(small - big).mean())
        other.append(np.abs(small - render_cover(g, G, attrs, s + 1, 32)).mean())
    assert np.mean(same) < 7 and np.max(same) < 16
    assert np.mean(same) < 0.25 * np.mean(other)


def test_bad_arguments():
    with pytest.raises(UserError, match="genre"):
        render_cover(8, 8, BASE, 0, 64)
    with pytest.raises(UserError, match="palette_overlap"):
        render_cover(0, 8, BASE, 0, 64, palette_overlap=1.5)
    with pytest.raises(UserError, match="resolution"):
        render_cover(0, 8, BASE, 0, 4)
    with pytest.raises(ValueError, match="tempo"):
        render_cover(0, 8, {k: v for k, v in BASE.items() if k != "tempo"}, 0, 64)
    with pytest.raises(ValueError, match="energy"):
        render_cover(0, 8, {**BASE, "energy": float("nan")}, 0, 64)


def test_sheet_layout():
    sheet = render_sheet(n_genres=3, per_genre=2, res=32)
    assert sheet.shape == (96, 64, 3) and sheet.dtype == np.uint8


# ------------------------------------------------------------------------------------ genre recognisability
@pytest.fixture(scope="module")
def colour_accuracy() -> dict[float, float]:
    out = {}
    for overlap in (0.0, 0.25, 1.0):
        x, y = _world(overlap, per_genre=30)
        out[overlap] = _cv_accuracy(_colour_hist(x), y)
    return out


def test_colour_classifier_far_above_chance_without_overlap(colour_accuracy):
    assert colour_accuracy[0.0] > 0.6  # chance is 1/8
    assert colour_accuracy[0.25] > 0.35  # the default still carries genre in colour


def test_palette_overlap_knob_lowers_colour_accuracy(colour_accuracy):
    assert colour_accuracy[1.0] < colour_accuracy[0.0] - 0.3
    assert colour_accuracy[1.0] < colour_accuracy[0.25]


def test_structure_classifier_above_chance_at_full_overlap():
    x, y = _world(1.0, per_genre=30, seed=3)
    assert _cv_accuracy(_structure(x), y) > 0.4  # chance is 1/8: genre shows in composition, not just colour


def test_sixteen_genres_are_distinct_by_colour():
    x, y = _world(0.0, per_genre=16, n_genres=16, seed=4)
    assert _cv_accuracy(_colour_hist(x), y) > 0.3  # chance is 1/16


# ------------------------------------------------------------------------------------------ attribute effects
def _paired(attr: str, lo: float, hi: float, n: int = 64, res: int = 64):
    rng = np.random.default_rng(5)
    low, high = [], []
    for i in range(n):
        attrs, s = _rand_attrs(rng), int(rng.integers(1 << 30))
        low.append(render_cover(i % G, G, {**attrs, attr: lo}, s, res))
        high.append(render_cover(i % G, G, {**attrs, attr: hi}, s, res))
    return np.stack(low), np.stack(high)


def _saturation(imgs):
    f = imgs.astype(float) / 255
    return ((f.max(-1) - f.min(-1)) / (f.max(-1) + 1e-6)).mean((1, 2))


def _contrast(imgs):
    return imgs.astype(float).mean(-1).std((1, 2))


def _warmth(imgs):
    return (imgs[..., 0].astype(float) - imgs[..., 2]).mean((1, 2))


def _high_freq_share(imgs):
    """Share of (mean-removed) grayscale power above 1/8 cycles per pixel."""
    g = imgs.astype(float).mean(-1)
    g -= g.mean((1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(g)) ** 2
    n = g.shape[1]
    r = np.sqrt(np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None] ** 2)
    return (power * (r > 0.125)).sum((1, 2)) / (power.sum((1, 2)) + 1e-9)


def _paired_t(a: np.ndarray, b: np.ndarray) -> float:
    d = b - a
    return float(d.mean() / (d.std(ddof=1) / np.sqrt(len(d)) + 1e-12))


def test_energy_raises_saturation_and_contrast():
    low, high = _paired("energy", 0.1, 0.9)
    assert (_saturation(high) > _saturation(low)).mean() > 0.8
    assert (_contrast(high) > _contrast(low)).mean() > 0.8


def test_valence_warms_the_cover():
    low, high = _paired("valence", 0.1, 0.9)
    assert (_warmth(high) > _warmth(low)).mean() > 0.8
    assert _warmth(high).mean() - _warmth(low).mean() > 20


def test_tempo_raises_pattern_frequency():
    low, high = _paired("tempo", 70.0, 180.0)
    assert _paired_t(_high_freq_share(low), _high_freq_share(high)) > 3.0
