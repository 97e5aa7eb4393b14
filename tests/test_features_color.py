"""Colour features against matplotlib's HSV conversion and numpy's histogramdd, plus planted colours."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import rgb_to_hsv as mpl_rgb_to_hsv

from core.errors import UserError
from metrics.features.color import color_features, hsv_histogram, mean_rgb, rgb_to_hsv


def _images(n=5, size=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    x[0] = 128  # grey: zero saturation, undefined hue
    x[1, :, :8] = [255, 255, 0]  # ties between channels
    x[1, :, 8:] = [0, 0, 0]
    return x


def test_hsv_matches_matplotlib():
    x = _images().astype(np.float64) / 255.0
    np.testing.assert_allclose(rgb_to_hsv(x), mpl_rgb_to_hsv(x), atol=1e-12)


def test_histogram_matches_histogramdd():
    imgs = _images()
    bins = (8, 4, 4)
    ours = hsv_histogram(imgs, bins, max_pixels=24 * 24 * 2)  # several chunks
    edges = [np.linspace(0, 1, b + 1) for b in bins]
    for i, im in enumerate(imgs):
        hsv = mpl_rgb_to_hsv(im.astype(np.float64) / 255.0).reshape(-1, 3)
        ref, _ = np.histogramdd(hsv, bins=edges)
        np.testing.assert_allclose(ours[i], ref.ravel() / hsv.shape[0], atol=1e-12)
    np.testing.assert_allclose(ours.sum(1), 1.0)


def test_planted_colours():
    imgs = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    imgs[0] = [255, 0, 0]
    imgs[1] = [0, 0, 255]
    imgs[2, :4] = [0, 255, 0]
    imgs[2, 4:] = [255, 255, 255]
    np.testing.assert_allclose(mean_rgb(imgs), [[1, 0, 0], [0, 0, 1], [0.5, 1, 0.5]])
    h = hsv_histogram(imgs).reshape(3, 8, 4, 4)
    assert h[0, 0, 3, 3] == 1.0  # red: hue 0, full saturation and value
    assert h[1, 5, 3, 3] == 1.0  # blue: hue 2/3 -> bin 5 of 8
    assert h[2, 2, 3, 3] == 0.5 and h[2, 0, 0, 3] == 0.5  # green half, white half (no saturation)
    f = color_features(imgs)
    assert f.shape == (3, 3 + 128) and f.dtype == np.float32
    assert np.linalg.norm(f[0] - f[1]) > 1.0


def test_refuses_wrong_input():
    with pytest.raises(UserError, match="uint8"):
        mean_rgb(np.zeros((1, 4, 4, 3), dtype=np.float32))
    with pytest.raises(UserError, match="N, H, W, 3"):
        hsv_histogram(np.zeros((4, 4, 3), dtype=np.uint8))
