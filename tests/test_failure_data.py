"""Nothing lost, nothing mixed (issue 23, items 1-6), one test per promise of README's "Failure modes" table.

Two writers of one run or dataset, a kill -9 in the middle of a swap, a dataset replaced under its own name, a
refused command, a damaged power.json: each was reproduced here before it was fixed. The concurrency and kill
cases use real processes (a second ``bench`` process, ``SIGKILL``), never a simulated lock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core import paths
from core.data.prepared import PreparedDataset
from core.errors import UserError
from tests.conftest import FAST_TRAIN, files_of, make_tiny_dataset, one_line, run_bench

ROOT = Path(__file__).resolve().parents[1]
FAST = FAST_TRAIN
EVAL_FAST = ["--features", "colour", "--n", "20", "--set", "eval.n_permutations=100", "--set", "eval.n_bootstrap=10",
             "--set", "eval.sensitivity_z=2", "--set", "eval.tsne_real=30", "--set", "eval.tsne_gen=10"]

pytestmark = pytest.mark.usefixtures("one_thread")
bench = run_bench


def env_for(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, paths.DATA_ROOT_ENV: str(tmp_path / "data"), paths.RUNS_ROOT_ENV: str(tmp_path / "runs"),
            "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def bench_process(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "benchmark.cli.app", "-q", *args], env=env_for(tmp_path),
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def python_process(tmp_path: Path, script: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], env=env_for(tmp_path), cwd=tmp_path, **kw)


def wait_until(check, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:  # noqa: ANN001 - predicate
    deadline = time.time() + timeout
    while not check():
        if proc.poll() is not None:
            raise AssertionError(f"the first process ended ({proc.returncode}) before {what}: "
                                 f"{proc.stderr.read().decode() if proc.stderr else ''}")
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


# --- 1. one writer per run, one per dataset ------------------------------------------------------------------------


def test_a_second_writer_of_a_busy_run_exits_2_naming_the_first(tmp_path, capsys):
    """Two trains wrote every stats.jsonl row twice; two encodes mixed two datasets. Now the second one stops."""
    make_tiny_dataset(n=48)
    first = bench_process(tmp_path, "train", "dcgan", "--run", "r", "--dataset", "tiny", "--kimg", "40", *FAST)
    ckpts = tmp_path / "runs" / "r" / "models" / "dcgan" / "checkpoints"
    try:
        wait_until(lambda: ckpts.is_dir() and any(ckpts.glob("*.pt")), first, "its first checkpoint")
        short = ["--kimg", "0.05", *FAST]
        for args in (
            ["train", "dcgan", "--run", "r", "--dataset", "tiny", "--resume", *short],
            ["train", "all", "--run", "r", "--dataset", "tiny", "--encoders", "genre", *short],
            ["encode", "--encoder", "genre", "--run", "r", "--dataset", "tiny"],
            ["evaluate", "--model", "dcgan", "--run", "r", *EVAL_FAST],
            ["power", "--run", "r", "--dataset", "tiny", "--n", "20", "--seeds", "1", "--strength", "0"],
        ):
            assert bench(*args) == 2, args
            err = one_line(capsys)
            assert f"run 'r' is in use by process {first.pid} (bench -q train dcgan --run r" in err, err
            assert "bench --wait SECONDS" in err, err
        assert first.poll() is None, "the first writer was disturbed"
        assert not (tmp_path / "runs" / "r" / "encoders").exists() and not (tmp_path / "runs" / "r" / "eval").exists()
        assert bench("encode", "--encoder", "genre", "--run", "other", "--dataset", "tiny") == 0  # other runs are free
        assert bench("report", "--run", "r") == 0  # a report only reads the run: it may be built while it trains
    finally:
        stop(first)


def test_a_second_synth_or_import_of_a_busy_dataset_exits_2(tmp_path, capsys):
    first = bench_process(tmp_path, "data", "synth", "--name", "w", "--tracks", "1000", "--seconds", "1", "--res", "32",
                          "--workers", "1", "--preset", "cpu")
    data = tmp_path / "data"
    try:
        wait_until(lambda: data.is_dir() and any(data.glob(f".w.tmp-{first.pid}")), first, "it starts writing")
        (tmp_path / "src").mkdir()
        for args in (["data", "synth", "--name", "w", "--tracks", "16", "--force", "--preset", "cpu"],
                     ["data", "import", str(tmp_path / "src"), "--name", "w", "--force", "--preset", "cpu"]):
            assert bench(*args) == 2, args
            err = one_line(capsys)
            assert f"dataset 'w' is in use by process {first.pid} (bench -q data synth --name w" in err, err
        assert first.poll() is None and not (data / "w").exists()
    finally:
        stop(first)


_HOLD = """
import sys
from pathlib import Path
from benchmark.pipeline.locks import dataset_lock, run_lock
from core.paths import DatasetPaths, RunPaths
folder = Path(sys.argv[1])
with dataset_lock(DatasetPaths(folder)) if sys.argv[3:] == ["dataset"] else run_lock(RunPaths(folder)):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    Path(sys.argv[2]).write_text("released")
"""


def hold_lock(tmp_path: Path, folder: Path, *kind: str) -> subprocess.Popen:
    """Another process holding the lock of a run (or, with "dataset", a dataset) until its stdin is closed."""
    holder = python_process(tmp_path, _HOLD, str(folder), str(tmp_path / "released"), *kind, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"held"
    return holder


def test_a_probe_holds_the_datasets_lock_like_its_other_writers(tmp_path, capsys):
    make_tiny_dataset(n=40)
    probe = ["data", "probe", "tiny", "--features", "colour", "--folds", "2", "--permutations", "100"]
    holder = hold_lock(tmp_path, tmp_path / "data" / "tiny", "dataset")
    try:
        assert bench(*probe) == 2
        err = one_line(capsys)
        assert f"dataset 'tiny' is in use by process {holder.pid}" in err and "bench --wait SECONDS" in err, err
        assert not (tmp_path / "data" / "tiny" / "probe.json").exists()
    finally:
        holder.stdin.close()
        stop(holder)
    assert bench(*probe) == 0 and (tmp_path / "data" / "tiny" / "probe.json").is_file()


def test_wait_lets_the_second_writer_run_once_the_first_ends(tmp_path, capsys):
    make_tiny_dataset(n=40)
    released = tmp_path / "released"
    holder = python_process(tmp_path, _HOLD, str(tmp_path / "runs" / "r"), str(released), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    encode = ["encode", "--encoder", "genre", "--run", "r", "--dataset", "tiny"]
    try:
        assert holder.stdout.readline().strip() == b"held"
        assert bench("--wait", "1", *encode) == 2
        err = one_line(capsys)
        assert f"run 'r' is in use by process {holder.pid}" in err and "still after 1 s" in err, err
        threading.Timer(2.0, holder.stdin.close).start()  # the holder ends while the next writer waits
        assert bench("--wait", "300", *encode) == 0
        assert holder.wait() == 0
        ev = tmp_path / "runs" / "r" / "encoders" / "genre" / "eval.json"
        assert released.stat().st_mtime_ns <= ev.stat().st_mtime_ns  # it wrote only after the holder let go
    finally:
        stop(holder)
    for bad in ("-1", "nan"):
        assert bench("--wait", bad, *encode) == 2
        assert "--wait" in one_line(capsys)


_TRY = """
import sys
from benchmark.pipeline.locks import run_lock
from core.errors import UserError
from core.paths import RunPaths
try:
    with run_lock(RunPaths(__import__("pathlib").Path(sys.argv[1]))):
        pass
