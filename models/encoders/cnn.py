"""``cnn``: a small 2-D CNN over log-mel spectrograms trained to classify genre (the seed study's best encoder).

Conv-BN-ReLU-pool blocks, global average and max pooling, then a d-wide linear layer (the embedding, i.e. the
penultimate layer) and the genre head. Mel bins are standardised with train statistics stored in the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmark.config.schema import EncodersConfig
from benchmark.data.prepared import PreparedDataset
from benchmark.errors import UserError
from models.encoders.base import check_rows, labelled, read_state, register, write_state
from models.encoders.train_utils import LogMelFrames, channel_stats, embed_rows, fit_loop, resolve_device, seeded


class MelCNN(nn.Module):
    def __init__(self, n_mels: int, channels: list[int], dim: int, n_classes: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            layers += [
                nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.embed = nn.Linear(2 * c_in, dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.3), nn.Linear(dim, n_classes))

    def embedding(self, mel_db: torch.Tensor) -> torch.Tensor:
        x = ((mel_db - self.mean[:, None]) / self.std[:, None]).unsqueeze(1)
        h = self.body(x)
        return self.embed(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))

    def forward(self, mel_db: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(mel_db))


@register("cnn")
class CNNEncoder:
    def __init__(self, cfg: EncodersConfig | None = None, device: str | None = None):
        self.cfg = cfg or EncodersConfig()
        self.device = resolve_device(device or "cpu")
        self.net: MelCNN | None = None
        self.history: dict = {}
        self.n_classes = 0

    @property
    def dim(self) -> int:
        return int(self.cfg.dim)

    def _frames(self, ds: PreparedDataset) -> LogMelFrames:
        return LogMelFrames(ds, self.cfg.n_mels, self.cfg.seconds, self.device, self.cfg.cache_mb)

    def fit(self, ds: PreparedDataset, train_rows, val_rows, cfg: EncodersConfig | None = None) -> CNNEncoder:
        self.cfg = cfg = cfg or self.cfg
        train_rows, val_rows = labelled(ds, train_rows), labelled(ds, val_rows)
        if len(train_rows) < 2:
            raise UserError(f"cnn needs labelled training tracks; dataset {ds.name!r} has {len(train_rows)}")
        frames = self._frames(ds)
        labels = torch.from_numpy(ds.genre_idx.copy()).to(self.device)
        self.n_classes = len(ds.genres)
        with seeded(cfg.seed) as gen:
            net = MelCNN(cfg.n_mels, list(cfg.cnn_channels), cfg.dim, self.n_classes).to(self.device)
            mean, std = channel_stats(frames, train_rows)
            net.mean.copy_(mean.to(self.device))
            net.std.copy_(std.to(self.device))

            def loss(rows: np.ndarray):
                logits = net(frames(rows))
                return nn.functional.cross_entropy(logits, labels[torch.from_numpy(rows).to(self.device)]), len(rows)

            self.history = fit_loop(net, train_rows, val_rows, loss, cfg, gen, "cnn")
        self.net = net
        return self

    def encode(self, ds: PreparedDataset, rows: np.ndarray | None = None) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("cnn encoder used before fit")
        frames = self._frames(ds)
        self.net.eval()
        return embed_rows(lambda r: self.net.embedding(frames(r)), check_rows(ds, rows), 256)

    def save(self, directory: str | Path) -> Path:
        meta = {"dim": self.dim, "n_classes": self.n_classes, "cfg": self.cfg.model_dump(), "history": self.history}
        return write_state(directory, self.name, {"net": self.net.state_dict()}, meta)

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None) -> CNNEncoder:
        st = read_state(directory)
        meta = st["meta"]
        enc = cls(EncodersConfig(**meta["cfg"]), device)
        c = enc.cfg
        enc.n_classes = meta["n_classes"]
        enc.net = MelCNN(c.n_mels, list(c.cnn_channels), c.dim, enc.n_classes)
        enc.net.load_state_dict(st["tensors"]["net"])
        enc.net.to(enc.device).eval()
        enc.history = meta.get("history", {})
        return enc
