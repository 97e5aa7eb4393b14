"""Distribution metrics against peers (clean-fid, torchmetrics, prdc) on identical arrays, and analytic values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from core.errors import UserError
from metrics.distribution import (
    GaussianStats,
    bootstrap_replicates,
    covariance_factor,
    feature_stats,
    fid,
    frechet_distance,
    intra_fid,
    kid,
    prdc,
    sqrtm_psd,
)


def _features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Correlated, non-negative, real-looking features (pool features are post-ReLU averages)."""
    mix = np.random.default_rng(1000 + d).standard_normal((d, d)) / np.sqrt(d)  # same law for every seed
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, d)) @ mix * scale + shift
    return np.abs(z) + 0.1 * rng.random((n, d))


def test_analytic_fid_exact_statistics():
    d = 8
    val = frechet_distance(np.zeros(d), np.eye(d), np.full(d, 0.5), 4 * np.eye(d))
    assert val == pytest.approx(10.0, rel=1e-12)


def test_analytic_fid_from_samples():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((200_000, 8))
    b = rng.standard_normal((200_000, 8)) * 2.0 + 0.5
    assert fid(a, b).value == pytest.approx(10.0, abs=0.1)


def test_fid_matches_cleanfid():
    from cleanfid.fid import frechet_distance as cf_fd

    x, y = _features(600, 64, 0), _features(500, 64, 1, shift=0.2, scale=1.3)
    s1, s2 = feature_stats(x), feature_stats(y)
    ours = frechet_distance(s1.mu, s1.sigma, s2.mu, s2.sigma)
    ref = cf_fd(np.mean(x, 0), np.cov(x, rowvar=False), np.mean(y, 0), np.cov(y, rowvar=False))
    assert ours == pytest.approx(ref, rel=1e-6)
    assert ours > 1.0  # a real difference, not a degenerate zero


def test_fid_matches_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance, _compute_fid

    x, y = _features(400, 32, 2), _features(300, 32, 3, shift=0.3)
    s1, s2 = feature_stats(x), feature_stats(y)
    ref_fn = _compute_fid(*(torch.from_numpy(a) for a in (s1.mu, s1.sigma, s2.mu, s2.sigma))).item()
    ours = fid(x, y).value
    assert ours == pytest.approx(ref_fn, rel=1e-6)

    class Identity(torch.nn.Module):
        num_features = 32

        def forward(self, t):
            return t

    metric = FrechetInceptionDistance(feature=Identity(), normalize=False)
    metric.set_dtype(torch.float64)
    metric.update(torch.from_numpy(x), real=True)
    metric.update(torch.from_numpy(y), real=False)
    assert ours == pytest.approx(metric.compute().item(), rel=1e-6)


def test_cached_sqrt_gives_same_value_and_is_a_square_root():
    x, y = _features(300, 24, 4), _features(300, 24, 5, shift=0.1)
    ref = feature_stats(x)
    a = sqrtm_psd(ref.sigma)
    np.testing.assert_allclose(a @ a, ref.sigma, atol=1e-10)
    np.testing.assert_allclose(a, a.T)
    cached = GaussianStats(ref.mu, ref.sigma, ref.n, sqrt_sigma=a)
    assert fid(cached, y).value == pytest.approx(fid(x, y).value, rel=1e-12)


def test_cholesky_and_square_root_factors_agree_also_for_singular_covariances():
    """The uncached path factors S1 by Cholesky; a singular S1 (fewer samples than dims) falls back to eigh."""
    for n_real in (300, 12):  # full rank, then rank 11 in 24 dims
        s1 = feature_stats(_features(n_real, 24, 4), allow_singular=True)
        s2 = feature_stats(_features(300, 24, 5, shift=0.1))
        chol = frechet_distance(s1.mu, s1.sigma, s2.mu, s2.sigma)
        via_sqrt = frechet_distance(s1.mu, s1.sigma, s2.mu, s2.sigma, sqrt_sigma1=sqrtm_psd(s1.sigma))
        assert chol == pytest.approx(via_sqrt, rel=1e-10)
    f = covariance_factor(s2.sigma)
    np.testing.assert_allclose(f @ f.T, s2.sigma, atol=1e-12)
    assert np.allclose(f, np.tril(f))  # Cholesky for a full-rank covariance
    # given its rows, a reference with fewer rows than dims gets the thin factor: d x n, the same distance
    rows = _features(12, 24, 4)
    s1 = feature_stats(rows, allow_singular=True)
    thin = covariance_factor(s1.sigma, rows - s1.mu)
    assert thin.shape == (24, 12)
    np.testing.assert_allclose(thin @ thin.T, s1.sigma, atol=1e-12)
    via_thin = frechet_distance(s1.mu, s1.sigma, s2.mu, s2.sigma, sqrt_sigma1=thin)
    # the eigh route's 12 zero eigenvalues carry sqrt(eps) each: 1e-8 off a 40-digit reference, the thin one 2e-9
    assert via_thin == pytest.approx(frechet_distance(s1.mu, s1.sigma, s2.mu, s2.sigma), rel=1e-7)


