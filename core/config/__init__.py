"""Configuration: pydantic schema, YAML layers in ``configs/``, presets and ``--set`` overrides."""

from core.config.load import default_preset, load_config, parse_override
from core.config.schema import Config

__all__ = ["Config", "default_preset", "load_config", "parse_override"]
