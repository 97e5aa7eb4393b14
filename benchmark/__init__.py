"""coverbench's public front door: judge any conditional generator, the toolkit's own or yours.

    import benchmark as cb
    result = cb.evaluate_images("my_covers/", "my_covers/manifest.csv", "default", condition="genre", run="default",
                                name="my_gan")
    result.conditioning_works            # "yes", "no" or "inconclusive", with the evidence in result.metrics

Three entry points, one code path: :func:`evaluate_images` (a folder, an array or a tensor, plus what each image
was asked for), :func:`evaluate_generator` (any ``G(z, c)``), and :class:`ConditioningMetric` (a
``torchmetrics.Metric`` for your own training loop). Each returns an :class:`Evaluation` and can write the same
``metrics.json`` and plots as ``bench evaluate``. The application itself is the ``bench`` CLI
(``benchmark.cli``) over one orchestration package (``benchmark.pipeline``), on ``models``, ``metrics`` and
``reports``, which stand on ``core``. Names are imported on first use, so ``bench`` starts without loading them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from core import __version__

_EXPORTS = {
    "evaluate_images": "benchmark.pipeline.evaluate",
    "evaluate_generator": "benchmark.pipeline.evaluate",
    "evaluate_model": "benchmark.pipeline.evaluate",
    "evaluate_run": "benchmark.pipeline.evaluate",
    "export_samples": "benchmark.pipeline.evaluate",
    "load_images": "benchmark.pipeline.evaluate",
    "Evaluation": "benchmark.pipeline.judge",
    "Generator": "benchmark.pipeline.sources",
    "ConditioningMetric": "benchmark.pipeline.streaming",
    "train_all": "benchmark.pipeline.train",
    "encode": "benchmark.pipeline.encode",
    "register_extractor": "metrics.features.extractors",
    "register_embedding": "benchmark.pipeline.encode",  # under the run's lock
    "Extractor": "metrics.features.extractors",
    "ExtractorRequest": "metrics.features.extractors",
    "PreparedDataset": "core.data.prepared",
    "cover_loader": "core.data.loader",
    "to_float": "core.data.loader",
    "load_config": "core.config",
    "UserError": "core.errors",
}
_RENAMED = {"open_dataset": ("core.data.prepared", "PreparedDataset.open"), "run_paths": ("core.paths", "run")}

__all__ = [  # written out (not derived) so linters and readers see the public names; a test holds it to _EXPORTS
    "ConditioningMetric", "Evaluation", "Extractor", "ExtractorRequest", "Generator", "PreparedDataset",
    "UserError", "__version__", "cover_loader", "encode", "evaluate_generator", "evaluate_images", "evaluate_model",
    "evaluate_run", "export_samples", "load_config", "load_images", "open_dataset", "register_embedding",
    "register_extractor", "run_paths", "to_float", "train_all",
]  # fmt: skip

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from benchmark.pipeline.encode import encode, register_embedding
    from benchmark.pipeline.evaluate import (
        evaluate_generator,
        evaluate_images,
        evaluate_model,
        evaluate_run,
        export_samples,
        load_images,
    )
    from benchmark.pipeline.judge import Evaluation
    from benchmark.pipeline.sources import Generator
    from benchmark.pipeline.streaming import ConditioningMetric
    from benchmark.pipeline.train import train_all
    from core.config import load_config
    from core.data.loader import cover_loader, to_float
    from core.data.prepared import PreparedDataset
    from core.errors import UserError
    from metrics.features.extractors import Extractor, ExtractorRequest, register_extractor


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _RENAMED:
        module, attr = _RENAMED[name]
        value = importlib.import_module(module)
        for part in attr.split("."):
            value = getattr(value, part)
    else:
        raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
