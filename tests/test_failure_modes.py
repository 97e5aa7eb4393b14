"""The failure modes coverbench promises to survive (README, "Failure modes"), one test per promise.

Full disks and read-only folders are real: a small tmpfs mounted for the test (root only; skipped with the reason
elsewhere). Every user-facing failure must be one line with exit code 2, and must leave earlier results intact.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from core import paths, progress, storage
from core.config.schema import ImportConfig
from core.data.importer.audio import load_preview
from core.data.importer.reject import Reject
from models.gans.train import checkpoint as ck
from tests.conftest import FAST_TRAIN, files_of, make_tiny_dataset, one_line, run_bench
from tests.import_corpus import build_corpus

ROOT = Path(__file__).resolve().parents[1]
FAST = FAST_TRAIN


pytestmark = pytest.mark.usefixtures("one_thread")


bench = run_bench


@contextmanager
def tmpfs(path: Path, size: str):
    """A fresh tmpfs of ``size`` at ``path`` for the block (root only: skip otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for a full or read-only disk needs root")
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, mode: str = "ro") -> None:
    r = subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot remount {mode} here: {r.stderr.decode().strip()}")


# --- every checkpoint unreadable, then --resume ------------------------------------------------------------------


def test_resume_with_every_checkpoint_unreadable_exits_2_and_overwrites_nothing(capsys):
    make_tiny_dataset(n=40)
    assert bench("train", "dcgan", "--run", "r", "--dataset", "tiny", "--kimg", "0.032", *FAST) == 0
    d = paths.run("r").model("dcgan")
    ckpts = ck.list_checkpoints(d / "checkpoints")
    assert [p.name for p in ckpts] == ["ckpt-000000016.pt", "ckpt-000000032.pt"]
    good = {p: p.read_bytes() for p in ckpts}
    for p in ckpts:
        p.write_bytes(good[p][: len(good[p]) // 2])  # torn, as by a crash on a disk that lost the rename
    before = files_of(d)
    capsys.readouterr()
    args = ["train", "dcgan", "--run", "r", "--dataset", "tiny", "--kimg", "0.064", *FAST, "--resume"]
    assert bench(*args) == 2
    err = one_line(capsys)
    assert "unreadable" in err and all(p.name in err for p in ckpts), err
    assert files_of(d) == before  # no silent restart: stats.jsonl, train_config.json and checkpoints untouched

    # with one readable (older) checkpoint the run continues from it, and stats.jsonl stays one run
    ckpts[0].write_bytes(good[ckpts[0]])
    assert bench(*args) == 0
    seen = [json.loads(line)["images_seen"] for line in (d / "stats.jsonl").read_text().splitlines()]
    assert seen == sorted(set(seen)) and seen[-1] == 64, seen
    assert json.loads((d / "summary.json").read_text())["images_seen"] == 64


# --- resume under other settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["--batch", "16"], "--batch 8 then, 16 now"),
        (["--dataset", "tiny2"], "--dataset tiny then, tiny2 now"),
        (["--condition", "attributes"], "--condition genre then, attributes now"),
        (["--set", "train.per_model.dcgan_cond.hparams={base: 16}"], "hparam base"),
    ],
)
def test_resume_with_other_batch_dataset_condition_or_architecture_is_refused(change, named, capsys):
    make_tiny_dataset(n=40)
    make_tiny_dataset("tiny2", n=40, seed=1)
    assert bench("encode", "--encoder", "attributes", "--run", "r", "--dataset", "tiny", "--preset", "cpu") == 0
    base = ["train", "dcgan_cond", "--run", "r", "--dataset", "tiny", "--condition", "genre", *FAST]
    assert bench(*base, "--kimg", "0.016") == 0
    d = paths.run("r").model("dcgan_cond")
    before = files_of(d)
    capsys.readouterr()
    assert bench(*base, "--kimg", "0.032", "--resume", *change) == 2
    err = one_line(capsys)
    assert "cannot resume" in err and named in err, err
    assert files_of(d) == before  # train_config.json not rewritten, nothing trained

    # a longer schedule is fine: it continues from 16 to 32 images
    assert bench(*base, "--kimg", "0.032", "--resume") == 0
    assert json.loads((d / "summary.json").read_text())["images_seen"] == 32


# --- full disk under the runs root --------------------------------------------------------------------------------


