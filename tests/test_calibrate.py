"""``bench calibrate``: thresholds from the spread of N seeds by the written rule, and the gate holds on those runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

import benchmark.pipeline.calibrate as cal
from benchmark.cli.app import main
from core import paths
from core.config import load_config
from core.errors import UserError
from reports.check import check_thresholds, load_thresholds

FIDS = {"dcgan_cond": [50, 52, 54, 56, 58], "dcgan": [40, 60, 80, 100, 120], "stylegan_cond": [60, 61, 62, 63, 64]}
ACCS = {"dcgan_cond": [0.40, 0.42, 0.44, 0.46, 0.48], "dcgan": [0.12, 0.13, 0.125, 0.14, 0.115],
        "stylegan_cond": [0.30, 0.33, 0.21, 0.31, 0.32]}
VERDICTS = {"dcgan_cond": ["yes"] * 5, "dcgan": ["no"] * 5,
            "stylegan_cond": ["yes", "yes", "inconclusive", "yes", "yes"]}
PVALS = {"dcgan_cond": [0.0005] * 5, "dcgan": [0.4, 0.2, 0.6, 0.05, 0.9],
         "stylegan_cond": [0.0005, 0.0005, 0.02, 0.001, 0.0005]}


def _doc(model: str, seed: int, fid: float, acc: float, p: float, verdict: str) -> dict:
    entry = {"n": 2000, "extractor": "covernet", "seed": seed}
    return {
        "schema_version": 1, "model": model, "conditional": model.endswith("_cond"), "seeds": {"eval": seed},
        "metrics": {
            "fid": {"value": fid, "interval": [fid - 2, fid + 2], **entry},
            "conditional_accuracy": {"value": acc, "p_value": p, "null_mean": 0.125, "margin": 0.08, **entry},
        },
        "verdict": {"conditioning_works": verdict, "reasons": []},
    }


def _write_run(name: str, seed: int, models=("dcgan_cond", "dcgan", "stylegan_cond")) -> None:
    rp = paths.run(name)
    for m in models:
        d = rp.root / "eval" / m
        d.mkdir(parents=True, exist_ok=True)
        doc = _doc(m, seed, FIDS[m][seed], ACCS[m][seed], PVALS[m][seed], VERDICTS[m][seed])
        (d / "metrics.json").write_text(json.dumps(doc))


@pytest.fixture
def five_runs():
    for s in range(5):
        _write_run(f"cal{s}", s)
    return load_config("cpu")


def _rule_fid_max(xs) -> float:
    a = np.asarray(xs, float)
    return a.max() + max(3 * a.std(ddof=1), 0.25 * a.mean())


def test_bounds_follow_the_written_rule(five_runs, tmp_path):
    out = tmp_path / "thr.yaml"
    result = cal.calibrate(five_runs, 5, "cal", out, from_runs=True)
    tree = yaml.safe_load(out.read_text())
    assert list(tree) == ["calibrated_for", "dcgan", "dcgan_cond", "stylegan_cond"]  # coverbench's model order
    assert tree["calibrated_for"] == {"extractor": "covernet"}  # all these hand-written runs record
    # fid: 25 % of the mean dominates for dcgan_cond (3 sd = 9.5 < 13.5), 3 sd for dcgan (94.9 > 20)
    assert tree["dcgan_cond"]["fid"]["max"] == pytest.approx(58 + 13.5)
    assert tree["dcgan"]["fid"]["max"] == pytest.approx(math.ceil(_rule_fid_max(FIDS["dcgan"]) * 10) / 10)
    assert tree["dcgan"]["fid"]["max"] == pytest.approx(120 + 3 * math.sqrt(1000), abs=0.1)
    # conditional, all yes: verdict yes, p <= alpha, accuracy min = max(null + margin, min - 3 sd)
    c = tree["dcgan_cond"]
    assert c["verdict.conditioning_works"] == {"equals": "yes"}
    assert c["conditional_accuracy.p_value"] == {"max": 0.01}
    assert c["conditional_accuracy"]["min"] == pytest.approx(math.floor((0.40 - 3 * math.sqrt(0.001)) * 1000) / 1000)
    # conditional, one seed inconclusive: no verdict bound, no p bound, a warning; accuracy min not below the null
    s = tree["stylegan_cond"]
    assert "verdict.conditioning_works" not in s and "conditional_accuracy.p_value" not in s
    assert s["conditional_accuracy"]["min"] <= 0.21
    assert any(w.startswith("stylegan_cond: verdicts") for w in result.warnings)
    # the measured spread and the rule are in the file, as comments
    text = out.read_text()
    assert "fid max                                = max + max(3 s, 0.25 m)" in text
    assert "#   fid       mean 54  sd 3.162  min 50  max 58" in text
    assert "#   verdicts  yes 4, inconclusive 1 (of 5)" in text


def test_unconditional_model_is_bound_to_no(five_runs, tmp_path):
    out = tmp_path / "thr.yaml"
    cal.calibrate(five_runs, 5, "cal", out, from_runs=True)
    u = yaml.safe_load(out.read_text())["dcgan"]
    assert u["verdict.conditioning_works"] == {"equals": "no"}
    assert u["conditional_accuracy.p_value"] == {"min": cal.UNCOND_P_MIN}
    assert u["conditional_accuracy"]["max"] == pytest.approx(0.125 + 0.08)  # null + margin > max seen 0.14
    # a leaking negative control: the gate says so on that run (bench check fails there) and calibrate warns
    p = paths.run("cal2").root / "eval" / "dcgan" / "metrics.json"
    doc = json.loads(p.read_text())
    doc["verdict"]["conditioning_works"] = "inconclusive"
    p.write_text(json.dumps(doc))
    result = cal.calibrate(five_runs, 5, "cal", out, from_runs=True)
    assert yaml.safe_load(out.read_text())["dcgan"]["verdict.conditioning_works"] == {"equals": "no"}
    assert any("negative control did not say 'no' (seed 2: inconclusive)" in w for w in result.warnings)
    assert any(w.startswith("the written gate fails on cal2: dcgan verdict") for w in result.warnings)


def test_check_passes_on_every_seed_and_fails_out_of_bound(five_runs, tmp_path):
    out = tmp_path / "thr.yaml"
    result = cal.calibrate(five_runs, 5, "cal", out, from_runs=True)
    assert not [w for w in result.warnings if "written gate fails" in w]
    bounds = load_thresholds(out)
    for s in range(5):
        report = check_thresholds(paths.run(f"cal{s}"), bounds)
        assert report.ok and len(report.results) == 4 + 4 + 2, [f.line() for f in report.failures]
    # a sixth run, out of bounds: FID above the max, and a conditional model at chance
    _write_run("cal5", 0)
    d = paths.run("cal5").root / "eval"
    doc = json.loads((d / "dcgan_cond" / "metrics.json").read_text())
    doc["metrics"]["fid"]["value"] = 72.0
    doc["metrics"]["conditional_accuracy"]["value"] = 0.13
    (d / "dcgan_cond" / "metrics.json").write_text(json.dumps(doc))
    failed = {f.path for f in check_thresholds(paths.run("cal5"), bounds).failures}
    assert failed == {"fid", "conditional_accuracy"}


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_from_runs_then_check(five_runs, tmp_path, capsys):
    out = tmp_path / "ci.yaml"
    code, stdout, err = run_cli(
        ["calibrate", "--seeds", "5", "--run-prefix", "cal", "--from-runs", "--out", str(out)], capsys
    )
    assert code in (None, 0), err
    assert "thresholds written to" in stdout and "warning: stylegan_cond: verdicts" in " ".join(err.split())
    for s in (0, 4):
        code, stdout, _ = run_cli(["check", "--run", f"cal{s}", "--thresholds", str(out)], capsys)
        assert code in (None, 0) and "all 10 checks passed" in stdout
    code, _, err = run_cli(["calibrate", "--seeds", "6", "--run-prefix", "cal", "--from-runs", "--out", str(out)],
                           capsys)
    assert code == 2 and "'cal5' has no evaluated models" in err


def test_refusals(five_runs, tmp_path):
    with pytest.raises(UserError, match="at least 2 seeds"):
        cal.calibrate(five_runs, 1, "cal", from_runs=True)
    with pytest.raises(UserError, match="run 'cal0' exists: pass --reuse"):
        cal.calibrate(five_runs, 5, "cal")
    _write_run("part0", 0)
    _write_run("part1", 1, models=("dcgan",))
    result = cal.calibrate(five_runs, 2, "part", from_runs=True)
    assert list(result.thresholds) == ["dcgan"]
    assert "dcgan_cond: not evaluated in part1; left out of the thresholds" in result.warnings


def test_reuse_trains_only_missing_seeds_with_their_seed(five_runs, tmp_path, monkeypatch):
    """The seeds reach config ``seed``, ``train.seed`` and ``eval.seed``; runs that hold evaluations are read."""
    seen = []

    def fake_train_and_evaluate(cfg):
        seen.append((cfg.run, cfg.seed, cfg.train.seed, cfg.eval.seed, cfg.preset))
        _write_run(cfg.run, cfg.eval.seed)

    monkeypatch.setattr(cal, "train_and_evaluate", fake_train_and_evaluate)
    for s in (3, 4):
        for d in (paths.run(f"cal{s}").root / "eval").iterdir():
            (d / "metrics.json").unlink()
    result = cal.calibrate(five_runs, 5, "cal", tmp_path / "t.yaml", reuse=True)
    assert seen == [("cal3", 3, 3, 3, "cpu"), ("cal4", 4, 4, 4, "cpu")]
    assert result.thresholds["dcgan_cond"]["fid"]["max"] == pytest.approx(71.5)


def test_seed_config_keeps_the_rest():
    base = load_config("cpu", ["eval.n=300", "train.kimg=3"])
    cfg = cal.seed_config(base, 7, "ci-")
    assert (cfg.run, cfg.seed, cfg.train.seed, cfg.eval.seed) == ("ci-7", 7, 7, 7)
    assert (cfg.eval.n, cfg.train.kimg, cfg.data.name) == (300, 3.0, base.data.name)
    assert cfg.train.per_model == base.train.per_model


def test_refused_run_is_not_calibrated_on(five_runs):
    p = paths.run("cal1").root / "eval" / "dcgan" / "metrics.json"
    doc = json.loads(p.read_text())
    doc["refused"] = "the real covers' features are degenerate"
    p.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="run 'cal1': the evaluation of dcgan was refused"):
        cal.calibrate(five_runs, 5, "cal", from_runs=True)


def test_runs_sharing_a_seed_are_flagged(tmp_path):
    for s in range(3):
        _write_run(f"same{s}", 0)  # eval seed 0 in every metrics.json
        paths.run(f"same{s}").config.write_text("seed: 0\ntrain:\n  seed: 0\n")
    result = cal.calibrate(load_config("cpu"), 3, "same", from_runs=True)
    assert "every run was trained with train.seed 0: the spread misses training noise" in result.warnings
    assert "every run was evaluated with eval seed 0: the spread misses evaluation noise" in result.warnings


def test_music_conditioned_model_is_gated_on_retrieval(tmp_path):
    """A continuous condition's gate is the track-level retrieval score (rule: min - 3 sd, floored at null + margin)."""
    scores = [0.64, 0.66, 0.65, 0.70, 0.62]
    for seed, score in enumerate(scores):
        d = paths.run(f"mus{seed}").root / "eval" / "dcgan_cond+pca"
        d.mkdir(parents=True)
        doc = _doc("dcgan_cond", seed, 80.0 + seed, 0.2, 0.0005, "yes")
        doc.update(model="dcgan_cond+pca", condition="pca", condition_kind="continuous")
        doc["metrics"]["retrieval"] = {"value": score, "p_value": 0.0005, "null_mean": 0.5, "margin": 0.05}
        (d / "metrics.json").write_text(json.dumps(doc))
    result = cal.calibrate(load_config("cpu"), 5, "mus", tmp_path / "t.yaml", from_runs=True)
    block = result.thresholds["dcgan_cond+pca"]
    a = np.asarray(scores)
    assert block["retrieval"]["min"] == pytest.approx(math.floor(max(0.55, a.min() - 3 * a.std(ddof=1)) * 1000) / 1000)
    assert block["retrieval.p_value"] == {"max": 0.01} and "conditional_accuracy" not in block
    assert block["verdict.conditioning_works"] == {"equals": "yes"}
