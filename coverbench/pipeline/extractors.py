"""Image feature extractors behind one small interface, and cached real-cover features per split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.config.schema import EvalConfig
from core.data.prepared import PreparedDataset
from core.errors import UserError
from metrics.features.cache import CachedFeatures, cached_features, dataset_key_parts


@dataclass
class Extractor:
    name: str
    preprocessing: str
    fn: Callable[[np.ndarray], np.ndarray]  # uint8 NHWC -> float32 (N, d)
    info: dict

    def __call__(self, images: np.ndarray, batch: int = 512) -> np.ndarray:
        out = [self.fn(np.asarray(images[s : s + batch])) for s in range(0, len(images), batch)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def make_extractor(ds: PreparedDataset, kind: str, res: int, cfg: EvalConfig, device: torch.device) -> Extractor:
    """``covernet`` (trained on this dataset's training covers, cached), ``inception`` (clean-fid weights) or
    ``colour`` (mean RGB + HSV histogram, no weights)."""
    if kind == "covernet":
        from metrics.features.covernet import CoverNetConfig, covernet_features, get_covernet

        ccfg = CoverNetConfig(
            res=res,
            width=cfg.covernet_width,
            epochs=cfg.covernet_epochs,
            seed=cfg.seed,
            batch_size=cfg.covernet_batch,
            patience=cfg.covernet_patience,
        )
        model, info = get_covernet(ds, ccfg, device=str(device))
        prep = f"covernet-r{res}-w{ccfg.width}-e{ccfg.epochs}-s{ccfg.seed}"
        default = CoverNetConfig()
        if (ccfg.batch_size, ccfg.patience) != (default.batch_size, default.patience):  # old cache keys stay valid
            prep += f"-b{ccfg.batch_size}-p{ccfg.patience}"
        return Extractor(
            "covernet", prep, lambda x: covernet_features(model, x), {"val_accuracy": info.get("val_accuracy")}
        )
    if kind == "inception":
        from metrics.features.inception import inception_features

        precision = "tf32" if device.type == "cuda" else "fp32"  # inception_features' default on each device
        return Extractor(
            "inception",
            f"clean-pil-bicubic-299-{precision}",
            lambda x: inception_features(x, device=device),
            {"weights": "2015-12-05", "precision": precision},
        )
    if kind == "colour":
        from metrics.features.color import DEFAULT_BINS, color_features

        # no learning, no weights: mean RGB and an HSV histogram, the "covers cluster by colour" baseline
        return Extractor("colour", f"mean-rgb+hsv-hist-{'x'.join(map(str, DEFAULT_BINS))}-r{res}", color_features, {})
    raise ValueError(f"unknown extractor {kind!r}")


def real_features(
    ds: PreparedDataset, split: str | None, res: int, ext: Extractor, *, stats: bool = True
) -> tuple[CachedFeatures, np.ndarray]:
    """Features of the real covers of ``split`` at ``res`` (cached by dataset content, split, extractor).

    ``stats=False``: features only, no Gaussian statistics (see ``cached_features``).
    """
    rows = ds.split_rows(split)
    if not len(rows):
        raise UserError(
            f"dataset {ds.name!r} has no {split or 'labelled'} covers: the split was left empty at import (too few "
            "artists for the split shares); `bench data info` lists the split warnings"
        )
    covers = ds.covers(res)
    parts = dataset_key_parts(ds, split, ext.name, ext.preprocessing, res=res)
    cached = cached_features(parts, lambda: ext(covers[rows]), ds.paths.cache_dir / "features", stats=stats)
    return cached, rows
