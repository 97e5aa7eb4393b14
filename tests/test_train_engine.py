"""The GAN training engine on CPU: exact resume, kill-and-resume, non-finite guard, checkpoints, learning signal."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import torch

from core import paths
from core.config.schema import TrainConfig
from core.data.prepared import PreparedDataset
from core.errors import UserError
from models.gans.losses import BCELoss
from models.gans.registry import build_gan
from models.gans.train import checkpoint as ck
from models.gans.train.checkpoint import load_generator
from models.gans.train.loop import train_gan
from models.gans.train.stats import read_stats
from models.gans.train.step import Stepper
from tests.conftest import make_tiny_dataset

ROOT = Path(__file__).resolve().parents[1]
TIMING_KEYS = {"images_per_s", "s_per_kimg", "memory_mb"}


@pytest.fixture(autouse=True)
def _one_thread():
    """Same thread count in every run of a comparison (CPU reductions may depend on it)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(n: int = 48) -> PreparedDataset:
    return PreparedDataset(make_tiny_dataset(n=n))


def cfg(**kw) -> TrainConfig:
    base = dict(batch=8, kimg=0.064, checkpoint_kimg=0.032, log_kimg=0.008, snapshot_kimg=0.064, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def losses(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def final_state(directory: Path) -> dict:
    return ck.load_checkpoint(ck.latest_checkpoint(directory / "checkpoints"))


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("name", ["dcgan_cond", "stylegan_cond"])
def test_resume_reproduces_uninterrupted_run(name):
    ds = tiny()
    c = cfg(per_model={"stylegan_cond": {"hparams": {"ada": True}}})
    full = train_gan(ds, paths.run("full"), name, c, device_kind="cpu")
    half = train_gan(ds, paths.run("split"), name, c, device_kind="cpu", stop_after_kimg=0.032)
    assert full.finished and not half.finished and half.images_seen == 32
    assert not json.loads((half.directory / "summary.json").read_text())["finished"]
    # the stats file of the interrupted run holds a line past the checkpoint that a resume must drop
    with open(half.directory / "stats.jsonl", "a") as f:
        f.write(json.dumps({"images_seen": 40, "loss/D": 123.0}) + "\n{torn")
    with pytest.raises(UserError, match="--resume"):
        train_gan(ds, paths.run("split"), name, c, device_kind="cpu")
    resumed = train_gan(ds, paths.run("split"), name, c, device_kind="cpu", resume=True)
    assert resumed.finished and resumed.images_seen == full.images_seen == 64

    a, b = read_stats(full.directory / "stats.jsonl"), read_stats(resumed.directory / "stats.jsonl")
    assert [r["images_seen"] for r in a] == [8 * i for i in range(1, 9)]
    assert losses(a) == losses(b)
    assert any(r["images_seen"] > 32 and "loss/G" in r for r in b)
    sa, sb = final_state(full.directory), final_state(resumed.directory)
    for part in ("G", "D", "G_ema"):
        assert_same_tensors(sa[part], sb[part])
    assert sa["counters"]["images_seen"] == sb["counters"]["images_seen"] == 64
    # the state is really different from the start (the comparison is not vacuous)
    start = build_gan(name, res=32, cond_dim=4, size="tiny", batch=8)
    assert not torch.equal(next(iter(start.G.state_dict().values())), next(iter(sa["G"].values())))


def _bench(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmark.cli.app", "-q", *args]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    make_tiny_dataset(n=48)
    env = {
        **os.environ,
        paths.DATA_ROOT_ENV: str(tmp_path / "data"),
        paths.RUNS_ROOT_ENV: str(tmp_path / "runs"),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    common = ["--dataset", "tiny", "--preset", "cpu", "--kimg", "0.6", "--batch", "8"]
    common += ["--set", "train.checkpoint_kimg=0.024", "--set", "train.log_kimg=0.024", "--set", "train.seed=5"]
    common += ["--set", "train.snapshot_kimg=10"]
    ckpts = tmp_path / "runs" / "killed" / "models" / "dcgan" / "checkpoints"
    proc = subprocess.Popen(_bench("train", "dcgan", "--run", "killed", *common), env=env, cwd=tmp_path)
    deadline = time.time() + 120
    while not ck.list_checkpoints(ckpts) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    seen_at_kill = int(ck.list_checkpoints(ckpts)[-1].name[5:14])
    assert 0 < seen_at_kill < 600
    assert not (ckpts.parent / "summary.json").exists()

    for run, extra in (("killed", ["--resume"]), ("whole", [])):
        done = subprocess.run(_bench("train", "dcgan", "--run", run, *common, *extra), env=env, cwd=tmp_path)
        assert done.returncode == 0
    a, b = (tmp_path / "runs" / r / "models" / "dcgan" for r in ("killed", "whole"))
    assert json.loads((a / "summary.json").read_text())["finished"]
    assert losses(read_stats(a / "stats.jsonl")) == losses(read_stats(b / "stats.jsonl"))
    assert_same_tensors(final_state(a)["G"], final_state(b)["G"])
    assert_same_tensors(final_state(a)["D"], final_state(b)["D"])


def test_nonfinite_steps_are_skipped_counted_then_fatal(monkeypatch):
    ds = tiny()
    real_d_step = BCELoss.d_step
    calls = {"n": 0}

    def sometimes_nan(self, G, D, real, c, *, step=0):
        loss, st = real_d_step(self, G, D, real, c, step=step)
        calls["n"] += 1
        return (loss * float("nan"), st) if calls["n"] % 3 == 0 else (loss, st)

    monkeypatch.setattr(BCELoss, "d_step", sometimes_nan)
    r = train_gan(ds, paths.run("r"), "dcgan", cfg(max_nonfinite=10), device_kind="cpu")
    assert r.finished and r.nonfinite == 8 // 3
    state = final_state(r.directory)
    assert all(torch.isfinite(t).all() for t in state["D"].values() if t.is_floating_point())
    assert read_stats(r.directory / "stats.jsonl")[-1]["nonfinite"] == 2

    def always_inf(self, G, D, real, c, *, step=0):
        loss, st = real_d_step(self, G, D, real, c, step=step)
        return loss.clamp(min=1) * float("inf"), st

    monkeypatch.setattr(BCELoss, "d_step", always_inf)
    with pytest.raises(UserError, match=r"4 non-finite losses \(limit 3\)"):
        train_gan(ds, paths.run("r2"), "dcgan", cfg(max_nonfinite=3), device_kind="cpu")


def test_skipped_step_leaves_weights_untouched():
    spec = build_gan("dcgan", res=32, size="tiny")
    opt_G, opt_D = spec.make_optimizers()
    s = Stepper(spec, spec.G, spec.D, opt_G, opt_D, batch=4, local_batch=4, max_nonfinite=5)
    before = {k: v.detach().clone() for k, v in spec.D.named_parameters()}
    stats_before = {k: v.detach().clone() for k, v in spec.D.named_buffers()}
    adam_before = copy.deepcopy(opt_D.state_dict())
    poisoned = torch.full((4, 3, 32, 32), float("nan"))  # a NaN batch: BatchNorm sees it in the forward pass
    assert s.run_step(opt_D, spec.D, lambda: (spec.D(poisoned).sum(), {}))["skipped"] == 1
    assert s.counters["nonfinite"] == 0 and s.sync_nonfinite() == 1  # counted on the device until a sync
    assert_same_tensors(before, dict(spec.D.named_parameters()))
    assert_same_tensors(stats_before, dict(spec.D.named_buffers()))  # running statistics restored
    assert all(float(st["step"]) == 0 for st in opt_D.state_dict()["state"].values())  # Adam did not count it
    assert all(float(st["exp_avg_sq"].abs().max()) == 0 for st in opt_D.state_dict()["state"].values())
    assert not adam_before["state"]
    st = s.run_step(opt_D, spec.D, lambda: (spec.D(torch.randn(4, 3, 32, 32)).mean(), {}))
    assert st["skipped"] == 0 and s.sync_nonfinite() == 1
    after = dict(spec.D.named_parameters())
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(stats_before[k], v) for k, v in spec.D.named_buffers())


def test_stats_rows_are_strict_json(tmp_path):
    from models.gans.train.stats import StatsWriter

    w = StatsWriter(tmp_path, tensorboard=False)
    w.write({"images_seen": 64, "grad_norm/D": float("nan"), "loss/D": 0.5, "x": float("inf")})
    line = (tmp_path / "stats.jsonl").read_text().strip()
    row = json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert row == {"images_seen": 64, "grad_norm/D": None, "loss/D": 0.5, "x": None}


def test_skip_without_fused_adam_falls_back_to_a_host_decision():
    """An optimiser without found_inf support (e.g. settings from an old checkpoint) still skips bad steps."""
    spec = build_gan("dcgan", res=32, size="tiny")
    opt_D = torch.optim.Adam(spec.D.parameters(), lr=2e-4)
    s = Stepper(spec, spec.G, spec.D, opt_D, opt_D, batch=4, local_batch=4, max_nonfinite=0)
    before = {k: v.detach().clone() for k, v in spec.D.named_parameters()}
    assert s.run_step(opt_D, spec.D, lambda: (spec.D(torch.full((4, 3, 32, 32), float("inf"))).sum(), {}))["skipped"]
    assert_same_tensors(before, dict(spec.D.named_parameters()))
    with pytest.raises(UserError, match="1 non-finite losses"):
        s.sync_nonfinite()


def test_resume_from_a_non_fused_optimiser_keeps_fused_adam():
    """A checkpoint from before fused Adam resumes with the same moments and step, still fused."""
    spec = build_gan("dcgan", res=32, size="tiny")
    old = torch.optim.Adam(spec.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    spec.D(torch.randn(4, 3, 32, 32)).sum().backward()
    old.step()
    _, opt_D = spec.make_optimizers()
    assert opt_D.param_groups[0]["fused"]
    ck.load_optimizer_state(opt_D, copy.deepcopy(old.state_dict()))
    assert opt_D.param_groups[0]["fused"] and opt_D.param_groups[0]["betas"] == (0.5, 0.999)
    for p in spec.D.parameters():
        assert float(opt_D.state[p]["step"]) == 1 and torch.equal(opt_D.state[p]["exp_avg"], old.state[p]["exp_avg"])
    opt_D.step()  # runs in the fused kernel with the restored state
    assert float(opt_D.state[next(spec.D.parameters())]["step"]) == 2


def test_checkpoints_atomic_names_keep_last_k_and_weights_only(tmp_path):
    d = tmp_path / "ck"
    for seen in (64, 128, 192, 256):
        ck.save_checkpoint({"x": torch.full((2,), float(seen)), "n": seen}, d, seen, keep=2)
    assert [p.name for p in ck.list_checkpoints(d)] == ["ckpt-000000192.pt", "ckpt-000000256.pt"]
    assert sorted(p.name for p in d.iterdir()) == ["ckpt-000000192.pt", "ckpt-000000256.pt"]  # no temp files
    (d / "ckpt-000000320.pt").write_bytes(b"torn write")  # a newest file that cannot be read is skipped
    assert ck.latest_checkpoint(d).name == "ckpt-000000256.pt"
    assert torch.load(d / "ckpt-000000256.pt", weights_only=True)["n"] == 256

    # something weights_only refuses (our checkpoints must never contain such objects)
    ck.save_checkpoint({"obj": PurePosixPath("x")}, tmp_path / "bad", 1, keep=1)
    with pytest.raises(UserError, match="cannot read checkpoint"):
        ck.load_checkpoint(tmp_path / "bad" / "ckpt-000000001.pt")

    r = train_gan(tiny(), paths.run("r"), "stylegan_cond", cfg(kimg=0.032, keep_checkpoints=1), device_kind="cpu")
    files = ck.list_checkpoints(r.directory / "checkpoints")
    assert [p.name for p in files] == ["ckpt-000000032.pt"]
    state = torch.load(files[0], weights_only=True)
    assert {"G", "D", "G_ema", "opt_G", "opt_D", "loss", "counters", "rng", "meta"} <= state.keys()
    G, meta = load_generator(r.directory)
    assert meta["model"] == "stylegan_cond" and meta["ema"] and meta["images_seen"] == 32
    assert G.z_dim == meta["z_dim"]  # a loaded GAN is a Generator (benchmark.Generator protocol)
    out = G(torch.randn(2, meta["z_dim"]), torch.eye(4)[:2])
    assert out.shape == (2, 3, 32, 32)


def _genre_colour_distance(G, z_dim: int, targets: np.ndarray, perm: np.ndarray | None = None) -> float:
    """Mean distance between each condition's sample mean colour and a target genre's real mean colour."""
    g = torch.Generator().manual_seed(0)
    n_g = len(targets)
    dist = []
    with torch.no_grad():
        G.eval()
        for k in range(n_g):
            c = torch.zeros(64, n_g)
            c[:, k] = 1
            x = G(torch.randn(64, z_dim, generator=g), c)
            mean = ((x + 1) * 127.5).mean(dim=(0, 2, 3)).numpy()
            dist.append(np.linalg.norm(mean - targets[k if perm is None else perm[k]]))
    return float(np.mean(dist))


def test_dcgan_cond_moves_per_genre_colours_toward_real():
    ds = tiny(n=64)
    covers = ds.covers(32)
    rows = ds.split_rows("train")
    targets = np.stack([covers[rows[ds.genre_idx[rows] == k]].reshape(-1, 3).mean(0) for k in range(4)])
    hp = {"dcgan_cond": {"hparams": {"lr": 1e-3}}}  # the reference 2e-4 barely moves tanh outputs in 150 steps
    c = cfg(kimg=1.2, batch=8, checkpoint_kimg=1.2, log_kimg=0.6, snapshot_kimg=1.2, seed=0, per_model=hp)
    torch.manual_seed(c.seed)
    start = build_gan("dcgan_cond", res=32, cond_dim=4, size="tiny", batch=8)
    d0 = _genre_colour_distance(start.G, start.z_dim, targets)
    r = train_gan(ds, paths.run("r"), "dcgan_cond", c, device_kind="cpu")
    G, meta = load_generator(r.directory)
    d1 = _genre_colour_distance(G, meta["z_dim"], targets)
    shuffled = _genre_colour_distance(G, meta["z_dim"], targets, perm=np.array([1, 2, 3, 0]))
    assert d1 < 0.75 * d0, (d0, d1)
    assert d1 < shuffled, (d1, shuffled)  # each condition's colour is its own genre's, not just "the data's"
