"""FJD and CFID: closed forms on exact moments, large-sample agreement, the FID reduction, the fast permutation
path against full recomputation, and a planted world where only the pairing differs (fast, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from core.errors import UserError
from metrics.conditioning import (
    cfid_from_stats,
    conditional_frechet_distance,
    frechet_joint_distance,
    joint_conditioning_tests,
)
from metrics.conditioning.frechet import MARGIN_SHARE, _conditional, _JointNull, _moments, _TraceSqrtUpdate
from metrics.distribution.fid import GaussianStats, fid, frechet_distance

# small-n covariance warnings from check_covariance_size are expected here
pytestmark = pytest.mark.filterwarnings("ignore:.*samples.*covariance:UserWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with threadpool_limits(1):
        yield


def linear_moments(b, offset, noise_var, mx, sxx) -> GaussianStats:
    """Exact joint moments of [y, x] for x ~ N(mx, sxx), y = b x + offset + N(0, diag(noise_var))."""
    mu = np.concatenate([b @ mx + offset, mx])
    syy = b @ sxx @ b.T + np.diag(noise_var)
    syx = b @ sxx
    sigma = np.block([[syy, syx], [syx.T, sxx]])
    return GaussianStats(mu=mu, sigma=sigma, n=10**9)


def sample_linear(rng, n, b, offset, noise_var, mx, sxx):
    x = rng.multivariate_normal(mx, sxx, size=n)
    y = x @ b.T + offset + rng.standard_normal((n, b.shape[0])) * np.sqrt(noise_var)
    return y, x


def random_spd(rng, k, scale=1.0):
    a = rng.standard_normal((k, k))
    return scale * (a @ a.T / k + 0.5 * np.eye(k))


def test_cfid_closed_form_on_exact_moments_linear_models():
    """y = B x + b + e with different B, b, noise, and different condition distributions in the two sets."""
    rng = np.random.default_rng(0)
    d, dc = 5, 3
    b1, b2 = rng.standard_normal((d, dc)), rng.standard_normal((d, dc))
    o1, o2 = rng.standard_normal(d), rng.standard_normal(d)
    e1, e2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    mx_r, mx_g = rng.standard_normal(dc), rng.standard_normal(dc)
    sxx_r, sxx_g = random_spd(rng, dc), random_spd(rng, dc, 3.0)
    parts = cfid_from_stats(linear_moments(b1, o1, e1, mx_r, sxx_r), linear_moments(b2, o2, e2, mx_g, sxx_g), d)
    # E_{x ~ real} ||(B1 x + o1) - (B2 x + o2)||^2 and W2^2 between the diagonal noise Gaussians
    db = b1 - b2
    mean = db @ mx_r + o1 - o2
    assert parts["mean_term"] == pytest.approx(mean @ mean, rel=1e-10)
    assert parts["regression_term"] == pytest.approx(np.trace(db @ sxx_r @ db.T), rel=1e-10)
    assert parts["covariance_term"] == pytest.approx(np.sum((np.sqrt(e1) - np.sqrt(e2)) ** 2), rel=1e-8)
    total = mean @ mean + np.trace(db @ sxx_r @ db.T) + np.sum((np.sqrt(e1) - np.sqrt(e2)) ** 2)
    assert parts["value"] == pytest.approx(total, rel=1e-9)
    # the expectation is under the REAL conditions: the generated condition distribution does not enter
    same = cfid_from_stats(linear_moments(b1, o1, e1, mx_r, sxx_r), linear_moments(b2, o2, e2, mx_r, sxx_r), d)
    assert same["value"] == pytest.approx(parts["value"], rel=1e-9)


def test_cfid_and_fjd_from_large_samples_match_exact_values():
    rng = np.random.default_rng(1)
    d, dc, n = 4, 2, 40000
    b1, b2 = rng.standard_normal((d, dc)), rng.standard_normal((d, dc))
    e1, e2 = np.full(d, 1.0), np.full(d, 2.0)
    mx, sxx = np.zeros(dc), np.eye(dc)
    ry, rx = sample_linear(rng, n, b1, 0.0, e1, mx, sxx)
    gy, gx = sample_linear(rng, n, b2, 0.5, e2, mx, sxx)
    db = b1 - b2
    exact = 0.25 * d + np.trace(db @ db.T) + d * (1 - np.sqrt(2)) ** 2
    got = conditional_frechet_distance(ry, rx, gy, gx)
    assert got.value == pytest.approx(exact, rel=0.03)
    assert got.details["regression_term"] == pytest.approx(np.trace(db @ db.T), rel=0.03)
    # FJD with a given scale a: FD between the exact moments of [y, a x]
    a = 1.7
    scale = np.concatenate([np.ones(d), np.full(dc, a)])
    m1, m2 = linear_moments(b1, 0.0, e1, mx, sxx), linear_moments(b2, 0.5, e2, mx, sxx)
    fd_exact = frechet_distance(m1.mu * scale, m1.sigma * np.outer(scale, scale), m2.mu * scale,
                                m2.sigma * np.outer(scale, scale))
    fjd = frechet_joint_distance(ry, rx, gy, gx, cond_scale=a)
    assert fjd.value == pytest.approx(fd_exact, rel=0.03)
    assert fjd.details["cond_scale"] == a


def test_fjd_of_independent_parts_adds_and_default_scale_uses_real_norms():
    """y independent of x in both sets: FJD = FD(y) + a^2 FD(x) (diagonal Gaussians in closed form)."""
    rng = np.random.default_rng(2)
    d, dc, n = 6, 3, 40000
    sy, sx = rng.uniform(0.5, 1.5, d), rng.uniform(0.5, 1.5, dc)
    my, mx = rng.normal(size=d) * 0.3, rng.normal(size=dc) * 0.3
    ry, rx = rng.standard_normal((n, d)) + 5.0, rng.standard_normal((n, dc))
    gy, gx = rng.standard_normal((n, d)) * sy + 5.0 + my, rng.standard_normal((n, dc)) * sx + mx
    fd_y = my @ my + np.sum((1 - sy) ** 2)
    fd_x = mx @ mx + np.sum((1 - sx) ** 2)
    r = frechet_joint_distance(ry, rx, gy, gx)
    a = np.linalg.norm(ry, axis=1).mean() / np.linalg.norm(rx, axis=1).mean()  # real set, raw rows
    assert r.details["cond_scale"] == pytest.approx(a, rel=1e-12)
    assert a > 5  # not the centred norms (~sqrt(d / dc)): the offset of y counts, as in DeVries' code
    assert r.value == pytest.approx(fd_y + a * a * fd_x, rel=0.05)


def test_cfid_reduces_to_fid_when_images_and_conditions_are_uncorrelated():
    """Exactly zero sample cross-covariance in both sets: A = 0, S_y|x = S_yy, so CFID is plain FID."""
    rng = np.random.default_rng(3)
    d, dc = 8, 3

    def uncorrelated(n, shift):
        y = rng.standard_normal((n, d)) * rng.uniform(0.5, 2, d) + shift
        x = rng.standard_normal((n, dc)) + shift
        yc, xc = y - y.mean(0), x - x.mean(0)
        x = x - yc @ np.linalg.lstsq(yc, xc, rcond=None)[0]  # project out: yc^T (x - mean) = 0
        assert np.abs(yc.T @ (x - x.mean(0))).max() < 1e-9
        return y, x

    ry, rx = uncorrelated(400, 0.0)
    gy, gx = uncorrelated(300, 0.7)
    got = conditional_frechet_distance(ry, rx, gy, gx)
    assert got.value == pytest.approx(fid(ry, gy).value, rel=1e-9)
    assert got.details["regression_term"] < 1e-12


@pytest.mark.parametrize("kind,singular", [("neg", False), ("neg", True), ("swap", True)])
def test_lowrank_trace_sqrt_matches_a_dense_eigensolve(kind, singular):
    rng = np.random.default_rng(4)
    dim, r = 120, 6
    n = dim // 2 if singular else 3 * dim
    spec = np.logspace(0, -3, dim + r)
    if kind == "neg":  # M = Y^T (I - P) Y = Y^T Y - (Y^T Q)(Y^T Q)^T, Q orthonormal
        y = rng.standard_normal((n, dim)) * spec[:dim]
        q = np.linalg.qr(rng.standard_normal((n, r)))[0]
        lam, v = np.linalg.eigh(y.T @ y)
        w, j = v.T @ (y.T @ q), -np.eye(r)
    else:  # a joint covariance with its off-diagonal block as the update
        h = r // 2
        z = rng.standard_normal((n, dim + h)) @ (rng.standard_normal((dim + h, dim + h)) * spec[: dim + h])
        s = z.T @ z / n
        s0 = s.copy()
        s0[:dim, dim:], s0[dim:, :dim] = 0, 0
        lam, v = np.linalg.eigh(s0)
        u = np.zeros((dim + h, r))
        u[:dim, :h], u[dim:, h:] = s[:dim, dim:], np.eye(h)
        w, j = v.T @ u, np.block([[np.zeros((h, h)), np.eye(h)], [np.eye(h), np.zeros((h, h))]])
    dense = _TraceSqrtUpdate(lam, j, dense=True)(w)
    m = np.diag(lam) + w @ j @ w.T
    assert dense == pytest.approx(np.sqrt(np.clip(np.linalg.eigvalsh(m), 0, None)).sum(), rel=1e-8)
    assert _TraceSqrtUpdate(lam, j, dense=False)(w) == pytest.approx(dense, rel=1e-7)


@pytest.mark.parametrize("one_hot", [False, True])
def test_permutation_path_equals_recomputing_with_permuted_conditions(one_hot):
    """The null's cheap update must give the same FJD and CFID as refitting everything on gen_c[perm]."""
    rng = np.random.default_rng(5)
    d, dc, nr, ng = 30, 5, 300, 30  # ng < d + dc: singular generated covariances too
    b = rng.standard_normal((d, dc))

    def pairs(n):
        c = np.eye(dc)[rng.integers(0, dc, n)] if one_hot else rng.standard_normal((n, dc))
        return c @ b.T + rng.standard_normal((n, d)), c

    ry, rc = pairs(nr)
    gy, gc = pairs(ng)
    if one_hot:
        gc[:dc] = np.eye(dc)  # every class present
    alpha = np.linalg.norm(ry, axis=1).mean() / np.linalg.norm(rc, axis=1).mean()
    ref = _moments(np.hstack([ry, alpha * rc]))
    real = _conditional(_moments(np.hstack([ry, rc])), d, 1e-8)
    if one_hot:
        assert real.rank == dc - 1  # centred one-hot columns sum to zero: the pseudo-inverse drops that direction
    perm = rng.permutation(ng)
    want = (
        frechet_joint_distance(ry, rc, gy, gc[perm], allow_singular=True).value,
        conditional_frechet_distance(ry, rc, gy, gc[perm], allow_singular=True).value,
    )
    for dense in (True, False):
        got = _JointNull(ref, alpha, real, gy, gc, 1e-8, dense=dense)(perm)
        assert got == pytest.approx(want, rel=1e-6, abs=1e-6)


