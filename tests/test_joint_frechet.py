"""FJD and CFID: closed forms on exact moments, large-sample agreement, the FID reduction, the permutation paths
against full recomputation, the reduced-basis path against the exact one, the sequential stopping rule, and a
planted world where only the pairing differs (fast, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import kstest
from threadpoolctl import threadpool_limits

from core.errors import UserError
from metrics.conditioning import (
    cfid_from_stats,
    conditional_frechet_distance,
    frechet_joint_distance,
    joint_conditioning_tests,
)
from metrics.conditioning.frechet import MARGIN_SHARE, _conditional, _moments
from metrics.conditioning.joint_exact import _JointNull, _TraceSqrtUpdate
from metrics.conditioning.stats import SequentialRule, sequential_p
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


# ---------------------------------------------------------------- the fast path against the exact one


def _world_pairs(seed: int, d: int, dc: int, n_real: int, n_gen: int, one_hot: bool = False, follow: float = 0.5):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((d, dc)) * 0.5

    def pairs(n, share):
        c = np.eye(dc)[rng.integers(0, dc, n)] if one_hot else rng.standard_normal((n, dc))
        src = np.where(rng.random((n, 1)) < share, c, c[rng.permutation(n)])
        return src @ b.T + rng.standard_normal((n, d)) * np.linspace(1.5, 0.2, d), c

    ry, rc = pairs(n_real, 1.0)
    gy, gc = pairs(n_gen, follow)
    if one_hot:
        rc[:dc], gc[:dc] = np.eye(dc), np.eye(dc)  # every class present in both sets
    return ry, rc, gy, gc


@pytest.mark.parametrize(
    "d,dc,n_real,n_gen,one_hot,components,tol",
    [
        (24, 4, 300, 250, False, 128, 1e-8),  # d <= components: no projection
        # singular covariances (fewer rows than dims): square roots of round-off eigenvalues carry ~sqrt(eps), and
        # the exact path's quadrature is itself ~5e-7 off there (the fast path's dense eigensolve is closer)
        (24, 6, 200, 40, True, 128, 1e-6),  # singular generated covariance, one-hot conditions
        (90, 3, 50, 60, False, 120, 1e-6),  # d > components but few rows: the rows' span, exact
    ],
)
def test_fast_path_equals_the_exact_one_where_the_basis_is_full(d, dc, n_real, n_gen, one_hot, components, tol):
    """Same permutations, same resamples: values, observed statistics, null draws and intervals agree."""
    ry, rc, gy, gc = _world_pairs(8, d, dc, n_real, n_gen, one_hot)
    kw = dict(n_permutations=120, n_boot=15, seed=3, allow_singular=True)
    exact = joint_conditioning_tests(ry, rc, gy, gc, exact=True, **kw)
    fast = joint_conditioning_tests(ry, rc, gy, gc, max_components=components, device="cpu", **kw)
    for key in ("fjd", "cfid"):
        e, f = exact[key], fast[key]
        assert f.details["null_basis"]["exact"] and f.details["null_basis"]["variance_share"] == 1.0
        # the reported value: the same full-space distance (with a singular real set the fast path's CFID takes
        # the thin factor of the regression residuals, exact; the exact path the eigh square root, whose ~40 zero
        # eigenvalues each carry sqrt(eps) of round-off: 1.1e-8 apart here)
        assert f.value == pytest.approx(e.value, rel=min(tol, 1e-7))
        for part in ("mean_term", "regression_term", "covariance_term"):
            if key == "cfid":
                assert f.details[part] == pytest.approx(e.details[part], rel=min(tol, 1e-7), abs=1e-9)
        assert f.details["observed_on_null_path"] == pytest.approx(f.value, rel=min(tol, 1e-7))
        assert f.details["observed_on_null_path"] == pytest.approx(e.details["observed_on_null_path"], rel=tol)
        assert f.null_mean == pytest.approx(e.null_mean, rel=tol)
        assert f.details["null_interval"] == pytest.approx(e.details["null_interval"], rel=tol)
        assert f.interval == pytest.approx(e.interval, rel=max(tol, 1e-7))  # resampled rows: singular replicates
        assert f.details["boot_se"] == pytest.approx(e.details["boot_se"], rel=1e-5)
        assert f.p_value == e.p_value and f.n_permutations == e.n_permutations == 120


def test_truncated_basis_reports_itself_keeps_power_and_stays_valid():
    """d = 60 on 12 components: the follower is still detected; the ignorer's p-values stay uniform-ish."""
    ry, rc, gy, gc = _world_pairs(9, 60, 3, 400, 400, follow=1.0)
    fol = joint_conditioning_tests(ry, rc, gy, gc, n_permutations=200, n_boot=10, max_components=12)
    for r in fol.values():
        basis = r.details["null_basis"]
        assert basis["components"] == 12 and basis["dim"] == 60 and not basis["exact"]
        assert 0.3 < basis["variance_share"] < 1.0
        assert r.p_value < 0.01 and r.effect > r.margin
        assert r.interval[0] <= r.value <= r.interval[1]
    ps = {"fjd": [], "cfid": []}
    for seed in range(24):
        ry, rc, gy, gc = _world_pairs(100 + seed, 30, 3, 150, 150, follow=0.0)
        res = joint_conditioning_tests(ry, rc, gy, gc, n_permutations=99, n_boot=0, seed=seed, max_components=6)
        for key in ps:
            ps[key].append(res[key].p_value)
    for key, p in ps.items():
        p = np.array(p)
        assert (p < 0.05).mean() <= 0.2, key
        assert 0.25 < p.mean() < 0.75, key


