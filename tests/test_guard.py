"""Feature-extractor guard: an extractor that cannot see real covers is refused, so noise cannot score FID ~0."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from core import paths
from core.data.prepared import PreparedDataset
from metrics.distribution.fid import fid
from metrics.features.covernet import CoverNet, CoverNetConfig, _accuracy, covernet_features, train_covernet
from metrics.features.guard import accuracy_floor, extractor_guard, feature_spread
from tests.test_evaluate_pipeline import N_GENRES, _world


def test_accuracy_floor_is_twice_chance_capped_halfway():
    assert accuracy_floor(2) == pytest.approx(0.75)  # twice chance would be 1.0
    assert accuracy_floor(4) == pytest.approx(0.5)
    assert accuracy_floor(8) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        accuracy_floor(1)


def test_feature_spread_against_analytic_values():
    rng = np.random.default_rng(0)
    iso = rng.standard_normal((4000, 4))  # zero mean, identity covariance: share 1, effective rank 4
    share, rank = feature_spread(iso)
    assert share == pytest.approx(1.0, abs=0.02) and rank == pytest.approx(4.0, abs=0.05)
    # two equal directions out of 16 dims: effective rank 2; shifted far from 0: share = 2 / (2 + |mu|^2)
    x = np.zeros((4000, 16))
    x[:, :2] = rng.standard_normal((4000, 2))
    x += 3.0
    share, rank = feature_spread(x)
    assert rank == pytest.approx(2.0, abs=0.05) and share == pytest.approx(2 / (2 + 16 * 9), rel=0.05)
    assert feature_spread(np.ones((50, 8))) == (0.0, 0.0)


def test_guard_rules_on_recorded_numbers():
    rng = np.random.default_rng(1)
    good = rng.standard_normal((300, 16))
    assert extractor_guard({"val_accuracy": 0.9}, 4, good).ok
    assert extractor_guard({}, 4, good).ok  # pretrained extractors record no accuracy: only the spread rule
    low = extractor_guard({"val_accuracy": 0.29}, 4, good)  # the covernet: 0.29 with 4 genres
    assert not low.ok and low.floor == 0.5 and low.val_accuracy == 0.29
    assert "0.290, below the floor 0.500 (chance 0.250)" in low.reason and "\n" not in low.reason
    flat = extractor_guard({"val_accuracy": 0.9}, 4, 5.0 + 1e-4 * good)
    assert not flat.ok and flat.reason.startswith("the real covers' features are degenerate")
    line = extractor_guard({"val_accuracy": 0.9}, 8, np.outer(rng.standard_normal(300), np.ones(16)))
    assert not line.ok and "effective rank 1" in line.reason  # one direction cannot tell 8 classes apart
    assert extractor_guard({"val_accuracy": 0.9}, 2, np.outer(rng.standard_normal(300), np.ones(16))).ok
    assert set(low.to_dict()) >= {"ok", "floor", "chance", "val_accuracy", "variance_share", "effective_rank",
                                  "reason", "rule"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard")
    paths.set_roots(root, root / "runs")
    ds = _world("g", 1.0)
    yield ds
    paths.set_roots(None, None)


def _fid(real, gen) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small samples for a 128-d covariance: FID is biased, not meaningless
        return fid(real, gen, allow_singular=True).value


def test_noise_cannot_get_near_zero_fid_when_the_guard_passes(world: PreparedDataset, one_thread):
    torch.manual_seed(0)
    covers = world.covers(32)
    test, val = world.split_rows("test"), world.split_rows("val")
    noise = np.random.default_rng(0).integers(0, 256, size=(200, 32, 32, 3), dtype=np.uint8)

    # stopped early (3 steps an epoch, patience 3): the blind covernet. Refused, and rightly: it
    # would hand noise a near-zero FID.
    weak, info = train_covernet(world, CoverNetConfig(res=32, width=16, epochs=6, seed=0))
    real = covernet_features(weak, covers[test])
    g = extractor_guard(info, N_GENRES, real)
    assert not g.ok and "below the floor" in g.reason and "degenerate" in g.reason
    assert _fid(real, covernet_features(weak, noise)) < 1e-3

    # trained until it sees: the guard passes, and noise is far from real covers, held-out real covers close
    good, info = train_covernet(world, CoverNetConfig(res=32, width=16, epochs=20, batch_size=32, patience=20, seed=0))
    real = covernet_features(good, covers[test])
    g = extractor_guard(info, N_GENRES, real)
    assert g.ok, g.reason
    fid_noise, fid_real = _fid(real, covernet_features(good, noise)), _fid(real, covernet_features(good, covers[val]))
    assert fid_noise > 50 and fid_noise > 20 * fid_real, (fid_noise, fid_real)


def test_untrained_and_constant_extractors_are_refused(world: PreparedDataset, one_thread):
    covers = world.covers(32)
    test, val = world.split_rows("test"), world.split_rows("val")
    torch.manual_seed(0)
    untrained = CoverNet(N_GENRES, 16, 32).eval()
    acc = _accuracy(untrained, covers, val, world.genre_idx[val], "cpu")
    g = extractor_guard({"val_accuracy": acc}, N_GENRES, covernet_features(untrained, covers[test]))
    assert not g.ok and g.val_accuracy < g.floor and g.reason
    constant = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (len(test), 1))
    g = extractor_guard(None, N_GENRES, constant)
    assert not g.ok and (g.variance_share, g.effective_rank) == (0.0, 0.0) and "degenerate" in g.reason


def test_model_page_shows_floor_quality_and_refusal():
    from reports.build import _env

    g = extractor_guard({"val_accuracy": 0.29}, 4, np.random.default_rng(0).standard_normal((100, 8)))
    doc = {"extractor": {"name": "covernet", "guard": g.to_dict()}, "refused": g.reason}
    m = {"name": "dcgan", "evaluated": True, "trained": True, "doc": doc, "summary": {}, "verdict": None}
    html = " ".join(_env().get_template("model.html.j2").render(m=m, run="r").split())
    assert "<strong>refused</strong>: the feature extractor reads genre on held-out real covers at 0.290" in html
    assert "validation accuracy on real covers 0.29 (floor 0.5, chance 0.25)" in html
    assert "<strong>Evaluation refused:</strong> the feature extractor" in html
    doc["extractor"]["guard"] = extractor_guard({"val_accuracy": 0.9}, 4, np.eye(8)).to_dict()
    del doc["refused"]
    html = " ".join(_env().get_template("model.html.j2").render(m=m, run="r").split())
    assert "fit to judge" in html and "Evaluation refused" not in html