def test_fid_zero_for_identical_sets_and_grows_with_shift():
    x = _features(400, 16, 6)
    assert abs(fid(x, x).value) < 1e-8
    vals = [fid(x, x + s).value for s in (0.1, 0.3, 0.9)]
    assert vals == sorted(vals)
    assert vals[0] == pytest.approx(16 * 0.01, rel=1e-6)  # pure mean shift: |delta|^2


def test_fid_bootstrap_interval():
    x, y = _features(800, 8, 7), _features(800, 8, 8, shift=0.2)
    r = fid(x, y, n_boot=40, seed=3)
    lo, hi = r.interval
    assert lo < r.value < hi
    assert r.n_real == 800 and r.n_gen == 800 and r.n_boot == 40 and r.boot_se > 0
    assert fid(x, y, n_boot=40, seed=3).interval == r.interval  # same seed, same numbers
    # the fast replicate equals the FID of the resampled rows computed the slow way
    reps = bootstrap_replicates(feature_stats(x), y, 2, seed=3)
    rng = np.random.default_rng(3)
    for rep in reps:
        idx = rng.integers(0, 800, size=800)
        assert rep == pytest.approx(fid(x, y[idx]).value, rel=1e-9)
    # the interval width tracks the real sampling spread of FID (re-drawing the generated set)
    spread = np.std([fid(x, _features(800, 8, 100 + i, shift=0.2)).value for i in range(30)])
    assert 0.5 < (hi - lo) / (2 * 1.96 * spread) < 2.0


def test_fid_bootstrap_in_a_reduced_basis_exact_when_full_and_tracks_the_spread_when_not():
    """Wider features than ``boot_components``: replicates in the pooled leading components. Rank-10 features in 48
    dims lose nothing to 12 components (same interval as the full path); full-rank ones keep the spread."""
    mix = np.random.default_rng(30).standard_normal((10, 48))
    x, y = _features(500, 10, 31) @ mix, _features(400, 10, 32, shift=0.2) @ mix
    full, red = fid(x, y, n_boot=30, seed=4, boot_components=None), fid(x, y, n_boot=30, seed=4, boot_components=12)
    assert red.value == full.value and red.boot_basis["exact"] and red.boot_basis["components"] == 12
    assert red.interval == pytest.approx(full.interval, rel=1e-7) and full.boot_basis is None
    x, y = _features(800, 48, 33), _features(800, 48, 34, shift=0.2)
    r = fid(x, y, n_boot=60, seed=5, boot_components=12)
    assert not r.boot_basis["exact"] and 0.3 < r.boot_basis["variance_share"] < 1.0
    lo, hi = r.interval
    assert lo < r.value < hi
    spread = np.std([fid(x, _features(800, 48, 200 + i, shift=0.2)).value for i in range(30)])
    assert 0.5 < (hi - lo) / (2 * 1.96 * spread) < 2.0


def test_fid_refuses_nan_and_too_few_samples():
    x = _features(100, 8, 9)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(UserError, match="NaN"):
        fid(x, bad)
    with pytest.raises(UserError, match="NaN"):
        fid(bad, x)
    with pytest.raises(UserError, match="full-rank"):
        fid(_features(40, 64, 1), _features(200, 64, 2))
    with pytest.warns(UserWarning, match="fewer than 2x dim"):
        fid(_features(100, 64, 1), _features(200, 64, 2))
    with pytest.raises(UserError, match="-d"):
        fid(x, _features(100, 9, 1))


