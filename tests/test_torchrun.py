"""Two CPU processes under torchrun (gloo): both ranks end with identical weights, and rank 0 alone writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core import paths
from models.gans.train.stats import read_stats
from tests.conftest import make_tiny_dataset

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import torch
    torch.set_num_threads(1)
    import torch.distributed as dist
    from core import paths
    from core.config.schema import TrainConfig
    from core.data.prepared import PreparedDataset
    import models.gans.train.loop as loop

    captured = {}

    def capturing(stepper):  # keep a handle on the live networks of this rank
        class Capture(stepper):
            def __post_init__(self):
                super().__post_init__()
                captured["s"] = self
        return Capture

    loop.Stepper, loop.DenoiserStepper = capturing(loop.Stepper), capturing(loop.DenoiserStepper)
    out, name = sys.argv[1], sys.argv[2]
    cfg = TrainConfig(batch=8, kimg=0.048, checkpoint_kimg=0.016, log_kimg=0.008, snapshot_kimg=0.048, seed=1)
    r = loop.train_gan(PreparedDataset.open("tiny"), paths.run("ddp"), name, cfg, device_kind="cpu")

    def digest(tensors):
        h = hashlib.sha256()
        for k, v in tensors:
            h.update(k.encode())
            h.update(v.detach().contiguous().numpy().tobytes())
        return h.hexdigest()

    s = captured["s"]
    rank = dist.get_rank()
    row = {"rank": rank, "world": dist.get_world_size(), "images_seen": r.images_seen,
           "G": digest(s.G.named_parameters()), "D": digest(s.D.named_parameters()) if s.D is not None else None,
           "G_ema": digest(s.G_ema.named_parameters()) if s.G_ema is not None else None,
           "buffers": digest([*s.G.named_buffers(), *(s.D.named_buffers() if s.D is not None else [])]),
           "moved": any(not torch.equal(p, q) for p, q in zip(s.G.parameters(), s.G_ema.parameters()))
           if s.G_ema is not None else None}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(row, f)
    dist.barrier()
    dist.destroy_process_group()
    """
)


@pytest.mark.parametrize("name", ["stylegan_cond", "dcgan_cond", "diffusion_cond"])
def test_two_cpu_ranks_hold_identical_weights(tmp_path, name):
    """Gradients averaged, so both ranks hold the same networks (a diffusion model's denoiser and EMA too); the
    batch is split (48 images in 6 global batches of 8); rank 0 alone writes."""
    make_tiny_dataset(n=48)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {
        **os.environ,
        paths.DATA_ROOT_ENV: str(tmp_path / "data"),
        paths.RUNS_ROOT_ENV: str(tmp_path / "runs"),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run([*cmd, str(script), str(tmp_path), name], env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and ranks[0]["images_seen"] == 48
    for part in ("G", "D", "G_ema", "buffers"):  # buffers: BatchNorm statistics are averaged at checkpoints
        assert ranks[0][part] == ranks[1][part], part
    if name.startswith(("stylegan", "diffusion")):
        assert ranks[0]["moved"]  # G and G_ema differ: training really happened

    out = tmp_path / "runs" / "ddp" / "models" / name
    rows = read_stats(out / "stats.jsonl")
    assert [r["images_seen"] for r in rows] == [8 * i for i in range(1, 7)]  # one writer: no duplicated lines
    assert json.loads((out / "train_config.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "ckpt-000000016.pt",
        "ckpt-000000032.pt",
        "ckpt-000000048.pt",
    ]