class PlantedWorld:
    """Real pairs y = B c + noise. The follower draws y from its own condition the same way; the ignorer
    draws y from an independent condition (same marginal of y, so FID cannot tell them apart)."""

    def __init__(self, seed: int, d: int = 16, dc: int = 4):
        self.rng = np.random.default_rng(seed)
        self.b = self.rng.standard_normal((d, dc)) * 0.8
        self.d, self.dc = d, dc

    def pairs(self, n: int, follow: bool = True):
        c = self.rng.standard_normal((n, self.dc))
        src = c if follow else self.rng.standard_normal((n, self.dc))
        return src @ self.b.T + self.rng.standard_normal((n, self.d)), c


def test_planted_follower_beats_ignorer_and_fid_cannot_tell():
    w = PlantedWorld(seed=6)
    ry, rc = w.pairs(600)
    fy, fc = w.pairs(600)
    iy, ic = w.pairs(600, follow=False)
    f_fid, i_fid = fid(ry, fy, n_boot=50, seed=1), fid(ry, iy, n_boot=50, seed=1)
    fol = joint_conditioning_tests(ry, rc, fy, fc, n_permutations=200, n_boot=30, seed=1)
    ign = joint_conditioning_tests(ry, rc, iy, ic, n_permutations=200, n_boot=30, seed=1)
    for key in ("fjd", "cfid"):
        assert ign[key].value > 5 * fol[key].value
        assert fol[key].p_value < 0.01 and fol[key].effect >= fol[key].margin
        assert fol[key].margin == pytest.approx(MARGIN_SHARE * fol[key].null_mean)
        assert ign[key].p_value > 0.01 and ign[key].effect < ign[key].margin
        for r in (fol[key], ign[key]):
            assert r.interval[0] <= r.value <= r.interval[1]
            assert r.effect_interval[0] <= r.effect <= r.effect_interval[1]
            assert r.effect == pytest.approx(r.null_mean - r.value)
            json.dumps(r.to_dict())
    # plain FID: the two generated sets are equal within FID's own sampling noise, and the gap is tiny
    # next to the CFID gap, so the planted case isolates the conditioning
    gap = abs(f_fid.value - i_fid.value)
    assert gap < 3 * np.hypot(f_fid.boot_se, i_fid.boot_se)
    assert gap < 0.05 * (ign["cfid"].value - fol["cfid"].value)


