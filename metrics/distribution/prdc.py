"""Precision, recall, density and coverage from k-nearest-neighbour balls (Kynkäänniemi 2019; Naeem 2020).

Each sample gets a ball whose radius is the distance to its k-th nearest neighbour in its own set. Precision:
share of generated samples inside some real ball; recall: share of real samples inside some generated ball;
density: mean number of real balls holding a generated sample, over k; coverage: share of real balls holding
at least one generated sample. Distances are computed in row chunks, so 10k x 10k never needs the full matrix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from core.errors import UserError
from metrics.distribution.fid import check_features


@dataclass
class PRDCResult:
    precision: float
    recall: float
    density: float
    coverage: float
    n_real: int
    n_gen: int
    k_pr: int
    k_dc: int

    def to_dict(self) -> dict:
        return asdict(self)


def _dist(a: torch.Tensor, b: torch.Tensor, a_sq: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    """Euclidean distances |a|^2 + |b|^2 - 2 a.b, clipped at 0 (the same expansion sklearn uses)."""
    d2 = a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return d2.clamp_min_(0.0).sqrt_()


def knn_radii(x: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (the row itself counts as distance 0)."""
    n = x.shape[0]
    if n <= k:
        raise UserError(f"k-NN radii need more than k={k} samples, got {n}")
    sq = (x * x).sum(1)
    out = torch.empty(n, dtype=x.dtype, device=x.device)
    for s in range(0, n, chunk):
        d = _dist(x[s : s + chunk], x, sq[s : s + chunk], sq)
        idx = torch.arange(s, min(s + chunk, n), device=x.device)
        d[idx - s, idx] = 0.0
        out[s : s + chunk] = torch.kthvalue(d, k + 1, dim=1).values
    return out


def prdc(
    real: np.ndarray,
    gen: np.ndarray,
    *,
    k_pr: int = 3,
    k_dc: int = 5,
    chunk: int = 1024,
    device: str | torch.device | None = None,
) -> PRDCResult:
    """Precision/recall with k=``k_pr`` and density/coverage with k=``k_dc`` (float64, chunked)."""
    r_np = check_features(real, "real features")
    g_np = check_features(gen, "generated features")
    if r_np.shape[1] != g_np.shape[1]:
        raise UserError(f"PRDC: real features are {r_np.shape[1]}-d but generated are {g_np.shape[1]}-d")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    r = torch.as_tensor(np.asarray(r_np, dtype=np.float64), device=dev)
    g = torch.as_tensor(np.asarray(g_np, dtype=np.float64), device=dev)
    ks = sorted({k_pr, k_dc})
    real_r = {k: knn_radii(r, k, chunk) for k in ks}
    gen_r_pr = knn_radii(g, k_pr, chunk)
    r_sq, g_sq = (r * r).sum(1), (g * g).sum(1)

    in_real_ball = torch.zeros(g.shape[0], dtype=torch.bool, device=dev)  # precision (k_pr)
    density_count = torch.zeros(g.shape[0], dtype=torch.float64, device=dev)  # density (k_dc)
    real_in_gen_ball = torch.zeros(r.shape[0], dtype=torch.bool, device=dev)  # recall (k_pr)
    covered = torch.zeros(r.shape[0], dtype=torch.bool, device=dev)  # coverage (k_dc)
    for s in range(0, r.shape[0], chunk):
        d = _dist(r[s : s + chunk], g, r_sq[s : s + chunk], g_sq)  # (chunk, n_gen)
        rad_pr = real_r[k_pr][s : s + chunk, None]
        rad_dc = real_r[k_dc][s : s + chunk, None]
        in_real_ball |= (d < rad_pr).any(0)
        density_count += (d < rad_dc).sum(0).to(torch.float64)
        real_in_gen_ball[s : s + chunk] = (d < gen_r_pr[None, :]).any(1)
        covered[s : s + chunk] = d.min(1).values < rad_dc[:, 0]
    return PRDCResult(
        precision=float(in_real_ball.double().mean()),
        recall=float(real_in_gen_ball.double().mean()),
        density=float(density_count.mean() / k_dc),
        coverage=float(covered.double().mean()),
        n_real=int(r.shape[0]),
        n_gen=int(g.shape[0]),
        k_pr=k_pr,
        k_dc=k_dc,
    )
