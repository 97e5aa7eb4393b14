"""Training data: covers with their condition vectors, drawn by a seeded, resumable, per-rank infinite sampler."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from core.data.loader import CoverDataset, keep_batch
from core.data.prepared import PreparedDataset


class InfiniteSampler(Sampler[int]):
    """Endless indices: a fresh seeded permutation per epoch, rank r takes every world-th index.

    ``start`` skips the first indices this rank would have drawn, so a resumed run sees exactly the batches an
    uninterrupted one would have seen.
    """

    def __init__(self, n: int, *, seed: int = 0, rank: int = 0, world: int = 1, start: int = 0):
        if n <= 0:
            raise ValueError("no training images")
        self.n, self.seed, self.rank, self.world, self.start = n, seed, rank, world, start

    def __iter__(self) -> Iterator[int]:
        pos = self.start * self.world + self.rank  # position in the global stream
        epoch, offset = divmod(pos, self.n)
        while True:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            while offset < self.n:
                yield int(perm[offset])
                pos += self.world
                offset += self.world
            epoch += 1
            offset -= self.n


def training_loader(
    ds: PreparedDataset,
    res: int,
    conditions: np.ndarray | None,
    rows: np.ndarray,
    *,
    batch: int,
    seed: int,
    rank: int = 0,
    world: int = 1,
    start_batches: int = 0,
    workers: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (uint8 images [B, 3, R, R], condition [B, d]) batches over ``rows`` of the dataset."""
    data = CoverDataset(ds, res, conditions=conditions, rows=rows)
    sampler = InfiniteSampler(len(data), seed=seed, rank=rank, world=world, start=start_batches * batch)
    loader = DataLoader(
        data,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        collate_fn=keep_batch,
        # its own generator: creating the iterator draws a base seed, which must not consume the global RNG
        # (a resumed run restores that RNG and has to continue it exactly as the uninterrupted run did)
        generator=torch.Generator().manual_seed(seed * 7919 + rank),
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )
    for images, cond, _ in loader:
        yield images, cond
