"""``autoencoder``: an MLP over standardised features with a d-wide linear bottleneck.

A linear bottleneck and a linear output make PCA one of the solutions the network can reach, so on held-out
tracks it should reconstruct at least as well as ``pca`` at the same d; the evaluation records both errors and
says plainly when it does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.config.schema import EncodersConfig
from core.data.prepared import PreparedDataset
from core.errors import UserError
from models.encoders.base import Standardizer, check_rows, read_state, register, write_state
from models.encoders.train_utils import embed_rows, feature_matrix, fit_loop, seeded


class MLPAutoencoder(nn.Module):
    def __init__(self, n_in: int, hidden: list[int], dim: int):
        super().__init__()
        enc: list[nn.Module] = []
        width = n_in
        for h in hidden:
            enc += [nn.Linear(width, h), nn.GELU()]
            width = h
        enc.append(nn.Linear(width, dim))
        dec: list[nn.Module] = []
        width = dim
        for h in reversed(hidden):
            dec += [nn.Linear(width, h), nn.GELU()]
            width = h
        dec.append(nn.Linear(width, n_in))
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


@register("autoencoder")
class AutoencoderEncoder:
    def __init__(self, cfg: EncodersConfig | None = None, device: str | None = None):
        self.cfg = cfg or EncodersConfig()
        self.scaler: Standardizer | None = None
        self.net: MLPAutoencoder | None = None
        self.history: dict = {}

    @property
    def dim(self) -> int:
        return int(self.cfg.dim)

    def standardised(self, ds: PreparedDataset, rows: np.ndarray | None = None) -> np.ndarray:
        return self.scaler(feature_matrix(ds)[check_rows(ds, rows)])

    def fit(self, ds: PreparedDataset, train_rows, val_rows, cfg: EncodersConfig | None = None) -> AutoencoderEncoder:
        self.cfg = cfg = cfg or self.cfg
        train_rows, val_rows = np.asarray(train_rows, np.int64), np.asarray(val_rows, np.int64)
        if len(train_rows) < 2:
            raise UserError(f"autoencoder needs at least 2 training tracks, dataset {ds.name!r} has {len(train_rows)}")
        x = feature_matrix(ds)
        self.scaler = Standardizer.fit(x[train_rows])
        z = torch.from_numpy(self.scaler(x))
        with seeded(cfg.seed) as gen:
            self.net = MLPAutoencoder(z.shape[1], list(cfg.ae_hidden), cfg.dim)

            def loss(rows: np.ndarray):
                b = z[torch.from_numpy(rows)]
                return nn.functional.mse_loss(self.net(b), b), len(rows)

            self.history = fit_loop(self.net, train_rows, val_rows, loss, cfg, gen, "autoencoder")
        return self

    def reconstruction_mse(self, z: np.ndarray) -> float:
        with torch.no_grad():
            t = torch.from_numpy(np.asarray(z, np.float32))
            return float(nn.functional.mse_loss(self.net(t), t))

    def encode(self, ds: PreparedDataset, rows: np.ndarray | None = None) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("autoencoder used before fit")
        z = torch.from_numpy(self.standardised(ds, rows))
        self.net.eval()
        return embed_rows(lambda r: self.net.encoder(z[torch.from_numpy(r)]), np.arange(len(z)))

    def save(self, directory: str | Path) -> Path:
        n_in = self.net.encoder[0].in_features
        meta = {"dim": self.dim, "n_in": n_in, "hidden": list(self.cfg.ae_hidden), "history": self.history}
        tensors = {"scaler": self.scaler.state(), "net": self.net.state_dict()}
        return write_state(directory, self.name, tensors, meta)

    @classmethod
    def load(cls, directory: str | Path) -> AutoencoderEncoder:
        st = read_state(directory)
        meta, t = st["meta"], st["tensors"]
        enc = cls(EncodersConfig(dim=meta["dim"], ae_hidden=meta["hidden"]))
        enc.scaler = Standardizer.from_state({k: v.numpy() for k, v in t["scaler"].items()})
        enc.net = MLPAutoencoder(meta["n_in"], meta["hidden"], meta["dim"])
        enc.net.load_state_dict(t["net"])
        enc.net.eval()
        enc.history = meta.get("history", {})
        return enc
