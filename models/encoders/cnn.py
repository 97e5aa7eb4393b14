"""``cnn``: a small 2-D CNN over log-mel spectrograms trained to classify genre (the seed study's best encoder).

Conv-BN-ReLU-pool blocks, global average and max pooling, then a d-wide linear layer (the embedding, i.e. the
penultimate layer) and the genre head. Mel bins are standardised with train statistics stored in the model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from core.config.schema import EncodersConfig
from models.encoders.base import register
from models.encoders.mel_classifier import MelGenreEncoder
from models.encoders.train_utils import LogMelFrames, channel_stats


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
class CNNEncoder(MelGenreEncoder):
    encode_batch = 256

    def build(self, cfg: EncodersConfig, n_classes: int) -> nn.Module:
        return MelCNN(cfg.n_mels, list(cfg.cnn_channels), cfg.dim, n_classes)

    def standardise(self, net: nn.Module, frames: LogMelFrames, train_rows: np.ndarray) -> None:
        mean, std = channel_stats(frames, train_rows)
        net.mean.copy_(mean.to(self.device))
        net.std.copy_(std.to(self.device))
