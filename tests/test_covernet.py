"""covernet learns the genres of real covers, is deterministic, and its cache loads with weights_only."""

from __future__ import annotations

import numpy as np

from core.data.prepared import PreparedDataset
from metrics.features.covernet import CoverNetConfig, covernet_features, get_covernet, train_covernet
from tests.conftest import make_tiny_dataset

CFG = CoverNetConfig(res=32, width=8, epochs=4, batch_size=32, patience=2, seed=0)


def _dataset() -> PreparedDataset:
    make_tiny_dataset("cn", n=160, genres=("a", "b", "c", "d"), res=(32,))
    return PreparedDataset.open("cn")


def test_learns_genre_and_is_deterministic():
    ds = _dataset()
    m1, info = train_covernet(ds, CFG)
    test = ds.split_rows("test")
    pred = m1(__import__("torch").from_numpy(np.array(ds.covers(32)[test]))).argmax(1).numpy()
    acc = (pred == ds.genre_idx[test]).mean()
    assert acc >= 0.75, acc  # chance is 0.25
    assert info["n_train"] > 0 and len(info["history"]) >= 1
    m2, _ = train_covernet(ds, CFG)
    f1 = covernet_features(m1, ds.covers(32)[:20])
    f2 = covernet_features(m2, ds.covers(32)[:20])
    assert f1.shape == (20, 128) and np.isfinite(f1).all()
    np.testing.assert_array_equal(f1, f2)


def test_cache_round_trip(monkeypatch):
    ds = _dataset()
    m1, _ = get_covernet(ds, CFG)
    cached = list(ds.paths.cache_dir.glob("covernet-*.pt"))
    assert len(cached) == 1
    import metrics.features.covernet as cn

    monkeypatch.setattr(cn, "train_covernet", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    m2, _ = get_covernet(ds, CFG)
    imgs = ds.covers(32)[:10]
    np.testing.assert_allclose(covernet_features(m1, imgs), covernet_features(m2, imgs), rtol=1e-6, atol=1e-6)
