"""Synthetic world -> export in the real dump's layout -> import: every track comes back, with its data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.config.schema import ImportConfig, SplitConfig, SynthConfig
from core.data.importer.run import import_dataset
from core.data.prepared import ATTRIBUTES, PreparedDataset
from core.paths import DatasetPaths

export = pytest.importorskip("core.data.synth.export", reason="synthetic-world exporter not available yet")
world = pytest.importorskip("core.data.synth.world")


def _best_lag_corr(x: np.ndarray, y: np.ndarray, max_lag: int = 3000) -> float:
    n = min(len(x), len(y)) - max_lag
    ref = y[:n]
    best = -1.0
    for lag in range(0, max_lag, 3):
        seg = x[lag : lag + n]
        best = max(best, float(np.dot(seg, ref) / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-12)))
    return best


def test_export_then_import_round_trips_every_track(tmp_path):
    cfg = SynthConfig(tracks=24, genres=3, seconds=2.0, res=[32], export_res=64, seed=3)
    made = world.synthesize_world(DatasetPaths(tmp_path / "data" / "w"), cfg, SplitConfig(), workers=2)
    synth = PreparedDataset(made)
    where = export.export_world(synth, tmp_path / "dump", res=64, workers=2, force=False)
    icfg = ImportConfig(res=[32], seconds=2.0, sample_rate=cfg.sample_rate, min_cover_px=32)
    result = import_dataset(Path(where), DatasetPaths(tmp_path / "data" / "imp"), icfg, SplitConfig(), workers=2)
    assert result.kept == len(synth), result.rejected.head(10).to_string()
    assert len(result.rejected) == 0, result.rejected.head(10).to_string()
    imp = PreparedDataset(result.paths)

    a = synth.tracks.set_index("track_id")
    b = imp.tracks.set_index("track_id")
    assert set(a.index) == set(b.index)
    b = b.loc[a.index]
    for col in ("album_id", "artist_id", "genre"):
        assert (a[col].astype(str) == b[col].astype(str)).all(), col
    for col in ATTRIBUTES:
        np.testing.assert_allclose(b[col].to_numpy(float), a[col].to_numpy(float), rtol=1e-3, atol=1e-3, err_msg=col)

    sc, ic = synth.covers(32).astype(np.float64), imp.covers(32).astype(np.float64)
    for tid in a.index:
        i, j = int(a.loc[tid, "row"]), int(b.loc[tid, "row"])
        own = np.abs(ic[j] - sc[i]).mean()
        others = np.median([np.abs(ic[j] - sc[k]).mean() for k in range(len(sc)) if k != i])
        assert own < others, (tid, own, others)
        corr = _best_lag_corr(imp.waveform(j), synth.waveform(i))
        assert corr > 0.8, (tid, corr)
