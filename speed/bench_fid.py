"""FID speed: our symmetric-eigen path against clean-fid's scipy ``sqrtm`` path on the same 2048-d statistics.

Statistics come from real-looking features (non-negative, correlated, power-law spectrum like Inception pool
features). Three timings on identical inputs, in the same process:
  * clean-fid ``frechet_distance`` (scipy ``sqrtm`` of the non-symmetric S1 S2);
  * ours from scratch (Cholesky S1 = L L^T, then ``eigvalsh`` of L^T S2 L);
  * ours per model with the reference sqrt cached (the real use: the real-feature cache stores it).
Optionally (``--inception N``) Inception feature throughput in images/s on the chosen device.

    python -m speed.bench_fid [--dim 2048] [--n 10000] [--repeats 3] [--inception 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from metrics.distribution.fid import feature_stats, frechet_distance, sqrtm_psd


def real_looking(n: int, dim: int, seed: int, shift: float = 0.0, spread: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(np.random.default_rng(99).standard_normal((dim, dim)))[0]
    spectrum = (np.arange(1, dim + 1) ** -0.8).astype(np.float64)
    z = rng.standard_normal((n, dim)) * (spectrum * spread)
    return np.abs(z @ basis.T + 0.05 + shift).astype(np.float32)


def best_of(fn, repeats: int) -> tuple[float, float]:
    times, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return min(times), float(value)


def bench_fid(dim: int, n: int, repeats: int, cleanfid_repeats: int) -> dict:
    import cleanfid.fid
    import scipy.linalg

    if "disp" not in scipy.linalg.sqrtm.__code__.co_varnames:  # scipy >= 1.18 dropped it; clean-fid still passes it

        class _Linalg:
            @staticmethod
            def sqrtm(a, disp=True):
                r = scipy.linalg.sqrtm(a)
                return (r, 0.0) if not disp else r

        cleanfid.fid.linalg = _Linalg
    cleanfid_fd = cleanfid.fid.frechet_distance

    t0 = time.perf_counter()
    real = feature_stats(real_looking(n, dim, 0))
    gen = feature_stats(real_looking(n, dim, 1, shift=0.01, spread=1.1))
    prep = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_cf, v_cf = best_of(lambda: cleanfid_fd(real.mu, real.sigma, gen.mu, gen.sigma), cleanfid_repeats)
    t_full, v_full = best_of(lambda: frechet_distance(real.mu, real.sigma, gen.mu, gen.sigma), repeats)
    t = time.perf_counter()
    a = sqrtm_psd(real.sigma)
    t_sqrt = time.perf_counter() - t
    t_cached, v_cached = best_of(
        lambda: frechet_distance(real.mu, real.sigma, gen.mu, gen.sigma, sqrt_sigma1=a), repeats
    )
    return {
        "dim": dim,
        "n_features": n,
        "stats_seconds": prep,
        "cleanfid_seconds": t_cf,
        "ours_full_seconds": t_full,
        "ours_reference_sqrt_seconds": t_sqrt,
        "ours_cached_seconds": t_cached,
        "ratio_full": t_cf / t_full,
        "ratio_cached": t_cf / t_cached,
        "cleanfid_value": v_cf,
        "ours_value": v_full,
        "ours_cached_value": v_cached,
        "relative_difference": abs(v_full - v_cf) / abs(v_cf),
    }


def bench_inception(n: int, res: int, batch_size: int, device: str | None) -> dict:
    """Inception feature throughput, fp32 and (on CUDA) TF32, and what TF32 does to the features and to FID.

    Images are unique blocky noise (32 x 32 cells scaled to ``res``), so the two halves give a FID with a
    full-rank covariance; the TF32 effect is that FID's change between fp32 and TF32 features.
    """
    import torch

    from metrics.distribution import fid
    from metrics.features.inception import default_device, inception_features

    dev = torch.device(device) if device else default_device()
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    scale = max(1, res // 32)
    images = np.ascontiguousarray(cells.repeat(scale, axis=1).repeat(scale, axis=2))
    out = {"device": str(dev), "images": n, "resolution": images.shape[1], "batch_size": batch_size}
    feats = {}
    for tf32 in [False, True] if dev.type == "cuda" else [False]:
        inception_features(images[: 3 * batch_size], batch_size=batch_size, device=dev, tf32=tf32)  # warm up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        f = inception_features(images, batch_size=batch_size, device=dev, tf32=tf32)
        sec = time.perf_counter() - t
        key = "tf32" if tf32 else "fp32"
        out[f"{key}_seconds"] = sec
        out[f"{key}_images_per_s"] = n / sec
        feats[key] = f
        half = n // 2
        if half >= 2 * f.shape[1]:
            out[f"{key}_fid_half_vs_half"] = fid(f[:half], f[half:]).value
    if "tf32" in feats:
        a, b = feats["fp32"], feats["tf32"]
        out["tf32_vs_fp32_max_rel"] = float(np.abs(a - b).max() / np.abs(a).max())
        if "fp32_fid_half_vs_half" in out:
            out["tf32_fid_relative_change"] = abs(out["tf32_fid_half_vs_half"] - out["fp32_fid_half_vs_half"]) / abs(
                out["fp32_fid_half_vs_half"]
            )
        cpu = inception_features(images[:4], batch_size=4, device="cpu")
        out["gpu_fp32_vs_cpu_max_abs"] = float(np.abs(a[:4] - cpu).max())
        out["cpu_feature_max"] = float(np.abs(cpu).max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--n", type=int, default=10000, help="samples per feature set behind the statistics")
    ap.add_argument("--repeats", type=int, default=3, help="best-of repeats for our paths")
    ap.add_argument("--cleanfid-repeats", type=int, default=1)
    ap.add_argument("--inception", type=int, default=0, help="also time Inception features on this many images")
    ap.add_argument("--res", type=int, default=256, help="image side for --inception")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default=None)
    ap.add_argument("--skip-fid", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    result: dict = {}
    if not args.skip_fid:
        r = bench_fid(args.dim, args.n, args.repeats, args.cleanfid_repeats)
        result["fid"] = r
        print(
            f"FID {r['dim']}-d: clean-fid sqrtm {r['cleanfid_seconds']:.2f} s | ours {r['ours_full_seconds']:.2f} s "
            f"({r['ratio_full']:.1f}x) | ours with cached reference sqrt {r['ours_cached_seconds']:.2f} s "
            f"({r['ratio_cached']:.1f}x; the sqrt itself {r['ours_reference_sqrt_seconds']:.2f} s once)"
        )
        print(
            f"values: clean-fid {r['cleanfid_value']:.9g}  ours {r['ours_value']:.9g}  "
            f"cached {r['ours_cached_value']:.9g}  relative difference {r['relative_difference']:.2e}"
        )
    if args.inception > 0:
        r = bench_inception(args.inception, args.res, args.batch_size, args.device)
        result["inception"] = r
        print("Inception:", json.dumps(r, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
