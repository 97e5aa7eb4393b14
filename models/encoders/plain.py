"""The two condition sources that need no learning: the genre as one-hot, and the standardised attributes.

They give every GAN an upper reference (``genre``: the label itself) and the seed study's metadata condition
(``attributes``: Spotify's 12 audio attributes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.config.schema import EncodersConfig
from core.data.prepared import ATTRIBUTES, PreparedDataset
from core.errors import UserError
from models.encoders.base import Standardizer, check_rows, read_state, register, write_state


@register("genre")
class GenreEncoder:
    """One-hot genre (d = number of genres); tracks without a genre get the zero vector."""

    def __init__(self, cfg: EncodersConfig | None = None, device: str | None = None):
        self.genres: list[str] = []

    @property
    def dim(self) -> int:
        return len(self.genres)

    def fit(self, ds: PreparedDataset, train_rows, val_rows, cfg: EncodersConfig | None = None) -> GenreEncoder:
        self.genres = list(ds.genres)
        return self

    def encode(self, ds: PreparedDataset, rows: np.ndarray | None = None) -> np.ndarray:
        if list(ds.genres) != self.genres:
            raise UserError(f"dataset {ds.name!r} has genres {ds.genres}, the encoder was fit on {self.genres}")
        rows = check_rows(ds, rows)
        idx = ds.genre_idx[rows]
        out = np.zeros((len(rows), self.dim), np.float32)
        ok = idx >= 0
        out[np.flatnonzero(ok), idx[ok]] = 1.0
        return out

    def save(self, directory: str | Path) -> Path:
        return write_state(directory, self.name, {}, {"genres": self.genres, "dim": self.dim})

    @classmethod
    def load(cls, directory: str | Path) -> GenreEncoder:
        enc = cls()
        enc.genres = list(read_state(directory)["meta"]["genres"])
        return enc


def check_attributes(ds: PreparedDataset) -> None:
    """UserError when the dataset has no attribute columns (a collection from outside Spotify's API)."""
    if not ds.attributes_available:
        raise UserError(
            f"the 'attributes' condition is unavailable for dataset {ds.name!r}: its track table had none of the "
            f"Spotify attribute columns ({', '.join(ATTRIBUTES)}); use genre or an audio encoder (e.g. pca)"
        )


@register("attributes")
class AttributesEncoder:
    """The Spotify attributes the dataset has, standardised with train-split mean/std (missing values -> the mean)."""

    def __init__(self, cfg: EncodersConfig | None = None, device: str | None = None):
        self.scaler: Standardizer | None = None
        self.columns = list(ATTRIBUTES)

    @property
    def dim(self) -> int:
        return len(self.columns)

    def _raw(self, ds: PreparedDataset, rows: np.ndarray) -> np.ndarray:
        table = ds.tracks.iloc[rows]
        return np.stack([table[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in self.columns], axis=1)

    def fit(self, ds: PreparedDataset, train_rows, val_rows, cfg: EncodersConfig | None = None) -> AttributesEncoder:
        check_attributes(ds)
        self.columns = [c for c in ATTRIBUTES if c in ds.attributes_available]
        x = self._raw(ds, np.asarray(train_rows, np.int64))
        mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0) if len(x) else np.zeros(self.dim)
        mean = np.nan_to_num(mean)
        x = np.where(np.isfinite(x), x, mean)
        self.scaler = Standardizer.fit(x)
        return self

    def encode(self, ds: PreparedDataset, rows: np.ndarray | None = None) -> np.ndarray:
        if self.scaler is None:
            raise RuntimeError("attributes encoder used before fit")
        x = self._raw(ds, check_rows(ds, rows))
        x = np.where(np.isfinite(x), x, self.scaler.mean)
        return self.scaler(x)

    def save(self, directory: str | Path) -> Path:
        return write_state(directory, self.name, self.scaler.state(), {"columns": self.columns, "dim": self.dim})

    @classmethod
    def load(cls, directory: str | Path) -> AttributesEncoder:
        st = read_state(directory)
        enc = cls()
        enc.columns = list(st["meta"]["columns"])
        enc.scaler = Standardizer.from_state({k: v.numpy() for k, v in st["tensors"].items()})
        return enc
