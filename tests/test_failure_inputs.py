"""User mistakes and real collections that used to end in "internal error" or a silent wrong answer (issue 23,
items 7-15), one test per promise (README, "Failure modes").

Every user-facing failure must be one red line with exit code 2, name what is wrong, and leave nothing behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from core import paths
from core.data.prepared import PreparedDataset
from core.errors import UserError
from tests.conftest import FAST_TRAIN, make_tiny_dataset, one_line, run_bench

pytestmark = pytest.mark.usefixtures("one_thread")

bench = run_bench
FAST = FAST_TRAIN
NOT_UTF8 = b"dcgan:\n  fid: {max: 1}\n# caf\xe9 \xff\xfe\n"


# --- 7: absurd --n for evaluate and power -----------------------------------------------------------------------


@pytest.mark.parametrize(("n", "typed"), [("10000000000000", "10000000000000"), ("10000000000000", "1e13"),
                                          ("100000000000000000000000", "100000000000000000000000")])
def test_absurd_n_for_evaluate_and_power_is_one_line_naming_the_cap(n, typed, capsys):
    make_tiny_dataset(n=40)
    assert bench("train", "dcgan_cond", "--run", "r", "--dataset", "tiny", "--kimg", "0.016", *FAST) == 0
    test_tracks = len(PreparedDataset.open("tiny").split_rows("test"))
    capsys.readouterr()
    assert bench("evaluate", "--run", "r", "--n", typed, "--preset", "cpu") == 2
    err = one_line(capsys)
    assert f"--n {n} is too many" in err and f"{test_tracks} test tracks" in err, err
    assert f"({1000 * test_tracks})" in err, err
    assert not paths.run("r").eval("dcgan_cond").exists()  # nothing computed, nothing staged
    assert bench("--preset", "cpu", "--set", f"eval.n={n}", "evaluate", "--run", "r") == 2
    assert "is too many" in one_line(capsys)
    assert bench("power", "--run", "r", "--n", f"200,{typed}", "--seeds", "2", "--preset", "cpu") == 2
    assert f"--n {n} is too many" in one_line(capsys)
    assert not (paths.run("r").root / "eval" / "power.json").exists()


def test_n_is_read_by_one_parser_for_evaluate_and_power(capsys):
    from benchmark.pipeline.power import parse_sizes
    from benchmark.pipeline.sample_size import parse_count

    assert parse_count("1e4") == parse_count("10000") == parse_count(" 10_000 ") == 10_000
    assert parse_sizes("1e3,200,1000") == (200, 1000)
    for bad, why in [("1.5", "whole number"), ("x", "whole number"), ("nan", "whole number"), ("inf", "whole number"),
                     ("10", "too small"), ("1e400", "too many"), ("-5", "too small")]:
        with pytest.raises(UserError, match=why):
            parse_count(bad)
    for args in (["evaluate", "--run", "r", "--n", "20.5"], ["evaluate", "--run", "r", "--n", "5"],
                 ["power", "--run", "r", "--n", "5"]):
        assert bench(*args) == 2, args
        assert "--n" in one_line(capsys)


def test_n_beyond_memory_is_one_line_with_the_size_and_the_cap(monkeypatch, capsys):
    from benchmark.pipeline import sample_size as ss

    # planted: 10 test tracks, 1000 bytes per cover, 1 MB available: half of it holds 500 covers
    ss.check_covers(500, n_test=10, bytes_per_cover=1000, where="d", memory=10**6)
    with pytest.raises(UserError, match=r"--n 501 needs about .* \(1,000 bytes per cover\).*use --n 500 or less"):
        ss.check_covers(501, n_test=10, bytes_per_cover=1000, where="d", memory=10**6)
    with pytest.raises(UserError, match=r"10 test tracks.*\(10000\)"):
        ss.check_covers(10_001, n_test=10, bytes_per_cover=1, where="d", memory=10**12)
    assert ss.evaluation_bytes_per_cover(64) > ss.evaluation_bytes_per_cover(32) > ss.power_bytes_per_cover()

    make_tiny_dataset(n=40)
    paths.run("r").root.mkdir(parents=True)
    monkeypatch.setattr(ss, "available_bytes", lambda: 2 * 200 * ss.power_bytes_per_cover() - 1)
    assert bench("power", "--run", "r", "--dataset", "tiny", "--n", "200", "--seeds", "2", "--preset", "cpu") == 2
    err = one_line(capsys)
    assert "--n 200 needs about" in err and "use --n 199 or less" in err, err


# --- 8: GAN hyper-parameters out of bounds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gan", "setting", "named"),
    [
        ("dcgan", "{lr: .nan}", "lr: Input should be a finite number (got nan)"),
        ("dcgan", "{lr: -1}", "lr: Input should be greater than 0 (got -1)"),
        ("dcgan", "{g_lr: .inf}", "g_lr: Input should be a finite number"),
        ("dcgan", "{betas: [2, 3]}", "betas.0: Input should be less than 1 (got 2)"),
        ("dcgan", "{betas: [0.5, -0.1]}", "betas.1: Input should be greater than or equal to 0"),
        ("dcgan", "{z_dim: 0}", "z_dim: Input should be greater than or equal to 1 (got 0)"),
        ("dcgan", "{base: 0}", "base: Input should be greater than or equal to 1"),
        ("dcgan", "{ema_half_life_kimg: 0}", "ema_half_life_kimg: Input should be greater than 0"),
        ("dcgan", "{ada_target: 1.5}", "ada_target: Input should be less than 1"),
        ("dcgan", "{augment: colour}", "unknown DiffAugment op(s) 'colour'"),
        ("wgan_gp", "{critic_norm: group}", "critic_norm: Input should be 'layer', 'batch' or 'none'"),
        ("wgan_gp", "{gp_weight: -10}", "gp_weight: Input should be greater than or equal to 0"),
        ("wgan_gp", "{n_critic: 0}", "n_critic: Input should be greater than or equal to 1"),
        ("stylegan", "{style_mix_prob: 2}", "style_mix_prob: Input should be less than or equal to 1"),
        ("stylegan", "{mapping_layers: 0}", "mapping_layers: Input should be greater than or equal to 1"),
        ("stylegan", "{fir_impl: fft}", "fir_impl: Input should be 'conv', 'blend', 'pool' or 'fold'"),
        ("stylegan", "{r1_gamma: .nan}", "r1_gamma: Input should be a finite number"),
    ],
)
def test_out_of_bounds_hyper_parameters_fail_at_config_load(gan, setting, named, capsys):
    make_tiny_dataset(n=40)
    args = ["train", gan, "--run", "r", "--dataset", "tiny", "--kimg", "0.016", *FAST,
            "--set", f"train.per_model.{gan}.hparams={setting}"]
    assert bench(*args) == 2
    err = one_line(capsys)
    assert f"{gan}.hparams: invalid setting for {gan}" in err and named in err, err
    assert not paths.run("r").root.exists()  # refused at config load: nothing trained, nothing written


def test_hyper_parameter_names_match_the_implementations():
    """The typed bounds list the ops and filter implementations the networks know, no more, no fewer."""
    from typing import get_args

    from core.config.hparams import AUGMENT_OPS, FIR_IMPL_NAMES, StyleGANHParams, resolve_hparams
    from models.gans.diffaugment import OPS
    from models.gans.ops import FIR_IMPLS

    assert AUGMENT_OPS == OPS and set(FIR_IMPL_NAMES) == set(FIR_IMPLS)
    assert set(get_args(StyleGANHParams.model_fields["fir_impl"].annotation)) == set(FIR_IMPLS)
    for policy in ("none", "", "color,cutout", "translation"):
        resolve_hparams("stylegan", {"augment": policy})  # every valid policy still passes
    h = resolve_hparams("wgan_gp", {"lr": 1e-4, "betas": [0.0, 0.9], "drift": 0.001, "critic_norm": "batch"})
    assert h.betas == (0.0, 0.9) and h.critic_norm == "batch"


# --- 9: files that are not UTF-8, not objects, not numbers; folders given as output files --------------------


@pytest.fixture
def evaluated_run():
    """Run 'ci' with one hand-written evaluation of dataset 'tiny' (covernet features, cpu preset)."""
    rp = paths.run("ci")
    d = rp.eval("dcgan_cond")
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(_metrics_doc("dcgan_cond", "tiny", "covernet", 80.0, 0)))
    rp.config.write_text("preset: cpu\n")
    return rp


def _metrics_doc(model: str, dataset: str, extractor: str, fid: float, seed: int) -> dict:
    entry = {"n": 200, "extractor": extractor, "seed": seed}
    return {
        "schema_version": 2, "model": model, "dataset": dataset, "conditional": model.endswith("_cond"),
        "extractor": {"name": extractor}, "seeds": {"eval": seed}, "refused": None,
        "metrics": {"fid": {"value": fid, **entry},
                    "conditional_accuracy": {"value": 0.5 + 0.01 * seed, "p_value": 0.001, "null_mean": 0.25,
                                             "margin": 0.05, **entry}},
        "verdict": {"conditioning_works": "yes", "reasons": []},
    }


def test_unreadable_thresholds_baseline_and_metrics_files_are_one_line_naming_the_file(evaluated_run, tmp_path,
                                                                                      capsys):
    th = tmp_path / "th.yaml"
    th.write_bytes(NOT_UTF8)
    assert bench("check", "--run", "ci", "--thresholds", str(th)) == 2
    err = one_line(capsys)
    assert f"thresholds file {th} is not UTF-8 text" in err, err

    th.write_text("dcgan_cond:\n  fid: {max: 100}\n")
    base = tmp_path / "base.json"
    for content, needle in [
        (NOT_UTF8, "is not UTF-8 text"),
        (b'{"models": {"dcgan_cond": {"fid": "80"}}}', "dcgan_cond.fid is '80', not a finite number"),
        (b'{"models": {"dcgan_cond": {"fid": null}}}', "dcgan_cond.fid is None, not a finite number"),
        (b"[1, 2]", "has no 'models' mapping"),
    ]:
        base.write_bytes(content)
        assert bench("check", "--run", "ci", "--baseline", str(base)) == 2
        err = one_line(capsys)
        assert f"baseline file {base}" in err and needle in err, err

    metrics = evaluated_run.eval("dcgan_cond") / "metrics.json"
    for content, needle in [(NOT_UTF8, "is not UTF-8 text"), (b"[1, 2, 3]", "holds a JSON list, not an object"),
                            (b"{oops", "is not valid JSON")]:
        metrics.write_bytes(content)
        for seed in range(2):  # runs bad0, bad1 for calibrate --from-runs
            (paths.run(f"bad{seed}").eval("dcgan_cond")).mkdir(parents=True, exist_ok=True)
            (paths.run(f"bad{seed}").eval("dcgan_cond") / "metrics.json").write_bytes(content)
        for args in (["--thresholds", str(th)], ["--write-baseline", str(tmp_path / "b2.json")]):
            assert bench("check", "--run", "ci", *args) == 2
            err = one_line(capsys)
            assert f"metrics file {metrics}" in err and needle in err and "bench evaluate --model dcgan_cond" in err
        assert bench("calibrate", "--seeds", "2", "--run-prefix", "bad", "--from-runs", "--out",
                     str(tmp_path / "o.yaml")) == 2
        assert needle in one_line(capsys)
    assert not (tmp_path / "b2.json").exists() and not (tmp_path / "o.yaml").exists()


def test_output_folders_given_as_files_are_refused_before_any_training(evaluated_run, tmp_path, monkeypatch, capsys):
    import benchmark.pipeline.calibrate as cal

    def no_training(cfg):  # noqa: ANN001 - a Config
        raise AssertionError("calibrate trained before checking --out")

    monkeypatch.setattr(cal, "train_and_evaluate", no_training)
    out_dir = tmp_path / "gates"
    out_dir.mkdir()
    assert bench("calibrate", "--seeds", "2", "--run-prefix", "fresh", "--out", str(out_dir)) == 2
    err = one_line(capsys)
    assert f"thresholds file {out_dir} is a folder: give a file name (e.g. {out_dir / 'thresholds.yaml'})" in err
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert bench("calibrate", "--seeds", "2", "--run-prefix", "fresh", "--out", str(blocker / "t.yaml")) == 2
    assert "is not a folder" in one_line(capsys)
    assert not paths.run("fresh0").root.exists()
    assert bench("check", "--run", "ci", "--write-baseline", str(out_dir)) == 2
    assert f"baseline file {out_dir} is a folder" in one_line(capsys)
    assert list(out_dir.iterdir()) == []


# --- 10: empty encoder lists, mixed calibration runs, power's refusal, one-genre probe ---------------------------


@pytest.mark.parametrize("value", ["", " , ", ","])
def test_an_empty_encoder_list_is_refused_not_read_as_all(value, capsys):
    from models.encoders.store import resolve_names

    make_tiny_dataset(n=40)
    assert bench("encode", "--encoder", value, "--run", "r", "--dataset", "tiny", "--preset", "cpu") == 2
    err = one_line(capsys)
    assert "no encoder named" in err and "pca" in err and "or all" in err, err
    assert not (paths.run("r").root / "encoders").exists()
    with pytest.raises(UserError, match="no encoder named"):
        resolve_names([])
    assert resolve_names("all") != [] and resolve_names("pca") == ["pca"]


@pytest.mark.parametrize(
    ("second", "named"),
    [
        (("other", "covernet"), "different datasets ('other' in cal1/dcgan_cond; 'tiny' in cal0/dcgan_cond)"),
        (("tiny", "inception"), "different extractors ('covernet' in cal0/dcgan_cond; 'inception' in cal1/dcgan_cond)"),
    ],
)
def test_calibrating_over_runs_of_other_datasets_or_extractors_is_refused(second, named, tmp_path, capsys):
    for seed, (dataset, extractor) in enumerate([("tiny", "covernet"), second]):
        d = paths.run(f"cal{seed}").eval("dcgan_cond")
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(_metrics_doc("dcgan_cond", dataset, extractor, 80.0 + seed, seed)))
    out = tmp_path / "t.yaml"
    assert bench("calibrate", "--seeds", "2", "--run-prefix", "cal", "--from-runs", "--out", str(out)) == 2
    err = one_line(capsys)
    assert named in err and "calibrate each set of runs on its own" in err, err
    assert not out.exists()


def test_power_prints_the_extractor_guards_refusal(capsys):
    make_tiny_dataset(n=40)  # a 1-epoch covernet cannot read these covers: the guard refuses
    paths.run("r").root.mkdir(parents=True)
    sets = ["--set", "eval.covernet_epochs=1", "--set", "eval.covernet_width=4"]
    assert bench("power", "--run", "r", "--dataset", "tiny", "--n", "40", "--seeds", "2", "--strength", "0,1",
                 "--preset", "cpu", *sets) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "refused to judge: the feature extractor reads genre" in err, err
    assert "--features inception" in err and "these rates say what the tests would decide" in err
    doc = json.loads((paths.run("r").root / "eval" / "power.json").read_text())
    assert doc["conditions"]["genre"]["refused"] and not doc["conditions"]["genre"]["extractor_guard"]["ok"]


def test_probe_of_a_one_genre_dataset_says_why_on_the_terminal(capsys):
    make_tiny_dataset(n=30, genres=("solo",))
    assert bench("data", "probe", "tiny", "--features", "colour", "--folds", "3", "--permutations", "100") == 2
    err = one_line(capsys)
    assert "nothing to probe on dataset 'tiny': every cover with a genre is 'solo'" in err, err
    assert not (paths.dataset("tiny").root / "probe.json").exists()

    from tests.test_real_collections import _planted_embeddings

    _planted_embeddings(PreparedDataset.open("tiny"), paths.run("r"))  # an audio embedding: something to probe
    capsys.readouterr()
    assert bench("data", "probe", "tiny", "--features", "colour", "--folds", "3", "--permutations", "100") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "note: genre not probed: every cover with a genre is 'solo'" in out, out
    assert "audio R^2 (pca)" in out


# --- 13: the guard's advice, and one extractor rule for probe and evaluation ------------------------------------


def test_guard_refusal_suggests_the_pretrained_extractor_not_longer_training():
    from metrics.features.guard import extractor_guard

    rng = np.random.default_rng(0)
    g = extractor_guard({"val_accuracy": 0.31}, 3, rng.standard_normal((60, 8)))
    assert not g.ok and "0.310, below the floor 0.667" in g.reason
    assert "--features inception" in g.reason and "bench data probe" in g.reason and "longer" not in g.reason


def test_probe_and_evaluation_use_the_same_extractor(monkeypatch, capsys):
    from benchmark.pipeline.evaluate import evaluate_relationship
    from benchmark.pipeline.probe import probe_matches
    from core.config import load_config

    make_tiny_dataset(n=40)
    # bench data probe takes eval.features (the config's, as evaluate does) unless --features says otherwise
    assert bench("--set", "eval.features=colour", "data", "probe", "tiny", "--folds", "3", "--permutations",
                 "100") == 0
    probe = json.loads((paths.dataset("tiny").root / "probe.json").read_text())
    assert probe["features"] == "colour" and probe["extractor"] == "colour"
    assert probe_matches(probe, "colour", 3) and not probe_matches(probe, "covernet", 3)
    assert not probe_matches(probe, "colour", 5) and not probe_matches(None, "colour", 3)
    # evaluation reuses the dataset's probe only when it was made with the extractor that judges the models
    ds = PreparedDataset.open("tiny")
    cfg = load_config("cpu", ["eval.features=colour", "eval.relationship_folds=3"]).eval
    rel = evaluate_relationship(ds, paths.run("r"), cfg, device_kind="cpu")
    assert rel["probe_source"].startswith("bench data probe") and rel["extractor"] == "colour"
    import benchmark.pipeline.probe as probe_mod

    calls = []
    real = probe_mod.probe_dataset
    monkeypatch.setattr(probe_mod, "probe_dataset", lambda *a, **k: calls.append(a[1]) or real(ds, "colour", 3,
                                                                                               write=False))
    cfg = load_config("cpu", ["eval.features=covernet", "eval.relationship_folds=3"]).eval
    evaluate_relationship(ds, paths.run("r"), cfg, device_kind="cpu")
    assert calls == ["covernet"]  # the colour probe was not passed off as the covernet one


# --- 14: thresholds apply only to what they were calibrated for -------------------------------------------------


def _write_runs(prefix: str, dataset: str, extractor: str, seeds: int = 3) -> None:
    for seed in range(seeds):
        rp = paths.run(f"{prefix}{seed}")
        d = rp.eval("dcgan_cond")
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(_metrics_doc("dcgan_cond", dataset, extractor, 80.0 + seed, seed)))
        rp.config.write_text("preset: cpu\n")


def test_thresholds_record_what_they_were_calibrated_for_and_apply_only_there(tmp_path, capsys):
    from core.data.info import dataset_identity
    from reports.build import build_report
    from reports.check import load_gate

    make_tiny_dataset(n=40)
    make_tiny_dataset("other", n=40, seed=1)
    _write_runs("cal", "tiny", "covernet")
    out = tmp_path / "gate.yaml"
    assert bench("calibrate", "--seeds", "3", "--run-prefix", "cal", "--from-runs", "--out", str(out)) == 0
    gate = load_gate(out)
    identity = dataset_identity(PreparedDataset.open("tiny"))
    assert gate.calibrated_for == {"dataset": "tiny", "dataset_identity": identity, "preset": "cpu",
                                   "extractor": "covernet"}
    assert identity.startswith("files:") and identity != dataset_identity(PreparedDataset.open("other"))
    assert yaml.safe_load(out.read_text())["calibrated_for"]["dataset"] == "tiny"
    capsys.readouterr()
    assert bench("check", "--run", "cal0", "--thresholds", str(out)) == 0

    _write_runs("real", "other", "inception", seeds=1)
    assert bench("check", "--run", "real0", "--thresholds", str(out)) == 2
    err = one_line(capsys)
    assert "was calibrated for dataset 'tiny'" in err and "preset cpu, covernet features" in err, err
    assert "dataset 'other' (calibrated for 'tiny')" in err and "extractor 'inception'" in err, err

    # the leaderboard: applied to the run it fits, left off (and said so) where it does not
    page = build_report(paths.run("real0"), thresholds=out).read_text()
    assert "not applied" in page and "thresholds not applied: calibrated for dataset &#39;tiny&#39;" in page
    assert "failed</span>" not in page and "passed</span>" not in page
    page = build_report(paths.run("cal0"), thresholds=out).read_text()
    assert "passed</span>" in page and "not applied" not in page

    # the same name with other content (a re-import) is another dataset
    make_tiny_dataset(n=40, seed=5)
    assert bench("check", "--run", "cal0", "--thresholds", str(out)) == 2
    assert f"dataset_identity '{dataset_identity(PreparedDataset.open('tiny'))}'" in one_line(capsys)


def test_the_committed_cpu_gate_names_the_cpu_world():
    """configs/thresholds/cpu.yaml is applied only to the cpu pipeline's default world, and its recorded identity is
    the one that world's settings give (a change of the synthesis or split settings must re-calibrate it)."""
    from core.config import load_config
    from core.data.info import recipe_identity
    from reports.check import load_gate

    gate = load_gate(paths.configs_dir() / "thresholds" / "cpu.yaml")
    cfg = load_config("cpu")
    synth = cfg.data.synth.model_dump()
    assert gate.calibrated_for == {
        "dataset": "default", "dataset_identity": recipe_identity(synth, cfg.data.split.model_dump()),
        "preset": "cpu", "extractor": cfg.eval.features,
    }
    # a synthesised world's identity is its recipe's, whatever bytes this machine's synthesis gave
    from core.config.schema import SplitConfig, SynthConfig
    from core.data.info import dataset_identity
    from core.data.synth.world import synthesize_world

    small = SynthConfig(tracks=24, genres=3, res=[32], seconds=1.0, seed=1)
    synthesize_world(paths.dataset("w"), small, SplitConfig(), workers=1)
    ident = dataset_identity(PreparedDataset.open("w"))
    assert ident == recipe_identity(small.model_dump(), SplitConfig().model_dump())
    assert ident != recipe_identity(small.model_copy(update={"seed": 2}).model_dump(), SplitConfig().model_dump())


