"""Config layering, validation errors that name the key, and presets."""

from __future__ import annotations

import pytest

from core.config import load_config, parse_override
from core.config.load import dump_config
from core.errors import UserError


def test_defaults_and_presets():
    cpu = load_config("cpu")
    gpu = load_config("gpu")
    assert cpu.preset == "cpu" and gpu.preset == "gpu"
    assert cpu.data.synth.tracks == 4000 and cpu.data.synth.genres == 8
    assert cpu.data.synth.coupling == 1.0 and cpu.data.synth.seconds == 10.0
    assert 32 in cpu.data.synth.res and 256 in gpu.data.synth.res
    assert cpu.data.loader.batch_size != gpu.data.loader.batch_size


def test_default_preset_follows_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert load_config().preset == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert load_config().preset == "gpu"


def test_overrides_parse_yaml_values():
    cfg = load_config("cpu", ["data.synth.tracks=123", "data.synth.res=[32, 128]", "data.split.seed=7"])
    assert cfg.data.synth.tracks == 123
    assert cfg.data.synth.res == [32, 128]
    assert cfg.data.split.seed == 7
    assert parse_override("a.b=0.5") == (["a", "b"], 0.5)


def test_explicit_values_beat_preset_and_sets_beat_values():
    cfg = load_config("cpu", ["data.synth.genres=6"], values={"data": {"synth": {"genres": 4, "tracks": 50}}})
    assert cfg.data.synth.genres == 6 and cfg.data.synth.tracks == 50


@pytest.mark.parametrize(
    "override, key",
    [
        ("data.synth.trakcs=5", "data.synth.trakcs"),
        ("data.synth.coupling=1.5", "data.synth.coupling"),
        ("data.synth.res=[16]", "data.synth.res"),
        ("data.split.train=0.9", "data.split"),
        ("data.import.max_reject_share=abc", "data.import.max_reject_share"),
        ("nonsense=1", "nonsense"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(UserError) as e:
        load_config("cpu", [override])
    assert key in str(e.value)


def test_malformed_override_and_unknown_preset():
    with pytest.raises(UserError, match="key.sub=value"):
        load_config("cpu", ["no-equals-sign"])
    with pytest.raises(UserError, match="unknown preset"):
        load_config("tpu")


def test_bad_yaml_file_is_a_user_error(tmp_path):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "cpu.yaml").write_text("data: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config("cpu", config_root=tmp_path)
    (tmp_path / "presets" / "cpu.yaml").write_text("data:\n  synth:\n    tracks: -1\n")
    with pytest.raises(UserError, match="data.synth.tracks"):
        load_config("cpu", config_root=tmp_path)


def test_dump_round_trips():
    import yaml

    cfg = load_config("gpu", ["data.synth.tracks=99"])
    tree = yaml.safe_load(dump_config(cfg))
    assert tree["data"]["synth"]["tracks"] == 99
    assert "import" in tree["data"]  # alias survives the dump
    assert load_config("gpu", values=tree) == cfg