def test_full_runs_disk_is_one_line_with_the_size_and_keeps_older_checkpoints(tmp_path, capsys):
    make_tiny_dataset(n=40)
    with tmpfs(tmp_path / "small", "4m") as runs:
        # a tiny dcgan checkpoint is 2.2 MB: the first fits on 4 MB, the second does not
        args = ["--runs-root", str(runs), "train", "dcgan", "--run", "r", "--dataset", "tiny", "--kimg", "0.064"]
        assert bench(*args, *FAST) == 2
        err = one_line(capsys)
        assert err.startswith("error: no space left on") and "need about" in err, err
        need_mb = float(err.split("need about ")[1].split(" MB")[0])
        state = torch.load(runs / "r/models/dcgan/checkpoints/ckpt-000000016.pt", weights_only=True)
        assert need_mb == pytest.approx(ck.state_bytes(state) * 1.01 / 2**20 + 0.25, abs=0.06)
        kept = ck.list_checkpoints(runs / "r" / "models" / "dcgan" / "checkpoints")
        assert [p.name for p in kept] == ["ckpt-000000016.pt"]
        assert ck.load_checkpoint(kept[0])["counters"]["images_seen"] == 16
        assert not [p for p in kept[0].parent.iterdir() if ".tmp-" in p.name]