# ---------------------------------------------------------------- the sequential rule


def test_sequential_p_follows_its_three_stopping_cases():
    rule = SequentialRule(first=20, most=100, hits=4)
    null = np.full(200, 5.0)  # every draw at or below an observed 6 counts ("less")
    assert sequential_p(null, 6.0, rule, "less") == (21 / 21, 20)  # first stage: ordinary p
    null = np.full(200, 9.0)
    null[[3, 30, 41, 57, 90]] = 1.0  # one hit in the first stage, the 4th by draw 58
    assert sequential_p(null, 6.0, rule, "less") == (4 / 58, 58)  # Besag-Clifford
    null = np.full(200, 9.0)
    null[[3, 30]] = 1.0
    assert sequential_p(null, 6.0, rule, "less") == pytest.approx((3 / 101, 100))  # ran to the most
    assert sequential_p(null[:50], 6.0, rule, "less") == pytest.approx((3 / 51, 50))  # fewer draws than the most


def test_sequential_p_is_valid_under_the_null():
    """Exchangeable draws (the observed value is one more uniform draw): P(p <= u) <= u, also near the floor."""
    rule = SequentialRule(first=40, most=400, hits=5)
    rng = np.random.default_rng(0)
    reps = 6000
    obs = rng.random(reps)
    ps, used = np.empty(reps), np.empty(reps)
    for i in range(reps):
        ps[i], used[i] = sequential_p(rng.random(rule.most), obs[i], rule, "greater")
    for u in (0.005, 0.01, 0.02, 0.05, 0.1, 0.3, 0.6):
        se = np.sqrt(u * (1 - u) / reps)
        assert (ps <= u).mean() <= u + 3 * se, u
    assert (ps <= 0.1).mean() > 0.07  # not absurdly conservative
    assert used.mean() < 0.2 * rule.most  # and mostly stops early


def test_sequential_joint_tests_stop_early_on_an_ignorer_and_run_on_for_a_follower():
    rule = SequentialRule(first=60, most=600, hits=10)
    ry, rc, gy, gc = _world_pairs(11, 20, 3, 300, 300, follow=0.0)
    ign = joint_conditioning_tests(ry, rc, gy, gc, n_boot=0, sequential=rule)
    fixed = joint_conditioning_tests(ry, rc, gy, gc, n_boot=0, n_permutations=60)
    for key, r in ign.items():
        assert r.n_permutations == 60 and r.details["p_draws"] == 60 and "Besag" in r.details["null_rule"]
        if r.p_value >= 11 / 61:  # first stage enough: the ordinary p of the same draws
            assert r.p_value == fixed[key].p_value
    ry, rc, gy, gc = _world_pairs(12, 20, 3, 300, 300, follow=1.0)
    fol = joint_conditioning_tests(ry, rc, gy, gc, n_boot=0, sequential=rule)
    for r in fol.values():
        assert r.n_permutations == 600 and r.p_value == pytest.approx(1 / 601)


def test_sequential_p_values_are_uniform_on_an_ignorer():
    rule = SequentialRule(first=30, most=300, hits=5)
    ps = {"fjd": [], "cfid": []}
    for seed in range(30):
        ry, rc, gy, gc = _world_pairs(200 + seed, 8, 2, 120, 120, follow=0.0)
        res = joint_conditioning_tests(ry, rc, gy, gc, n_boot=0, seed=seed, sequential=rule)
        for key in ps:
            ps[key].append(res[key].p_value)
    for key, p in ps.items():
        p = np.array(p)
        assert (p < 0.05).mean() <= 0.2, key
        assert 0.25 < p.mean() < 0.75, key
        assert kstest(p, "uniform").pvalue > 0.001, key


def test_suite_joint_tests_run_on_to_what_holm_needs_only_when_the_first_stage_is_at_its_floor():
    """The suite's rule: ``joint_permutations`` first; a follower (p at the floor) goes on to holm_permutations for
    the continuous family, an ignorer stops; ``exact`` reruns a fresh null instead, as before, with the same p."""
    from metrics.conditioning.suite import ConditioningData, SuiteSettings, holm_permutations, joint_tests
    from metrics.conditioning.verdict import PRIMARY_CONTINUOUS

    most = holm_permutations(len(PRIMARY_CONTINUOUS))
    for follow, draws in ((1.0, most), (0.0, 40)):
        ry, rc, gy, gc = _world_pairs(13, 12, 3, 250, 250, follow=follow)
        d = ConditioningData(train_x=ry, train_y=np.zeros(250, int), test_x=ry, test_y=np.zeros(250, int),
                             gen_x=gy, asked_y=np.zeros(250, int), n_classes=2, test_c=rc, gen_c=gc)
        fast = joint_tests(d, SuiteSettings(joint_permutations=40, joint_bootstrap=0))
        for r in fast.values():
            assert r.n_permutations == draws and "Besag" in r.details["null_rule"]
        if follow:
            exact = joint_tests(d, SuiteSettings(joint_permutations=40, joint_bootstrap=0, exact=True))
            for key, r in fast.items():
                assert r.p_value == exact[key].p_value == pytest.approx(1 / (most + 1))
                assert exact[key].n_permutations == most
