"""The arguments every entry point takes, normalised once: dataset and run by name or object, evaluation settings,
condition vectors, output folder, and what ``metrics.json`` records about the judged model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from core.config import load_config
from core.config.load import describe_validation_error
from core.config.schema import EvalConfig
from core.data.prepared import PreparedDataset
from core.errors import UserError
from core.paths import RunPaths
from core.paths import run as run_paths
from models.conditions import load_conditions


def as_dataset(dataset: PreparedDataset | str) -> PreparedDataset:
    """A prepared dataset, opened by name when given one."""
    return dataset if isinstance(dataset, PreparedDataset) else PreparedDataset.open(str(dataset))


def as_run(run: RunPaths | str | None) -> RunPaths | None:
    """A run's folders, by name when given one (None stays None: nothing to read embeddings from or write to)."""
    return run_paths(run) if isinstance(run, str) else run


def eval_settings(cfg: EvalConfig | None, features: str | None, n: int | None) -> EvalConfig:
    """The evaluation settings with the call's own ``features`` and ``n``. The call's ``seed`` is kept apart: it
    draws the asked tracks, z's and permutations, while ``cfg.seed`` also seeds covernet's training."""
    cfg = cfg or load_config().eval
    values = {k: v for k, v in (("features", features), ("n", n)) if v is not None}
    if not values:
        return cfg
    try:
        return cfg.model_validate({**cfg.model_dump(), **values})
    except ValidationError as e:  # n=10 from Python: the same one line as the CLI's flag check
        raise UserError(f"invalid evaluation setting: {describe_validation_error(e)}") from e


def condition_vectors(ds: PreparedDataset, condition: str | None, run: RunPaths | None) -> np.ndarray | None:
    """Per-track condition vectors (None for an unconditional model: ``None`` or ``"none"``)."""
    if condition in (None, "none"):
        return None
    return load_conditions(ds, condition, run)


def output_folder(out_dir: str | Path | None, run: RunPaths | None, name: str) -> Path | None:
    """Where results go: the folder given, else the run's ``eval/<name>/``, else nowhere."""
    if out_dir is not None:
        return Path(out_dir)
    return run.eval(name) if run is not None else None


def judged_meta(name: str, source: str, run: RunPaths | None, provenance: dict[str, Any] | None) -> dict[str, Any]:
    """What ``metrics.json`` says about the judged model: its name, where its covers came from, its run."""
    return {"model": name, "source": source, "run": None if run is None else run.name, **(provenance or {})}
