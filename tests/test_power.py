"""``bench power``: the partial oracle, its equality with the evaluation's suite, and the sweep on a tiny world.

Planted truths: at strength 0 the covers ignore their condition, so no replicate may say "yes"; at strength 1 every
cover is its asked track's own real cover on a world whose covers follow genre and attributes (coupling 1), so
every replicate must say "yes".
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark.pipeline import power as pw
from core import paths
from core.config import load_config
from core.config.schema import SplitConfig, SynthConfig
from core.data.prepared import PreparedDataset
from core.data.synth.world import synthesize_world
from core.errors import UserError
from metrics.conditioning.stats import wilson_interval
from metrics.conditioning.suite import SuiteSettings, conditioning_suite
from metrics.conditioning.verdict import conditioning_verdict

SETS = ["eval.covernet_batch=32", "eval.covernet_epochs=20", "eval.covernet_patience=20"]


def _cfg():
    return load_config("cpu", SETS)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """4 genres, 400 tracks, covers coupled to their track; the attributes encoder (no training) in run 'r'."""
    from benchmark.pipeline.encode import encode

    root = tmp_path_factory.mktemp("power")
    paths.set_roots(root, root / "runs")
    cfg = SynthConfig(tracks=400, genres=4, coupling=1.0, res=[32], seconds=1.0, seed=3)
    synthesize_world(paths.dataset("pw"), cfg, SplitConfig(), workers=1)
    ds = PreparedDataset.open("pw")
    encode(ds, paths.run("r"), ["attributes"], _cfg(), workers=1)
    paths.set_roots(None, None)
    return root


def _sweep(world, condition: str, **kw) -> dict:
    paths.set_roots(world, world / "runs")
    ds = PreparedDataset.open("pw")
    return pw.power_analysis(ds, paths.run("r"), _cfg().eval, condition, device_kind="cpu", **kw)


def test_partial_oracle_share_of_own_covers():
    """Own cover with probability q, plus the 1/n_test chance that the random track is the asked one."""
    n_test, n = 50, 200_000
    for q in (0.0, 0.3, 1.0):
        asked, source = pw.partial_oracle(n_test, n, q, np.random.default_rng(1))
        expected = q + (1 - q) / n_test
        assert abs((asked == source).mean() - expected) < 4 * np.sqrt(expected * (1 - expected) / n) + 1e-12
        assert asked.min() >= 0 and asked.max() < n_test and source.max() < n_test
    with pytest.raises(UserError):
        pw.partial_oracle(n_test, 10, 1.5, np.random.default_rng(0))


def _synthetic_real(rng, continuous: bool) -> pw.RealLabelled:
    """Gaussian classes in feature space; condition vectors = class centre + noise, features follow them."""
    k, d, dc = 3, 6, 4
    centres = rng.normal(size=(k, dc)) * 2

    def split(m):
        y = rng.integers(0, k, m)
        c = centres[y] + rng.normal(size=(m, dc)) * 0.5
        x = np.hstack([c, rng.normal(size=(m, d - dc))]) + rng.normal(size=(m, d)) * 0.3
        return x, y, c

    tx, ty, tc = split(300)
    ex, ey, ec = split(120)
    return pw.RealLabelled(tx, ty, ex, ey, tc if continuous else None, ec if continuous else None, k, "test")


@pytest.mark.parametrize("continuous", [False, True])
def test_fast_path_equals_suite(continuous):
    """Fitting the classifier and retrieval ceiling once changes nothing: same tests and verdict as the suite."""
    rng = np.random.default_rng(0)
    real = _synthetic_real(rng, continuous)
    model = pw.fit_power_model(real, continuous, seed=0)
    asked, source = pw.partial_oracle(len(real.test_y), 150, 0.3, np.random.default_rng(5))
    d = pw.oracle_data(real, asked, source)
    s = SuiteSettings(n_permutations=model.n_permutations, seed=7, joint_permutations=20, joint_bootstrap=0)
    full = conditioning_suite(d, s, continuous=continuous)
    family = {k: full[k] for k in model.family}
    assert model.family == (["accuracy", "purity", "retrieval"] if continuous else ["accuracy", "purity"])
    assert "cas" in full and ("fjd" in full) == continuous  # the suite runs them; the power family leaves them out
    from metrics.conditioning.suite import class_tests, retrieval_test

    fast = class_tests(d, s, classifier=model.classifier, cas=False)
    if continuous:
        fast["retrieval"] = retrieval_test(d, s, ceiling=model.ceiling)
    assert set(fast) == set(family)
    for key in family:
        a, b = fast[key].to_dict(), family[key].to_dict()
        assert a == b, key
    expected = conditioning_verdict(family, continuous=continuous)["conditioning_works"]
    assert pw.judge(model, d, 7)["conditioning_works"] == expected


def test_parse_flags():
    assert pw.parse_strengths("1, 0,0.1,0") == (0.0, 0.1, 1.0)
    assert pw.parse_sizes("500,200") == (200, 500)
    for bad in ("1.5", "x", "-0.1", "nan"):
        with pytest.raises(UserError, match="--strength"):
            pw.parse_strengths(bad)
    with pytest.raises(UserError, match="--n"):
        pw.parse_sizes("10")


def test_genre_false_positive_and_power(world):
    out = _sweep(world, "genre", strengths=(0.0, 1.0), sizes=(200,), seeds=4)
    rows = {(r["strength"], r["n"]): r for r in out["rows"]}
    assert rows[(0.0, 200)]["yes"] == 0.0  # the null holds exactly at q = 0
    assert rows[(1.0, 200)]["yes"] == 1.0, rows[(1.0, 200)]
    for r in out["rows"]:
        assert set(r) >= {"condition", "strength", "n", "seeds", "yes", "no", "inconclusive", "yes_interval"}
        assert r["yes"] + r["no"] + r["inconclusive"] == pytest.approx(1.0)
        assert r["yes_interval"] == pytest.approx(list(wilson_interval(round(r["yes"] * r["seeds"]), r["seeds"])))
        assert r["yes_interval"][0] <= r["yes"] <= r["yes_interval"][1]
    assert out["q_star"]["genre"] == {"200": 1.0}
    assert out["family"]["genre"] == ["accuracy", "purity"] and out["n_permutations"]["genre"] == 400
    assert set(out["conditions"]["genre"]["left_out"]) == {"sensitivity", "cas"}
    fp = out["conditions"]["genre"]["false_positive"]
    assert fp == [{"n": 200, "rate": 0.0, "interval": rows[(0.0, 200)]["yes_interval"], "seeds": 4,
                   "exceeds_alpha": False}]
    assert out["alpha"] == 0.01 and out["extractor"] == "covernet" and out["dataset"] == "pw"
    written = json.loads((world / "runs" / "r" / "eval" / "power.json").read_text())
    assert written["rows"] == out["rows"]


def test_continuous_condition_and_merge(world):
    _sweep(world, "genre", strengths=(0.0, 1.0), sizes=(200,), seeds=2)
    out = _sweep(world, "attributes", strengths=(0.0, 1.0), sizes=(200,), seeds=3)
    rows = {(r["condition"], r["strength"]): r for r in out["rows"]}
    assert rows[("attributes", 0.0)]["yes"] == 0.0
    assert rows[("attributes", 1.0)]["yes"] == 1.0, rows[("attributes", 1.0)]
    assert out["family"]["attributes"] == ["accuracy", "purity", "retrieval"]
    assert {"fjd", "cfid"} <= set(out["conditions"]["attributes"]["left_out"])
    assert ("genre", 1.0) in rows and out["condition_names"] == ["attributes", "genre"]  # genre's rows kept
    # extending the sweep keeps the rows measured the same way and adds the new ones
    more = _sweep(world, "attributes", strengths=(0.5,), sizes=(200,), seeds=3)
    assert sorted(r["strength"] for r in more["rows"] if r["condition"] == "attributes") == [0.0, 0.5, 1.0]
    assert more["q_star"]["attributes"]["200"] == min(
        r["strength"] for r in more["rows"] if r["condition"] == "attributes" and r["yes"] >= 0.8)


def test_cli_runs_and_rejects_bad_strength(world, capsys):
    from benchmark.cli.app import main

    base = ["--data-root", str(world), "--runs-root", str(world / "runs"), "-q", "--preset", "cpu", "power",
            "--run", "r", "--dataset", "pw", "--n", "100", "--seeds", "2", *sum((["--set", s] for s in SETS), [])]
    with pytest.raises(SystemExit) as ok:
        main([*base, "--strength", "0,1"])
    assert ok.value.code == 0
    out = capsys.readouterr().out
    assert "false 'yes' at q = 0, n = 100: 0.000 over 2 seeds" in out and "q* = 1" in out
    for bad in ("1.5", "x"):
        with pytest.raises(SystemExit) as e:
            main([*base, "--strength", bad])
        err = capsys.readouterr().err
        assert e.value.code == 2 and "--strength" in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit) as e:
        main([*base[:base.index("--run")], "--run", "missing", "--dataset", "pw", "--strength", "0"])
    assert e.value.code == 2 and "run 'missing' not found" in capsys.readouterr().err
    assert not (world / "runs" / "missing").exists()


def test_report_draws_power_curves_and_escapes(tmp_path):
    """A power.json becomes a leaderboard section: one curve per condition, data strings escaped (HTML and $)."""
    from core.paths import RunPaths
    from reports.build import build_report

    cond = "<b>x$\\frac{$</b>"
    rows = [{"condition": cond, "strength": q, "n": n, "seeds": 10, "yes": y, "no": 1 - y, "inconclusive": 0.0,
             "yes_interval": list(wilson_interval(10 * y, 10))}
            for n in (200, 1000) for q, y in ((0.0, 0.0), (0.5, 0.6), (1.0, 1.0))]
    qs = pw.q_star(rows, cond)
    assert qs == {"200": 1.0, "1000": 1.0}
    doc = {"rows": rows, "alpha": 0.01, "target_power": 0.8, "extractor": "covernet",
           "conditions": {cond: {"sentence": pw.q_star_sentence(cond, qs), "family": ["accuracy", "purity"],
                                 "left_out": {"cas": "x"}, "n_permutations": 400,
                                 "false_positive": pw.false_positive(rows, cond)}}}
    run = RunPaths(tmp_path / "runs" / "p")
    (run.root / "eval").mkdir(parents=True)
    (run.root / "eval" / "power.json").write_text(json.dumps(doc))
    html = build_report(run).read_text()
    assert "Verdict power" in html and "<b>x" not in html and "&lt;b&gt;x$" in html
    assert "n = 200: q* = 1" in html and "interval [0, 0.278]" in html
    png = run.report / "img" / "power" / "power_0.png"
    assert png.is_file() and png.stat().st_size > 5000


@pytest.mark.parametrize("condition", ["genre", "attributes"])
def test_real_labelled_matches_evaluation(world, condition):
    """The power analysis sees the same labelled covers, classes and vectors as `bench evaluate`'s real side."""
    import torch

    from benchmark.pipeline.judge import real_side
    from benchmark.pipeline.labels import labelled_test_rows
    from metrics.features.extractors import make_extractor, real_features
    from models.conditions import load_conditions

    paths.set_roots(world, world / "runs")
    ds = PreparedDataset.open("pw")
    cfg = _cfg().eval
    conditions = load_conditions(ds, condition, paths.run("r"))
    side = real_side(ds, 32, condition, conditions, cfg, torch.device("cpu"))
    ext = make_extractor(ds, cfg.features, 32, cfg, torch.device("cpu"))  # as power_analysis builds it
    real = {split: real_features(ds, split, 32, ext) for split in ("train", "test")}
    lab = pw.real_labelled(ds, real, conditions, condition, cfg.seed)
    for key in ("train_x", "train_y", "test_x", "test_y", "train_c", "test_c", "test_rows"):
        np.testing.assert_array_equal(getattr(lab, key), getattr(side.lab, key), err_msg=key)
    assert lab.label_kind == side.lab.label_kind and lab.n_classes == side.n_classes
    np.testing.assert_array_equal(labelled_test_rows(ds), lab.test_rows)  # the tracks evaluation asks for


