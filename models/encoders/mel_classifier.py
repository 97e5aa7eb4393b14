"""What the ``cnn`` and ``rnn`` encoders share: a genre classifier over log-mel frames whose penultimate layer is
the embedding. Subclasses say which network to build and how to standardise its input; fitting (train split only,
early stopping on val), encoding and the on-disk format live here once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmark.config.schema import EncodersConfig
from benchmark.data.prepared import PreparedDataset
from benchmark.errors import UserError
from models.encoders.base import check_rows, labelled, read_state, write_state
from models.encoders.train_utils import LogMelFrames, embed_rows, fit_loop, resolve_device, seeded


class MelGenreEncoder:
    """Base of the log-mel genre-classifier encoders (``name`` is set by ``@register``)."""

    name: str
    encode_batch: int | None = None  # None: cfg.batch_size

    def __init__(self, cfg: EncodersConfig | None = None, device: str | None = None):
        self.cfg = cfg or EncodersConfig()
        self.device = resolve_device(device or "cpu")
        self.net: nn.Module | None = None
        self.history: dict = {}
        self.n_classes = 0

    # -- what a subclass provides
    def build(self, cfg: EncodersConfig, n_classes: int) -> nn.Module:
        raise NotImplementedError

    def standardise(self, net: nn.Module, frames: LogMelFrames, train_rows: np.ndarray) -> None:
        """Fit the network's input standardisation on the training rows."""
        raise NotImplementedError

    # -- shared
    @property
    def dim(self) -> int:
        return int(self.cfg.dim)

    def _frames(self, ds: PreparedDataset) -> LogMelFrames:
        return LogMelFrames(ds, self.cfg.n_mels, self.cfg.seconds, self.device, self.cfg.cache_mb)

    def fit(self, ds: PreparedDataset, train_rows, val_rows, cfg: EncodersConfig | None = None):
        self.cfg = cfg = cfg or self.cfg
        train_rows, val_rows = labelled(ds, train_rows), labelled(ds, val_rows)
        if len(train_rows) < 2:
            raise UserError(f"{self.name} needs labelled training tracks; dataset {ds.name!r} has {len(train_rows)}")
        frames = self._frames(ds)
        labels = torch.from_numpy(ds.genre_idx.copy()).to(self.device)
        self.n_classes = len(ds.genres)
        with seeded(cfg.seed) as gen:
            net = self.build(cfg, self.n_classes).to(self.device)
            self.standardise(net, frames, train_rows)

            def loss(rows: np.ndarray):
                logits = net(frames(rows))
                return nn.functional.cross_entropy(logits, labels[torch.from_numpy(rows).to(self.device)]), len(rows)

            self.history = fit_loop(net, train_rows, val_rows, loss, cfg, gen, self.name)
        self.net = net
        return self

    def encode(self, ds: PreparedDataset, rows: np.ndarray | None = None) -> np.ndarray:
        if self.net is None:
            raise RuntimeError(f"{self.name} encoder used before fit")
        frames = self._frames(ds)
        self.net.eval()
        batch = self.encode_batch or self.cfg.batch_size
        return embed_rows(lambda r: self.net.embedding(frames(r)), check_rows(ds, rows), batch)

    def save(self, directory: str | Path) -> Path:
        meta = {"dim": self.dim, "n_classes": self.n_classes, "cfg": self.cfg.model_dump(), "history": self.history}
        return write_state(directory, self.name, {"net": self.net.state_dict()}, meta)

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None):
        st = read_state(directory)
        meta = st["meta"]
        enc = cls(EncodersConfig(**meta["cfg"]), device)
        enc.n_classes = meta["n_classes"]
        enc.net = enc.build(enc.cfg, enc.n_classes)
        enc.net.load_state_dict(st["tensors"]["net"])
        enc.net.to(enc.device).eval()
        enc.history = meta.get("history", {})
        return enc
