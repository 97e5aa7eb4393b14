"""``rnn``: a bidirectional GRU over MFCC + delta + delta-delta frames, trained to classify genre.

The MFCCs are computed in torch from the shared log-mel (DCT-II of the dB mel, as librosa does), then pooled
over ``frame_pool`` frames to keep sequences short; the embedding is a d-wide linear layer between the pooled GRU
states (mean and max over time) and the genre head. Training tracks without a genre (common in imported data)
train it as a sequence autoencoder instead: a GRU decoder rebuilds the standardised frame sequence from the
embedding alone (``rnn_recon_weight``; 0 leaves those tracks out).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from core.config.schema import EncodersConfig
from models.encoders.base import register
from models.encoders.mel_classifier import MelGenreEncoder
from models.encoders.train_utils import LogMelFrames, channel_stats, dct_matrix, deltas


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
    def __init__(self, n_mels: int, n_mfcc: int, pool: int, hidden: int, dim: int, n_classes: int,
                 decoder: bool = False):
        super().__init__()
        self.frames = MFCCFrames(n_mels, n_mfcc, pool)
        self.gru = nn.GRU(3 * n_mfcc, hidden, batch_first=True, bidirectional=True)
        self.embed = nn.Linear(4 * hidden, dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.2), nn.Linear(dim, n_classes))
        if decoder:
            self.decoder = nn.GRU(dim, hidden, batch_first=True)
            self.recon = nn.Linear(hidden, 3 * n_mfcc)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(x)
        return self.embed(torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=1))

    def embedding(self, mel_db: torch.Tensor) -> torch.Tensor:
        return self._embed(self.frames(mel_db).transpose(1, 2))  # frames (B, T, C)

    def forward(self, mel_db: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(mel_db))

    def reconstruction_error(self, mel_db: torch.Tensor) -> torch.Tensor:
        """(B,) mean squared error of rebuilding the standardised frames from the embedding alone."""
        x = self.frames(mel_db).transpose(1, 2)
        z = self._embed(x)
        h, _ = self.decoder(z[:, None, :].expand(-1, x.shape[1], -1))
        return (self.recon(h) - x).square().mean(dim=(1, 2))


@register("rnn")
class RNNEncoder(MelGenreEncoder):
    semi_supervised = True

    def build(self, cfg: EncodersConfig, n_classes: int) -> nn.Module:
        return GRUClassifier(cfg.n_mels, cfg.n_mfcc, cfg.frame_pool, cfg.rnn_hidden, cfg.dim, n_classes,
                             decoder=self.decoder)

    def reconstruction_weight(self, cfg: EncodersConfig) -> float:
        return float(cfg.rnn_recon_weight)

    def standardise(self, net: nn.Module, frames: LogMelFrames, train_rows: np.ndarray) -> None:
        mean, std = channel_stats(frames, train_rows, lambda m: net.frames.raw(m.float()).double())
        net.frames.mean.copy_(mean.to(self.device))
        net.frames.std.copy_(std.to(self.device))
