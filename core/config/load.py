"""Build a ``Config`` from layers: data YAML, the preset YAML, explicit values, then ``--set`` overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from core.config.schema import Config
from core.errors import UserError
from core.paths import configs_dir

PRESETS = ("cpu", "gpu")
# Data config files and where their contents go in the merged tree.
DATA_LAYERS = {"synth.yaml": ("data", "synth"), "import.yaml": ("data", "import")}


def default_preset() -> str:
    """``gpu`` when CUDA is available, else ``cpu``."""
    try:
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    except Exception:  # pragma: no cover - torch missing or broken
        return "cpu"


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise UserError(f"config file not found: {path}") from e
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def nest(path: tuple[str, ...] | list[str], value: Any) -> dict[str, Any]:
    out: Any = value
    for key in reversed(path):
        out = {key: out}
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value parsed as YAML, so 3, 0.5, [32,64] and true work)."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not key.strip() or any(not p for p in parts):
        raise UserError(f"--set expects key.sub=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def describe_validation_error(err: ValidationError) -> str:
    msgs = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif isinstance(e.get("input"), int | float | str) and "got" not in msg:
            msg += f", got {str(e['input'])[:40]}"  # name the value: "--kimg nan" must say nan
        msgs.append(f"{loc}: {msg}")
    return "; ".join(msgs)


def validate(tree: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(tree)
    except ValidationError as e:
        raise UserError(f"invalid config: {describe_validation_error(e)}") from e


def load_config(
    preset: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    values: dict[str, Any] | None = None,
    config_root: Path | None = None,
) -> Config:
    """Resolve the configuration.

    Layers, later winning: schema defaults, ``configs/data/*.yaml``, ``configs/presets/<preset>.yaml``,
    ``values`` (explicit CLI flags, as a nested dict), then ``overrides`` (``key.sub=value`` strings).
    """
    root = config_root or configs_dir()
    preset = preset or default_preset()
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    tree: dict[str, Any] = {}
    for fname, where in DATA_LAYERS.items():
        path = root / "data" / fname
        if path.is_file():
            tree = deep_merge(tree, nest(where, read_yaml(path)))
    tree = deep_merge(tree, read_yaml(root / "presets" / f"{preset}.yaml"))
    tree["preset"] = preset
    if values:
        tree = deep_merge(tree, values)
    for text in overrides:
        parts, value = parse_override(text)
        tree = deep_merge(tree, nest(parts, value))
    return validate(tree)


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True), sort_keys=False)
