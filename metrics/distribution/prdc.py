"""Precision, recall, density and coverage from k-nearest-neighbour balls (Kynkäänniemi 2019; Naeem 2020).

Each sample gets a ball whose radius is the distance to its k-th nearest neighbour in its own set. Precision:
share of generated samples inside some real ball; recall: share of real samples inside some generated ball;
density: mean number of real balls holding a generated sample, over k; coverage: share of real balls holding
at least one generated sample. Distances are computed in blocks, so 10k x 10k never needs the full matrix; the
within-set radii take each pair once (half the distances) and both k from one pass.
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


def knn_radii(x: torch.Tensor, k: int | list[int], chunk: int = 1024) -> torch.Tensor | dict[int, torch.Tensor]:
    """Distance from each row to its k-th nearest other row (the row itself counts as distance 0).

    ``k`` a list: every radius from the same pass, as {k: radii}. Distances are computed once per pair of row
    blocks (the upper triangle of the block grid, each block also read transposed), so the cost is half of n^2 d
    and memory stays at a few chunk x chunk blocks plus n x (k + 1) running nearest distances.
    """
    ks = [k] if isinstance(k, int) else sorted(set(k))
    n, top = x.shape[0], max(ks) + 1
    if n <= max(ks):
        raise UserError(f"k-NN radii need more than k={max(ks)} samples, got {n}")
    sq = (x * x).sum(1)
    best = torch.full((n, top), float("inf"), dtype=x.dtype, device=x.device)
    for s in range(0, n, chunk):
        rows = slice(s, min(s + chunk, n))
        for t in range(s, n, chunk):
            cols = slice(t, min(t + chunk, n))
            d = _dist(x[rows], x[cols], sq[rows], sq[cols])
            if t == s:
                d.fill_diagonal_(0.0)
            best[rows] = _smallest(best[rows], d, top)
            if t != s:
                best[cols] = _smallest(best[cols], d.T, top)
    out = {kk: best[:, kk].contiguous() for kk in ks}  # sorted ascending: column kk is the (kk+1)-th smallest
    return out[k] if isinstance(k, int) else out


def _smallest(best: torch.Tensor, d: torch.Tensor, top: int) -> torch.Tensor:
    """The ``top`` smallest of each row of [best, d], ascending."""
    both = torch.cat([best, d], dim=1)
    return torch.topk(both, min(top, both.shape[1]), dim=1, largest=False, sorted=True).values


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
    real_r = knn_radii(r, [k_pr, k_dc], chunk)
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