def test_false_positive_flag_and_cli_warning(tmp_path, monkeypatch, capsys):
    """A q = 0 yes-rate above alpha is flagged, and the command warns in one line on stderr."""
    rows = [{"condition": "genre", "strength": 0.0, "n": n, "seeds": 100, "yes": y, "no": 1 - y,
             "inconclusive": 0.0, "yes_interval": list(wilson_interval(100 * y, 100))}
            for n, y in ((200, 0.01), (1000, 0.03))]
    fp = pw.false_positive(rows, "genre")
    assert [f["exceeds_alpha"] for f in fp] == [False, True]
    from benchmark.cli.app import main

    doc = {"alpha": 0.01, "rows": rows, "conditions": {"genre": {
        "family": ["accuracy", "purity"], "n_permutations": 400, "false_positive": fp, "left_out": {"cas": "x"},
        "sentence": pw.q_star_sentence("genre", pw.q_star(rows, "genre")), "seconds": 1.0}}}
    monkeypatch.setattr(pw, "power_analysis", lambda *a, **k: doc)
    monkeypatch.setattr(PreparedDataset, "open", staticmethod(lambda name: None))
    (tmp_path / "runs" / "x").mkdir(parents=True)
    with pytest.raises(SystemExit) as ok:
        main(["--runs-root", str(tmp_path / "runs"), "-q", "power", "--run", "x", "--dataset", "d"])
    assert ok.value.code == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "n = 1000: 0.030" in warnings[0] and "exceeds alpha = 0.01" in warnings[0]
    assert "n = 200: 0.010 over 100 seeds" in captured.out
