"""What an extractor is (:class:`Extractor`: uint8 NHWC covers -> float32 (N, d) features, with what determines
them) and what a factory is given to make one (:class:`ExtractorRequest`). The registry is ``extractors``; the
factories (built in, or a user's own network in ``user_weights``) import only these two."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from core.config.schema import EvalConfig
from core.data.prepared import PreparedDataset


@dataclass
class Extractor:
    """A named feature map with what determines its output (``preprocessing``: part of every cache key)."""

    name: str
    preprocessing: str
    fn: Callable[[np.ndarray], np.ndarray]  # uint8 NHWC -> float32 (N, d)
    info: dict = field(default_factory=dict)

    def __call__(self, images: np.ndarray, batch: int = 512) -> np.ndarray:
        """Features of uint8 NHWC ``images``, ``batch`` at a time, each batch handed over C-contiguous: the
        networks' convolutions take another code path for other memory layouts (a generator's NCHW output seen
        as NHWC), and the same pixels must give the same features bit for bit, however they were made."""
        out = [self.fn(np.ascontiguousarray(images[s : s + batch])) for s in range(0, len(images), batch)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


@dataclass(frozen=True)
class ExtractorRequest:
    """What a factory may use: the dataset (covernet trains on it), the cover size, the evaluation settings, the
    device, and the argument after ``scheme:`` (empty for plain names)."""

    ds: PreparedDataset | None
    res: int
    cfg: EvalConfig
    device: torch.device
    argument: str = ""
