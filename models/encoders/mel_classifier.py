"""What the ``cnn`` and ``rnn`` encoders share: a genre classifier over log-mel frames whose penultimate layer is
the embedding. Subclasses say which network to build and how to standardise its input; fitting (train split only,
early stopping on val), encoding and the on-disk format live here once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.config.schema import EncodersConfig
from core.data.prepared import PreparedDataset
from core.devices import resolve_device
from core.errors import UserError
from models.encoders.base import check_rows, labelled, read_state, write_state
from models.encoders.train_utils import LogMelFrames, embed_rows, fit_loop, seeded, shared_frames


class MelGenreEncoder:
    """Base of the log-mel genre-classifier encoders (``name`` is set by ``@register``)."""

    name: str
    encode_batch: int | None = None  # None: cfg.batch_size
    # subclasses whose network can reconstruct its input set this: tracks without a genre then train it as a
    # sequence autoencoder (``reconstruction_weight`` > 0) instead of being left out
    semi_supervised: bool = False

    def __init__(self, cfg: EncodersConfig | None = None, device: str | None = None):
        self.cfg = cfg or EncodersConfig()
        self.device = resolve_device(device or "cpu")
        self.net: nn.Module | None = None
        self.history: dict = {}
        self.n_classes = 0
        self.decoder = False  # whether the network was built with (and trained through) a reconstruction decoder

    # -- what a subclass provides
    def build(self, cfg: EncodersConfig, n_classes: int) -> nn.Module:
        raise NotImplementedError

    def standardise(self, net: nn.Module, frames: LogMelFrames, train_rows: np.ndarray) -> None:
        """Fit the network's input standardisation on the training rows."""
        raise NotImplementedError

    def reconstruction_weight(self, cfg: EncodersConfig) -> float:
        return 0.0

    # -- shared
    @property
    def dim(self) -> int:
        return int(self.cfg.dim)

    def _frames(self, ds: PreparedDataset) -> LogMelFrames:
        return shared_frames(ds, self.cfg.n_mels, self.cfg.seconds, self.device, self.cfg.cache_mb)

    def fit(self, ds: PreparedDataset, train_rows, val_rows, cfg: EncodersConfig | None = None):
        self.cfg = cfg = cfg or self.cfg
        weight = self.reconstruction_weight(cfg) if self.semi_supervised else 0.0
        train_rows, val_rows = np.asarray(train_rows, np.int64), np.asarray(val_rows, np.int64)
        n_lab = len(labelled(ds, train_rows))
        self.decoder = weight > 0 and n_lab < len(train_rows)
        if not self.decoder:  # classifier only: tracks without a genre cannot take part
            train_rows, val_rows = labelled(ds, train_rows), labelled(ds, val_rows)
        if n_lab < 2 and not self.decoder:
            raise UserError(f"{self.name} needs labelled training tracks; dataset {ds.name!r} has {n_lab}")
        frames = self._frames(ds)
        labels = torch.from_numpy(ds.genre_idx.copy()).to(self.device)
        self.n_classes = len(ds.genres)
        with seeded(cfg.seed) as gen:
            net = self.build(cfg, self.n_classes).to(self.device)
            self.standardise(net, frames, train_rows)

            def loss(rows: np.ndarray):
                mel = frames(rows)
                y = labels[torch.from_numpy(rows).to(self.device)]
                has = y >= 0
                if not self.decoder:
                    return nn.functional.cross_entropy(net(mel), y), len(rows)
                # labelled tracks: genre cross-entropy; the others: sequence reconstruction (mean over the batch)
                total = mel.new_zeros(())
                if bool(has.any()):
                    ce = nn.functional.cross_entropy(net(mel[has]), y[has], reduction="sum")
                    total = total + ce
                if not bool(has.all()):
                    total = total + weight * net.reconstruction_error(mel[~has]).sum()
                return total / len(rows), len(rows)

            self.history = fit_loop(net, train_rows, val_rows, loss, cfg, gen, self.name)
            self.history["unlabelled_train_tracks"] = int(len(train_rows) - n_lab)
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
        meta = {"dim": self.dim, "n_classes": self.n_classes, "cfg": self.cfg.model_dump(), "history": self.history,
                "decoder": self.decoder}
        return write_state(directory, self.name, {"net": self.net.state_dict()}, meta)

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None):
        st = read_state(directory)
        meta = st["meta"]
        enc = cls(EncodersConfig(**meta["cfg"]), device)
        enc.n_classes = meta["n_classes"]
        enc.decoder = bool(meta.get("decoder", False))
        enc.net = enc.build(enc.cfg, enc.n_classes)
        enc.net.load_state_dict(st["tensors"]["net"])
        enc.net.to(enc.device).eval()
        enc.history = meta.get("history", {})
        return enc
