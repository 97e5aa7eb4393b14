"""A reduced basis for resampled Fréchet distances: the top principal components of the pooled features.

A bootstrap replicate of FID (or of FJD/CFID, or a permutation of their pairing) needs the distance again; at
Inception width (d = 2048) each costs d-dim eigensolves. They are computed instead on the features projected onto
an orthonormal basis P (d x k) of the pooled real and generated features (centred on the pooled mean),
k <= ``max_components``:

- **exact** when P spans every centred feature row of both sets (d <= k, or at most k + 1 rows in all): means,
  covariances and cross-covariances then live in span(P), so every distance equals the full one (round-off aside);
- otherwise the k leading eigenvectors of the pooled covariance: the statistic becomes the same distance between
  the projections. A permutation test of the pairing stays exact, because P depends on the image features only
  and the permutation moves only the conditions; power can only be lost along the dropped, low-variance
  directions. A bootstrap then measures the spread of the projected distance, reported beside k, d and the
  share of the pooled variance kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

DEFAULT_COMPONENTS = 128  # costs per permutation grow with k^3 (eigensolves) and n k (cross-covariances)
_RANK_TOL = 1e-10  # singular values below this share of the largest are round-off: no data lies along them


@dataclass
class ReducedBasis:
    """Orthonormal columns ``p`` (d x k), or ``p`` None for the identity (no projection needed)."""

    p: np.ndarray | None
    dim: int
    variance_share: float
    exact: bool

    @property
    def k(self) -> int:
        return self.dim if self.p is None else int(self.p.shape[1])

    def project(self, y: np.ndarray) -> np.ndarray:
        return y if self.p is None else y @ self.p

    def to_dict(self) -> dict:
        return {"components": self.k, "dim": self.dim, "variance_share": self.variance_share, "exact": self.exact}


def pooled_basis(
    real_y: np.ndarray, gen_y: np.ndarray, max_components: int = DEFAULT_COMPONENTS,
    gen_scatter: np.ndarray | None = None, real_scatter: np.ndarray | None = None,
) -> ReducedBasis:
    """The basis for features ``real_y`` (n_r x d) and ``gen_y`` (n x d); see the module docstring.

    ``gen_scatter``/``real_scatter``: a set's centred scatter matrix when the caller already has it (the costly
    part at large n).
    """
    d = real_y.shape[1]
    if max_components < 1:
        raise ValueError(f"max_components must be at least 1, got {max_components}")
    if d <= max_components:
        return ReducedBasis(p=None, dim=d, variance_share=1.0, exact=True)
    if real_y.shape[0] + gen_y.shape[0] <= max_components + 1:  # few rows: their span, exactly
        rows = np.concatenate([real_y, gen_y])
        rows = rows - rows.mean(axis=0)
        u, s, vt = np.linalg.svd(rows, full_matrices=False)
        keep = s > _RANK_TOL * s[0] if s.size and s[0] > 0 else np.zeros(s.size, bool)
        return ReducedBasis(p=np.ascontiguousarray(vt[keep].T), dim=d, variance_share=1.0, exact=True)
    parts = []
    for y, given in ((real_y, real_scatter), (gen_y, gen_scatter)):
        m = y.mean(axis=0)
        if given is None:
            yc = y - m
            given = yc.T @ yc
        parts.append((m, given, y.shape[0]))
    return basis_from_moments(*parts[0], *parts[1], max_components=max_components)


def basis_from_moments(
    mu_a: np.ndarray, scatter_a: np.ndarray, n_a: int, mu_b: np.ndarray, scatter_b: np.ndarray, n_b: int,
    max_components: int = DEFAULT_COMPONENTS,
) -> ReducedBasis:
    """The same basis from each set's mean, centred scatter matrix and size: the ``max_components`` leading
    eigenvectors of the pooled scatter (exact when they hold all of its variance, e.g. with few rows)."""
    d = mu_a.shape[0]
    if d <= max_components:
        return ReducedBasis(p=None, dim=d, variance_share=1.0, exact=True)
    mu = (n_a * mu_a + n_b * mu_b) / (n_a + n_b)
    scatter = scatter_a + scatter_b + n_a * np.outer(mu_a - mu, mu_a - mu) + n_b * np.outer(mu_b - mu, mu_b - mu)
    scatter = (scatter + scatter.T) / 2
    total = float(np.trace(scatter))
    w, v = scipy.linalg.eigh(scatter, subset_by_index=[d - max_components, d - 1], driver="evr", check_finite=False)
    share = float(np.clip(w, 0.0, None).sum()) / total if total > 0 else 1.0
    return ReducedBasis(p=np.ascontiguousarray(v[:, ::-1]), dim=d, variance_share=min(1.0, share),
                        exact=share >= 1.0 - 1e-12)
