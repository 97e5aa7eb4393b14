"""Import throughput: tracks/s for ``import_dataset`` on 1 and 2 workers, against a plain soundfile decode loop.

The corpus mimics the Spotify dump: 30 s stereo 44.1 kHz mp3 previews and 640x640 JPEG covers. A few distinct
files are encoded and then copied under many ids (decoding cost is the same, building is much faster).

    .venv/bin/python -m speed.bench_import --tracks 64 --workers 1 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from core.config.schema import ImportConfig, SplitConfig
from core.data.importer.run import import_dataset
from core.data.prepared import ATTRIBUTES
from core.paths import DatasetPaths

DISTINCT = 8
RATE = 44100


def build(root: Path, n: int, seconds: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    (root / "covers").mkdir(parents=True)
    (root / "previews").mkdir()
    proto = root / "proto"
    proto.mkdir()
    t = np.arange(int(RATE * seconds)) / RATE
    for k in range(DISTINCT):
        f = rng.uniform(100, 2000, size=4)
        left = sum(0.2 * np.sin(2 * np.pi * fi * t) for fi in f[:2]) + 0.05 * rng.standard_normal(len(t))
        right = sum(0.2 * np.sin(2 * np.pi * fi * t) for fi in f[2:]) + 0.05 * rng.standard_normal(len(t))
        sf.write(proto / f"{k}.mp3", np.stack([left, right], 1).astype(np.float32), RATE, format="MP3")
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((640, 640), Image.Resampling.BICUBIC)
        img.save(proto / f"{k}.jpg", quality=90)
    with open(root / "tracks.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["track_id", "album_id", "artist_id", "artist_name", "genre", *ATTRIBUTES])
        for i in range(n):
            k = i % DISTINCT
            shutil.copyfile(proto / f"{k}.mp3", root / "previews" / f"t{i:05d}.mp3")
            shutil.copyfile(proto / f"{k}.jpg", root / "covers" / f"a{i:05d}.jpg")
            attrs = [0.5, 0.5, -8.0, 0.05, 0.3, 0.1, 0.1, 0.5, 120.0, 5, 1, 30000]
            w.writerow([f"t{i:05d}", f"a{i:05d}", f"ar{i // 4:04d}", f"Artist {i // 4}", f"g{i % 4}", *attrs])
    shutil.rmtree(proto)


def baseline(root: Path) -> float:
    """Plain soundfile decode loop, one process: tracks/s."""
    files = sorted((root / "previews").glob("*.mp3"))
    t0 = time.perf_counter()
    for p in files:
        sf.read(p, dtype="float32")
    return len(files) / (time.perf_counter() - t0)


def decode_resample(root: Path, seconds: float) -> float:
    """The importer's audio path alone (decode, mix down, resample to 22,050 Hz), one process: tracks/s."""
    from core.data.importer.audio import load_preview

    files = sorted((root / "previews").glob("*.mp3"))
    t0 = time.perf_counter()
    for p in files:
        load_preview(p, 22050, round(seconds * 22050), 1.0)
    return len(files) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--res", type=int, nargs="+", default=[64])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_import_") as tmp:
        root = Path(tmp) / "dump"
        t0 = time.perf_counter()
        build(root, args.tracks, args.seconds)
        print(f"built {args.tracks} tracks in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        rows = {"tracks": args.tracks, "cpu_count": os.cpu_count(), "baseline_soundfile_tracks_per_s": None}
        rows["baseline_soundfile_tracks_per_s"] = round(baseline(root), 1)
        rows["decode_resample_tracks_per_s"] = round(decode_resample(root, args.seconds), 1)
        cfg = ImportConfig(res=args.res, seconds=args.seconds, sample_rate=22050)
        for w in args.workers:
            dest = DatasetPaths(Path(tmp) / "data" / f"w{w}")
            result = import_dataset(root, dest, cfg, SplitConfig(), workers=w)
            assert result.kept == args.tracks, result.rejected.head()
            rows[f"import_{w}w_tracks_per_s"] = round(result.kept / result.seconds, 1)
        rows["baseline_repeat_tracks_per_s"] = round(baseline(root), 1)  # load drifts: bracket the imports
    for k, v in rows.items():
        print(f"{k:36s} {v}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
