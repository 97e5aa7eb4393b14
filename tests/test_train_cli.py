"""``bench train`` and ``bench perf train`` through the real CLI entry point."""

from __future__ import annotations

import json

import pytest
import yaml

from core import paths
from models.gans.train import checkpoint as ck
from speed.harness import perf_train
from tests.conftest import make_tiny_dataset, run_bench

FAST = ["--dataset", "tiny", "--preset", "cpu", "--batch", "8", "--set", "train.snapshot_kimg=0.016"]


pytestmark = pytest.mark.usefixtures("one_thread")


bench = run_bench


def test_train_one_model_writes_config_and_summary():
    make_tiny_dataset(n=40)
    assert bench("train", "dcgan", "--run", "r", "--kimg", "0.016", *FAST) == 0
    run = paths.run("r")
    cfg = yaml.safe_load(run.config.read_text())
    assert cfg["train"]["kimg"] == 0.016 and cfg["train"]["per_model"]["dcgan"]["batch"] == 8
    summary = json.loads((run.model("dcgan") / "summary.json").read_text())
    assert summary["finished"] and summary["images_seen"] == 16
    assert (run.model("dcgan") / "samples" / "samples-000000016.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "dcgan_xl", "--dataset", "tiny"], "unknown model 'dcgan_xl'"),
        (["train", "dcgan", "--dataset", "nowhere", "--preset", "cpu"], "dataset 'nowhere' not found"),
        (["train", "dcgan", "--dataset", "tiny", "--preset", "cpu", "--res", "64"], "has 32 px covers"),
        (["train", "dcgan_cond", "--dataset", "tiny", "--preset", "cpu", "--condition", "pca"], "no 'pca' embeddings"),
    ],
)
def test_user_errors_are_one_line_exit_2(args, message, capsys):
    make_tiny_dataset(n=40)
    assert bench(*args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in " ".join(err.split()), err


def test_train_all_skips_finished_and_resumes_stopped(capsys):
    make_tiny_dataset(n=40)
    sel = ["--set", "train.models=[dcgan,dcgan_cond]", "--encoders", "none", "--kimg", "0.032"]
    assert bench("train", "all", "--run", "r", *FAST, *sel, "--stop-after-kimg", "0.016") == 0
    run = paths.run("r")
    for m in ("dcgan", "dcgan_cond"):
        assert not json.loads((run.model(m) / "summary.json").read_text())["finished"]
    capsys.readouterr()
    assert bench("train", "all", "--run", "r", *FAST, *sel) == 0
    out = capsys.readouterr().out
    assert out.count("resumed") == 2
    names = {m: [p.name for p in ck.list_checkpoints(run.model(m) / "checkpoints")] for m in ("dcgan", "dcgan_cond")}
    stamps = {m: (run.model(m) / "summary.json").stat().st_mtime_ns for m in names}
    assert bench("train", "all", "--run", "r", *FAST, *sel) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == 2 and "trained" not in out and "resumed" not in out
    assert {m: (run.model(m) / "summary.json").stat().st_mtime_ns for m in names} == stamps
    assert names["dcgan"][-1] == "ckpt-000000032.pt"


def test_train_all_fits_the_needed_encoders():
    make_tiny_dataset(n=40)
    sel = ["--set", "train.models=[dcgan_cond]", "--set", "train.condition=attributes", "--kimg", "0.016"]
    assert bench("train", "all", "--run", "r", *FAST, *sel) == 0
    run = paths.run("r")
    for enc in ("genre", "attributes"):
        assert (run.encoder(enc) / "embeddings.parquet").is_file()
    tc = json.loads((run.model("dcgan_cond") / "train_config.json").read_text())
    assert tc["condition"] == "attributes" and tc["cond_dim"] > 0


def test_perf_train_json_and_flops_scale_with_batch(tmp_path):
    out = tmp_path / "perf.json"
    args = ["perf", "train", "--model", "wgan_gp", "--res", "32", "--batch", "4", "--steps", "1", "--size", "tiny"]
    assert bench(*args, "--device", "cpu", "--json", str(out)) == 0
    r = json.loads(out.read_text())
    assert r["images"] == 5 * 4 and r["n_critic"] == 5  # 5 critic steps per iteration
    assert r["images_per_s"] > 0 and r["s_per_kimg"] == pytest.approx(1000 / r["images_per_s"])
    assert r["flop_utilisation"] is None and r["achieved_tflops"] > 0
    big = perf_train("wgan_gp", res=32, batch=8, steps=1, size="tiny", device="cpu")
    assert big["flops_per_iteration"] == pytest.approx(2 * r["flops_per_iteration"], rel=0.02)
    # stylegan: FLOPs averaged over the lazy-regulariser period (R1 every 16 D steps)
    sg = perf_train("stylegan", res=16, batch=4, steps=1, size="tiny", device="cpu", warmup=0, count_flops=False)
    assert sg["iterations"] == 16


@pytest.mark.parametrize("model", ["stylegan_cond", "wgan_gp_cond"])
def test_flops_counted_on_meta_equal_a_real_run(model):
    """The meta-device count (shapes only) sees the same operators as running the period on the CPU."""
    from speed.harness import FlopCount, bench_stepper, iteration_flops

    hp = {"pl_weight": 2.0} if model.startswith("stylegan") else {}
    res = 16 if model.startswith("stylegan") else 32
    b = bench_stepper(model, res=res, batch=4, size="tiny", device="cpu", hparams=hp)
    with FlopCount() as fc:
        for _ in range(b.period):
            b.stepper.iteration(b.feed)
    meta = iteration_flops(model, res=res, batch=4, size="tiny", hparams=hp)
    assert meta == fc.total / b.period and meta > 0


def test_perf_train_rejects_unknown_model():
    with pytest.raises(Exception, match="unknown model"):
        perf_train("gan9000", res=32, batch=4)