except UserError as e:
    print(e)
    sys.exit(3)
"""


def test_a_lock_nests_within_one_process_and_only_torchrun_rank_0_takes_it(tmp_path, monkeypatch):
    """``train all`` encodes and ``calibrate`` trains under the lock they hold; under torchrun only rank 0 writes."""
    from benchmark.pipeline.locks import run_lock

    run = paths.run("r")

    def other_process() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _TRY, str(run.root)], env=env_for(tmp_path), capture_output=True)

    with run_lock(run) as outer:
        with run_lock(run) as inner:
            assert inner == outer and outer.name == ".r.lock"
        refused = other_process()  # the inner block's end did not release the outer's lock
        assert refused.returncode == 3 and f"process {os.getpid()}" in refused.stdout.decode(), refused
    assert other_process().returncode == 0
    monkeypatch.setenv("RANK", "1")
    with run_lock(run) as lock:
        assert lock is None  # rank 1 writes nothing and must not wait for rank 0's lock
        assert other_process().returncode == 0


# --- 2. an encode killed while it replaces an earlier one ---------------------------------------------------------

_KILLED_ENCODE = """
import os, signal, sys
import benchmark.pipeline.encode as enc
from benchmark.cli.app import main
real = enc.write_embeddings
def write_then_die(path, ds, x):
    real(path, ds, x)
    os.kill(os.getpid(), signal.SIGKILL)  # model and embeddings of the new dataset written, eval.json not yet