def test_ignorer_false_positive_rate_is_controlled():
    """The shuffled-condition null is exact for an ignorer: p is (discrete) uniform across seeds."""
    p = {"fjd": [], "cfid": []}
    for seed in range(20):
        w = PlantedWorld(seed=100 + seed, d=6, dc=3)
        ry, rc = w.pairs(200)
        iy, ic = w.pairs(200, follow=False)
        res = joint_conditioning_tests(ry, rc, iy, ic, n_permutations=99, n_boot=0, seed=seed)
        for key in p:
            p[key].append(res[key].p_value)
            assert res[key].effect_interval[0] <= res[key].effect <= res[key].effect_interval[1]
    for key, ps in p.items():
        ps = np.array(ps)
        assert (ps < 0.01).mean() <= 0.1, key
        assert (ps < 0.1).mean() <= 0.3, key
        assert 0.25 < ps.mean() < 0.75, key


def test_bad_inputs_raise_user_errors():
    rng = np.random.default_rng(7)
    y, c = rng.standard_normal((50, 6)), rng.standard_normal((50, 3))
    bad = y.copy()
    bad[3, 2] = np.nan
    with pytest.raises(UserError, match="NaN"):
        frechet_joint_distance(y, c, bad, c)
    with pytest.raises(UserError, match="row by row"):
        conditional_frechet_distance(y, c, y, c[:40])
    with pytest.raises(UserError, match="differ in width"):
        joint_conditioning_tests(y, c, y, c[:, :2])
    with pytest.raises(UserError, match="-d but"):
        frechet_joint_distance(y, c, y[:, :5], c)
    with pytest.raises(UserError, match="cannot fit a regression"):
        conditional_frechet_distance(y, c, y[:4], c[:4])
    with pytest.raises(UserError, match="full-rank"):  # 8 rows, 9-d joint covariance
        frechet_joint_distance(y, c, y[:8], c[:8])
    with pytest.raises(UserError, match="zero"):
        frechet_joint_distance(y, np.zeros_like(c), y, c)
    with pytest.raises(UserError, match="2-D"):
        joint_conditioning_tests(y, c[:, 0], y, c)
