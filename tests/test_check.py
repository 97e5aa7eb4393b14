"""``bench check``: bounds, dotted paths, missing models, malformed files (exit 2), baseline regressions."""

from __future__ import annotations

import json

import pytest

from benchmark.cli.app import main
from core import paths
from core.errors import UserError
from reports.check import check_thresholds, collect_baseline, direction, load_thresholds, resolve


def _doc(model: str, fid: float, acc: float, p: float, verdict: str, precision: float = 0.5) -> dict:
    """A metrics.json with the fields ``evaluate_model`` writes that the checks read."""
    entry = {"n": 200, "extractor": "covernet", "seed": 0}
    return {
        "schema_version": 1,
        "model": model,
        "images_seen": 3000,
        "metrics": {
            "fid": {"value": fid, "interval": [fid * 0.9, fid * 1.1], **entry},
            "kid": {"value": fid / 1000, **entry},
            "precision": {"value": precision, "k": 3, **entry},
            "intra_fid": {"value": None, "skipped": {"0": "too few"}, **entry},
            "conditional_accuracy": {
                "value": acc,
                "p_value": p,
                "null_mean": 0.25,
                "details": {"ceiling": 0.9},
                **entry,
            },
            "purity": {"value": 0.3, "p_value": 0.01, **entry},
            "tsne": {"genre": {"lift": 0.4}, "trustworthiness": 0.9},
        },
        "verdict": {"conditioning_works": verdict, "reasons": []},
    }


@pytest.fixture
def run_dir(tmp_path):
    rp = paths.run("ci")
    for doc in (_doc("dcgan_cond", 80.0, 0.7, 0.001, "yes"), _doc("dcgan", 120.0, 0.26, 0.4, "no")):
        d = rp.eval(doc["model"])
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(doc))
    return rp


def _write(tmp_path, text: str):
    p = tmp_path / "thresholds.yaml"
    p.write_text(text)
    return p


GOOD = """
dcgan_cond:
  fid: {max: 100}
  conditional_accuracy: {min: 0.5}
  conditional_accuracy.p_value: {max: 0.01}
  verdict.conditioning_works: {equals: "yes"}
  images_seen: {min: 1000, max: 5000}
dcgan:
  fid: {min: 0, max: 200}
  conditional_accuracy: {max: 0.35}
  verdict.conditioning_works: {equals: "no"}
"""


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_resolve_bare_dotted_and_top_level():
    doc = _doc("dcgan_cond", 80.0, 0.7, 0.001, "yes")
    assert resolve(doc, "fid") == (True, 80.0)
    assert resolve(doc, "conditional_accuracy.p_value") == (True, 0.001)
    assert resolve(doc, "conditional_accuracy.details.ceiling") == (True, 0.9)
    assert resolve(doc, "tsne.genre.lift") == (True, 0.4)
    assert resolve(doc, "verdict.conditioning_works") == (True, "yes")
    assert resolve(doc, "metrics.fid") == (True, 80.0)
    assert resolve(doc, "fidd")[0] is False
    assert resolve(doc, "fid.nope")[0] is False


def test_all_pass_exit_0(run_dir, tmp_path, capsys):
    report = check_thresholds(run_dir, _write(tmp_path, GOOD))
    assert len(report.results) == 8 and report.ok
    code, out, _ = run_cli(["check", "--run", "ci", "--thresholds", str(tmp_path / "thresholds.yaml")], capsys)
    assert code == 0
    assert "all 8 checks passed" in out


@pytest.mark.parametrize(
    ("text", "model", "path", "needle"),
    [
        ("dcgan_cond:\n  fid: {max: 50}\n", "dcgan_cond", "fid", "80 > max 50"),
        ("dcgan_cond:\n  conditional_accuracy: {min: 0.8}\n", "dcgan_cond", "conditional_accuracy", "0.7 < min 0.8"),
        ("dcgan:\n  conditional_accuracy.p_value: {max: 0.01}\n", "dcgan", "conditional_accuracy.p_value", "> max"),
        ("dcgan:\n  verdict.conditioning_works: {equals: 'yes'}\n", "dcgan", "verdict.conditioning_works", "'no'"),
        ("dcgan_cond:\n  intra_fid: {max: 100}\n", "dcgan_cond", "intra_fid", "no numeric value"),
        ("stylegan:\n  fid: {max: 100}\n", "stylegan", "fid", "no metrics.json"),
    ],
)
def test_each_failure_kind_exit_1(run_dir, tmp_path, capsys, text, model, path, needle):
    p = _write(tmp_path, text)
    report = check_thresholds(run_dir, p)
    assert [(f.model, f.path) for f in report.failures] == [(model, path)]
    code, out, err = run_cli(["check", "--run", "ci", "--thresholds", str(p)], capsys)
    assert code == 1
    lines = [ln for ln in err.splitlines() if ln.startswith("FAIL ")]
    assert lines == [f"FAIL {model} {path}: {report.failures[0].message}"]
    assert needle in lines[0]