enc.write_embeddings = write_then_die
main(["-q", "encode", "--encoder", "attributes", "--run", "r", "--dataset", sys.argv[1]])
"""


def test_a_killed_encode_leaves_the_earlier_encoder_whole_and_train_all_fits_it_again(tmp_path):
    from benchmark.pipeline.train import encoder_done, train_all
    from core.config import load_config

    make_tiny_dataset("A", n=40, seed=0)
    make_tiny_dataset("B", n=40, seed=1)
    assert bench("encode", "--encoder", "attributes", "--run", "r", "--dataset", "A") == 0
    encoders = tmp_path / "runs" / "r" / "encoders"
    before = files_of(encoders / "attributes")
    killed = python_process(tmp_path, _KILLED_ENCODE, "B")
    assert killed.wait() == -signal.SIGKILL
    assert files_of(encoders / "attributes") == before  # not one file of B beside A's eval.json
    assert [p.name for p in encoders.glob(".attributes.stage-*")] == [f".attributes.stage-{killed.pid}"]
    run, a, b = paths.run("r"), PreparedDataset.open("A"), PreparedDataset.open("B")
    assert encoder_done(run, "attributes", a) and not encoder_done(run, "attributes", b)
    cfg = load_config("cpu", ["train.kimg=0.016", "train.batch=8", "train.checkpoint_kimg=0.016",
                              "train.snapshot_kimg=0.016"])
    stages = train_all(b, run, cfg, encoders="attributes", models=["dcgan"])
    assert [(s.kind, s.name, s.status) for s in stages] == [("encoder", "attributes", "trained"),
                                                            ("gan", "dcgan", "trained")]
    assert json.loads((encoders / "attributes" / "eval.json").read_text())["dataset"] == "B"
    assert not list(encoders.glob(".attributes.*"))  # the killed encode's stage folder went with the next one


_KILLED_REGISTER = """
import os, signal, sys
import models.encoders.external as ext
from benchmark.cli.app import main
real = ext.write_embeddings
def write_then_die(path, ds, x):
    real(path, ds, x)
    os.kill(os.getpid(), signal.SIGKILL)  # the new vectors written beside their meta, not yet scored
ext.write_embeddings = write_then_die
main(["-q", "encode", "--from-file", sys.argv[1], "--name", sys.argv[2], "--run", "x", "--dataset", "tiny",
      "--replace"])
