"""Per-condition diagnostics and the small pieces of judging outside covers, against independent references."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.pipeline.sources import grid_from_groups
from core.errors import UserError
from core.images import as_uint8_nhwc, check_square, safe_member
from metrics.conditioning.per_class import per_class_accuracy


def _permutation_p(pred: np.ndarray, asked: np.ndarray, k: int, n_perm: int, rng) -> float:
    """The reference: shuffle the asked labels among the covers, count covers asked k and predicted k."""
    observed = int(((asked == k) & (pred == k)).sum())
    hits = np.array([int(((rng.permutation(asked) == k) & (pred == k)).sum()) for _ in range(n_perm)])
    return (1 + int((hits >= observed).sum())) / (n_perm + 1)


def test_exact_per_class_p_values_match_a_permutation_test():
    rng = np.random.default_rng(0)
    asked = rng.integers(0, 3, 90)
    pred = np.where(rng.random(90) < 0.35, asked, rng.integers(0, 3, 90))  # follows its condition a little
    test_y = rng.integers(0, 3, 60)
    rows = per_class_accuracy(pred, asked, test_y, test_y, ["a", "b", "c"])
    for k, row in enumerate(rows):
        ref = _permutation_p(pred, asked, k, 4000, rng)
        assert abs(row.p_value - ref) < 4 * np.sqrt(ref * (1 - ref) / 4000) + 2e-3, (k, row.p_value, ref)
        assert row.null == pytest.approx((pred == k).mean())
        assert row.interval[0] <= row.accuracy <= row.interval[1]


def test_status_follows_ignored_unreadable_and_unclear():
    rng = np.random.default_rng(1)
    asked = np.repeat(np.arange(4), 100)
    pred = asked.copy()
    pred[asked == 1] = rng.integers(0, 4, 100)  # class 1: predictions unrelated to the condition
    pred[asked == 1] = np.where(pred[asked == 1] == 1, 0, pred[asked == 1])  # ... and never 1: clearly ignored
    test_y = np.repeat(np.arange(4), 30)
    test_pred = test_y.copy()
    test_pred[test_y == 3] = rng.integers(0, 3, 30)  # real covers of class 3 are never read as 3: unreadable
    asked_small = asked.copy()
    rows = per_class_accuracy(pred, asked_small, test_pred, test_y, ["a", "b", "c", "d"])
    assert [r.status for r in rows] == ["follows", "ignored", "follows", "unreadable"]
    few = np.array([0] * 40 + [2] * 3)  # class 2 asked three times only: cannot be decided either way
    rows = per_class_accuracy(np.where(few == 2, np.array([2, 0, 1] * 15)[: len(few)], few), few, test_y, test_y,
                              ["a", "b", "c", "d"])  # fmt: skip
    assert rows[2].status == "unclear" and rows[1].status == "unclear" and rows[1].n == 0


def test_grid_from_groups_keeps_the_conditions_every_group_holds():
    feats = np.arange(40, dtype=np.float32).reshape(20, 2)
    z = np.array(["a"] * 3 + ["b"] * 3 + ["c"] * 2 + ["solo"] + ["d"] * 2 + ["x"] * 9)
    keys = [1, 2, 3, 3, 1, 2, 2, 1, 7, 9, 8, *range(100, 109)]
    grid, why = grid_from_groups(feats[:9], z[:9], keys[:9])
    assert why == "" and grid.shape == (3, 2, 2)  # groups a, b, c share conditions 1 and 2
    np.testing.assert_array_equal(grid[0], feats[[0, 1]])
    np.testing.assert_array_equal(grid[1], feats[[4, 5]])
    np.testing.assert_array_equal(grid[2], feats[[7, 6]])
    grid, why = grid_from_groups(feats[:11], z[:11], keys[:11])  # d shares nothing with the others
    assert grid is None and "do not share" in why
    grid, why = grid_from_groups(feats[11:], z[11:], keys[11:])
    assert grid is None and "fewer than two" in why


def test_image_arrays_and_paths():
    x = np.linspace(-1, 1, 2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    out = as_uint8_nhwc(x)
    assert out.shape == (2, 4, 4, 3) and out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    np.testing.assert_array_equal(as_uint8_nhwc(out), out)
    np.testing.assert_array_equal(as_uint8_nhwc((x + 1) / 2, value_range=(0.0, 1.0)), out)
    with pytest.raises(UserError, match="NaN"):
        as_uint8_nhwc(np.full((1, 3, 2, 2), np.nan, np.float32))
    with pytest.raises(UserError, match="RGB"):
        as_uint8_nhwc(np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(UserError, match="square"):
        check_square(np.zeros((1, 4, 6, 3), np.uint8), [4], "images", "dataset d")
    with pytest.raises(UserError, match="points outside"):
        safe_member(__import__("pathlib").Path("/tmp"), "../etc/passwd", "m row 1")
