"""The summary of a gpu_checks.sh run compares each case with the default case of the same run and configuration."""

from __future__ import annotations

import json

import pytest

from speed.summarize_gpu_checks import main, training_rows


def _case(res, batch, ips, *, fir="conv", cb=16384, compile_=False, cl=True, model="stylegan_cond"):
    return {"model": model, "res": res, "batch": batch, "images_per_s": ips, "s_per_kimg": 1000.0 / ips,
            "compile": compile_, "compile_mode": None, "channels_last": cl, "amp_bf16": True,
            "peak_memory_mb": 1.0, "hparams": {"channel_base": cb, "fir_impl": fir}}


def test_ratios_use_the_same_runs_default_of_the_same_configuration():
    results = {
        "sg256-eager": _case(256, 32, 100.0),
        "sg256-eager-pool": _case(256, 32, 250.0, fir="pool"),
        "sg256-eager-nchw": _case(256, 32, 50.0, cl=False),
        "sg256w-eager": _case(256, 32, 40.0, cb=32768),
        "sg256w-eager-fold": _case(256, 32, 300.0, cb=32768, fir="fold"),
        "sg64-compile": _case(64, 64, 900.0, compile_=True),
        "dcgan": {**_case(64, 256, 24000.0, model="dcgan_cond"), "hparams": {}},
        "fir256": {"res": 256, "totals_ms": {}},  # not a training case: left out
    }
    rows = {r["case"]: r for r in training_rows(results)}
    assert set(rows) == set(results) - {"fir256"}
    assert rows["sg256-eager"]["baseline"] == "sg256-eager" and rows["sg256-eager"]["vs_baseline"] == 1.0
    assert rows["sg256-eager-pool"]["vs_baseline"] == pytest.approx(2.5)
    assert rows["sg256-eager-nchw"]["baseline"] == "sg256-eager"  # channels_last is the default it is measured against
    assert rows["sg256w-eager-fold"]["baseline"] == "sg256w-eager"  # widths never cross
    assert rows["sg256w-eager-fold"]["vs_baseline"] == pytest.approx(7.5)
    assert rows["sg64-compile"]["baseline"] is None  # no eager default at 64 px in this run
    # the anchor: 6.7-6.9 s/kimg at 256 px batch 32; the goal is twice its best rate (<= 3.35 s/kimg)
    assert rows["sg256-eager-pool"]["vs_nvidia"] == pytest.approx((6.7 / 4.0, 6.9 / 4.0))
    assert rows["sg256-eager-pool"]["goal_met"] is False
    assert rows["sg256w-eager-fold"]["goal_met"] is True  # 3.33 s/kimg
    assert rows["dcgan"]["goal_met"] is True and rows["dcgan"]["vs_nvidia"] is None


def test_main_prints_a_markdown_table_and_refuses_a_missing_file(tmp_path, capsys):
    p = tmp_path / "results.json"
    grads = {"device_name": "GPU", "res": 64, "batch": 8, "conv_probe": {"stride1": 0.003},
             "impls": {"fold": {"r1": {"min_cosine": 0.1, "flagged": {"blocks.0.conv1.weight": 0.1}}}}}
    p.write_text(json.dumps({"sg64-eager": _case(64, 64, 412.0), "sg64-eager-fold": _case(64, 64, 824.0, fir="fold"),
                             "bf16-grads": grads}))
    assert main([str(p)]) == 0
    out = capsys.readouterr().out
    assert "| sg64-eager-fold | stylegan_cond, 64, 64 | 16384 | fir=fold | 824 | 1.21 | 2.00x (sg64-eager) |" in out
    assert "fold: r1 min cosine 0.100 FLAGGED ['blocks.0.conv1.weight']" in out
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
