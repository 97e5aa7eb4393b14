"""covernet: a small CNN trained on the dataset's real training covers to predict genre.

It is the always-available, offline feature extractor (its penultimate layer), and it knows what matters for this
dataset's genres, which makes it a sharper judge of "is this cover of the asked genre?" than generic ImageNet
features. Weights are cached per dataset (by manifest hash and training settings) and loaded with
``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data.prepared import PreparedDataset
from core.errors import UserError
from core.progress import progress_bar

FEATURE_DIM = 128


@dataclass(frozen=True)
class CoverNetConfig:
    res: int = 32
    width: int = 32
    epochs: int = 12
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 3
    seed: int = 0


class CoverNet(nn.Module):
    """Four stride-2 conv blocks, global average pooling, a 128-d embedding and a genre head."""

    def __init__(self, n_classes: int, width: int = 32, in_res: int = 32):
        super().__init__()
        self.in_res = in_res
        chans = [3, width, width * 2, width * 4, width * 4]
        blocks: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            blocks += [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
        self.body = nn.Sequential(*blocks)
        self.embed = nn.Sequential(nn.Linear(chans[-1], FEATURE_DIM), nn.ReLU(inplace=True))
        self.head = nn.Linear(FEATURE_DIM, n_classes)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC or NCHW (or float in [-1, 1] NCHW) to float NCHW in [-1, 1] at the training resolution."""
        x = images
        if x.dtype == torch.uint8:
            if x.shape[-1] == 3 and x.shape[1] != 3:
                x = x.permute(0, 3, 1, 2)
            x = x.float().div(127.5).sub(1.0)
        if x.shape[-1] != self.in_res:
            x = F.interpolate(x, size=(self.in_res, self.in_res), mode="bilinear", antialias=True, align_corners=False)
        return x

    def features(self, images: torch.Tensor) -> torch.Tensor:
        h = self.body(self.prepare(images))
        return self.embed(h.mean(dim=(2, 3)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def _cache_key(ds: PreparedDataset, cfg: CoverNetConfig) -> str:
    tracks_hash = ds.manifest.get("files", {}).get("tracks.parquet", {}).get("sha256", "")
    covers_hash = ds.manifest.get("files", {}).get(f"covers_{cfg.res}.npy", {}).get("sha256", "")
    blob = json.dumps({"t": tracks_hash, "c": covers_hash, "cfg": asdict(cfg), "v": 1}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _batches(covers: np.ndarray, rows: np.ndarray, batch_size: int):
    for s in range(0, len(rows), batch_size):
        idx = rows[s : s + batch_size]
        order = np.argsort(idx)
        out = np.empty((len(idx), *covers.shape[1:]), np.uint8)
        out[order] = covers[idx[order]]
        yield torch.from_numpy(out)


def _accuracy(model: CoverNet, covers: np.ndarray, rows: np.ndarray, labels: np.ndarray, device: str) -> float:
    model.eval()
    hits = 0
    with torch.inference_mode():
        for s, xb in zip(range(0, len(rows), 512), _batches(covers, rows, 512), strict=True):
            pred = model(xb.to(device)).argmax(1).cpu().numpy()
            hits += int((pred == labels[s : s + len(pred)]).sum())
    return hits / max(len(rows), 1)


def train_covernet(
    ds: PreparedDataset, cfg: CoverNetConfig | None = None, device: str = "cpu"
) -> tuple[CoverNet, dict]:
    """Train on the train split's genre-labelled covers, early-stop on val accuracy; returns (model, info)."""
    cfg = cfg or CoverNetConfig()
    covers = ds.covers(_source_res(ds, cfg.res))
    labels_all = ds.genre_idx
    train = ds.split_rows("train")
    train = train[labels_all[train] >= 0]
    val = ds.split_rows("val")
    val = val[labels_all[val] >= 0]
    n_classes = len(ds.genres)
    if n_classes < 2 or len(train) < n_classes:
        raise UserError(f"covernet needs genre labels for at least two genres; dataset {ds.name!r} has too few")
    torch.manual_seed(cfg.seed)
    gen = np.random.default_rng(cfg.seed)
    model = CoverNet(n_classes, cfg.width, cfg.res).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, bad, history = -1.0, None, 0, []
    with progress_bar("covernet epochs", cfg.epochs) as bar:
        for epoch in range(cfg.epochs):
            model.train()
            perm = train[gen.permutation(len(train))]
            for xb_rows in np.array_split(perm, max(1, len(perm) // cfg.batch_size)):
                xb = next(_batches(covers, xb_rows, len(xb_rows))).to(device)
                x = model.prepare(xb)
                if gen.random() < 0.5:  # cheap augmentation: horizontal flip of the whole batch
                    x = x.flip(3)
                loss = F.cross_entropy(model(x), torch.from_numpy(labels_all[xb_rows]).to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            acc = _accuracy(model, covers, val, labels_all[val], device) if len(val) else 0.0
            history.append({"epoch": epoch, "val_accuracy": acc, "loss": float(loss.detach())})
            bar.advance()
            if acc > best:
                best, bad = acc, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, {"val_accuracy": best, "history": history, "n_train": len(train), "n_val": len(val)}


def _source_res(ds: PreparedDataset, res: int) -> int:
    """The stored resolution to read from: ``res`` itself, else the smallest larger one, else the largest."""
    have = sorted(ds.resolutions)
    if res in have:
        return res
    larger = [r for r in have if r > res]
    return larger[0] if larger else have[-1]


def save_covernet(model: CoverNet, info: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    meta = {"n_classes": model.head.out_features, "width": model.body[0].out_channels, "in_res": model.in_res}
    with open(tmp, "wb") as f:
        torch.save({"state": model.state_dict(), "meta": json.dumps(meta), "info": json.dumps(info)}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_covernet(path: Path, device: str = "cpu") -> tuple[CoverNet, dict]:
    blob = torch.load(path, map_location=device, weights_only=True)
    meta = json.loads(blob["meta"])
    model = CoverNet(meta["n_classes"], meta["width"], meta["in_res"]).to(device)
    model.load_state_dict(blob["state"])
    model.eval()
    return model, json.loads(blob["info"])


def get_covernet(
    ds: PreparedDataset, cfg: CoverNetConfig | None = None, device: str = "cpu", force: bool = False
) -> tuple[CoverNet, dict]:
    """The dataset's covernet: loaded from its cache, or trained (and cached) on first use."""
    cfg = cfg or CoverNetConfig()
    path = ds.paths.cache_dir / f"covernet-{_cache_key(ds, cfg)}.pt"
    if path.is_file() and not force:
        return load_covernet(path, device)
    model, info = train_covernet(ds, cfg, device)
    info["config"] = asdict(cfg)
    save_covernet(model, info, path)
    return model, info


def covernet_features(model: CoverNet, images: np.ndarray | torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """Penultimate-layer features (N, 128) float32 for uint8 NHWC/NCHW images or float NCHW in [-1, 1]."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            xb = images[s : s + batch_size]
            xb = torch.from_numpy(np.array(xb)) if isinstance(xb, np.ndarray) else xb
            out.append(model.features(xb.to(device)).float().cpu())
    if not out:
        return np.zeros((0, FEATURE_DIM), np.float32)
    return torch.cat(out).numpy()