def test_kid_matches_cleanfid_for_same_subsets():
    from cleanfid.fid import kernel_distance

    x, y = _features(120, 16, 10), _features(90, 16, 11, shift=0.2)
    num, m = 7, 50
    np.random.seed(123)
    ref = kernel_distance(x, y, num_subsets=num, max_subset_size=m)
    np.random.seed(123)
    subsets = []
    for _ in range(num):
        gi = np.random.choice(y.shape[0], m, replace=False)  # clean-fid draws feats2 first
        ri = np.random.choice(x.shape[0], m, replace=False)
        subsets.append((gi, ri))
    ours = kid(x, y, subsets=subsets)
    assert ours.value == pytest.approx(ref, rel=1e-9)
    assert ours.value > 0
    assert ours.num_subsets == num and ours.subset_size == m


def test_kid_seeded_and_unbiased_near_zero_for_same_distribution():
    a, b = _features(400, 16, 12), _features(400, 16, 13)
    opts = dict(num_subsets=20, max_subset_size=200, seed=5)
    r1, r2 = kid(a, b, **opts), kid(a, b, **opts)
    assert r1.value == r2.value
    far = kid(a, _features(400, 16, 14, shift=0.5), **opts)
    assert abs(r1.value) < 3 * r1.std
    assert far.value > 10 * max(r1.std, abs(r1.value))
    assert far.interval[0] <= far.value <= far.interval[1]


def test_prdc_matches_prdc_package():
    import prdc as prdc_pkg

    real, gen = _features(300, 12, 15), _features(250, 12, 16, shift=0.15, scale=1.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref3 = prdc_pkg.compute_prdc(real, gen, nearest_k=3)
        ref5 = prdc_pkg.compute_prdc(real, gen, nearest_k=5)
    ours = prdc(real, gen, k_pr=3, k_dc=5, chunk=64)  # chunk smaller than n exercises the chunked path
    assert ours.precision == pytest.approx(ref3["precision"], abs=1e-12)
    assert ours.recall == pytest.approx(ref3["recall"], abs=1e-12)
    assert ours.density == pytest.approx(ref5["density"], abs=1e-12)
    assert ours.coverage == pytest.approx(ref5["coverage"], abs=1e-12)
    assert 0 < ours.precision < 1 and 0 < ours.recall < 1  # not a trivial corner


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_knn_radii_blocks_match_a_brute_force_sort(chunk):
    """The blocked, symmetric pass gives every k's radius of a full distance matrix, whatever the block size."""
    from metrics.distribution.prdc import knn_radii

    x = _features(157, 9, 19)
    full = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    srt = np.sort(full, axis=1)  # column 0 is the row itself
    got = knn_radii(torch.as_tensor(x, dtype=torch.float64), [1, 3, 5], chunk)
    for k in (1, 3, 5):
        np.testing.assert_allclose(got[k].numpy(), srt[:, k], rtol=1e-9, atol=1e-9)
    single = knn_radii(torch.as_tensor(x, dtype=torch.float64), 3, chunk)
    np.testing.assert_allclose(single.numpy(), srt[:, 3], rtol=1e-9, atol=1e-9)


def test_prdc_planted_mode_drop():
    rng = np.random.default_rng(17)
    centers = rng.standard_normal((4, 6)) * 10
    real = np.concatenate([c + rng.standard_normal((100, 6)) for c in centers])
    gen = np.concatenate([c + rng.standard_normal((100, 6)) for c in centers[:2]])  # two modes missing
    full = np.concatenate([c + rng.standard_normal((50, 6)) for c in centers])
    r, ok = prdc(real, gen), prdc(real, full)
    assert r.precision > 0.8 and ok.precision > 0.8  # what is generated is realistic in both cases
    assert r.recall < 0.6 and r.coverage < 0.6  # but half the real modes are missed
    assert ok.recall > 0.8 and ok.coverage > 0.8


def test_intra_fid_per_class_and_skipped():
    d = 4
    rng = np.random.default_rng(18)
    real = rng.standard_normal((300, d))
    rl = np.repeat(["a", "b", "c"], [120, 120, 60])
    real[rl == "b"] += 2.0
    gen = rng.standard_normal((243, d))
    gl = np.repeat(["a", "b", "c"], [120, 120, 3])
    gen[gl == "b"] += 3.0  # class b is generated off by one unit per dimension
    r = intra_fid(real, rl, gen, gl)
    assert set(r.per_class) == {"a", "b"} and "c" in r.skipped and "3 generated" in r.skipped["c"]
    assert r.per_class["a"].value == pytest.approx(fid(real[rl == "a"], gen[gl == "a"]).value, rel=1e-12)
    assert r.per_class["b"].value > r.per_class["a"].value + 2.0
    assert r.value == pytest.approx((r.per_class["a"].value + r.per_class["b"].value) / 2)
    assert r.per_class["a"].n_real == 120 and r.per_class["b"].n_gen == 120
    # swapping class labels of the generated set (a conditioning failure) raises intra-FID, not FID
    swapped = np.where(gl == "a", "b", np.where(gl == "b", "a", gl))
    assert intra_fid(real, rl, gen, swapped).value > r.value


def test_result_dicts():
    x, y = _features(100, 4, 19), _features(100, 4, 20)
    for res in (fid(x, y, n_boot=3), kid(x, y, num_subsets=3, max_subset_size=50), prdc(x, y)):
        d = res.to_dict()
        assert d["n_real"] == 100 and d["n_gen"] == 100


# ------------------------------------------------------------------------------------------ real-feature cache


def test_feature_cache_roundtrip_and_keys(tmp_path):
    from metrics.features.cache import cache_key, cached_features, manifest_hash

    feats = _features(200, 6, 21)
    calls = []

    def compute():
        calls.append(1)
        return feats

    parts = {"dataset": "d", "manifest": "m1", "split": "test", "extractor": "x", "preprocessing": "p"}
    first = cached_features(parts, compute, tmp_path)
    second = cached_features(dict(reversed(list(parts.items()))), compute, tmp_path)  # key order is irrelevant
    assert len(calls) == 1 and not first.hit and second.hit
    np.testing.assert_array_equal(second.features, feats)
    direct = feature_stats(feats)
    np.testing.assert_allclose(second.stats.sigma, direct.sigma)
    np.testing.assert_allclose(second.stats.sqrt_sigma @ second.stats.sqrt_sigma, direct.sigma, atol=1e-10)
    gen = _features(200, 6, 22, shift=0.2)
    assert fid(second.stats, gen).value == pytest.approx(fid(feats, gen).value, rel=1e-10)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]

    cached_features({**parts, "split": "val"}, compute, tmp_path)  # another split is another entry
    cached_features({**parts, "manifest": "m2"}, compute, tmp_path)
    assert len(calls) == 3
    assert cache_key(parts) != cache_key({**parts, "preprocessing": "q"})
    m = {"files": {"a": {"sha256": "1"}}, "created": "today"}
    assert manifest_hash(m) == manifest_hash({**m, "created": "tomorrow"})
    assert manifest_hash(m) != manifest_hash({**m, "files": {"a": {"sha256": "2"}}})