# --- 15: tables at full width when piped --------------------------------------------------------------------------


def test_tables_are_not_cut_to_80_columns_when_output_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv("COLUMNS", raising=False)
    genre = "an extremely long genre name that a terminal of eighty columns would cut short " * 2
    make_tiny_dataset(n=12, genres=(genre.strip(), "b"))
    assert bench("data", "info", "tiny") == 0
    out = capsys.readouterr().out
    assert genre.strip() in out and "…" not in out
    assert max(len(line) for line in out.splitlines()) > 160
    monkeypatch.setenv("COLUMNS", "100")  # an explicit width still wins
    assert bench("data", "info", "tiny") == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 100


# --- 11: symbolic links in a collection are named, not reported as missing files ---------------------------------

IMPORT_SETS = ["--res", "32", "--workers", "1", "--set", "data.import.sample_rate=8000", "--set",
               "data.import.seconds=1.0", "--set", "data.import.min_audio_seconds=0.5", "--set",
               "data.import.min_cover_px=64"]


def test_symlinked_covers_are_named_as_links_not_followed(tmp_path, capsys):
    import shutil

    import pandas as pd

    from tests.test_real_collections import simple_tracks, write_collection

    real = write_collection(tmp_path / "real", simple_tracks(12, per_artist=2))
    src = tmp_path / "src"
    (src / "previews").mkdir(parents=True)
    shutil.copy(real / "tracks.csv", src / "tracks.csv")
    for wav in real.glob("*.wav"):
        shutil.copy(wav, src / "previews" / wav.name)
    art = tmp_path / "elsewhere" / "art"
    art.mkdir(parents=True)
    for png in real.glob("*.png"):
        shutil.copy(png, art / png.name)
    (src / "covers").symlink_to(art, target_is_directory=True)  # the whole covers folder is a link
    assert bench("data", "import", str(src), "--name", "linked", *IMPORT_SETS) == 2
    err = one_line(capsys)
    assert "import rejected 12 of 12 tracks" in err and "1 symbolic link(s) not followed (covers/)" in err, err
    rejected = pd.read_csv(paths.data_root() / ".linked.rejected.csv")
    assert set(rejected["reason"]) == {"missing-cover: no cover named " + a + " (not searched: covers/ is a symbolic "
                                       "link, not followed)" for a in rejected["item"].str.replace("t", "al")}

    (src / "covers").unlink()
    (src / "covers").mkdir()
    for png in art.glob("*.png"):
        shutil.copy(png, src / "covers" / png.name)
    (src / "covers" / "al03.png").unlink()
    (src / "covers" / "al03.png").symlink_to(art / "al03.png")  # one cover a link to a file outside the source
    assert bench("data", "import", str(src), "--name", "linked", *IMPORT_SETS) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "rejected: symlink-cover" in out and "1 symbolic link(s) not followed (covers/al03.png)" in out, out
    rej = PreparedDataset.open("linked").rejected()
    assert rej.set_index("item").loc["t03", "reason"] == ("symlink-cover: covers/al03.png is a symbolic link, not "
                                                          "followed (copy the file in)")
    assert len(PreparedDataset.open("linked")) == 11


