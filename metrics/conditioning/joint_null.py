"""FJD and CFID of the generated set under many re-pairings (permutation null) or resamples (bootstrap), batched.

Everything happens in a reduced basis (``metrics.distribution.basis``: exact when it spans the features) with
torch, on a GPU when one is present. A permutation pi of the conditions changes only the generated
cross-covariance C = Y^T X[pi] / (n-1) (Y, X centred generated features and conditions): means, S_yy and S_xx of
both sets stay. So for a batch of permutations the costly work is one matrix product,
Y^T [X[pi_1], ..., X[pi_B]] (k x n x B dc), and then, per permutation, two small symmetric eigensolves
(k + dc and k dims, values only):
  FJD:  tr sqrt(F^T S_g F) with S_g = [[S_yy, a C], [a C^T, a^2 S_xx]] and F the real joint factor (S_r = F F^T):
        F^T S_g F = M_0 + a (G F_x + F_x^T G^T), G = F_y^T C, M_0 fixed;
  CFID: A_g = C S_xx^+, S_g|x = S_yy - U U^T with U = C (S_xx^+)^1/2, and tr sqrt(F_c^T S_g|x F_c) for the real
        conditional covariance's factor F_c.
A bootstrap replicate refits the generated moments from resampling counts w (one weighted product over the rows)
and takes the same two eigensolves. On a CPU the caller runs all this under :func:`single_thread`: batched small
eigensolves with two threads on the busy shared 2-core machine were 10-20x slower than with one (measured: a
160-d eigvalsh 56 ms vs 3.9 ms), and switching the thread count per batch cost more than it saved.
The observed statistic goes through the same path as the permuted ones, so the p-value compares like with like.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from metrics.distribution.basis import ReducedBasis
from metrics.distribution.fid import covariance_factor, sqrtm_psd

_BATCH_ELEMS = 8_000_000  # gathered condition entries per permutation batch (n x B x dc), ~64 MB in float64


@contextmanager
def single_thread(device: torch.device) -> Iterator[None]:
    """One intra-op thread for batched small eigensolves on a CPU (restored afterwards); a no-op on a GPU."""
    if device.type != "cpu":
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _trace_sqrt(m: torch.Tensor) -> torch.Tensor:
    """sum sqrt(eigvalsh(m)) per matrix of a (B, D, D) stack, negative round-off clipped."""
    return torch.linalg.eigvalsh((m + m.transpose(-1, -2)) / 2).clamp_min(0.0).sqrt().sum(-1)


def _moments(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = rows.mean(axis=0)
    xc = rows - mu
    s = xc.T @ xc / (rows.shape[0] - 1)
    return mu, (s + s.T) / 2


def _pinv_parts(s_xx: torch.Tensor, rcond: float) -> tuple[torch.Tensor, torch.Tensor]:
    """S_xx^+ and (S_xx^+)^1/2 of a (B, dc, dc) stack, eigenvalues below rcond x the largest dropped (exact)."""
    w, v = torch.linalg.eigh((s_xx + s_xx.transpose(-1, -2)) / 2)
    top = w.amax(-1, keepdim=True).clamp_min(0.0)
    keep = (w > rcond * top) & (w > 0)
    safe = torch.where(keep, w, torch.ones_like(w))
    inv = torch.where(keep, 1.0 / safe, torch.zeros_like(w))
    half = torch.where(keep, 1.0 / safe.sqrt(), torch.zeros_like(w))
    return (v * inv[..., None, :]) @ v.transpose(-1, -2), (v * half[..., None, :]) @ v.transpose(-1, -2)


class JointStatistics:
    """FJD and CFID (in ``basis``) of generated pairs against real ones, for many pairings or resamples at once.

    ``alpha`` is FJD's condition scale (computed on the full real features, as the reported value); ``rcond`` the
    pseudo-inverse cutoff of CFID. Call :meth:`permuted` with (B, n) index arrays, :meth:`observed` for the
    identity, :meth:`bootstrap` for resampled sets; each returns rows of (FJD, CFID).
    """

    def __init__(self, ry, rc, gy, gc, alpha: float, rcond: float, basis: ReducedBasis, device: torch.device):
        self.device, self.alpha, self.rcond = device, float(alpha), float(rcond)
        ryk, gyk = basis.project(ry), basis.project(gy)
        k, dc, n = ryk.shape[1], rc.shape[1], gy.shape[0]
        self.k, self.dc, self.n = k, dc, n
        t = self._t
        # real side: joint moments of [y, a x] (FJD) and of [y, x] (CFID's regression)
        mu_rj, s_rj = _moments(np.hstack([ryk, self.alpha * rc]))
        mu_r, s_r = _moments(np.hstack([ryk, rc]))
        f = covariance_factor(s_rj)
        p_r, _ = _pinv_parts(t(s_r[k:, k:])[None], rcond)
        a_r = t(s_r[:k, k:]) @ p_r[0]
        s_rcond = t(s_r[:k, :k]) - a_r @ t(s_r[k:, :k])
        s_rcond = (s_rcond + s_rcond.T) / 2
        fc = t(covariance_factor(s_rcond.cpu().numpy()))
        # generated side: what a re-pairing leaves in place
        mu_g, s_g = _moments(np.hstack([gyk, gc]))
        self.yc, self.xc = t(gyk - mu_g[:k]), t(gc - mu_g[k:])
        self.zc = torch.cat([self.yc, self.xc], dim=1)
        self.mu_g, self.s_g = t(mu_g), t(s_g)
        self.f, self.fc = t(f), fc
        self.mu_rj, self.tr_rj = t(mu_rj), float(np.trace(s_rj))
        self.mu_ry, self.mu_rx = t(mu_r[:k]), t(mu_r[k:])
        self.a_r, self.sqrt_sxx_r = a_r, t(sqrtm_psd(s_r[k:, k:]))
        self.tr_rcond = float(torch.trace(s_rcond))
        self.p_g, self.p_half_g = (m[0] for m in _pinv_parts(self.s_g[k:, k:][None], rcond))
        s0 = self.s_g.clone()
        s0[:k, k:], s0[k:, :k] = 0.0, 0.0
        s0[k:, k:] *= self.alpha**2
        self.m0 = self.f.T @ s0 @ self.f
        self.n0 = fc.T @ self.s_g[:k, :k] @ fc
        scale = torch.ones(k + dc, dtype=torch.float64, device=device)
        scale[k:] = self.alpha
        self.scale = scale
        self.fjd_const = float(((self.mu_rj - self.mu_g * scale) ** 2).sum()) + self.tr_rj + float(
            torch.trace(s0))
        self.cfid_const = self.tr_rcond + float(torch.trace(self.s_g[:k, :k]))

    def _t(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64, device=self.device)

    # ------------------------------------------------------------ permutations

    def batch_size(self) -> int:
        return max(1, _BATCH_ELEMS // (self.n * self.dc))

    def observed(self) -> np.ndarray:
        return self.permuted(np.arange(self.n)[None, :])[0]

    def permuted(self, perms: np.ndarray) -> np.ndarray:
        """(B, 2) FJD and CFID with the generated conditions re-paired by each row of ``perms``."""
        out = []
        for s in range(0, perms.shape[0], self.batch_size()):
            out.append(self._permuted_batch(torch.as_tensor(perms[s : s + self.batch_size()], device=self.device)))
        return torch.cat(out).cpu().numpy()

    def _permuted_batch(self, perms: torch.Tensor) -> torch.Tensor:
        b, k, dc = perms.shape[0], self.k, self.dc
        xp = self.xc[perms.T].reshape(self.n, b * dc)  # (n, B dc): column block j holds X[pi_j]
        c = (self.yc.T @ xp).reshape(k, b, dc).permute(1, 0, 2) / (self.n - 1)  # (B, k, dc)
        fy, fx = self.f[:k], self.f[k:]
        g = fy.T @ c  # (B, D, dc)
        cross = self.alpha * (g @ fx)
        m = self.m0 + cross + cross.transpose(-1, -2)
        a_g = c @ self.p_g
        delta = (self.mu_ry - self.mu_g[:k]) - a_g @ (self.mu_rx - self.mu_g[k:])
        reg = (((self.a_r - a_g) @ self.sqrt_sxx_r) ** 2).sum((-2, -1))
        u = c @ self.p_half_g
        v = self.fc.T @ u
        nmat = self.n0 - v @ v.transpose(-1, -2)
        tr_fjd, tr_cfid = _trace_sqrt(m), _trace_sqrt(nmat)
        fjd = self.fjd_const - 2.0 * tr_fjd
        cfid = (delta**2).sum(-1) + reg + self.cfid_const - (u**2).sum((-2, -1)) - 2.0 * tr_cfid
        return torch.stack([fjd, cfid], dim=1)

    # ------------------------------------------------------------ bootstrap

    def bootstrap(self, n_boot: int, seed: int) -> np.ndarray:
        """(n_boot, 2) FJD and CFID of generated sets resampled with replacement (real set fixed); the draws are
        ``rng.integers(0, n, n)`` per replicate of ``default_rng(seed)``, as the exact path's."""
        rng = np.random.default_rng(seed)
        out = np.empty((n_boot, 2))
        for b in range(n_boot):
            w = self._t(np.bincount(rng.integers(0, self.n, self.n), minlength=self.n).astype(np.float64))
            out[b] = self._resampled(w).cpu().numpy()
        return out

    def _resampled(self, w: torch.Tensor) -> torch.Tensor:
        k, n = self.k, self.n
        shift = (w @ self.zc) / n  # resampled mean minus the full mean
        zw = self.zc * w.sqrt()[:, None]
        s = (zw.T @ zw - n * torch.outer(shift, shift)) / (n - 1)
        s = (s + s.T) / 2
        mu = self.mu_g + shift
        sa = s * torch.outer(self.scale, self.scale)
        p, p_half = (m[0] for m in _pinv_parts(s[k:, k:][None], self.rcond))
        a_g = s[:k, k:] @ p
        u = s[:k, k:] @ p_half
        s_cond = s[:k, :k] - u @ u.T
        tr_fjd = _trace_sqrt((self.f.T @ sa @ self.f)[None])[0]
        tr_cfid = _trace_sqrt((self.fc.T @ s_cond @ self.fc)[None])[0]
        fjd = ((self.mu_rj - mu * self.scale) ** 2).sum() + self.tr_rj + torch.trace(sa) - 2.0 * tr_fjd
        delta = (self.mu_ry - mu[:k]) - a_g @ (self.mu_rx - mu[k:])
        reg = (((self.a_r - a_g) @ self.sqrt_sxx_r) ** 2).sum()
        cfid = (delta**2).sum() + reg + self.tr_rcond + torch.trace(s_cond) - 2.0 * tr_cfid
        return torch.stack([fjd, cfid])
