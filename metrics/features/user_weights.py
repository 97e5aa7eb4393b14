"""Your own feature network as the evaluation's extractor: ``features=file:PATH`` (a local file, never a download).

The contract, checked when the extractor is made (on a probe batch of the dataset's covers) and on every batch:

- **File**: a saved program, or a torchvision classifier's state dict with its architecture named. ``.pt2``: a
  ``torch.export`` program (``torch.export.save``; give the batch dimension a ``Dim`` or it is fed batches of
  exactly the exported size). Anything else: a TorchScript module
  (``torch.jit.save(torch.jit.trace(net.eval(), torch.rand(1, 3, R, R)), PATH)`` or ``torch.jit.script``). Both
  formats hold code: load files you trust. ``file:ARCH=PATH``: ``model.state_dict()`` of torchvision's ``ARCH``
  (fine-tuned, any number of classes; see :mod:`metrics.features.torchvision_weights`), read as tensors only.
  A state dict without an architecture is refused with the line that names both ways.
- **Input**: float32 RGB, NCHW, values in [0, 1] (uint8 / 255, nothing subtracted or divided: put your
  normalisation, e.g. ImageNet or CLIP mean/std, inside the network). Size: the evaluated covers' resolution,
  resized (bilinear, antialiased) to the network's own input size when it states one: a TorchScript attribute
  ``input_resolution`` (an int), a ``.pt2`` program's static height = width, a torchvision architecture's
  standard size.
- **Output**: a float tensor (N, d), d >= 1, finite, not the same vector for every cover.

``file:ARCH=PATH`` is split at the first ``=`` only when ARCH is a plain name and no file has the whole
name: an existing path keeps its meaning.
The file's SHA-256 names the extractor (``file:NAME@sha12``, ``file:ARCH=NAME@sha12``), goes into its
preprocessing string with the architecture (so into every feature-cache key: changed weights or another
architecture never hit a stale cache) and into ``metrics.json``'s extractor info.
Evaluations with such features add CMMD beside FID (``uses_cmmd``; ``metrics.distribution.cmmd.cmmd_entry``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.data.prepared import file_sha256
from core.errors import UserError
from metrics.features.extractor import Extractor, ExtractorRequest
from metrics.features.torchvision_weights import state_dict_of, torchvision_features

FILE_SCHEME = "file"
CMMD_SCHEMES = (FILE_SCHEME,)  # extractor kinds whose evaluations add CMMD beside FID
INPUT_CONTRACT = "float32 RGB NCHW in [0, 1]"
EXPORT_SUFFIX = ".pt2"
STATE_DICT = "state_dict"
PROBE_IMAGES = 16
CHUNK = 64  # images per forward pass: bounded memory whatever the network's input size


def uses_cmmd(kind: str) -> bool:
    """Whether an evaluation with features ``kind`` reports CMMD beside FID (your own feature network: yes)."""
    return str(kind).partition(":")[0] in CMMD_SCHEMES


@dataclass(frozen=True)
class FeatureNet:
    """A loaded feature network: how to call it and what input it states (None: whatever it is given)."""

    call: Callable[[torch.Tensor], Any]
    format: str
    input_resolution: int | None = None
    batch: int | None = None  # a .pt2 program exported with a fixed batch size
    arch: str | None = None  # a state dict's torchvision architecture


def _last_line(e: BaseException) -> str:
    """The message of an error: TorchScript and torch.export put their own traceback before it."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def _refuse_unloadable(path: Path, e: BaseException) -> UserError:
    """Say what the file is, when it is not a program: a state dict gets both ways to name its architecture."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not a torch file at all: say what the loader said
        return UserError(f"{path} is not a TorchScript module or a torch.export program ({_last_line(e)})")
    if state_dict_of(state) is not None:
        return UserError(
            f"{path} holds a state dict (weights without an architecture): name its torchvision architecture "
            f"(e.g. file:resnet18={path}) or save the network itself, e.g. "
            "torch.jit.save(torch.jit.trace(net.eval(), torch.rand(1, 3, R, R)), 'features.pt')"
        )
    return UserError(f"{path} holds a {type(state).__name__}, not a TorchScript module, a torch.export program or a "
                     "state dict")  # fmt: skip


def _static(v: Any) -> int | None:
    return int(v) if isinstance(v, int) else None  # a torch.SymInt (a dynamic dimension) is not an int


def _exported(path: Path, device: torch.device) -> FeatureNet:
    program = torch.export.load(str(path))
    name = program.graph_signature.user_inputs[0]
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == name)
    shape = tuple(node.meta["val"].shape)
    h, w = (_static(shape[-2]), _static(shape[-1])) if len(shape) == 4 else (None, None)
    module = program.module().to(device)
    return FeatureNet(module, "torch.export", h if h is not None and h == w else None, _static(shape[0]))


def _scripted(path: Path, device: torch.device) -> FeatureNet:
    module = torch.jit.load(str(path), map_location=device).eval()
    value = getattr(module, "input_resolution", None)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UserError(f"{path}: input_resolution must be a positive int, got {value!r}")
    return FeatureNet(module, "torchscript", value)


def load_feature_net(path: Path, device: torch.device, arch: str | None = None) -> FeatureNet:
    """The network saved at ``path`` on ``device``, by its format (a state dict of torchvision's ``arch`` when
    named); one line for anything else."""
    if arch is not None:
        module, size = torchvision_features(path, arch, device)
        return FeatureNet(module, STATE_DICT, size, arch=arch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.9+ marks torch.jit deprecated: still the format
        try:
            return _exported(path, device) if path.suffix.lower() == EXPORT_SUFFIX else _scripted(path, device)
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - a damaged or foreign file: one line saying what it holds
            raise _refuse_unloadable(path, e) from None


def _forward(net: FeatureNet, images: np.ndarray, res: int, device: torch.device) -> np.ndarray:
    """uint8 NHWC -> the network's (N, d) features, checked against the output contract."""
    n = len(images)
    x = torch.from_numpy(np.array(images, np.uint8)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    if res != x.shape[-1] or res != x.shape[-2]:
        x = F.interpolate(x, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
    if net.batch is not None and n < net.batch:  # a fixed-batch program: pad with the last image, drop it after
        x = torch.cat([x, x[-1:].expand(net.batch - n, -1, -1, -1)])
    try:
        with torch.no_grad():
            out = net.call(x)
    except Exception as e:  # noqa: BLE001 - whatever the user's network raises, one line naming the contract
        raise UserError(
            f"the feature network failed on the input contract ({INPUT_CONTRACT}, shape {tuple(x.shape)}): "
            f"{_last_line(e)}"
        ) from None
    if not isinstance(out, torch.Tensor):
        raise UserError(f"the feature network returned a {type(out).__name__}, not an (N, d) tensor")
    if out.ndim != 2 or out.shape[0] != len(x) or out.shape[1] < 1:
        raise UserError(
            f"the feature network returned shape {tuple(out.shape)} for {len(x)} images: it must return (N, d) "
            "(pool or flatten inside the network)"
        )
    return out[:n].detach().float().cpu().numpy()


def checked_features(net: FeatureNet, images: np.ndarray, res: int, device: torch.device) -> np.ndarray:
    """Features of ``images`` in chunks; refuses NaN or inf, naming the first image that got them."""
    chunk = net.batch or CHUNK
    parts = []
    for s in range(0, len(images), chunk):
        feats = _forward(net, images[s : s + chunk], res, device)
        bad = np.flatnonzero(~np.isfinite(feats).all(axis=1))
        if len(bad):
            raise UserError(f"the feature network returned NaN or inf features for image {s + int(bad[0])} "
                            f"of {len(images)}")
        parts.append(feats)
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def _probe_images(r: ExtractorRequest) -> np.ndarray:
    """A fixed batch to check the contract on: the dataset's first covers, else seeded noise."""
    if r.ds is not None and r.res in r.ds.resolutions and len(r.ds):
        return np.asarray(r.ds.covers(r.res)[: min(PROBE_IMAGES, len(r.ds))])
    return np.random.default_rng(0).integers(0, 256, size=(PROBE_IMAGES, r.res, r.res, 3), dtype=np.uint8)


def parse_file_spec(argument: str) -> tuple[str, str | None]:
    """``[ARCH=]PATH`` -> (PATH, ARCH or None). A file named by the whole argument keeps its meaning, so a path
    with '=' in it still reads as before."""
    arch, sep, rest = argument.partition("=")
    if sep and rest and re.fullmatch(r"\w+", arch) and not Path(argument).expanduser().is_file():
        return rest, arch
    return argument, None


def _names(path: Path, sha: str, net: FeatureNet, res: int, in_res: int) -> tuple[str, str]:
    """The extractor's name and preprocessing string (a cache-key part): the file's hash and the architecture."""
    if net.arch is None:  # unchanged for programs: their cached features stay valid
        return f"{FILE_SCHEME}:{path.name}@{sha[:12]}", f"file-sha256-{sha}-r{res}-in{in_res}-rgb01"
    return (f"{FILE_SCHEME}:{net.arch}={path.name}@{sha[:12]}",
            f"file-sha256-{sha}-torchvision-{net.arch}-imagenet-r{res}-in{in_res}-rgb01")  # fmt: skip


def file_extractor(r: ExtractorRequest) -> Extractor:
    """The ``file:[ARCH=]PATH`` factory: load, hash and probe the user's feature network."""
    if not r.argument:
        raise UserError("file features need a path: --features file:PATH.pt")
    text, arch = parse_file_spec(r.argument)
    path = Path(text).expanduser()
    if not path.is_file():
        raise UserError(f"no feature network at {path} (features file:PATH reads a local TorchScript or .pt2 file, "
                        "file:ARCH=PATH a state dict of torchvision's ARCH)")  # fmt: skip
    sha = file_sha256(path)
    net = load_feature_net(path, r.device, arch)
    in_res = net.input_resolution or r.res

    def features(images: np.ndarray) -> np.ndarray:
        return checked_features(net, images, in_res, r.device)

    probe = features(_probe_images(r))
    if len(probe) > 1 and not (probe.std(axis=0) > 0).any():
        raise UserError(f"the feature network {path.name} gives every probe cover the same features: it cannot "
                        "tell covers apart")
    info: dict[str, Any] = {
        "path": text, "sha256": sha, "format": net.format, "dim": int(probe.shape[1]),
        "input": INPUT_CONTRACT, "input_resolution": in_res,
    }  # fmt: skip
    if net.arch is not None:
        info["arch"] = net.arch
    return Extractor(*_names(path, sha, net, r.res, in_res), features, info)