# --- 12: identical audio that ties genres into one split group ----------------------------------------------------


def _shared_clip_collection(tmp_path: Path) -> Path:
    """60 tracks of 4 genres by 60 artists; every pop, rock and jazz track carries the same preview (45 tracks)."""
    from tests.test_real_collections import simple_tracks, write_collection

    rng = np.random.default_rng(3)
    clip = 0.3 * rng.standard_normal(8000)
    tracks = simple_tracks(60, genres=("pop", "rock", "jazz", "folk"))
    colours = {"pop": (200, 30, 30), "rock": (30, 200, 30), "jazz": (30, 30, 200), "folk": (200, 200, 30)}
    for t in tracks:
        t["cover"] = (np.array(colours[t["genre"]], np.uint8) + rng.integers(0, 40, (64, 64, 3))).astype(np.uint8)
        if t["genre"] != "folk":
            t["audio"] = clip
    return write_collection(tmp_path / "shared", tracks)


def test_identical_audio_that_empties_splits_fails_the_import_naming_the_duplicates(tmp_path, capsys):
    src = _shared_clip_collection(tmp_path)
    assert bench("data", "import", str(src), "--name", "shared", *IMPORT_SETS) == 2
    err = one_line(capsys)
    assert "identical audio or covers tie 45 of 60 tracks (3 genres, 45 artist groups) into one split group" in err
    assert "test without genre(s) 'jazz', 'pop', 'rock'" in err
    assert "one audio on 45 tracks of 45 artist group(s)" in err
    assert "--group-by artist (duplicates may then sit in train and test)" in err, err
    assert not paths.dataset("shared").root.exists() and not list(paths.data_root().glob(".shared*"))

    # relaxed knowingly: grouped by artist, every genre reaches every split
    assert bench("data", "import", str(src), "--name", "shared", "--group-by", "artist", *IMPORT_SETS) == 0
    ds = PreparedDataset.open("shared")
    assert ds.manifest["split"]["group_by"] == ["artist"]
    per = ds.tracks.groupby("split")["genre"].nunique()
    assert per["val"] == per["test"] == 4
    assert bench("data", "probe", "shared", "--features", "colour", "--folds", "3", "--permutations", "100") == 0
    probe = json.loads((ds.paths.root / "probe.json").read_text())
    assert probe["genre"]["value"] == 1.0 and probe["cv"] == "artist-grouped 3-fold (groups: artist)"

    # kept together knowingly: the import warns, and the probe refuses to score folds that hold out whole genres
    assert bench("data", "import", str(src), "--name", "together", "--group-by", "artist,audio,cover",
                 *IMPORT_SETS) == 0
    capsys.readouterr()
    assert bench("data", "probe", "together", "--features", "colour", "--folds", "3", "--permutations", "100") == 2
    err = one_line(capsys)
    assert "the grouped folds hold out every cover of a genre for" in err and "'jazz', 'pop', 'rock'" in err
    assert "the accuracy would measure the grouping" in err and "--group-by artist" in err, err
    assert bench("data", "import", str(src), "--name", "x", "--group-by", "artist,genre", *IMPORT_SETS) == 2
    assert "group_by" in one_line(capsys)


