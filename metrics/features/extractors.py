"""Image feature extractors behind one small interface and a registry, and cached real-cover features per split.

Every judgement reads covers through an :class:`Extractor` (uint8 NHWC -> float32 (N, d)). Extractors are made by
name from a registry: ``covernet`` (a small CNN trained on the dataset's training covers), ``inception``
(clean-fid's Inception-v3 weights) and ``colour`` (no weights) are built in; :func:`register_extractor` adds one
(a user's own feature network), and a ``scheme:argument`` kind (``file:weights.pt``) goes to the factory
registered under ``scheme``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from core.config.schema import EvalConfig
from core.data.prepared import PreparedDataset
from core.errors import UserError
from metrics.features.cache import CachedFeatures, cached_features, dataset_key_parts
from metrics.features.extractor import Extractor, ExtractorRequest

__all__ = [
    "Extractor", "ExtractorRequest", "ExtractorFactory", "extractor_description", "extractor_names", "make_extractor",
    "real_features", "register_extractor",
]  # fmt: skip


ExtractorFactory = Callable[[ExtractorRequest], Extractor]
_REGISTRY: dict[str, ExtractorFactory] = {}


def register_extractor(name: str, factory: ExtractorFactory, *, replace: bool = False) -> None:
    """Make ``factory`` available as ``features=name`` (and as ``name:ARG`` for factories that read
    ``request.argument``). Refuses to shadow a registered name unless ``replace``."""
    if not name or ":" in name:
        raise UserError(f"extractor name {name!r}: use a plain name without ':'")
    if name in _REGISTRY and not replace:
        raise UserError(f"extractor {name!r} is registered already (pass replace=True to override it)")
    _REGISTRY[name] = factory


def extractor_names() -> list[str]:
    return sorted(_REGISTRY)


def make_extractor(
    ds: PreparedDataset | None, kind: str, res: int, cfg: EvalConfig, device: torch.device
) -> Extractor:
    """The extractor ``kind`` (a registered name, or ``scheme:argument``) for covers of ``res`` px."""
    scheme, _, argument = str(kind).partition(":")
    factory = _REGISTRY.get(scheme)
    if factory is None:
        raise UserError(
            f"unknown feature extractor {kind!r}: choose one of {', '.join(extractor_names())} "
            "(or file:PATH.pt for your own feature network)"
        )
    return factory(ExtractorRequest(ds=ds, res=res, cfg=cfg, device=device, argument=argument))


def _covernet(r: ExtractorRequest) -> Extractor:
    from metrics.features.covernet import CoverNetConfig, covernet_features, get_covernet

    if r.ds is None:
        raise UserError("covernet features are trained on a dataset's covers: give a dataset")
    cfg = r.cfg
    ccfg = CoverNetConfig(
        res=r.res, width=cfg.covernet_width, epochs=cfg.covernet_epochs, seed=cfg.seed,
        batch_size=cfg.covernet_batch, patience=cfg.covernet_patience,
    )  # fmt: skip
    model, info = get_covernet(r.ds, ccfg, device=str(r.device))
    prep = f"covernet-r{r.res}-w{ccfg.width}-e{ccfg.epochs}-s{ccfg.seed}"
    default = CoverNetConfig()
    if (ccfg.batch_size, ccfg.patience) != (default.batch_size, default.patience):  # old cache keys stay valid
        prep += f"-b{ccfg.batch_size}-p{ccfg.patience}"
    info = {"val_accuracy": info.get("val_accuracy")}
    return Extractor("covernet", prep, lambda x: covernet_features(model, x), info)


def _inception(r: ExtractorRequest) -> Extractor:
    from metrics.features.inception import inception_features

    precision = "tf32" if r.device.type == "cuda" else "fp32"  # inception_features' default on each device
    return Extractor(
        "inception", f"clean-pil-bicubic-299-{precision}", lambda x: inception_features(x, device=r.device),
        {"weights": "2015-12-05", "precision": precision},
    )  # fmt: skip


def _colour(r: ExtractorRequest) -> Extractor:
    from metrics.features.color import DEFAULT_BINS, color_features

    # no learning, no weights: mean RGB and an HSV histogram, the "covers cluster by colour" baseline
    return Extractor("colour", f"mean-rgb+hsv-hist-{'x'.join(map(str, DEFAULT_BINS))}-r{r.res}", color_features)


def _file(r: ExtractorRequest) -> Extractor:
    from metrics.features.user_weights import file_extractor  # your own network: file:PATH.pt, file:ARCH=PATH.pt

    return file_extractor(r)


register_extractor("covernet", _covernet)
register_extractor("inception", _inception)
register_extractor("colour", _colour)
register_extractor("file", _file)


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


def extractor_description(ext: Extractor) -> dict[str, Any]:
    """How ``metrics.json`` names an extractor: its name, preprocessing and whatever its factory recorded."""
    return {"name": ext.name, "preprocessing": ext.preprocessing, **ext.info}