def test_full_disk_during_a_checkpoint_write_is_one_line(tmp_path, monkeypatch):
    """Past the free-space check (an estimate), torch's own failure ("unexpected pos") still reads as a full disk."""
    monkeypatch.setattr(storage, "check_free_space", lambda *a, **k: None)
    state = {"x": torch.zeros(1500 * 1024 // 4)}
    with tmpfs(tmp_path / "small", "2m") as d:
        first = ck.save_checkpoint(state, d / "c", 16, 3)
        with pytest.raises(storage.UserError, match=r"^no space left on .*/c \(need about 1\.7 MB"):
            ck.save_checkpoint(state, d / "c", 32, 3)
        assert sorted(p.name for p in (d / "c").iterdir()) == [first.name]
        assert torch.equal(ck.load_checkpoint(first)["x"], state["x"])


# --- data import onto a nearly full data root ---------------------------------------------------------------------


def test_import_on_a_nearly_full_data_root_checks_space_first_and_fails_cleanly_later(tmp_path, monkeypatch, capsys):
    corpus = build_corpus(tmp_path / "src", n_valid=6)
    jobs = sum(t.expect not in ("missing-cover", "missing-preview", "bad-attribute") for t in corpus.tracks)
    cfg = ImportConfig()
    # independent of the importer: tracks x seconds x rate x 2 bytes + covers, plus 4 MB for the tables
    need = jobs * (cfg.seconds * cfg.sample_rate * 2 + sum(3 * r * r for r in cfg.res)) + (4 << 20)
    with tmpfs(tmp_path / "small", "4m") as data:
        args = ["--data-root", str(data), "data", "import", str(corpus.root), "--name", "imp", "--workers", "1"]
        assert bench(*args) == 2
        err = one_line(capsys)
        assert f"error: no space left on {data} for {jobs} tracks (need about " in err, err
        assert float(err.split("need about ")[1].split(" MB")[0]) == pytest.approx(need / 2**20, abs=0.5)
        assert list(data.iterdir()) == []  # nothing written, no temp folder

        # should the estimate be passed (another writer filling the disk meanwhile), the write itself fails in
        # one line: the arrays are reserved up front, so no worker dies on SIGBUS and no pool breaks
        monkeypatch.setattr(storage, "check_free_space", lambda *a, **k: None)
        assert bench(*args) == 2
        err = one_line(capsys)
        assert err.startswith(f"error: no space left on {data}"), err
        assert list(data.iterdir()) == []


# --- evaluate on a nearly full disk: outputs replaced together -------------------------------------------------


def test_evaluation_outputs_are_replaced_together_or_not_at_all(tmp_path):
    with tmpfs(tmp_path / "small", "1m") as runs:
        final = runs / "eval" / "dcgan"
        final.mkdir(parents=True)
        (final / "metrics.json").write_text('{"evaluation": "A"}')
        (final / "tsne_genre.png").write_bytes(b"A" * 1000)
        before = files_of(final)
        with pytest.raises(OSError) as e, storage.staged_outputs(final) as out:
            (out / "tsne_genre.png").write_bytes(b"B" * 1000)  # the plots of B are written first...
            (out / "metrics.json").write_bytes(b"0" * (2 << 20))  # ...then the disk fills up
        assert e.value.errno == errno.ENOSPC
        assert files_of(final) == before  # A's metrics and plots, still agreeing
        assert sorted(p.name for p in final.parent.iterdir()) == ["dcgan"]  # no staging folder left

        with storage.staged_outputs(final) as out:
            (out / "tsne_genre.png").write_bytes(b"B" * 1000)
            (out / "metrics.json").write_text('{"evaluation": "B"}')
        assert files_of(final) == {"metrics.json": b'{"evaluation": "B"}', "tsne_genre.png": b"B" * 1000}
        assert sorted(p.name for p in final.parent.iterdir()) == ["dcgan"]


def test_staged_outputs_keep_the_old_folder_on_any_error(tmp_path):
    final = tmp_path / "eval" / "m"
    final.mkdir(parents=True)
    (final / "metrics.json").write_text("old")
    with pytest.raises(ZeroDivisionError), storage.staged_outputs(final) as out:
        (out / "metrics.json").write_text("new")
        _ = 1 / 0
    assert files_of(final) == {"metrics.json": b"old"}
    assert [p.name for p in final.parent.iterdir()] == ["m"]


# --- read-only runs or data root ---------------------------------------------------------------------------------


def test_read_only_roots_are_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    with tmpfs(tmp_path / "data", "32m") as data, tmpfs(tmp_path / "runs", "32m") as runs:
        monkeypatch.setenv(paths.DATA_ROOT_ENV, str(data))
        monkeypatch.setenv(paths.RUNS_ROOT_ENV, str(runs))
        make_tiny_dataset(n=40)
        assert bench("train", "dcgan", "--run", "r", "--dataset", "tiny", "--kimg", "0.016", *FAST) == 0
        (tmp_path / "src").mkdir()
        remount(data)
        remount(runs)
        capsys.readouterr()

        import benchmark.pipeline.evaluate as ev

        calls = []
        monkeypatch.setattr(ev, "evaluate_model", lambda *a, **k: calls.append(a))
        evaluate = ["evaluate", "--model", "dcgan", "--run", "r", "--preset", "cpu"]
        cases = [
            (["train", "dcgan", "--run", "r2", "--dataset", "tiny", "--kimg", "0.016", *FAST], runs / "r2"),
            (evaluate, runs / "r" / "eval" / "dcgan"),
            (["data", "synth", "--name", "w", "--tracks", "16", "--preset", "cpu"], data),
            (["data", "import", str(tmp_path / "src"), "--name", "imp", "--preset", "cpu"], data),
        ]
        for args, where in cases:
            assert bench(*args) == 2, args
            err = one_line(capsys)
            assert err.startswith(f"error: cannot write to {where}") and err.endswith("read-only file system"), err
        remount(runs, "rw")  # results could be written, the dataset's feature cache could not
        assert bench(*evaluate) == 2
        err = one_line(capsys)
        assert err.startswith(f"error: cannot write to {data / 'tiny' / 'cache'}"), err
        assert calls == []  # evaluate refused before computing anything
        assert not (runs / "r" / "eval").exists()


# --- kill -9 of data import ---------------------------------------------------------------------------------------

_SLOW_IMPORT = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from core import paths
from core.config.schema import ImportConfig, SplitConfig
from core.data.importer import run, worker
worker.run_job = lambda job: time.sleep(120)  # workers busy, as on a big dump
run.import_dataset(Path({src!r}), paths.dataset("imp"), ImportConfig(seconds=1.0, max_reject_share=0.99),
                   SplitConfig(), workers=2, force=True)
"""


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] not in "ZX"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to find the worker processes")
def test_killed_import_leaves_no_workers_and_the_next_data_command_removes_its_temp_folder(tmp_path, capsys):
    corpus = build_corpus(tmp_path / "src", n_valid=6)
    data = tmp_path / "data"
    make_tiny_dataset("imp", n=16)  # the dataset the import replaces (--force)
    old = files_of(data / "imp")
    script = _SLOW_IMPORT.format(root=str(ROOT), src=str(corpus.root))
    env = {**os.environ, paths.DATA_ROOT_ENV: str(data)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(_children(proc.pid)) < 2:
            time.sleep(0.2)
        workers = _children(proc.pid)
        assert len(workers) >= 2, "the import did not start its workers"
        temp = data / f".imp.tmp-{proc.pid}"
        assert temp.is_dir()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.time() + 10
        while time.time() < deadline and any(map(_running, workers)):
            time.sleep(0.1)
        assert not any(map(_running, workers)), "workers outlived their killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in filter(_running, workers):  # should the test fail, leave no orphan behind
            os.kill(pid, signal.SIGKILL)
    assert files_of(data / "imp") == old  # the old dataset intact
    assert temp.is_dir()  # what kill -9 leaves ...
    live = subprocess.Popen(["sleep", "30"])
    try:
        (data / f".other.tmp-{live.pid}").mkdir()  # ... and a live process's folder, which must stay
        assert bench("data", "info", "nothing") == 2  # any `bench data` command, even one that fails
        assert not temp.exists()
        assert (data / f".other.tmp-{live.pid}").is_dir()
    finally:
        live.kill()
        live.wait()


# --- numeric flags that train nothing or cannot be counted -------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "value"),
    [
        (["--kimg", "inf"], "inf"),
        (["--kimg", "nan"], "nan"),
        (["--kimg", "-2"], "-2"),
        (["--set", "train.kimg=.inf"], "inf"),
        (["--set", "train.log_kimg=.inf"], "inf"),
        (["--stop-after-kimg", "-1"], "-1"),
        (["--stop-after-kimg", "inf"], "inf"),
        (["--kimg", "1e-6"], "1e-06"),  # 0 images: less than one batch of 8
        (["--kimg", "0.004"], "0.004"),  # 4 images
    ],
)
def test_bad_kimg_values_are_rejected_naming_the_value(flags, value, capsys):
    make_tiny_dataset(n=40)
    assert bench("train", "dcgan", "--run", "r", "--dataset", "tiny", *FAST, *flags) == 2
    err = one_line(capsys)
    assert f" {value}" in err, err
    assert not paths.run("r").model("dcgan").exists()  # rejected before anything was trained or written


# --- audio that cannot be decoded, and audio that was cut ------------------------------------------------------


def test_junk_mp3_is_reported_as_undecodable(tmp_path):
    junk = tmp_path / "t.mp3"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(Reject) as e:
        load_preview(junk, 22050, 22050 * 30, 1.0)
    assert e.value.code == "corrupt-audio"
    assert "cannot decode" in e.value.detail and "not a valid MP3" in e.value.detail
    assert "does not exist" not in e.value.detail and "regular file" not in e.value.detail


def test_truncated_wav_is_reported_as_truncated_not_short(tmp_path):
    sr = 22050
    full = tmp_path / "full.wav"
    sf.write(full, 0.3 * np.sin(np.arange(3 * sr) / 7.0).astype(np.float32), sr, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[: 44 + sr])  # header + 0.5 s of the 3 s it announces
    with pytest.raises(Reject) as e:
        load_preview(cut, sr, sr * 30, 1.0)  # 0.5 s is also below min_audio_seconds: truncation is the reason
    assert e.value.code == "truncated-audio", e.value.reason
    assert "0.50 s of the announced 3.00 s" in e.value.detail
    assert len(load_preview(full, sr, sr * 30, 1.0)) == 3 * sr  # the whole file is fine


# --- the one translation of OS errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "line"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/x/y/file.bin"), "no space left on /x/y"),
        (OSError(errno.EROFS, "Read-only file system", "/x/y"), "cannot write to /x/y: read-only file system"),
        (PermissionError(errno.EACCES, "Permission denied", "/x/y"), "permission denied: /x/y"),
        (RuntimeError("pool broke"), None),
    ],
)
def test_os_errors_from_any_command_are_one_line_exit_2(err, line, monkeypatch, capsys):
    wrapped = RuntimeError("a library wrapped it")
    wrapped.__cause__ = err

    def boom(*a, **k):
        raise wrapped

    monkeypatch.setattr(progress, "enable", boom)  # any step of any command
    code = bench("config", "show")
    out = " ".join(capsys.readouterr().err.split())
    if line is None:
        assert code == 1 and "internal error" in out
    else:
        assert code == 2 and out == f"error: {line}"
