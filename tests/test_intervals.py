"""Every reported interval contains its own estimate (or says why not), checked on what the pipeline writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

import benchmark.pipeline.evaluate as ev
from core import paths
from core.config import load_config
from core.data.prepared import PreparedDataset
from metrics.conditioning.purity import cluster_purity
from metrics.conditioning.stats import bias_shifted_interval
from reports.check import interval_violations
from tests.test_evaluate_pipeline import _evaluate, _world


def test_checker_finds_each_kind_of_pair():
    doc = {
        "fid": {"value": 10.0, "interval": [9.0, 11.0]},
        "purity": {"value": 0.007, "interval": [0.008, 0.04], "effect": -0.01, "effect_interval": [-0.009, 0.03]},
        "acc": {"value": 0.5, "interval": [0.4, 0.6], "details": {"ceiling": 0.9, "ceiling_interval": [0.6, 0.85]}},
        "rows": [{"value": 1.0, "interval": [2.0, 3.0]}, {"value": None, "interval": [0.0, 1.0]}],
        "noted": {"value": 5.0, "interval": [6.0, 7.0], "interval_note": "a one-sided bound by design"},
        "edge": {"value": 1.0, "interval": [1.0 + 1e-12, 2.0]},  # round-off, not a violation
        "none": {"value": 3.0, "interval": None},
    }
    assert interval_violations(doc) == [
        "purity.value: 0.007 not in [0.008, 0.04]",
        "purity.effect: -0.01 not in [-0.009, 0.03]",
        "acc.details.ceiling: 0.9 not in [0.6, 0.85]",
        "rows[0].value: 1 not in [2, 3]",
    ]


def test_bias_shifted_interval_keeps_width_and_contains_value():
    boot = np.random.default_rng(0).gamma(2.0, 1.0, size=4000) + 5.0  # skewed, all above the estimate
    lo, hi = bias_shifted_interval(boot, 1.0)
    raw_lo, raw_hi = np.quantile(boot, [0.025, 0.975])
    assert lo < 1.0 < hi and hi - lo == pytest.approx(raw_hi - raw_lo)
    assert lo == pytest.approx(raw_lo - (np.median(boot) - 1.0))


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_purity_interval_contains_nmi_under_the_null(seed):
    """Seeds where the raw bootstrap percentiles of NMI lay wholly above the estimate (labels independent)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 200)
    x = rng.standard_normal((200, 8))
    r = cluster_purity(x, y, n_classes=4, n_permutations=200, n_bootstrap=200, seed=seed)
    assert r.interval[0] <= r.value <= r.interval[1]
    assert r.effect_interval[0] <= r.effect <= r.effect_interval[1]
    assert interval_violations(r.to_dict()) == []


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("intervals")
    paths.set_roots(root, root / "runs")
    _world("iv", 1.0)
    paths.set_roots(None, None)
    return root


def test_every_interval_the_pipeline_writes_contains_its_estimate(world, monkeypatch, one_thread):
    """The planted pipeline (oracle and ignoring generators, and the relationship probe), read back from disk."""
    paths.set_roots(world, world / "runs")
    try:
        ds = PreparedDataset.open("iv")
        found = {}
        for oracle in (True, False):
            _evaluate(ds, monkeypatch, oracle=oracle, n=200)
            doc = json.loads((paths.run("cal").eval("planted") / "metrics.json").read_text())
            found[f"oracle={oracle}"] = interval_violations(doc)
            assert "interval" in doc["metrics"]["purity"] and "interval" in doc["metrics"]["fid"]
        cfg = load_config("cpu", ["eval.n_permutations=200", "eval.n_bootstrap=20", "eval.covernet_epochs=6"]).eval
        found["relationship"] = interval_violations(ev.evaluate_relationship(ds, paths.run("cal"), cfg,
                                                                             device_kind="cpu"))
        assert found == {"oracle=True": [], "oracle=False": [], "relationship": []}
    finally:
        paths.set_roots(None, None)


def test_sensitivity_of_a_generator_that_ignores_c_with_few_z_rows():
    """Resampling 2 z rows often draws one row twice; with c ignored that replicate has no variance (was 0/0)."""
    from metrics.conditioning.sensitivity import condition_sensitivity

    grid = np.repeat(np.random.default_rng(0).standard_normal((2, 1, 5)), 3, axis=1)  # (n_z=2, n_c=3, d=5)
    r = condition_sensitivity(grid, n_permutations=100, n_bootstrap=50, seed=0)
    assert r.value == pytest.approx(0.0) and r.interval[0] <= r.value <= r.interval[1]