"""


def vector_file(path: Path, ds: PreparedDataset, seed: int) -> Path:
    """An outside embedding of every track of ``ds`` (.npz: track_id + vector)."""
    x = np.random.default_rng(seed).standard_normal((len(ds), 4))
    np.savez(path, track_id=np.asarray(ds.tracks["track_id"], dtype=str), vector=x)
    return path


def test_registering_an_embedding_holds_the_runs_lock_and_a_kill_leaves_the_earlier_one_whole(tmp_path, capsys):
    from models.conditions import load_conditions

    make_tiny_dataset(n=40)
    ds, run = PreparedDataset.open("tiny"), paths.run("x")
    a, b = vector_file(tmp_path / "a.npz", ds, 0), vector_file(tmp_path / "b.npz", ds, 1)
    register = ["encode", "--from-file", str(a), "--name", "ext2", "--run", "x", "--dataset", "tiny"]
    holder = hold_lock(tmp_path, run.root)
    try:
        assert bench(*register) == 2
        err = one_line(capsys)
        assert f"run 'x' is in use by process {holder.pid}" in err and "bench --wait SECONDS" in err, err
        assert not (run.root / "encoders").exists()
    finally:
        holder.stdin.close()
        stop(holder)
    assert bench(*register) == 0
    before = files_of(run.encoder("ext2"))
    killed = python_process(tmp_path, _KILLED_REGISTER, str(b), "ext2")
    assert killed.wait() == -signal.SIGKILL
    assert files_of(run.encoder("ext2")) == before  # not b's vectors beside a's scores
    assert np.allclose(load_conditions(ds, "ext2", run), np.load(a)["vector"])
    killed = python_process(tmp_path, _KILLED_REGISTER, str(b), "ext3")  # a first registration, killed
    assert killed.wait() == -signal.SIGKILL
    assert not run.encoder("ext3").exists()  # no half-registered embedding: the next use says to register it
    with pytest.raises(UserError, match="no condition 'ext3' in run 'x': register it"):
        load_conditions(ds, "ext3", run)
    assert bench("encode", "--from-file", str(b), "--name", "ext3", "--run", "x", "--dataset", "tiny") == 0
    assert not list((run.root / "encoders").glob(".ext*"))  # what the killed ones left went with the next one


# --- 3. a dataset replaced under the same name --------------------------------------------------------------------


def test_a_dataset_replaced_under_its_name_is_never_reused_silently(tmp_path, capsys):
    from benchmark.pipeline import power as pw
    from benchmark.pipeline.train import encoder_done
    from core.config import load_config

    make_tiny_dataset(n=48, seed=0)
    assert bench("encode", "--encoder", "attributes", "--run", "r", "--dataset", "tiny") == 0
    assert bench("train", "dcgan", "--run", "r", "--dataset", "tiny", "--kimg", "0.016", *FAST) == 0
    assert bench("evaluate", "--model", "dcgan", "--run", "r", *EVAL_FAST) == 0
    assert bench("data", "probe", "tiny", "--features", "colour", "--folds", "2", "--permutations", "100") == 0
    ecfg = load_config("cpu", ["eval.features=colour"]).eval
    sweep = dict(strengths=(0.0, 1.0), sizes=(20,), seeds=2, device_kind="cpu")
    pw.power_analysis(PreparedDataset.open("tiny"), paths.run("r"), ecfg, "genre", **sweep)
    old = PreparedDataset.open("tiny").fingerprint
    r = tmp_path / "runs" / "r"
    recorded = {f: json.loads(p.read_text())["dataset_fingerprint"] for f, p in {
        "encoder": r / "encoders" / "attributes" / "eval.json", "train": r / "models" / "dcgan" / "train_config.json",
        "metrics": r / "eval" / "dcgan" / "metrics.json", "power": r / "eval" / "power.json",
        "probe": tmp_path / "data" / "tiny" / "probe.json"}.items()}
    assert recorded == dict.fromkeys(recorded, old)
    capsys.readouterr()

    make_tiny_dataset(n=48, seed=1)  # what `bench data synth --name tiny --force` does: same name, other content
    ds = PreparedDataset.open("tiny")
    assert ds.fingerprint != old
    refused = {
        "resume": ["train", "dcgan", "--run", "r", "--dataset", "tiny", "--kimg", "0.032", "--resume", *FAST],
        "evaluate": ["evaluate", "--model", "dcgan", "--run", "r", *EVAL_FAST],
        "embeddings": ["train", "dcgan_cond+attributes", "--run", "r", "--dataset", "tiny", "--kimg", "0.016", *FAST],
        "power": ["power", "--run", "r", "--dataset", "tiny", "--condition", "attributes", "--n", "20", "--seeds", "1"],
    }
    config = (r / "config.yaml").read_bytes()
    for case, args in refused.items():
        assert bench(*args) == 2, case
        err = one_line(capsys)
        assert "made from an earlier version of dataset 'tiny' (replaced since" in err, (case, err)
        if case in ("resume", "evaluate"):
            assert str(r / "models" / "dcgan") in err and "another --run" in err, err
        else:
            assert "bench encode --encoder attributes --run r --dataset tiny" in err, err
    assert (r / "config.yaml").read_bytes() == config  # refused before writing anything
    for seed in (0, 1):  # evaluations of the old content do not join a calibration spread
        (tmp_path / "runs" / f"seed{seed}" / "eval" / "dcgan").mkdir(parents=True)
        shutil.copy(r / "eval" / "dcgan" / "metrics.json", tmp_path / "runs" / f"seed{seed}" / "eval" / "dcgan")
    assert bench("calibrate", "--seeds", "2", "--from-runs", "--out", str(tmp_path / "t.yaml"), "--preset", "cpu") == 2
    assert "the evaluation of dcgan in run 'seed0' was made from an earlier version" in one_line(capsys)
    assert not encoder_done(paths.run("r"), "attributes", ds)  # `train all` fits it again
    out = pw.power_analysis(ds, paths.run("r"), ecfg, "genre", **sweep)  # power measures anew, says what it dropped
    assert out["dataset_fingerprint"] == ds.fingerprint and [s["dataset_fingerprint"] for s in out["sweeps"]] == [
        ds.fingerprint]
    assert out["notes"] == ["dropped 2 rows (colour features) measured on an earlier version of dataset 'tiny', "
                            "replaced since"]


def test_an_embedding_registered_for_a_replaced_dataset_is_refused_saying_how_to_register_it_again(tmp_path, capsys):
    from models.conditions import load_conditions

    make_tiny_dataset(n=48, seed=0)
    ds, run = PreparedDataset.open("tiny"), paths.run("x")
    a = vector_file(tmp_path / "a.npz", ds, 0)
    assert bench("encode", "--from-file", str(a), "--name", "ext", "--run", "x", "--dataset", "tiny") == 0
    assert json.loads((run.encoder("ext") / "eval.json").read_text())["dataset_fingerprint"] == ds.fingerprint
    capsys.readouterr()

    make_tiny_dataset(n=48, seed=1)  # `bench data synth --name tiny --force`: the same track ids, other content
    assert PreparedDataset.open("tiny").fingerprint != ds.fingerprint
    (tmp_path / "asked.csv").write_text("track_id\nt0000\n")
    for args in (["train", "dcgan_cond+ext", "--run", "x", "--dataset", "tiny", "--kimg", "0.016", *FAST],
                 ["train", "all", "--run", "x", "--dataset", "tiny", "--encoders", "none", "--set",
                  "train.models=[dcgan_cond+ext]", *FAST],
                 ["evaluate", "--samples", str(tmp_path / "covers.npy"), "--asked", str(tmp_path / "asked.csv"),
                  "--dataset", "tiny", "--condition", "ext", "--name", "outside", "--run", "x", *EVAL_FAST[:2]]):
        assert bench(*args) == 2, args
        err = one_line(capsys)
        assert "the embedding 'ext' in run 'x' was registered for an earlier version of dataset 'tiny'" in err
        assert "register it again with `bench encode --from-file F --name ext --run x --dataset tiny`" in err, err
    assert not (run.root / "models").exists() and not (run.root / "eval").exists()
    # registered again: no --replace needed, the old vectors fit no dataset there is
    b = vector_file(tmp_path / "b.npz", PreparedDataset.open("tiny"), 1)
    assert bench("encode", "--from-file", str(b), "--name", "ext", "--run", "x", "--dataset", "tiny") == 0
    assert np.allclose(load_conditions(PreparedDataset.open("tiny"), "ext", run), np.load(b)["vector"])


def test_a_checkpoint_records_its_datasets_fingerprint_and_is_checked_where_it_is_loaded(tmp_path, capsys):
    """train_config.json beside a checkpoint records the data too, but a checkpoint may travel alone (or beside an
    older train_config.json): its own meta says what it learnt from."""
    import torch

    make_tiny_dataset(n=48, seed=0)
    assert bench("train", "dcgan", "--run", "r", "--dataset", "tiny", "--kimg", "0.016", *FAST) == 0
    model = tmp_path / "runs" / "r" / "models" / "dcgan"
    ckpt = sorted((model / "checkpoints").glob("ckpt-*.pt"))[-1]
    meta = json.loads(torch.load(ckpt, weights_only=True)["meta"])
    assert (meta["dataset"], meta["dataset_fingerprint"]) == ("tiny", PreparedDataset.open("tiny").fingerprint)
    capsys.readouterr()

    make_tiny_dataset(n=48, seed=1)  # replaced under its name
    config = model / "train_config.json"
    older = {k: v for k, v in json.loads(config.read_text()).items() if k != "dataset_fingerprint"}
    config.write_text(json.dumps(older))  # a train_config.json that says nothing of the content
    for args in (["train", "dcgan", "--run", "r", "--dataset", "tiny", "--kimg", "0.032", "--resume", *FAST],
                 ["evaluate", "--model", "dcgan", "--run", "r", "--dataset", "tiny", *EVAL_FAST]):
        assert bench(*args) == 2, args
        err = one_line(capsys)
        assert f"dcgan in {model} was made from an earlier version of dataset 'tiny'" in err, err
    assert ckpt == sorted((model / "checkpoints").glob("ckpt-*.pt"))[-1] and not (model.parent.parent / "eval").exists()


def test_check_and_report_never_pass_off_an_evaluation_of_a_replaced_dataset_as_current(tmp_path, capsys):
    """`bench check` took the dataset's identity from the dataset there now, not from each metrics.json: after
    `data synth --force` it passed stale numbers and wrote baselines of them, and the report showed them as current."""
    make_tiny_dataset(n=48, seed=0)
    run = paths.run("s")
    for model, fingerprint in (("dcgan", PreparedDataset.open("tiny").fingerprint), ("wgan_gp", None)):
        doc = {"model": model, "dataset": "tiny", "metrics": {"fid": {"value": 80.0}},
               "verdict": {"conditioning_works": "no"}, **({"dataset_fingerprint": fingerprint} if fingerprint else {})}
        run.eval(model).mkdir(parents=True)
        (run.eval(model) / "metrics.json").write_text(json.dumps(doc))
    gate, base = tmp_path / "gate.yaml", tmp_path / "base.json"
    gate.write_text("dcgan:\n  fid: {max: 100}\nwgan_gp:\n  fid: {max: 100}\n")
    assert bench("check", "--run", "s", "--write-baseline", str(base), "--thresholds", str(gate)) == 0
    out = " ".join(capsys.readouterr().out.split())  # an older file without a fingerprint: a note, not a refusal
    assert "note: the evaluation of wgan_gp records no dataset fingerprint" in out and "dcgan records" not in out, out

    make_tiny_dataset(n=48, seed=1)  # `bench data synth --name tiny --force`
    for args in (["--write-baseline", str(tmp_path / "new.json")], ["--baseline", str(base)],
                 ["--thresholds", str(gate)]):
        assert bench("check", "--run", "s", *args) == 2, args
        err = one_line(capsys)
        assert "the evaluation of dcgan in run 's' was made from an earlier version of dataset 'tiny'" in err, err
        assert "re-run `bench evaluate --model dcgan --run s`" in err, err
    assert not (tmp_path / "new.json").exists()

    assert bench("report", "--run", "s", "--thresholds", str(gate)) == 0
    report = tmp_path / "runs" / "s" / "report"
    row = (report / "index.html").read_text().split('data-value="dcgan"')[1].split("</tr>")[0]
    assert '<span class="badge stale"' in row and "earlier version of dataset &#39;tiny&#39;" in row, row
    assert "not applied" in row and "passed" not in row  # its thresholds are left off
    page = (report / "model-dcgan.html").read_text()
    assert "Not current:" in page and "re-run `bench evaluate --model dcgan --run s`" in page
    assert 'id="checks"' not in page
    older = (report / "model-wgan_gp.html").read_text()  # unknown, so judged as it is, and said
    assert "records no dataset fingerprint" in older and 'id="checks"' in older and "Not current:" not in older


# --- 4. a refused train writes nothing; a dataset given by path stays a path ----------------------------------------


def test_a_refused_train_writes_nothing_and_a_dataset_path_is_recorded_and_used(tmp_path, monkeypatch, capsys):
    make_tiny_dataset(n=48)
    assert bench("train", "dcgan", "--run", "r", "--dataset", "tiny", "--kimg", "0.016", *FAST) == 0
    run = tmp_path / "runs" / "r"
    before = files_of(run)
    capsys.readouterr()
    for bad in (["--res", "33", "--resume"], ["--batch", "16", "--resume"], ["--kimg", "0.004", "--resume"], []):
        assert bench("train", "dcgan", "--run", "r", "--dataset", "tiny", *FAST, *bad) == 2, bad
        one_line(capsys)
        assert files_of(run) == before, bad  # config.yaml included
    assert bench("train", "all", "--run", "r", "--dataset", "tiny", "--encoders", "none", "--res", "33", *FAST) == 2
    assert "resolution 33" in one_line(capsys)
    assert files_of(run) == before

    elsewhere = tmp_path / "elsewhere"
    make_tiny_dataset("A", n=48, seed=1)
    elsewhere.mkdir()
    os.replace(tmp_path / "data" / "A", elsewhere / "A")
    make_tiny_dataset("A", n=48, seed=2)  # another dataset of the same name under the data root
    assert bench("train", "dcgan", "--run", "p", "--dataset", str(elsewhere / "A"), "--kimg", "0.016", *FAST) == 0
    saved = json.loads((tmp_path / "runs" / "p" / "models" / "dcgan" / "train_config.json").read_text())
    assert saved["dataset"] == "A" and saved["dataset_path"] == str(elsewhere / "A")

    import benchmark.pipeline.evaluate as ev

    used = []
    monkeypatch.setattr(ev, "evaluate_model", lambda ds, *a, **k: used.append(ds.paths.root) or {})
    monkeypatch.setattr(ev, "evaluate_relationship", lambda *a, **k: {})
    assert ev.evaluate_run(paths.run("p"), __import__("core.config").config.load_config("cpu"), "dcgan") == [{}]
    assert used == [elsewhere / "A"]


# --- 5. power.json: every row kept, a damaged file found first ----------------------------------------------------


def test_power_keeps_rows_of_other_datasets_and_seeds_and_checks_the_file_before_the_sweep(tmp_path, monkeypatch,
                                                                                            capsys):
    from benchmark.pipeline import power as pw
    from core.config import load_config

    make_tiny_dataset("A", n=48, seed=0)
    make_tiny_dataset("B", n=48, seed=1)
    run = paths.run("r")
    cfg = load_config("cpu", ["eval.features=colour"]).eval

    def sweep(name: str, seeds: int) -> dict:
        return pw.power_analysis(PreparedDataset.open(name), run, cfg, "genre", strengths=(0.0, 1.0), sizes=(20,),
                                 seeds=seeds, device_kind="cpu")

    sweep("A", 2)
    three = sweep("A", 3)
    assert [r["seeds"] for r in three["rows"]] == [3, 3]  # shown: the most seeds per (q, n)
    assert sorted(r["seeds"] for r in three["sweeps"][0]["rows"]) == [2, 2, 3, 3]  # the 2-seed rows are kept
    b = sweep("B", 2)
    assert b["dataset"] == "B" and [r["seeds"] for r in b["rows"]] == [2, 2]
    kept = {(s["dataset"], r["seeds"]) for s in b["sweeps"] for r in s["rows"]}
    assert kept == {("A", 2), ("A", 3), ("B", 2)} and b["notes"] == []  # another dataset dropped nothing

    path = tmp_path / "runs" / "r" / "eval" / "power.json"
    monkeypatch.setattr(pw, "power_row", lambda *a, **k: pytest.fail("the sweep ran before power.json was read"))
    args = ["power", "--run", "r", "--dataset", "A", "--n", "20", "--seeds", "1", "--set", "eval.features=colour"]
    for damaged in (b"{not json", b"\xff\xfe", b"[1, 2]", json.dumps({"rows": [{"n": 20}]}).encode()):
        path.write_bytes(damaged)
        assert bench(*args) == 2
        err = one_line(capsys)
        assert str(path) in err and "move it aside" in err, err
        assert path.read_bytes() == damaged


# --- 6. what killed evaluations leave -----------------------------------------------------------------------------

_KILLED_STAGE = """
import os, signal, sys
from pathlib import Path
from core import storage
final = Path(sys.argv[1])
if sys.argv[2] == "swap":  # killed between moving the old result aside and moving the new one in
    real = os.replace
    def replace_then_die(src, dst):
        real(src, dst)
        if Path(src) == final:
            os.kill(os.getpid(), signal.SIGKILL)
    storage.os.replace = replace_then_die
