"""The reference (exact) permutation null of FJD and CFID: every distance in the full (d + dc)-dim space.

This is the path the joint tests took before the reduced basis (``joint_null``); it stays as their reference
(``joint_conditioning_tests(..., exact=True)``) and for the tests that hold the fast path to it.

Null hypothesis "the generator ignores its condition", made exact
by permuting which condition belongs to which generated cover (real set fixed). Under a permutation only the
generated cross-covariance S_yx changes: mu, S_yy, S_xx of both sets stay, so FJD changes only through
tr sqrt(F^T S_g F) and CFID through A_g and S_g|x. With F^T S_0 F = Q diag(lam) Q^T eigendecomposed once,
every permuted distance needs tr sqrt(diag(lam) + W J W^T) for a thin W (d x r, r = 2 dc for FJD, dc for CFID):
  tr sqrt(M) = tr sqrt(Lam) + (2/pi) int_0^inf t^2 tr[(t^2 + Lam)^-1 - (t^2 + M)^-1] dt,   Lam = diag(lam),
and by Woodbury the bracket is tr[K^-1 W^T (t^2 + Lam)^-2 W] with K = J^-1 + W^T (t^2 + Lam)^-1 W (r x r). The
integral runs over log t with the trapezoid rule (the integrand is analytic in a strip of half-width pi/2, so
step 0.5 leaves ~exp(-pi^2 / 0.5) ~ 3e-9 relative error) between 1e-7 and 1e5 x sqrt(top), top = an upper bound
of the largest eigenvalue of M; the upper tail is added in closed form (tr(W J W^T) / t_hi). Below t_lo each
eigenvalue smaller than (1e-7)^2 x top can be off by ~1e-7 sqrt(top), about the round-off of a dense eigensolve
of a singular matrix; against a dense eigensolve the path agrees to ~1e-8 relative (tested). Cost per
permutation ~ 2 * 55 * d * r(r+1)/2 flops instead of a (d + dc)-dim eigensolve; wide conditions (large r) fall
back to the dense eigensolve. The observed pairing goes through the same path, so p compares like with like.
Measured on this project's shared 2-core CPU box (load ~8, 1 BLAS thread), n = 2000, d = 2048, dc = 32:
~25 s one-off (moments, three ~2080-d eigendecompositions, the two values), then ~0.2-0.3 s per permutation for
both metrics together (FJD's r = 64 quadrature is ~0.11 s of it; a dense eigensolve would be ~2.3 s per metric
and permutation), so n_permutations = 200 with n_boot = 0 took 59-71 s in all. Each bootstrap replicate costs
~3-4.5 s per metric (refit of the generated moments and one dense eigensolve), so the default n_boot = 50 adds
~5 min at this size; it is cheap at small d (covernet features).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

from metrics.distribution.fid import GaussianStats, covariance_factor, sqrtm_psd

from .frechet import (
    JointFrechetResult,
    _cfid,
    _Conditional,
    _conditional,
    _fjd,
    _moments,
    _scaled,
)
from .stats import permutation_chunks

_QUAD_STEP = 0.5  # trapezoid step in log t: error ~ exp(-pi^2 / step) ~ 3e-9 relative
_QUAD_LO, _QUAD_HI = 1e-7, 1e5  # integrate t over [lo, hi] x sqrt(top eigenvalue); the upper tail in closed form


class _TraceSqrtUpdate:
    """tr sqrt(diag(lam) + W J W^T) for many thin W sharing ``lam`` and J (module docstring: the quadrature).

    ``dense`` forces one eigensolve per call (the reference, and the faster path for wide W).
    """

    def __init__(self, lam: np.ndarray, j: np.ndarray, dense: bool | None = None):
        self.lam = np.clip(lam, 0.0, None)
        self.j = j
        self.j_inv = np.linalg.inv(j)
        self.base = float(np.sqrt(self.lam).sum())
        r, dim = j.shape[0], lam.size
        n_nodes = int(math.log(_QUAD_HI / _QUAD_LO) / _QUAD_STEP) + 1
        lowrank_cost = 2 * n_nodes * dim * r * (r + 1) / 2
        fits = dim * r * (r + 1) / 2 * 8 <= 256e6
        self.dense = (lowrank_cost > 0.5 * dim**3 or not fits) if dense is None else dense
        self.iu = np.triu_indices(r)

    def __call__(self, w: np.ndarray) -> float:
        if self.dense:
            m = w @ self.j @ w.T
            m[np.diag_indices_from(m)] += self.lam
            ev = scipy.linalg.eigvalsh((m + m.T) / 2, driver="evr", check_finite=False)
            return float(np.sqrt(np.clip(ev, 0.0, None)).sum())
        gram = w.T @ w
        top = float(self.lam.max()) + float(scipy.linalg.eigvalsh(gram, check_finite=False)[-1])  # >= eig max of M
        if not top > 0:
            return 0.0
        lo, hi = math.log(math.sqrt(top) * _QUAD_LO), math.log(math.sqrt(top) * _QUAD_HI)
        t = np.exp(np.arange(lo, hi + _QUAD_STEP / 2, _QUAD_STEP))
        g = 1.0 / (t[:, None] ** 2 + self.lam[None, :])  # (nodes, dim)
        z = w[:, self.iu[0]] * w[:, self.iu[1]]  # (dim, r(r+1)/2): products w_i w_j^T, upper triangle
        both = np.concatenate([g, g * g]) @ z
        r, k = w.shape[1], t.size
        full = np.empty((2 * k, r, r))
        full[:, self.iu[0], self.iu[1]] = both
        full[:, self.iu[1], self.iu[0]] = both
        kmat, lmat = self.j_inv[None] + full[:k], full[k:]
        tr = np.einsum("kii->k", np.linalg.solve(kmat, lmat))
        tail = float(np.sum(self.j * gram)) / math.exp(hi)  # int_{t_hi}^inf of the leading 1/t^2 term
        return self.base + (2.0 / math.pi) * (_QUAD_STEP * float(np.dot(t**3, tr)) + tail)


class _JointNull:
    """FJD and CFID of the generated set with its conditions re-paired by a permutation; the parts that do not
    depend on the pairing are computed once (module docstring)."""

    def __init__(self, ref_fjd: GaussianStats, alpha: float, real: _Conditional, gy, gc, rcond: float,
                 dense: bool | None = None, real_factor: np.ndarray | None = None,
                 gen_stats: GaussianStats | None = None):
        d, dc = gy.shape[1], gc.shape[1]
        n = gy.shape[0]
        self.d, self.alpha = d, alpha
        gstats = _moments(np.hstack([gy, gc])) if gen_stats is None else gen_stats
        self.yc = gy - gstats.mu[:d]
        self.xc = gc - gstats.mu[d:]
        self.scale = 1.0 / (n - 1)
        # FJD: S_g = blockdiag(S_yy, a^2 S_xx) + [[0, a C], [a C^T, 0]] seen through the real joint sqrt F.
        f = ref_fjd.sqrt()
        s0 = np.zeros_like(gstats.sigma)
        s0[:d, :d] = gstats.sigma[:d, :d]
        s0[d:, d:] = alpha**2 * gstats.sigma[d:, d:]
        lam, q = scipy.linalg.eigh(f.T @ s0 @ f, driver="evr", check_finite=False)
        fq = f @ q
        self.fjd_fq_top = fq[:d].T * alpha  # (D, d): W1 = a (F Q)[:d]^T C
        self.fjd_w2 = np.ascontiguousarray(fq[d:].T)  # (D, dc), fixed
        eye = np.eye(dc)
        self.fjd_trace = _TraceSqrtUpdate(lam, np.block([[np.zeros((dc, dc)), eye], [eye, np.zeros((dc, dc))]]),
                                          dense)
        gsc = _scaled(gstats, d, alpha)
        diff = ref_fjd.mu - gsc.mu
        self.fjd_const = float(diff @ diff + np.trace(ref_fjd.sigma) + np.trace(gsc.sigma))
        # CFID: S_g|x = S_yy - U U^T with U = C (S_xx^+)^1/2, seen through the real conditional factor F.
        gen = _conditional(gstats, d, rcond)
        self.real, self.gen = real, gen
        self.sqrt_sxx = sqrtm_psd(real.s_xx)
        fc = covariance_factor(real.s_cond) if real_factor is None else real_factor
        lam_c, q_c = scipy.linalg.eigh(fc.T @ gen.s_yy @ fc, driver="evr", check_finite=False)
        self.cfid_fq = (fc @ q_c).T  # (d, d): W = (F Q)^T U
        self.cfid_trace = _TraceSqrtUpdate(lam_c, -np.eye(dc), dense)
        self.cfid_const = float(np.trace(real.s_cond) + np.trace(gen.s_yy))
        self.dmu_y = real.mu_y - gen.mu_y
        self.dmu_x = real.mu_x - gen.mu_x

    def __call__(self, perm: np.ndarray | None) -> tuple[float, float]:
        xp = self.xc if perm is None else self.xc[perm]
        c = (self.yc.T @ xp) * self.scale  # permuted S_yx of the generated set
        w = np.hstack([self.fjd_fq_top @ c, self.fjd_w2])
        fjd = self.fjd_const - 2.0 * self.fjd_trace(w)
        a_g = c @ self.gen.p
        delta = self.dmu_y - a_g @ self.dmu_x
        reg = float(np.sum(((self.real.a - a_g) @ self.sqrt_sxx) ** 2))
        u = c @ self.gen.p_half
        cov = self.cfid_const - float(np.sum(u * u)) - 2.0 * self.cfid_trace(self.cfid_fq @ u)
        return fjd, float(delta @ delta) + reg + cov


def exact_null(ry, rc, gy, gc, alpha: float, rcond: float, n_permutations: int, n_boot: int, seed: int,
               confidence: float) -> tuple[JointFrechetResult, JointFrechetResult, np.ndarray, np.ndarray]:
    """FJD and CFID with their exact bootstraps, the observed statistics on the null path and ``n_permutations``
    null draws (B, 2): the joint tests' computation before the reduced basis, unchanged."""
    d = ry.shape[1]
    ref = _moments(np.hstack([ry, alpha * rc]))
    real = _conditional(_moments(np.hstack([ry, rc])), d, rcond)
    factor = covariance_factor(real.s_cond)
    gen_stats = _moments(np.hstack([gy, gc]))
    fjd = _fjd(ry, rc, gy, gc, alpha, n_boot, seed, confidence, ref=ref, gen_stats=gen_stats)
    cfid = _cfid(ry, rc, gy, gc, rcond, n_boot, seed, confidence, real=real, factor=factor, gen_stats=gen_stats)
    null = _JointNull(ref, alpha, real, gy, gc, rcond, real_factor=factor, gen_stats=gen_stats)
    observed = null(None)  # same numerical path as the null draws
    rng = np.random.default_rng(seed)
    draws = [null(p) for chunk in permutation_chunks(gy.shape[0], n_permutations, rng) for p in chunk]
    null_vals = np.array(draws).reshape(-1, 2)
    return fjd, cfid, null_vals, observed
