"""Your own feature network as the evaluation's extractor: ``features=file:PATH.pt`` (never a download).

The contract, checked when the extractor is made (a probe batch of the dataset's covers) and on every batch:

- **File**: a TorchScript module (``torch.jit.save(torch.jit.trace(net.eval(), torch.rand(1, 3, R, R)), PATH)``
  or ``torch.jit.script``), loaded with ``torch.jit.load`` onto the evaluation's device. A bare state dict has no
  architecture and is refused with the line that says how to export one. TorchScript is code: load files you trust.
- **Input**: float32 RGB, NCHW, values in [0, 1] (uint8 / 255, nothing subtracted or divided: put your
  normalisation, e.g. ImageNet or CLIP mean/std, inside the module). Size: the evaluated covers' resolution,
  or, when the module has an integer attribute ``input_resolution``, resized to it (bilinear, antialiased).
- **Output**: a float tensor (N, d), d >= 1, finite, not the same vector for every cover.

The file's SHA-256 names the extractor (``file:NAME@sha12``), goes into its preprocessing string (and so into
every feature-cache key: changed weights never hit a stale cache) and into ``metrics.json``'s extractor info.
Evaluations with such features add CMMD beside FID (``metrics.distribution.cmmd``; ``uses_cmmd``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.data.prepared import file_sha256
from core.errors import UserError
from metrics.features.extractors import Extractor, ExtractorRequest

FILE_SCHEME = "file"
CMMD_SCHEMES = (FILE_SCHEME,)  # extractor kinds whose evaluations add CMMD beside FID
INPUT_CONTRACT = "float32 RGB NCHW in [0, 1]"
PROBE_IMAGES = 16
CHUNK = 64  # images per forward pass: bounded memory whatever the module's input size


def uses_cmmd(kind: str) -> bool:
    """Whether an evaluation with features ``kind`` reports CMMD beside FID (your own feature network: yes)."""
    return str(kind).partition(":")[0] in CMMD_SCHEMES


def _first_line(e: BaseException) -> str:
    """The last non-empty line of an error: TorchScript puts its own traceback before the actual message."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def load_feature_module(path: Path, device: torch.device) -> torch.jit.ScriptModule:
    """The TorchScript module at ``path`` in eval mode on ``device``; one line for anything else."""
    try:
        module = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as e:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - not a torch file at all: say what torch.jit.load said
            raise UserError(f"{path} is not a TorchScript module ({_first_line(e)})") from None
        if isinstance(state, dict):
            raise UserError(
                f"{path} holds a state dict (weights without an architecture): save the network as TorchScript, e.g. "
                "torch.jit.save(torch.jit.trace(net.eval(), torch.rand(1, 3, R, R)), 'features.pt')"
            ) from None
        raise UserError(f"{path} holds a {type(state).__name__}, not a TorchScript module") from None
    return module.eval()


def input_resolution(module: torch.jit.ScriptModule, res: int) -> int:
    """The module's ``input_resolution`` attribute when it has a positive int one, else the covers' ``res``."""
    value = getattr(module, "input_resolution", None)
    if value is None:
        return res
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"the feature network's input_resolution must be a positive int, got {value!r}")
    return value


def _forward(module: torch.jit.ScriptModule, images: np.ndarray, in_res: int, device: torch.device) -> np.ndarray:
    """uint8 NHWC -> the module's (N, d) float32 features, checked against the output contract."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != in_res or x.shape[-2] != in_res:
        x = F.interpolate(x, size=(in_res, in_res), mode="bilinear", antialias=True, align_corners=False)
    try:
        with torch.no_grad():
            out = module(x)
    except Exception as e:  # noqa: BLE001 - whatever the user's module raises, one line that names the contract
        raise UserError(
            f"the feature network failed on the input contract ({INPUT_CONTRACT}, shape {tuple(x.shape)}): "
            f"{_first_line(e)}"
        ) from None
    if not isinstance(out, torch.Tensor):
        raise UserError(f"the feature network returned a {type(out).__name__}, not an (N, d) tensor")
    if out.ndim != 2 or out.shape[0] != len(images) or out.shape[1] < 1:
        raise UserError(
            f"the feature network returned shape {tuple(out.shape)} for {len(images)} images: it must return "
            "(N, d) (pool or flatten inside the module)"
        )
    return out.detach().float().cpu().numpy()


def checked_features(module: torch.jit.ScriptModule, images: np.ndarray, in_res: int, device: torch.device
                     ) -> np.ndarray:
    """Features of ``images`` in chunks of CHUNK; refuses NaN or inf naming the first image that got them."""
    parts = []
    for s in range(0, len(images), CHUNK):
        feats = _forward(module, images[s : s + CHUNK], in_res, device)
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


def file_extractor(r: ExtractorRequest) -> Extractor:
    """The ``file:PATH`` factory: load, hash and probe the user's TorchScript feature network."""
    if not r.argument:
        raise UserError("file features need a path: --features file:PATH.pt")
    path = Path(r.argument).expanduser()
    if not path.is_file():
        raise UserError(f"no feature network at {path} (features file:PATH.pt reads a local TorchScript file)")
    sha = file_sha256(path)
    module = load_feature_module(path, r.device)
    in_res = input_resolution(module, r.res)

    def features(images: np.ndarray) -> np.ndarray:
        return checked_features(module, images, in_res, r.device)

    probe = features(_probe_images(r))
    if len(probe) > 1 and not (probe.std(axis=0) > 0).any():
        raise UserError(f"the feature network {path.name} gives every probe cover the same features: it cannot "
                        "tell covers apart")
    info: dict[str, Any] = {
        "path": r.argument, "sha256": sha, "format": "torchscript", "dim": int(probe.shape[1]),
        "input": INPUT_CONTRACT, "input_resolution": in_res,
    }  # fmt: skip
    prep = f"file-sha256-{sha}-r{r.res}-in{in_res}-rgb01"
    return Extractor(f"{FILE_SCHEME}:{path.name}@{sha[:12]}", prep, features, info)
