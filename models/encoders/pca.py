"""``pca``: the seed study's first encoder, standardised FMA-style features projected on d principal axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.config.schema import EncodersConfig
from core.data.prepared import PreparedDataset
from core.errors import UserError
from models.encoders.base import Standardizer, check_rows, read_state, register, write_state
from models.encoders.train_utils import feature_matrix


def fit_pca(z: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal axes of standardised rows ``z`` via SVD: (components (d, F), explained variance ratio (d,),
    centre (F,)). Signs are fixed (largest-magnitude loading positive) so results do not flip between runs."""
    z = np.asarray(z, np.float64)
    centre = z.mean(axis=0)
    _, s, vt = np.linalg.svd(z - centre, full_matrices=False)
    d = min(d, vt.shape[0])
    comps = vt[:d]
    flip = np.sign(comps[np.arange(d), np.abs(comps).argmax(axis=1)])
    comps = comps * flip[:, None]
    var = s**2
    ratio = var[:d] / var.sum() if var.sum() > 0 else np.zeros(d)
    return comps.astype(np.float32), ratio.astype(np.float32), centre.astype(np.float32)


def pca_reconstruction_mse(z_train: np.ndarray, z_test: np.ndarray, d: int) -> float:
    """Mean squared error per value of reconstructing standardised ``z_test`` from d axes fit on ``z_train``."""
    comps, _, centre = fit_pca(z_train, d)
    c = z_test - centre
    rec = (c @ comps.T) @ comps
    return float(np.mean((c - rec) ** 2))


@register("pca")
class PCAEncoder:
    """Standardise with train statistics, project on the top-d principal axes of the train rows."""

    def __init__(self, cfg: EncodersConfig | None = None, device: str | None = None):
        self.cfg = cfg or EncodersConfig()
        self.scaler: Standardizer | None = None
        self.components = np.zeros((0, 0), np.float32)
        self.centre = np.zeros(0, np.float32)
        self.explained_variance_ratio = np.zeros(0, np.float32)

    @property
    def dim(self) -> int:
        return int(self.components.shape[0])

    def standardised(self, ds: PreparedDataset, rows: np.ndarray | None = None) -> np.ndarray:
        return self.scaler(feature_matrix(ds)[check_rows(ds, rows)])

    def fit(self, ds: PreparedDataset, train_rows, val_rows, cfg: EncodersConfig | None = None) -> PCAEncoder:
        cfg = cfg or self.cfg
        train_rows = np.asarray(train_rows, np.int64)
        if len(train_rows) < 2:
            raise UserError(f"pca needs at least 2 training tracks, dataset {ds.name!r} has {len(train_rows)}")
        x = feature_matrix(ds)[train_rows]
        self.scaler = Standardizer.fit(x)
        self.components, self.explained_variance_ratio, self.centre = fit_pca(self.scaler(x), cfg.dim)
        return self

    def project(self, z: np.ndarray) -> np.ndarray:
        return ((z - self.centre) @ self.components.T).astype(np.float32)

    def encode(self, ds: PreparedDataset, rows: np.ndarray | None = None) -> np.ndarray:
        if self.scaler is None:
            raise RuntimeError("pca encoder used before fit")
        return self.project(self.standardised(ds, rows))

    def reconstruction_mse(self, z: np.ndarray) -> float:
        c = z - self.centre
        return float(np.mean((c - (c @ self.components.T) @ self.components) ** 2))

    def save(self, directory: str | Path) -> Path:
        tensors = {
            "scaler": self.scaler.state(),
            "components": self.components,
            "centre": self.centre,
            "explained_variance_ratio": self.explained_variance_ratio,
        }
        meta = {
            "dim": self.dim,
            "explained_variance": float(self.explained_variance_ratio.sum()),
            "n_features": int(self.components.shape[1]),
        }
        return write_state(directory, self.name, tensors, meta)

    @classmethod
    def load(cls, directory: str | Path) -> PCAEncoder:
        t = read_state(directory)["tensors"]
        enc = cls()
        enc.scaler = Standardizer.from_state({k: v.numpy() for k, v in t["scaler"].items()})
        enc.components = t["components"].numpy()
        enc.centre = t["centre"].numpy()
        enc.explained_variance_ratio = t["explained_variance_ratio"].numpy()
        return enc
