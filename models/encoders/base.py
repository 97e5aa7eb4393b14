"""The encoder interface, the registry of encoder names, and the on-disk format every encoder shares.

An encoder turns each track of a prepared dataset into a float32 vector (its *condition* for the GANs).
All encoders save the same way: ``model.pt`` (a ``torch.save`` dict of tensors and plain values, loadable with
``torch.load(weights_only=True)``) plus ``meta.json`` for people, both written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from core.config.names import CONDITION_NAMES
from core.config.schema import EncodersConfig
from core.data.prepared import PreparedDataset
from core.errors import UserError
from core.jsonfiles import write_json_atomic

MODEL_FILE = "model.pt"
META_FILE = "meta.json"
FORMAT_VERSION = 1


@runtime_checkable
class Encoder(Protocol):
    """What ``bench encode`` and the GANs rely on."""

    name: str
    dim: int

    def fit(
        self, ds: PreparedDataset, train_rows: np.ndarray, val_rows: np.ndarray, cfg: EncodersConfig
    ) -> Encoder: ...

    def encode(self, ds: PreparedDataset, rows: np.ndarray | None = None) -> np.ndarray: ...

    def save(self, directory: str | Path) -> Path: ...

    @classmethod
    def load(cls, directory: str | Path) -> Encoder: ...


_REGISTRY: dict[str, Callable[[], type]] = {}


def register(name: str):
    """Class decorator: make an encoder available under ``name``."""

    def wrap(cls: type) -> type:
        cls.name = name
        _REGISTRY[name] = lambda: cls
        return cls

    return wrap


# Lazy imports keep ``bench --help`` fast and let one broken encoder not block the others.
_MODULES = {
    "genre": "models.encoders.plain",
    "attributes": "models.encoders.plain",
    "pca": "models.encoders.pca",
    "autoencoder": "models.encoders.autoencoder",
    "rnn": "models.encoders.rnn",
    "cnn": "models.encoders.cnn",
    "musicnn": "models.encoders.musicnn",
}
# pretrained encoders whose weights come from an optional package: named explicitly, never part of "all"
OPTIONAL_ENCODERS: tuple[str, ...] = ("musicnn",)
ENCODER_NAMES: tuple[str, ...] = tuple(n for n in _MODULES if n not in OPTIONAL_ENCODERS)
# encoders that read only the tracks table, so they work on a covers-only dataset; every other one needs audio
TABLE_ENCODERS: tuple[str, ...] = ("genre", "attributes")
assert set(_MODULES) == set(CONDITION_NAMES), "every condition name (core.config.names) has one encoder"


def encoder_class(name: str) -> type:
    if name not in _MODULES:
        raise UserError(f"unknown encoder {name!r}: choose one of {', '.join(_MODULES)} or all")
    if name not in _REGISTRY:
        import importlib

        importlib.import_module(_MODULES[name])
    return _REGISTRY[name]()


def create_encoder(name: str, cfg: EncodersConfig | None = None) -> Encoder:
    return encoder_class(name)(cfg or EncodersConfig())


def load_encoder(directory: str | Path) -> Encoder:
    """Load whichever encoder was saved in ``directory``."""
    state = read_state(directory)
    return encoder_class(state["name"]).load(directory)


# ---- on-disk format ---------------------------------------------------------------------------------------


def _to_tensor(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(v))
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().contiguous()
    if isinstance(v, dict):
        return {k: _to_tensor(x) for k, x in v.items()}
    return v


def write_state(directory: str | Path, name: str, tensors: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Atomically write ``model.pt`` ({format, name, meta, tensors}) and ``meta.json``.

    ``tensors`` may hold numpy arrays, tensors or nested dicts of them (a module's state dict); ``meta`` must
    be JSON-able (it is stored inside the checkpoint as well, so the checkpoint alone is enough to load).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = json.loads(json.dumps(meta))  # plain types only, so weights_only loading accepts it
    payload = {"format": FORMAT_VERSION, "name": name, "meta": meta, "tensors": _to_tensor(tensors)}
    path = d / MODEL_FILE
    tmp = d / f".{MODEL_FILE}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    write_json_atomic(d / META_FILE, {"name": name, "format": FORMAT_VERSION, **meta})
    return path


def read_state(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MODEL_FILE
    if not path.is_file():
        raise UserError(f"no saved encoder at {path} (run `bench encode` first)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != FORMAT_VERSION:
        raise UserError(f"{path}: encoder format {state.get('format')}, this coverbench reads {FORMAT_VERSION}")
    return state


def check_rows(ds: PreparedDataset, rows: np.ndarray | None) -> np.ndarray:
    if rows is None:
        return np.arange(len(ds))
    return np.asarray(rows, dtype=np.int64)


def labelled(ds: PreparedDataset, rows: np.ndarray) -> np.ndarray:
    """The rows that have a genre (genre_idx >= 0): only those can train a genre classifier."""
    rows = np.asarray(rows, dtype=np.int64)
    return rows[ds.genre_idx[rows] >= 0]


class Standardizer:
    """Column mean/std from training rows only; constant columns get std 1 so they map to 0."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        x = np.asarray(x, np.float64)
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        std[~np.isfinite(std) | (std < 1e-8)] = 1.0
        return cls(mean, std)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, t: dict[str, Any]) -> Standardizer:
        return cls(np.asarray(t["mean"]), np.asarray(t["std"]))
