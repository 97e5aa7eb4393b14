"""What the trained encoders share: seeding, feature/frame access, and one early-stopping training loop."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from torch import nn

from core.config.schema import EncodersConfig
from core.data.prepared import PreparedDataset
from core.errors import UserError
from core.progress import progress_bar


@contextmanager
def seeded(seed: int) -> Iterator[torch.Generator]:
    """Seed torch and numpy for the block; yields a torch generator for shuffling.

    The CPU kernels the encoders use (linear, conv, GRU, batch norm) are deterministic for a fixed thread count,
    so ``torch.use_deterministic_algorithms`` is not switched on: importing it pulls in the compiler stack,
    which costs seconds per call.
    """
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    yield torch.Generator().manual_seed(seed)


# ---- tabular features (pca, autoencoder) ------------------------------------------------------------------


def feature_matrix(ds: PreparedDataset) -> np.ndarray:
    """The cached FMA-style features as float32 (N, F) in dataset row order.

    Tracks whose features were skipped at extraction (broken or silent audio) get the column medians of the
    others, so they encode to the centre of the embedding instead of failing; non-finite values become 0.
    """
    from core.audio.extract import load_features

    df = load_features(ds)
    if not len(df):
        raise UserError(f"dataset {ds.name!r}: no track has audio features (all were skipped at extraction)")
    ids = ds.tracks["track_id"].astype(str)
    x = np.nan_to_num(df.to_numpy(dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    out = np.empty((len(ids), x.shape[1]), np.float32)
    out[:] = np.median(x, axis=0)
    pos = pd.Index(df.index.astype(str)).get_indexer(ids)
    have = pos >= 0
    out[have] = x[pos[have]]
    return out


def missing_features(ds: PreparedDataset) -> int:
    """How many tracks have no extracted features (filled in by ``feature_matrix``)."""
    from core.audio.extract import load_features

    return int((~ds.tracks["track_id"].astype(str).isin(load_features(ds).index.astype(str))).sum())


# ---- log-mel frames (rnn, cnn) ----------------------------------------------------------------------------


class LogMelFrames:
    """Log-mel spectrograms (dB, (B, n_mels, T)) of dataset rows, from the first ``cfg.seconds`` of audio.

    Computed with ``core.audio.logmel.LogMel`` on ``device``; kept in memory (float16, CPU) when all rows
    fit in ``cfg.cache_mb``, otherwise recomputed per batch (cheap on a GPU).
    """

    def __init__(self, ds: PreparedDataset, n_mels: int, seconds: float, device: torch.device, cache_mb: int = 0):
        from core.audio.logmel import LogMel

        self.ds = ds
        self.device = device
        self.samples = int(min(round(seconds * ds.sample_rate), ds.audio().shape[1]))
        if self.samples < 2048:
            raise UserError(f"dataset {ds.name!r}: audio too short for log-mel frames ({self.samples} samples)")
        self.logmel = LogMel(sr=ds.sample_rate, n_mels=n_mels).to(device)
        self.n_mels = n_mels
        probe = self._compute(np.arange(1))
        self.frames = probe.shape[-1]
        per_track = n_mels * self.frames * 2
        self._cache: torch.Tensor | None = None
        if per_track * len(ds) <= cache_mb * 2**20:
            self._cache = torch.empty((len(ds), n_mels, self.frames), dtype=torch.float16)
            rows = np.arange(len(ds))
            with progress_bar("log-mel", len(ds)) as bar:
                for start in range(0, len(ds), 256):
                    chunk = rows[start : start + 256]
                    self._cache[chunk] = self._compute(chunk).cpu().half()
                    bar.advance(len(chunk))

    @torch.no_grad()
    def _compute(self, rows: np.ndarray) -> torch.Tensor:
        rows = np.asarray(rows, np.int64)
        order = np.argsort(rows, kind="stable")
        audio = np.empty((len(rows), self.samples), np.float32)
        audio[order] = self.ds.audio()[rows[order], : self.samples]
        wave = torch.from_numpy(audio).to(self.device).div_(32767.0)
        return self.logmel(wave).float()

    def __call__(self, rows: np.ndarray) -> torch.Tensor:
        if self._cache is not None:
            return self._cache[torch.from_numpy(np.asarray(rows, np.int64))].to(self.device).float()
        return self._compute(rows)


_FRAMES_MEMO: dict[tuple, LogMelFrames] = {}


def shared_frames(ds: PreparedDataset, n_mels: int, seconds: float, device: torch.device, cache_mb: int = 0):
    """The log-mel frames of ``ds`` for these settings, computed once and shared by every encoder of one
    ``bench encode`` (rnn and cnn fit and embed from the same spectrograms); ``release_frames`` frees them."""
    key = (str(ds.paths.root.resolve()), ds.manifest.get("created"), n_mels, float(seconds), str(device), cache_mb)
    if key not in _FRAMES_MEMO:
        _FRAMES_MEMO.clear()  # one set at a time: they can be large
        _FRAMES_MEMO[key] = LogMelFrames(ds, n_mels, seconds, device, cache_mb)
    return _FRAMES_MEMO[key]


def release_frames() -> None:
    _FRAMES_MEMO.clear()


@torch.no_grad()
def channel_stats(
    frames: Callable[[np.ndarray], torch.Tensor],
    rows: np.ndarray,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over tracks and time of (B, C, T) frames (after ``transform``)."""
    total = sq = None
    count = 0
    for start in range(0, len(rows), batch):
        x = frames(rows[start : start + batch]).double()
        if transform is not None:
            x = transform(x)
        s, q = x.sum(dim=(0, 2)), (x * x).sum(dim=(0, 2))
        total = s if total is None else total + s
        sq = q if sq is None else sq + q
        count += x.shape[0] * x.shape[2]
    mean = total / count
    std = (sq / count - mean * mean).clamp_min(0).sqrt()
    std[std < 1e-6] = 1.0
    return mean.float().cpu(), std.float().cpu()


