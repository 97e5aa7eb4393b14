"""``rnn``: a bidirectional GRU over MFCC + delta + delta-delta frames, trained to classify genre.

The MFCCs are computed in torch from the shared log-mel (DCT-II of the dB mel, as librosa does), then pooled
over ``frame_pool`` frames to keep sequences short; the embedding is a d-wide linear layer between the pooled GRU
states (mean and max over time) and the genre head.
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
from models.encoders.train_utils import (
    LogMelFrames,
    channel_stats,
    dct_matrix,
    deltas,
    embed_rows,
    fit_loop,
    resolve_device,
    seeded,
)


class MFCCFrames(nn.Module):
    """dB log-mel (B, n_mels, T) -> standardised [MFCC, delta, delta2] (B, 3 n_mfcc, T / pool)."""

    def __init__(self, n_mels: int, n_mfcc: int, pool: int):
        super().__init__()
        self.pool = pool
        self.register_buffer("dct", dct_matrix(n_mfcc, n_mels))
        self.register_buffer("mean", torch.zeros(3 * n_mfcc))
        self.register_buffer("std", torch.ones(3 * n_mfcc))

    def raw(self, mel_db: torch.Tensor) -> torch.Tensor:
        c = torch.einsum("km,bmt->bkt", self.dct.to(mel_db.dtype), mel_db)
        d1 = deltas(c)
        x = torch.cat([c, d1, deltas(d1)], dim=1)
        if self.pool > 1 and x.shape[-1] >= self.pool:
            x = nn.functional.avg_pool1d(x, self.pool, self.pool)
        return x

    def forward(self, mel_db: torch.Tensor) -> torch.Tensor:
        return (self.raw(mel_db) - self.mean[:, None]) / self.std[:, None]


class GRUClassifier(nn.Module):
    def __init__(self, n_mels: int, n_mfcc: int, pool: int, hidden: int, dim: int, n_classes: int):
        super().__init__()
        self.frames = MFCCFrames(n_mels, n_mfcc, pool)
        self.gru = nn.GRU(3 * n_mfcc, hidden, batch_first=True, bidirectional=True)
        self.embed = nn.Linear(4 * hidden, dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.2), nn.Linear(dim, n_classes))

    def embedding(self, mel_db: torch.Tensor) -> torch.Tensor:
        x = self.frames(mel_db).transpose(1, 2)  # (B, T, C)
        h, _ = self.gru(x)
        return self.embed(torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=1))

    def forward(self, mel_db: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(mel_db))


@register("rnn")
class RNNEncoder:
    def __init__(self, cfg: EncodersConfig | None = None, device: str | None = None):
        self.cfg = cfg or EncodersConfig()
        self.device = resolve_device(device or "cpu")
        self.net: GRUClassifier | None = None
        self.history: dict = {}
        self.n_classes = 0

    @property
    def dim(self) -> int:
        return int(self.cfg.dim)

    def _frames(self, ds: PreparedDataset) -> LogMelFrames:
        return LogMelFrames(ds, self.cfg.n_mels, self.cfg.seconds, self.device, self.cfg.cache_mb)

    def fit(self, ds: PreparedDataset, train_rows, val_rows, cfg: EncodersConfig | None = None) -> RNNEncoder:
        self.cfg = cfg = cfg or self.cfg
        train_rows, val_rows = labelled(ds, train_rows), labelled(ds, val_rows)
        if len(train_rows) < 2:
            raise UserError(f"rnn needs labelled training tracks; dataset {ds.name!r} has {len(train_rows)}")
        frames = self._frames(ds)
        labels = torch.from_numpy(ds.genre_idx.copy()).to(self.device)
        self.n_classes = len(ds.genres)
        with seeded(cfg.seed) as gen:
            net = GRUClassifier(cfg.n_mels, cfg.n_mfcc, cfg.frame_pool, cfg.rnn_hidden, cfg.dim, self.n_classes)
            net = net.to(self.device)
            mean, std = channel_stats(frames, train_rows, lambda m: net.frames.raw(m.float()).double())
            net.frames.mean.copy_(mean.to(self.device))
            net.frames.std.copy_(std.to(self.device))

            def loss(rows: np.ndarray):
                logits = net(frames(rows))
                return nn.functional.cross_entropy(logits, labels[torch.from_numpy(rows).to(self.device)]), len(rows)

            self.history = fit_loop(net, train_rows, val_rows, loss, cfg, gen, "rnn")
        self.net = net
        return self

    def encode(self, ds: PreparedDataset, rows: np.ndarray | None = None) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("rnn encoder used before fit")
        frames = self._frames(ds)
        self.net.eval()
        return embed_rows(lambda r: self.net.embedding(frames(r)), check_rows(ds, rows), self.cfg.batch_size)

    def save(self, directory: str | Path) -> Path:
        meta = {"dim": self.dim, "n_classes": self.n_classes, "cfg": self.cfg.model_dump(), "history": self.history}
        return write_state(directory, self.name, {"net": self.net.state_dict()}, meta)

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None) -> RNNEncoder:
        st = read_state(directory)
        meta = st["meta"]
        enc = cls(EncodersConfig(**meta["cfg"]), device)
        c = enc.cfg
        enc.n_classes = meta["n_classes"]
        enc.net = GRUClassifier(c.n_mels, c.n_mfcc, c.frame_pool, c.rnn_hidden, c.dim, enc.n_classes)
        enc.net.load_state_dict(st["tensors"]["net"])
        enc.net.to(enc.device).eval()
        enc.history = meta.get("history", {})
        return enc
