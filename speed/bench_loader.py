"""Cover DataLoader throughput from the memory-mapped array (target: >= 20,000 images/s at 64 px on CPU).

Baseline in the same run: a plain per-item Dataset through the default collate (what a naive loader does).
Usage: python -m speed.bench_loader [--n 20000] [--res 64] [--batch 256]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from core import paths
from core.data.loader import CoverDataset, cover_loader
from core.data.prepared import ATTRIBUTES, DatasetWriter, PreparedDataset


def build(n: int, res: int) -> PreparedDataset:
    w = DatasetWriter(paths.dataset("loaderbench"), n, [res], 16, 22050, force=True)
    covers = np.load(w.cover_file(res), mmap_mode="r+")
    rng = np.random.default_rng(0)
    for s in range(0, n, 4096):
        covers[s : s + 4096] = rng.integers(0, 256, size=covers[s : s + 4096].shape, dtype=np.uint8)
    covers.flush()
    del covers
    rows = [{**dict.fromkeys(ATTRIBUTES, 0.0), "track_id": f"t{i}", "genre": f"g{i % 8}"} for i in range(n)]
    w.finish(pd.DataFrame(rows), kind="bench", source={})
    return PreparedDataset.open("loaderbench")


class PerItem(Dataset):
    def __init__(self, data: CoverDataset):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]


def rate(loader, epochs: int = 2) -> float:
    best = 0.0
    for _ in range(epochs):
        t0, n = time.perf_counter(), 0
        for imgs, _, _ in loader:
            n += len(imgs)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths.set_roots(tmp, tmp)
        ds = build(args.n, args.res)
        ours = rate(cover_loader(ds, args.res, None, batch_size=args.batch, shuffle=True))
        naive = rate(DataLoader(PerItem(CoverDataset(ds, args.res, None)), batch_size=args.batch, shuffle=True))
    out = {
        "images_per_s_batched_memmap": round(ours),
        "images_per_s_per_item_baseline": round(naive),
        "ratio": round(ours / naive, 1),
        "n": args.n,
        "res": args.res,
        "batch": args.batch,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
