"""Torch access to prepared covers, batched straight from the memory-mapped array.

``CoverDataset.__getitems__`` fetches a whole batch with one sorted fancy index into the memmap, which is what
makes tens of thousands of images per second possible on a CPU; images stay uint8 NCHW until they reach the
device (``to_float``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from core.data.prepared import PreparedDataset


class CoverDataset(Dataset):
    """Covers of one split at one resolution, with genre labels and optional condition vectors.

    Items are ``(image uint8 [3, R, R], condition float32 [d] or empty, genre index)``.
    """

    def __init__(
        self,
        ds: PreparedDataset,
        res: int,
        split: str | None = None,
        conditions: np.ndarray | None = None,
        rows: np.ndarray | None = None,
    ):
        """``rows`` (dataset row indices) overrides ``split`` when given."""
        self.covers = ds.covers(res)
        self.rows = ds.split_rows(split) if rows is None else np.asarray(rows, dtype=np.int64)
        self.labels = torch.from_numpy(ds.genre_idx[self.rows].copy())
        if conditions is not None:
            conditions = np.asarray(conditions, dtype=np.float32)
            if conditions.shape[0] != len(ds):
                raise ValueError(f"conditions have {conditions.shape[0]} rows, dataset has {len(ds)}")
            self.conditions = torch.from_numpy(conditions[self.rows].copy())
        else:
            self.conditions = torch.zeros(len(self.rows), 0)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        img = torch.from_numpy(np.array(self.covers[self.rows[i]])).permute(2, 0, 1)
        return img, self.conditions[i], self.labels[i]

    def __getitems__(self, idx: list[int]):
        idx = np.asarray(idx, dtype=np.int64)
        order = np.argsort(self.rows[idx], kind="stable")
        imgs = np.empty((len(idx), *self.covers.shape[1:]), dtype=np.uint8)
        imgs[order] = self.covers[self.rows[idx[order]]]
        batch = torch.from_numpy(imgs).permute(0, 3, 1, 2)
        t = torch.from_numpy(idx)
        return batch, self.conditions[t], self.labels[t]


def keep_batch(batch):
    """Collate for ``__getitems__`` batches, which arrive whole (module level, so worker processes can pickle it)."""
    return batch


def cover_loader(
    ds: PreparedDataset,
    res: int,
    split: str | None = "train",
    batch_size: int = 256,
    shuffle: bool = True,
    conditions: np.ndarray | None = None,
    workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader yielding ``(uint8 images [B, 3, R, R], conditions [B, d], genre indices [B])``."""
    data = CoverDataset(ds, res, split, conditions)
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=gen,
        num_workers=workers,
        collate_fn=keep_batch,
        drop_last=drop_last,
        persistent_workers=workers > 0,
    )


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] to float in [-1, 1], the GANs' image range."""
    return images.float().div_(127.5).sub_(1.0)
