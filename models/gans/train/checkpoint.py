"""Atomic, resumable checkpoints: everything needed to continue bit-for-bit on CPU.

A checkpoint holds G, D, G_ema, both optimisers, the loss object's state (ADA p, path-length mean), counters,
the data position and every RNG state, and a JSON ``meta`` (networks, condition, and the dataset with its content
fingerprint, checked where a checkpoint is resumed or evaluated; older checkpoints lack the last two). Written to a
temporary file, fsynced, renamed; the last K are kept; loaded with ``torch.load(weights_only=True)`` (only tensors
and plain values inside).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from core import storage
from core.config.hparams import ARCHITECTURE_KEYS, SAMPLING_KEYS
from core.config.names import parse_model_id
from core.errors import UserError
from models.registry import build_model

PATTERN = re.compile(r"^ckpt-(\d{9})\.pt$")


def checkpoint_name(images_seen: int) -> str:
    return f"ckpt-{images_seen:09d}.pt"


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoints in ``directory``, oldest first (by images seen, from the name)."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def state_bytes(obj: Any) -> int:
    """Bytes of the tensors in a (nested) checkpoint state: about the size of the file ``torch.save`` writes."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(state_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(state_bytes(v) for v in obj)
    return 0


def save_checkpoint(state: dict[str, Any], directory: Path, images_seen: int, keep: int) -> Path:
    """Write atomically; a full disk is a one-line UserError with the size needed, older checkpoints untouched."""
    need = int(state_bytes(state) * 1.01) + (256 << 10)  # tensors plus the zip container and plain values
    with storage.disk_errors(directory, need):
        directory.mkdir(parents=True, exist_ok=True)
    storage.check_free_space(directory, need, "a checkpoint")
    path = directory / checkpoint_name(images_seen)
    tmp = directory / f".{path.name}.tmp-{os.getpid()}"
    with storage.disk_errors(directory, need):  # torch reports a full disk as "enforce fail ... unexpected pos"
        try:
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or foreign file
        raise UserError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e


def resume_checkpoint(directory: Path) -> Path | None:
    """The newest readable checkpoint to resume from; None when there are none.

    When checkpoints exist but none can be read, a UserError names them: restarting from zero would silently
    overwrite the run and mix two trainings in ``stats.jsonl``.
    """
    found = list_checkpoints(directory)
    problems = []
    for path in reversed(found):
        try:
            torch.load(path, map_location="cpu", weights_only=True)
            return path
        except Exception as e:  # noqa: BLE001 - truncated, empty or foreign files all mean "unreadable"
            problems.append(f"{path.name} ({type(e).__name__})")
    if found:
        raise UserError(
            f"cannot resume: every checkpoint in {directory} is unreadable: {', '.join(reversed(problems))}; "
            "nothing was overwritten (move them away to start again, or train into another --run)"
        )
    return None


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest readable checkpoint (a torn newest file, which atomic writes should prevent, is skipped)."""
    for path in reversed(list_checkpoints(directory)):
        try:
            torch.load(path, map_location="cpu", weights_only=True)
            return path
        except Exception:
            continue
    return None


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    out = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``opt.load_state_dict(state)``, keeping this optimiser's implementation (fused/foreach).

    ``load_state_dict`` takes those flags from the saved groups too: a checkpoint written before the engine used
    fused Adam would otherwise resume without it (and without the sync-free non-finite guard). Fused Adam keeps its
    step counts on the parameters' device as float32, so older CPU step tensors are moved there.
    """
    impl = [{k: g.get(k) for k in ("fused", "foreach")} for g in opt.param_groups]
    opt.load_state_dict(state)
    for group, flags in zip(opt.param_groups, impl, strict=True):
        group.update(flags)
        if flags["fused"]:
            for p in group["params"]:
                st = opt.state.get(p)
                if st and isinstance(st.get("step"), torch.Tensor):
                    st["step"] = st["step"].to(device=p.device, dtype=torch.float32)


def load_generator(directory: Path, device: str | torch.device = "cpu", ema: bool = True,
                   guidance: float | None = None):
    """The trained generator (G_ema when present, with its ``z_dim``) and its metadata, from the newest checkpoint.

    ``guidance`` sets a diffusion model's classifier-free guidance scale (else the one it was trained with);
    ``meta["guidance"]`` says which scale the generator draws with (None for a GAN, which takes none).
    """
    path = latest_checkpoint(directory / "checkpoints")
    if path is None:
        raise UserError(f"no checkpoint in {directory} (train it first with `bench train`)")
    state = load_checkpoint(path)
    meta = json.loads(state["meta"])
    name = parse_model_id(state["model"]).gan
    spec = build_model(
        name,
        res=meta["res"],
        cond_dim=meta["cond_dim"],
        size=meta["size"],
        **{k: v for k, v in meta["hparams"].items() if k in ARCHITECTURE_KEYS | SAMPLING_KEYS},
    )
    G = spec.G
    if guidance is not None:
        if not hasattr(G, "guidance"):
            raise UserError(f"{meta.get('model_id', name)} is a GAN: it takes no guidance scale")
        G.guidance = guidance
    use_ema = ema and state.get("G_ema")
    G.load_state_dict(state["G_ema"] if use_ema else state["G"])
    G.to(device).eval().requires_grad_(False)
    if getattr(G, "z_dim", None) is None:  # the Generator protocol's z_dim; a diffusion model carries its own
        G.z_dim = meta["z_dim"]
    meta.update(model=name, checkpoint=path.name, ema=bool(use_ema), images_seen=state["counters"]["images_seen"],
                guidance=getattr(G, "guidance", None))
    return G, meta