def test_probe_leaves_a_genre_its_folds_hold_out_wholly_unscored_and_says_so():
    """Planted: genres read perfectly from the features; genre 3 is one artist group, so the fold holding that
    group has never seen genre 3. Its covers are not scored (they would be wrong by construction); the rest is."""
    from metrics.relationship import genre_probe

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2, 3], [30, 30, 30, 6])
    x = np.eye(4)[y] * 5 + 0.1 * rng.standard_normal((y.size, 4))
    groups = np.concatenate([np.arange(90) // 3, np.full(6, 100)])  # genre 3: one group of 6 covers
    r = genre_probe(x, y, folds=3, n_permutations=200, n_bootstrap=100, groups=groups,
                    class_names=["a", "b", "c", "solo"])
    assert r.details["unscored_covers"] == 6 and r.details["unscored_classes"] == ["solo"]
    assert r.value == 1.0 and r.n == 90  # scored: the 90 covers of genres its folds did see
    # genres a, b, c tied into one group (shared content): the fold holding it trains on 'solo' alone
    tied = np.concatenate([np.zeros(90, int), [1, 1, 2, 2, 3, 3]])
    with pytest.raises(UserError, match=r"hold out every cover of a genre for \d+ of 96 covers \('a', 'b', 'c'"):
        genre_probe(x, y, folds=3, n_permutations=200, n_bootstrap=100, groups=tied,
                    class_names=["a", "b", "c", "solo"])


# --- 16: the train summary names each stage by its family -----------------------------------------------------------


def test_the_train_summary_labels_the_diffusion_model_by_its_family(capsys):
    from benchmark.cli.train_cmd import _print_summary
    from benchmark.pipeline.train import StageResult

    rows = [StageResult("encoder", "genre", "skipped", 0.0), StageResult("gan", "dcgan_cond", "trained", 1.0, 16),
            StageResult("gan", "diffusion_cond", "trained", 1.0, 16)]
    assert [r.kind for r in rows] == ["encoder", "gan", "gan"]  # what callers tell apart: unchanged
    _print_summary(rows, Path("runs/r"))
    out = capsys.readouterr().out
    assert "diffusion diffusion_cond" in out and "gan diffusion_cond" not in out, out
    assert "gan dcgan_cond" in out and "encoder genre" in out, out
