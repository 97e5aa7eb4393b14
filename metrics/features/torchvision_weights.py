"""A fine-tuned torchvision classifier's state dict as a feature network: ``features=file:ARCH=PATH``.

A state dict holds weights, not the architecture, so the spec names it (a ``torchvision.models`` classification
name). The network is built without weights (``get_model(ARCH, weights=None, num_classes=...)``, nothing
downloaded), the file is loaded strictly (``torch.load(weights_only=True)``: no code runs), the final classification
Linear becomes an Identity (the penultimate features), and ImageNet mean/std normalisation goes in front, so the
network takes the file contract's float32 RGB NCHW in [0, 1]. The input size is the architecture's standard one
(the crop of its default torchvision weights: 224, inception_v3 299, efficientnet_b3 300; a ViT its own).
"""

from __future__ import annotations

import difflib
import warnings
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from core.errors import UserError

WRAPPERS = ("state_dict", "model")  # {"state_dict": sd} / {"model": sd}: the usual training-checkpoint layouts
PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel's and torch.compile's key prefixes
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# aux heads a state dict may or may not hold (torchvision's ImageNet weights drop googlenet's); those networks are
# built as torchvision builds them for its ImageNet weights (transform_input=True), the network that was fine-tuned
AUX_KEYS = {"inception_v3": "AuxLogits.", "googlenet": "aux1."}
LIST_NAMES = "python -c 'import torchvision; print(torchvision.models.list_models(torchvision.models))'"


def state_dict_of(obj: Any) -> dict[str, torch.Tensor] | None:
    """The tensors of a saved state dict (unwrapped, DDP/compile prefixes stripped); None if ``obj`` holds none."""
    for key in WRAPPERS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        return None
    for prefix in PREFIXES:
        if all(str(k).startswith(prefix) for k in obj):
            obj = {str(k)[len(prefix) :]: v for k, v in obj.items()}
    return dict(obj)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict saved at ``path`` (tensors only: nothing in the file runs)."""
    try:
        with warnings.catch_warnings():  # a TorchScript file: torch.load says so before it refuses
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a program or a foreign file: one line
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise UserError(f"{path} is not a state dict ({lines[0] if lines else type(e).__name__}); a TorchScript or "
                        ".pt2 program is read as file:PATH, without an architecture") from None  # fmt: skip
    state = state_dict_of(obj)
    if state is None:
        raise UserError(f"{path} holds a {type(obj).__name__} without a state dict (a dict of tensors, possibly "
                        f"under {' or '.join(map(repr, WRAPPERS))})")  # fmt: skip
    return state


def check_arch(arch: str) -> None:
    """Refuse a name that is not a torchvision classification architecture, saying where the names are."""
    names = torchvision.models.list_models(torchvision.models)
    if arch not in names:
        close = difflib.get_close_matches(arch, names, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown torchvision architecture {arch!r}{hint}: {LIST_NAMES} lists them")


def _num_classes(state: dict[str, torch.Tensor]) -> int | None:
    """The classes of the final layer: the last 2-D weight (a torchvision classifier's head comes last)."""
    heads = [v for k, v in state.items() if k.endswith(".weight") and v.ndim == 2]
    return int(heads[-1].shape[0]) if heads else None


def _build(arch: str, state: dict[str, torch.Tensor]) -> nn.Module:
    """The architecture, without weights, shaped as the state dict implies."""
    kwargs: dict[str, Any] = {}
    n = _num_classes(state)
    if n is not None:
        kwargs["num_classes"] = n
    if arch in AUX_KEYS:
        aux = any(k.startswith(AUX_KEYS[arch]) for k in state)
        kwargs.update(aux_logits=aux, init_weights=False, transform_input=True)
    return torchvision.models.get_model(arch, weights=None, **kwargs)


def _mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """The first key that keeps ``state`` from loading into ``model``, in words; None if it fits."""
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    if missing or unexpected:
        first = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        return f"{first} ({len(missing)} missing, {len(unexpected)} unexpected)"
    for k, v in want.items():
        if state[k].shape != v.shape:
            return f"{k!r} is {tuple(state[k].shape)} in the file, {tuple(v.shape)} in the architecture"
    return None


def _drop_head(model: nn.Module, arch: str) -> None:
    """The final classification Linear becomes an Identity: the network returns its penultimate features."""
    heads = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not heads:
        raise UserError(f"torchvision's {arch} has no final Linear layer to take the features before: name another "
                        "architecture or save the feature network itself (file:PATH)")  # fmt: skip
    model.set_submodule(heads[-1], nn.Identity())


def input_size(arch: str, model: nn.Module) -> int:
    """The architecture's standard input size: a ViT's own, else the crop of its default torchvision weights."""
    own = getattr(model, "image_size", None)
    if isinstance(own, int):
        return own
    crop = torchvision.models.get_model_weights(arch).DEFAULT.transforms.keywords.get("crop_size", 224)
    return int(crop[0] if isinstance(crop, (list, tuple)) else crop)


class ImageNetInput(nn.Module):
    """[0, 1] RGB in, ImageNet-normalised into the network: what a torchvision classifier was trained on."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def torchvision_features(path: Path, arch: str, device: torch.device) -> tuple[nn.Module, int]:
    """The feature network of the state dict at ``path`` for torchvision's ``arch``, and its input size."""
    check_arch(arch)
    state = read_state_dict(path)
    model = _build(arch, state)
    problem = _mismatch(model, state)
    if problem:
        raise UserError(f"{path} is not a state dict of torchvision's {arch}: {problem}")
    model.load_state_dict(state, strict=True)
    _drop_head(model, arch)
    return ImageNetInput(model).to(device).eval(), input_size(arch, model)