def test_feature_cache_recovers_from_damage_and_refuses_nan(tmp_path):
    from metrics.features.cache import cached_features

    parts = {"dataset": "d", "split": "test"}
    feats = _features(50, 4, 23)
    entry = cached_features(parts, lambda: feats, tmp_path)
    entry.path.with_name(entry.path.name.replace(".key.json", ".stats.npz")).write_bytes(b"garbage")
    again = cached_features(parts, lambda: feats + 1.0, tmp_path)
    assert not again.hit and again.stats.mu == pytest.approx(feats.mean(0) + 1.0)
    bad = feats.copy()
    bad[0, 0] = np.inf
    with pytest.raises(UserError, match="NaN or inf"):
        cached_features({"other": 1}, lambda: bad, tmp_path)
    assert len(list(tmp_path.glob("*.key.json"))) == 1


@pytest.mark.parametrize("n_gen,n_real,m,num", [(90, 60, 40, 9), (300, 40, 30, 3), (70, 70, 70, 4)])
def test_kid_shared_kernel_sums_equal_per_subset_kernels(n_gen, n_real, m, num):
    """Both ways to the subset sums (kernel entries once, or three kernels per subset) give the same MMDs,
    also with a subset that repeats rows."""
    from metrics.distribution.kid import _mmd2_shared, draw_subsets, mmd2_unbiased

    x, y = _features(n_real, 16, 20), _features(n_gen, 16, 21, shift=0.1)
    pairs = draw_subsets(n_real, n_gen, num, m, seed=4)
    pairs[0] = (np.concatenate([pairs[0][0][:-2], pairs[0][0][:2]]), pairs[0][1])  # two gen rows twice
    shared = _mmd2_shared(y, x, pairs, block=32)  # blocks smaller than n exercise the streaming
    direct = np.array([mmd2_unbiased(y[gi], x[ri]) for gi, ri in pairs])
    np.testing.assert_allclose(shared, direct, rtol=1e-9, atol=1e-12)
    assert np.ptp(direct) > 0