# ---- MFCC + deltas from a log-mel, in torch ---------------------------------------------------------------


def dct_matrix(n_mfcc: int, n_mels: int) -> torch.Tensor:
    """Orthonormal DCT-II (n_mfcc, n_mels), as ``scipy.fft.dct(norm='ortho')`` / librosa's MFCC use."""
    n = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    m = torch.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    m[0] /= math.sqrt(2.0)
    return m.float()


def deltas(x: torch.Tensor, width: int = 2) -> torch.Tensor:
    """HTK regression deltas along the last axis (edges repeated): sum n (x[t+n] - x[t-n]) / (2 sum n^2)."""
    pad = torch.nn.functional.pad(x, (width, width), mode="replicate")
    t = x.shape[-1]
    out = torch.zeros_like(x)
    for n in range(1, width + 1):
        out = out + n * (pad[..., width + n : width + n + t] - pad[..., width - n : width - n + t])
    return out / (2 * sum(n * n for n in range(1, width + 1)))


# ---- training --------------------------------------------------------------------------------------------


def batches(rows: np.ndarray, size: int, gen: torch.Generator | None = None) -> list[np.ndarray]:
    """Row batches (shuffled with ``gen`` if given); a trailing batch of one is folded into the previous one."""
    rows = np.asarray(rows, np.int64)
    if gen is not None:
        rows = rows[torch.randperm(len(rows), generator=gen).numpy()]
    out = [rows[i : i + size] for i in range(0, len(rows), size)]
    if len(out) > 1 and len(out[-1]) == 1:
        out[-2] = np.concatenate([out[-2], out.pop()])
    return out


def fit_loop(
    model: nn.Module,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    batch_loss: Callable[[np.ndarray], tuple[torch.Tensor, int]],
    cfg: EncodersConfig,
    gen: torch.Generator,
    what: str,
) -> dict:
    """Adam on ``batch_loss`` over train batches; early stopping on the val loss (train loss when no val rows).

    ``batch_loss(rows) -> (mean loss, n)``. The best state (lowest monitored loss) is restored at the end.
    Returns the history: per-epoch train/val losses, best epoch, epochs run.
    """
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, best_epoch, waited = math.inf, None, -1, 0
    hist: dict = {"train_loss": [], "val_loss": []}
    with progress_bar(f"train {what}", cfg.epochs) as bar:
        for epoch in range(cfg.epochs):
            model.train()
            tot, cnt = 0.0, 0
            for b in batches(train_rows, cfg.batch_size, gen):
                loss, n = batch_loss(b)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot, cnt = tot + float(loss.detach()) * n, cnt + n
            hist["train_loss"].append(tot / max(cnt, 1))
            monitored = hist["train_loss"][-1]
            if len(val_rows):
                model.eval()
                vt, vc = 0.0, 0
                with torch.no_grad():
                    for b in batches(val_rows, max(cfg.batch_size, 256)):
                        loss, n = batch_loss(b)
                        vt, vc = vt + float(loss) * n, vc + n
                monitored = vt / max(vc, 1)
                hist["val_loss"].append(monitored)
            bar.advance()
            if monitored < best - 1e-6:
                best, best_epoch, waited = monitored, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
                if waited >= cfg.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    hist.update(best_epoch=best_epoch, epochs_run=len(hist["train_loss"]), best_loss=best)
    return hist


@torch.no_grad()
def embed_rows(fn: Callable[[np.ndarray], torch.Tensor], rows: np.ndarray, size: int = 256) -> np.ndarray:
    """Run ``fn`` over row batches (in order) and stack the results as float32 numpy."""
    out = [fn(rows[i : i + size]).float().cpu().numpy() for i in range(0, len(rows), size)]
    if not out:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(out).astype(np.float32)