with storage.staged_outputs(final) as out:
    (out / "metrics.json").write_text("new")
    if sys.argv[2] == "write":
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_what_a_killed_evaluation_leaves_is_cleaned_by_the_next_one(tmp_path):
    from core import storage

    final = tmp_path / "runs" / "r" / "eval" / "dcgan"
    final.mkdir(parents=True)
    (final / "metrics.json").write_text("old")
    killed = python_process(tmp_path, _KILLED_STAGE, str(final), "write")
    assert killed.wait() == -signal.SIGKILL
    assert (final.parent / f".dcgan.stage-{killed.pid}" / "metrics.json").read_text() == "new"  # what it left
    assert (final / "metrics.json").read_text() == "old"

    swapped = python_process(tmp_path, _KILLED_STAGE, str(final), "swap")
    assert swapped.wait() == -signal.SIGKILL
    assert not final.exists() and (final.parent / f".dcgan.old-{swapped.pid}" / "metrics.json").read_text() == "old"

    live = final.parent / f".stylegan.stage-{os.getpid()}"  # a live writer's stage folder is left alone
    live.mkdir()
    with storage.staged_outputs(final) as out:
        assert (final / "metrics.json").read_text() == "old"  # the interrupted swap was put back first
        (out / "metrics.json").write_text("newer")
    assert (final / "metrics.json").read_text() == "newer"
    assert sorted(p.name for p in final.parent.iterdir()) == [".stylegan.stage-" + str(os.getpid()), "dcgan"]