def test_every_failure_is_named(run_dir, tmp_path, capsys):
    p = _write(tmp_path, "dcgan_cond:\n  fid: {max: 50}\n  kid: {max: 0.01}\ndcgan:\n  fid: {max: 100}\n")
    code, _, err = run_cli(["check", "--run", "ci", "--thresholds", str(p)], capsys)
    assert code == 1
    fails = [ln for ln in err.splitlines() if ln.startswith("FAIL ")]
    assert len(fails) == 3
    assert {ln.split(":")[0] for ln in fails} == {"FAIL dcgan_cond fid", "FAIL dcgan_cond kid", "FAIL dcgan fid"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("dcgan_cond:\n  fid: {max: [1\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("dcgan_kond:\n  fid: {max: 1}\n", "unknown model 'dcgan_kond'"),
        ("dcgan_cond:\n  fidd: {max: 1}\n", "no 'fidd'"),
        ("dcgan_cond:\n  fid: {min: 10, max: 1}\n", "min 10 is greater than max 1"),
        ("dcgan_cond:\n  fid: {max: lots}\n", "max must be a finite number"),
        ("dcgan_cond:\n  fid: {max: .nan}\n", "max must be a finite number"),
        ("dcgan_cond:\n  fid: {maximum: 1}\n", "unknown key"),
        ("dcgan_cond:\n  fid: 100\n", "expected a mapping"),
        ("dcgan_cond:\n  tsne: {max: 1}\n", "group of values"),
    ],
)
def test_malformed_file_exit_2_one_line(run_dir, tmp_path, capsys, text, needle):
    p = _write(tmp_path, text)
    code, _, err = run_cli(["check", "--run", "ci", "--thresholds", str(p)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err


def test_missing_thresholds_file_and_no_arguments(run_dir, tmp_path, capsys):
    code, _, err = run_cli(["check", "--run", "ci", "--thresholds", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "not found" in err
    code, _, err = run_cli(["check", "--run", "ci"], capsys)
    assert code == 2 and "nothing to check" in err


def test_load_thresholds_keeps_bounds(tmp_path):
    bounds = load_thresholds(_write(tmp_path, GOOD))
    fid = next(b for b in bounds["dcgan"] if b.path == "fid")
    assert (fid.min, fid.max, fid.has_equals) == (0.0, 200.0, False)
    eq = next(b for b in bounds["dcgan_cond"] if b.path == "verdict.conditioning_works")
    assert eq.has_equals and eq.equals == "yes"


def test_example_file_is_valid_and_checks_a_run(run_dir):
    from core.paths import configs_dir

    example = configs_dir() / "thresholds" / "example.yaml"
    bounds = load_thresholds(example)
    assert set(bounds) == {"dcgan_cond", "dcgan"}
    report = check_thresholds(run_dir, example)
    assert len(report.results) == sum(len(b) for b in bounds.values())
    assert report.ok
    doc = json.loads((run_dir.eval("dcgan") / "metrics.json").read_text())
    doc["verdict"]["conditioning_works"] = "yes"
    (run_dir.eval("dcgan") / "metrics.json").write_text(json.dumps(doc))
    assert [(f.model, f.path) for f in check_thresholds(run_dir, example).failures] == [
        ("dcgan", "verdict.conditioning_works")
    ]


def test_directions():
    assert [direction(m) for m in ("fid", "kid", "intra_fid")] == ["lower"] * 3
    for m in ("conditional_accuracy", "cas", "precision", "recall", "density", "coverage"):
        assert direction(m) == "higher"
    assert direction("purity") == direction("sensitivity") == "both"


def _rewrite(rp, model, **values):
    p = rp.eval(model) / "metrics.json"
    doc = json.loads(p.read_text())
    for k, v in values.items():
        doc["metrics"][k]["value"] = v
    p.write_text(json.dumps(doc))


def test_baseline_round_trip_and_regressions(run_dir, tmp_path, capsys):
    base = tmp_path / "baseline.json"
    code, _, _ = run_cli(["check", "--run", "ci", "--write-baseline", str(base)], capsys)
    assert code is None or code == 0
    stored = json.loads(base.read_text())["models"]
    assert stored == collect_baseline(run_dir)["models"]
    assert stored["dcgan_cond"]["fid"] == 80.0 and "intra_fid" not in stored["dcgan_cond"]
    code, out, _ = run_cli(["check", "--run", "ci", "--baseline", str(base), "--tolerance", "0.1"], capsys)
    assert code == 0, out

    # within tolerance in the bad direction, and any size in the good direction: pass
    _rewrite(run_dir, "dcgan_cond", fid=87.9, conditional_accuracy=0.95, precision=0.46)
    assert check_thresholds(run_dir, baseline=base, tolerance=0.1).ok
    # worse beyond tolerance: fid up 11 %, accuracy down 11 %, precision down 12 %, purity (two-sided) up 20 %
    _rewrite(run_dir, "dcgan_cond", fid=88.8, conditional_accuracy=0.623, precision=0.44, purity=0.36)
    report = check_thresholds(run_dir, baseline=base, tolerance=0.1)
    failed = sorted(f.path for f in report.failures)
    assert failed == sorted(f"{m} (baseline)" for m in ("fid", "conditional_accuracy", "precision", "purity"))
    code, _, err = run_cli(["check", "--run", "ci", "--baseline", str(base), "--tolerance", "0.1"], capsys)
    assert code == 1 and err.count("FAIL dcgan_cond") == 4
    # a looser tolerance accepts the same numbers
    assert check_thresholds(run_dir, baseline=base, tolerance=0.25).ok


def test_baseline_model_gone_is_a_failure(run_dir, tmp_path):
    base = tmp_path / "baseline.json"
    base.write_text(json.dumps(collect_baseline(run_dir)))
    (run_dir.eval("dcgan") / "metrics.json").unlink()
    report = check_thresholds(run_dir, baseline=base)
    assert report.failures and {f.model for f in report.failures} == {"dcgan"}
    assert all(f.kind == "missing" for f in report.failures)


def test_bad_baseline_file(run_dir, tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        check_thresholds(run_dir, baseline=bad)
    bad.write_text(json.dumps({"models": [1, 2]}))
    with pytest.raises(UserError, match="no 'models' mapping"):
        check_thresholds(run_dir, baseline=bad)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no checks (the file is empty)"),
        ("# only a comment\n", "no checks (the file is empty)"),
        ("{}\n", "no checks (the file is empty)"),
        ("dcgan_cond:\n", "dcgan_cond is listed with no checks"),
        ("dcgan_cond: {}\ndcgan:\n  fid: {max: 200}\n", "dcgan_cond is listed with no checks"),
        ("dcgan:\n  fid: {max: 200}\ndcgan:\n  fid: {max: 1}\n", "duplicate key 'dcgan' at line 3 (first at line 1)"),
        ("dcgan:\n  fid: {max: 200}\n  fid: {max: 1}\n", "duplicate key 'fid' at line 3 (first at line 2)"),
        ("dcgan:\n  fid: {max: 200, max: 1}\n", "duplicate key 'max' at line 2"),
    ],
)
def test_gate_that_checks_nothing_exit_2(run_dir, tmp_path, capsys, text, needle):
    p = _write(tmp_path, text)
    with pytest.raises(UserError, match="thresholds"):
        load_thresholds(p)
    code, _, err = run_cli(["check", "--run", "ci", "--thresholds", str(p)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert needle in " ".join(err.split()), err


def test_plus_suffixed_model_names(tmp_path):
    """One GAN per conditioning source (``stylegan_cond+pca``) is a model of its own; a bare '+' or typo is not."""
    bounds = load_thresholds(_write(tmp_path, "dcgan_cond+pca:\n  fid: {max: 85}\n"))
    assert [(b.path, b.max) for b in bounds["dcgan_cond+pca"]] == [("fid", 85.0)]
    for bad in ("dcgan_cond+", "dcgan_kond+pca", "dcgan+pca", "dcgan_cond+9lives"):  # any other name may be an
        # outside embedding registered in the run (bench encode --from-file): only its syntax is checked here
        with pytest.raises(UserError, match="unknown model"):
            load_thresholds(_write(tmp_path, f"{bad}:\n  fid: {{max: 85}}\n"))


def test_refused_evaluation_fails_every_bound(run_dir, tmp_path, capsys):
    """A near-zero FID from a blind feature extractor must not pass a gate: every bound of that model fails."""
    p = run_dir.eval("dcgan") / "metrics.json"
    doc = json.loads(p.read_text())
    doc["metrics"]["fid"]["value"] = 3.7e-6
    doc["refused"] = "the feature extractor reads genre on held-out real covers at 0.290, below the floor 0.500"
    p.write_text(json.dumps(doc))
    report = check_thresholds(run_dir, _write(tmp_path, GOOD))
    assert sorted((f.model, f.kind) for f in report.failures) == [("dcgan", "refused")] * 3
    assert all("evaluation refused: the feature extractor" in f.message for f in report.failures)
    code, _, err = run_cli(["check", "--run", "ci", "--thresholds", str(tmp_path / "thresholds.yaml")], capsys)
    assert code == 1 and "3 of 8 checks failed" in err
