"""``musicnn``: Pons & Serra's pretrained music tagger (MSD_musicnn / MTT_musicnn), ported to PyTorch.

The ``musicnn`` PyPI package (ISC licence) ships TensorFlow 1 checkpoints; we read them with our own reader
(``tf_checkpoint``), so neither TensorFlow nor the package's code is imported: install it with
``pip install --no-deps musicnn==0.1.0`` and the weights are found with ``importlib.util.find_spec``.

Network (the package's ``build_musicnn``; TF tensors are (batch, time, mel, channel)):
front end on a 187-frame x 96-mel patch: batch norm, two "timbral" convs (7 x 38 and 7 x 67 mel, 204 filters,
time padded by 3) and three "temporal" convs (128/64/32 x 1, 51 filters, TF "same" padding), each relu -> batch
norm -> max over mel; 561 features per frame. Mid end: three 7-frame convs of 64 filters with residual sums.
Back end: max and mean over time of the 753 frame features (interleaved, as TF flattens them), batch norm, a
200-unit dense layer (relu, batch norm: the *penultimate* layer, our embedding) and 50 tag logits.

Preprocessing follows the package (16 kHz, 512-point FFT, hop 256, 96 Slaney mels, log10(10000 x + 1)) except that
the mel is kept in float32: the package casts it to float16 before the log, which overflows to inf on loud tracks.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.config.schema import EncodersConfig
from core.data.prepared import PreparedDataset
from core.errors import UserError
from models.encoders.base import check_rows, read_state, register, write_state
from models.encoders.tf_checkpoint import read_tf_checkpoint

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH = 187  # frames per patch (3 s)
EPS = 1e-3  # tf.layers.batch_normalization's default epsilon
MODELS = ("MSD_musicnn", "MTT_musicnn")
INSTALL = "pip install --no-deps musicnn==0.1.0"
MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano", "ambient",
    "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals", "no vocals",
    "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo",
    "man", "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient",
    "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
    "indie pop", "sad", "House", "happy",
)  # fmt: skip


def checkpoint_prefix(model: str = "MSD_musicnn") -> str:
    """The installed ``musicnn`` package's checkpoint prefix for ``model`` (its files are ``<folder>/.index`` and
    ``<folder>/.data-*``), found without importing the package (which imports TensorFlow)."""
    if model not in MODELS:
        raise UserError(f"unknown musicnn model {model!r}; choose one of {', '.join(MODELS)}")
    spec = importlib.util.find_spec("musicnn")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        prefix = str(Path(loc) / model) + "/"
        if Path(prefix + ".index").is_file():
            return prefix
    raise UserError(f"the musicnn weights are not installed: run `{INSTALL}` (ISC licence, no TensorFlow needed)")


class _BN(nn.Module):
    """Inference batch norm over the last dimension, with TF's variable names and epsilon."""

    def __init__(self, n: int):
        super().__init__()
        for name in ("gamma", "beta", "moving_mean", "moving_variance"):
            self.register_buffer(name, torch.zeros(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (..., n)
        scale = self.gamma * torch.rsqrt(self.moving_variance + EPS)
        return (x - self.moving_mean) * scale + self.beta


class MusiCNN(nn.Module):
    """(B, 187, 96) log-mel patches -> (logits (B, 50), penultimate (B, 200)); weights from ``load_tf``."""

    def __init__(self):
        super().__init__()
        self.bn_in = _BN(1)
        self.timbral = nn.ModuleList([nn.Conv2d(1, 204, (7, 38)), nn.Conv2d(1, 204, (7, 67))])
        self.temporal = nn.ModuleList([nn.Conv2d(1, 51, (k, 1)) for k in (128, 64, 32)])
        self.front_bn = nn.ModuleList([_BN(204), _BN(204), _BN(51), _BN(51), _BN(51)])
        self.mid = nn.ModuleList([nn.Conv1d(561, 64, 7, padding=3), nn.Conv1d(64, 64, 7, padding=3),
                                  nn.Conv1d(64, 64, 7, padding=3)])
        self.mid_bn = nn.ModuleList([_BN(64) for _ in range(3)])
        self.pool_bn = _BN(1506)
        self.dense = nn.Linear(1506, 200)
        self.dense_bn = _BN(200)
        self.out = nn.Linear(200, 50)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.bn_in(mel.unsqueeze(-1)).squeeze(-1).unsqueeze(1)  # (B, 1, T, F)
        feats = []
        padded = F.pad(x, (0, 0, 3, 3))
        # relu, batch norm, then the max over mel bands, in TF's order (with a negative batch-norm scale the max
        # of the normalised values is not the normalised max)
        for conv, bn in zip(self.timbral, self.front_bn[:2], strict=True):
            feats.append(bn(F.relu(conv(padded)).permute(0, 2, 3, 1)).amax(dim=2))  # (B, T, C)
        for conv, bn in zip(self.temporal, self.front_bn[2:], strict=True):
            k = conv.kernel_size[0]
            h = conv(F.pad(x, (0, 0, (k - 1) // 2, k - 1 - (k - 1) // 2)))  # TF "same" for even kernels
            feats.append(bn(F.relu(h).permute(0, 2, 3, 1)).amax(dim=2))
        front = torch.cat(feats, dim=2)  # (B, T, 561)
        h1 = self.mid_bn[0](F.relu(self.mid[0](front.transpose(1, 2))).transpose(1, 2))
        h2 = self.mid_bn[1](F.relu(self.mid[1](h1.transpose(1, 2))).transpose(1, 2)) + h1
        h3 = self.mid_bn[2](F.relu(self.mid[2](h2.transpose(1, 2))).transpose(1, 2)) + h2
        frames = torch.cat([front, h1, h2, h3], dim=2)  # (B, T, 753)
        pooled = torch.stack([frames.amax(dim=1), frames.mean(dim=1)], dim=2).flatten(1)  # max/mean interleaved
        pen = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
        return self.out(pen), pen

    def load_tf(self, w: dict[str, np.ndarray]) -> MusiCNN:
        """Copy a musicnn TF checkpoint's variables into this module (TF names follow creation order)."""

        def t(name: str) -> torch.Tensor:
            if name not in w:
                raise UserError(f"musicnn checkpoint lacks {name!r}: not a musicnn (small) model")
            return torch.from_numpy(np.ascontiguousarray(w[name]))

        bns = [self.bn_in, *self.front_bn, *self.mid_bn, self.pool_bn, self.dense_bn]
        for i, bn in enumerate(bns):
            base = "batch_normalization" + (f"_{i}" if i else "")
            for name in ("gamma", "beta", "moving_mean", "moving_variance"):
                getattr(bn, name).copy_(t(f"{base}/{name}"))
        convs2d = [*self.timbral, *self.temporal]
        for i, conv in enumerate(convs2d):
            base = "conv2d" + (f"_{i}" if i else "")
            conv.weight.data.copy_(t(f"{base}/kernel").permute(3, 2, 0, 1))  # (kh, kw, in, out) -> (out, in, kh, kw)
            conv.bias.data.copy_(t(f"{base}/bias"))
        for i, conv in enumerate(self.mid, start=len(convs2d)):
            k = t(f"conv2d_{i}/kernel")  # (7, width, 1, 64): the width is the conv1d's input channels
            conv.weight.data.copy_(k[:, :, 0, :].permute(2, 1, 0))
            conv.bias.data.copy_(t(f"conv2d_{i}/bias"))
        for lin, name in ((self.dense, "dense"), (self.out, "dense_1")):
            lin.weight.data.copy_(t(f"{name}/kernel").t())
            lin.bias.data.copy_(t(f"{name}/bias"))
        return self


def load_musicnn(model: str = "MSD_musicnn") -> MusiCNN:
    """The pretrained network, in eval mode on CPU."""
    return MusiCNN().load_tf(read_tf_checkpoint(checkpoint_prefix(model))).eval()


def musicnn_patches(y: np.ndarray, sr: int) -> np.ndarray:
    """(P, 187, 96) float32 non-overlapping 3 s log-mel patches of a mono clip (a short clip is repeated to 3 s)."""
    y = np.asarray(y, dtype=np.float32)
    if int(sr) != SR:
        y = librosa.resample(y, orig_sr=int(sr), target_sr=SR, res_type="soxr_hq")
    y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    need = (PATCH - 1) * HOP + 1
    if len(y) < need:
        y = np.resize(y, need) if len(y) else np.zeros(need, np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS).T
    logc = np.log10(10000.0 * mel.astype(np.float32) + 1.0)
    n = len(logc) // PATCH
    return np.ascontiguousarray(logc[: n * PATCH].reshape(n, PATCH, N_MELS), dtype=np.float32)


@torch.no_grad()
def clip_embedding(net: MusiCNN, y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate features averaged over the clip's patches (200,), tag probabilities averaged (50,))."""
    logits, pen = net(torch.from_numpy(musicnn_patches(y, sr)))
    return pen.mean(0).numpy(), torch.sigmoid(logits).mean(0).numpy()


@register("musicnn")
class MusicnnEncoder:
    """Pretrained ``MSD_musicnn`` penultimate features (d = 200), averaged over 3 s patches; nothing is trained.

    Needs the musicnn wheel (``pip install --no-deps musicnn==0.1.0``), so it is not part of ``--encoder all``.
    """

    model = "MSD_musicnn"

    def __init__(self, cfg: EncodersConfig | None = None, device: str | None = None):
        self.cfg = cfg or EncodersConfig()
        self.net: MusiCNN | None = None

    @property
    def dim(self) -> int:
        return 200

    def fit(self, ds: PreparedDataset, train_rows, val_rows, cfg: EncodersConfig | None = None) -> MusicnnEncoder:
        self.net = load_musicnn(self.model)
        return self

    def encode(self, ds: PreparedDataset, rows: np.ndarray | None = None) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("musicnn encoder used before fit")
        rows = check_rows(ds, rows)
        audio = ds.audio()
        out = np.empty((len(rows), self.dim), np.float32)
        for i, r in enumerate(rows):
            out[i] = clip_embedding(self.net, audio[r].astype(np.float32) / 32767.0, ds.sample_rate)[0]
        return out

    def save(self, directory: str | Path) -> Path:
        tensors = {"net": self.net.state_dict()} if self.net is not None else {}
        return write_state(directory, self.name, tensors, {"dim": self.dim, "model": self.model})

    @classmethod
    def load(cls, directory: str | Path, device: str | None = None) -> MusicnnEncoder:
        st = read_state(directory)
        enc = cls()
        enc.net = MusiCNN()
        enc.net.load_state_dict(st["tensors"]["net"])
        enc.net.eval()
        return enc
