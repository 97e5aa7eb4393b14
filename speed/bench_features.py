"""Speed of the clip features: ms per 30 s clip on one core, and clips/s on worker processes, ours vs naive.

    .venv/bin/python -m speed.bench_features [--clips 8] [--repeats 3] [--workers 2] [--pool-clips 16]
    python -m speed.bench_features --logmel-only      # on a CUDA machine: log-mel clips/s from pinned memory
    python -m speed.bench_features --gpu-only         # ... and the cnn embedding of 50,000 clips

Clips: the real recordings in ../shared/data/librosa/audio/ (looped or cut to 30 s at 22,050 Hz), or
synthesised music when that folder is absent. One-core numbers pin BLAS/FFT to one thread and report both wall
and CPU time (CPU time is the fairer number on a shared machine); the pool numbers run both pipelines on the
same clips with the same number of worker processes, one after the other.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]  # the repository root
AUDIO_DIR = ROOT.parent / "shared" / "data" / "librosa" / "audio"
SR = 22050
SECONDS = 30


def load_clips(n: int, folder: Path = AUDIO_DIR) -> tuple[list[np.ndarray], str]:
    """``n`` mono float32 30 s clips at 22,050 Hz, real where available."""
    files = sorted(p for p in folder.glob("*.ogg") if not p.name.endswith(".hq.ogg")) if folder.is_dir() else []
    clips = []
    if files:
        import librosa
        import soundfile as sf

        for p in files:
            y, sr = sf.read(p, dtype="float32", always_2d=True)
            y = librosa.resample(y.mean(axis=1), orig_sr=sr, target_sr=SR)
            clips.append(np.resize(y, SECONDS * SR).astype(np.float32))  # loops short pieces
        source = f"{len(files)} real clips from {folder} (looped/cut to 30 s)"
    else:
        rng = np.random.default_rng(0)
        t = np.arange(SECONDS * SR) / SR
        for i in range(max(n, 4)):
            f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
            pulse = (np.sin(2 * np.pi * (1.5 + i % 3) * t) > 0.6).astype(np.float32)
            y = 0.3 * np.sin(2 * np.pi * f0 * t) * (0.5 + 0.5 * pulse) + 0.05 * rng.standard_normal(len(t)) * pulse
            clips.append(y.astype(np.float32))
        source = "synthesised music (real clips absent)"
    while len(clips) < n:
        clips.extend(clips[: n - len(clips)])
    return clips[:n], source


def _init_worker() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    from core.audio.features import clip_features, naive_features

    noise = np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32)
    clip_features(noise)  # warm imports, JIT and caches (a silent clip would skip the beat tracker)
    naive_features(noise)


def _pid_after_pause(_: int) -> int:
    time.sleep(0.5)
    return os.getpid()


def _ours(y: np.ndarray) -> int:
    from core.audio.features import clip_features

    return len(clip_features(y))


def _naive(y: np.ndarray) -> int:
    from core.audio.features import naive_features

    return len(naive_features(y))


def one_core(fn, clips: list[np.ndarray], repeats: int) -> dict[str, float]:
    fn(clips[0])  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        for y in clips:
            w0, c0 = time.perf_counter(), time.process_time()
            fn(y)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
    return {
        "wall_ms_median": 1000 * statistics.median(wall),
        "wall_ms_min": 1000 * min(wall),
        "cpu_ms_median": 1000 * statistics.median(cpu),
        "cpu_ms_min": 1000 * min(cpu),
    }


def pool_rate(fn, clips: list[np.ndarray], workers: int) -> float:
    import multiprocessing as mp

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker) as pool:
        while len(set(pool.map(_pid_after_pause, range(workers)))) < workers:
            pass  # until every worker has started (and run its warm-up) before the clock starts
        t0 = time.perf_counter()
        list(pool.map(fn, clips, chunksize=1))
        return len(clips) / (time.perf_counter() - t0)


def logmel_gpu(batch: int, batches: int) -> dict[str, float]:
    """Log-mel clips/s on CUDA: from pinned int16 host memory (copy + compute), and compute alone."""
    import torch

    from core.audio.logmel import LogMel

    dev = torch.device("cuda")
    m = LogMel().to(dev)
    rng = np.random.default_rng(0)
    host = torch.from_numpy((rng.standard_normal((batch, SECONDS * SR)) * 3000).astype(np.int16)).pin_memory()
    on_dev = host.to(dev)
    out: dict[str, float] = {"device": torch.cuda.get_device_name(dev), "batch": batch}
    with torch.no_grad():
        for _ in range(3):
            m(host.to(dev, non_blocking=True))
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(batches):
            m(host.to(dev, non_blocking=True))
        torch.cuda.synchronize()
        out["pinned_clips_per_s"] = batch * batches / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(batches):
            m(on_dev)
        torch.cuda.synchronize()
        out["compute_clips_per_s"] = batch * batches / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(batches):
            host.to(dev, non_blocking=True)
        torch.cuda.synchronize()
        out["h2d_clips_per_s"] = batch * batches / (time.perf_counter() - t0)
    print(f"log-mel on {out['device']}, batch {batch} x 30 s: from pinned memory {out['pinned_clips_per_s']:.0f} "
          f"clips/s; compute only {out['compute_clips_per_s']:.0f}; host->device copy only "
          f"{out['h2d_clips_per_s']:.0f}")  # fmt: skip
    return out


def cnn_embedding_gpu(total: int = 50_000, batch: int = 256, pool: int = 512, device: str = "cuda") -> dict:
    """Seconds for the ``cnn`` encoder's embeddings of ``total`` decoded 30 s clips on CUDA, log-mel included.

    The path ``bench encode --encoder cnn`` takes on a GPU: int16 audio in pinned host memory -> device ->
    ``LogMel`` (fp32) -> ``MelCNN.embedding`` (default config: 128 mels, channels 16-32-64-128, d=32). Decoded
    audio for 50,000 clips is 66 GB as int16, so a pool of ``pool`` clips is cycled; weights are untrained (the
    cost does not depend on them). The CNN is timed in fp32 (what encode runs) and with bf16 autocast.
    """
    import torch

    from core.audio.logmel import LogMel
    from core.config.schema import EncodersConfig
    from models.encoders.cnn import MelCNN

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    cfg = EncodersConfig()
    m = LogMel(n_mels=cfg.n_mels).to(dev)
    net = MelCNN(cfg.n_mels, list(cfg.cnn_channels), cfg.dim, 8).to(dev).eval()
    pool = max(pool, batch)
    rng = np.random.default_rng(0)
    host = torch.from_numpy((rng.standard_normal((pool, SECONDS * SR)) * 3000).astype(np.int16))
    host = host.pin_memory() if cuda else host
    n_batches = -(-total // batch)
    name = torch.cuda.get_device_name(dev) if cuda else "cpu"
    out: dict = {"device": name, "clips": n_batches * batch, "batch": batch, "pool_clips": pool}
    torch.backends.cudnn.benchmark = True

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    def run(n: int, bf16: bool) -> None:
        for i in range(n):
            start = (i * batch) % (pool - batch + 1)
            mel = m(host[start : start + batch].to(dev, non_blocking=cuda))
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                net.embedding(mel)

    with torch.no_grad():
        for bf16 in (False, True):
            key = "bf16" if bf16 else "fp32"
            run(min(3, n_batches), bf16)
            sync()
            t0 = time.perf_counter()
            run(n_batches, bf16)
            sync()
            sec = time.perf_counter() - t0
            out[f"{key}_seconds"] = sec
            out[f"{key}_clips_per_s"] = n_batches * batch / sec
    print(f"cnn embedding on {name}: {out['clips']} clips of 30 s from pinned int16 memory, log-mel "
          f"included: fp32 {out['fp32_seconds']:.1f} s ({out['fp32_clips_per_s']:.0f} clips/s); bf16 autocast "
          f"{out['bf16_seconds']:.1f} s ({out['bf16_clips_per_s']:.0f} clips/s)")  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8, help="clips timed on one core")
    ap.add_argument("--repeats", type=int, default=3, help="passes over the clips (ours; naive does 1)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pool-clips", type=int, default=16, help="clips per pool run")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--audio-dir", type=Path, help="clips folder (default ../shared/data/librosa/audio)")
    ap.add_argument("--logmel-gpu", action="store_true", help="also time log-mel on CUDA")
    ap.add_argument("--logmel-only", action="store_true", help="only time log-mel on CUDA")
    ap.add_argument("--gpu-only", action="store_true",
                    help="only the CUDA numbers: log-mel clips/s and the cnn embedding of 50,000 clips")
    args = ap.parse_args()
    if args.logmel_only or args.gpu_only:
        res = {"logmel_gpu": logmel_gpu(256, 20)}
        if args.gpu_only:
            res["cnn_embedding_gpu"] = cnn_embedding_gpu()
        if args.json:
            args.json.write_text(json.dumps(res, indent=2))
        return

    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    from core.audio.features import clip_features, naive_features

    clips, source = load_clips(max(args.clips, args.pool_clips), args.audio_dir or AUDIO_DIR)
    print(f"clips: {source}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    res = {
        "source": source,
        "load_average_1min": os.getloadavg()[0],
        "one_core_ours": one_core(clip_features, clips[: args.clips], args.repeats),
        "one_core_naive": one_core(naive_features, clips[: args.clips], 1),
    }
    for key in ("one_core_ours", "one_core_naive"):
        r = res[key]
        print(f"{key:16s} wall {r['wall_ms_median']:7.1f} ms (min {r['wall_ms_min']:6.1f})   "
              f"cpu {r['cpu_ms_median']:7.1f} ms (min {r['cpu_ms_min']:6.1f})  per 30 s clip")  # fmt: skip
    pool_clips = clips[: args.pool_clips]
    res["workers"] = args.workers
    res["pool_clips_per_s_ours"] = pool_rate(_ours, pool_clips, args.workers)
    res["pool_clips_per_s_naive"] = pool_rate(_naive, pool_clips, args.workers)
    print(f"{args.workers} workers, {len(pool_clips)} clips: ours {res['pool_clips_per_s_ours']:.2f} clips/s, "
          f"naive {res['pool_clips_per_s_naive']:.2f} clips/s "
          f"({res['pool_clips_per_s_ours'] / res['pool_clips_per_s_naive']:.1f}x)")  # fmt: skip
    res["load_average_1min_end"] = os.getloadavg()[0]
    if args.logmel_gpu:
        res["logmel_gpu"] = logmel_gpu(256, 20)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
