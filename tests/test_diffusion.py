"""The conditional diffusion model (``diffusion_cond``): its sampler against an analytic reference, guidance as a
property of the loaded generator, training and resuming exactly like the GANs, typed settings with bounds, and
the verdict as a dose-response over the guidance scale w on the coupled synthetic world.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.pipeline.guidance import evaluation_plan, parse_scales
from core import paths
from core.config import load_config
from core.config.names import eval_name, guided_evals_in, parse_eval_name, parse_model_id
from core.errors import UserError
from models.diffusion import build_diffusion
from models.diffusion.generator import DiffusionGenerator
from models.diffusion.schedule import alphas_cumprod, target
from models.gans.train import checkpoint as ck
from models.gans.train.stats import read_stats
from tests.conftest import make_tiny_dataset, run_bench

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------ the sampler, planted
class GaussianDenoiser(nn.Module):
    """The exact denoiser for data ~ N(mu, sigma^2 I): mu of the asked class (``c @ mu_c``), or ``mu_u`` for the
    unconditional branch. E[x0 | x_t] = mu + k (x_t - sqrt(a) mu) with k = sqrt(a) sigma^2 / (a sigma^2 + 1 - a)."""

    def __init__(self, mu_c: torch.Tensor, mu_u: torch.Tensor, sigma: float, alphas: torch.Tensor, prediction: str):
        super().__init__()
        self.mu_c, self.mu_u, self.s2, self.alphas, self.prediction = mu_c, mu_u, sigma**2, alphas, prediction
        self.calls: list[tuple[int, bool]] = []  # (batch, whether c was given) per call

    def forward(self, x, t, c=None, uncond=None):
        self.calls.append((len(x), c is not None))
        mu = self.mu_u.expand(len(x), -1) if c is None else c @ self.mu_c
        if uncond is not None:
            mu = torch.where(uncond[:, None], self.mu_u.expand_as(mu), mu)
        mu, a = mu[:, :, None, None], self.alphas[t].view(-1, 1, 1, 1)
        x0 = mu + a.sqrt() * self.s2 / (a * self.s2 + 1 - a) * (x - a.sqrt() * mu)
        return target(self.prediction, x0, (x - a.sqrt() * x0) / (1 - a).sqrt(), a)


def _ddim_std(alphas: np.ndarray, ts: list[int], sigma: float) -> float:
    """The deterministic DDIM sampler's output std for Gaussian data, by its closed-form recursion (float64):
    x_t = sqrt(a) mu + r u maps to r' = r (sqrt(a') k + sqrt(1 - a') (1 - sqrt(a) k) / sqrt(1 - a))."""
    r = 1.0
    for i, t in enumerate(ts):
        a, a_next = alphas[t], (alphas[ts[i + 1]] if i + 1 < len(ts) else 1.0)
        k = np.sqrt(a) * sigma**2 / (a * sigma**2 + 1 - a)
        r *= np.sqrt(a_next) * k + np.sqrt(1 - a_next) * (1 - np.sqrt(a) * k) / np.sqrt(1 - a)
    return r


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("steps", [6, 50])
def test_ddim_with_the_exact_denoiser_draws_the_guided_gaussian(prediction, steps):
    """Guidance moves the sample mean to (1 - w) mu_u + w mu_c exactly, and the spread is the one DDIM's update
    gives analytically (under-dispersed at few steps, towards sigma with many)."""
    from models.diffusion.schedule import ddim_timesteps

    alphas = alphas_cumprod("cosine", 1000)
    mu_c = torch.tensor([[0.2, -0.1, 0.05], [-0.2, 0.1, 0.0]])
    mu_u = torch.tensor([[0.0, 0.0, 0.05]])
    sigma = 0.1
    net = GaussianDenoiser(mu_c, mu_u, sigma, alphas.float(), prediction)
    G = DiffusionGenerator(net, res=4, timesteps=1000, schedule="cosine", prediction=prediction,
                           sample_steps=steps, guidance=1.0)
    z = torch.randn(4000, G.z_dim, generator=torch.Generator().manual_seed(0))
    c = torch.eye(2)[torch.arange(4000) % 2]
    expected_std = _ddim_std(alphas.numpy(), ddim_timesteps(1000, steps), sigma)
    for w in (0.0, 1.0, 2.5):
        G.guidance = w
        net.calls.clear()
        x = G(z, c)
        assert x.shape == (4000, 3, 4, 4)
        for k in range(2):
            got = x[k::2].double()
            want = (1 - w) * mu_u[0] + w * mu_c[k]
            assert torch.allclose(got.mean(dim=(0, 2, 3)), want.double(), atol=4e-3), (w, k)
            assert got.std(dim=(0, 2, 3)).numpy() == pytest.approx([expected_std] * 3, rel=0.03)
        # one network call per step: the unconditional branch alone at w = 0, the conditional at w = 1, both
        # in one doubled batch otherwise
        want_calls = {0.0: (4000, False), 1.0: (4000, True)}.get(w, (8000, True))
        assert net.calls == [want_calls] * len(ddim_timesteps(1000, steps))
    if steps == 50:
        assert 0.8 * sigma < expected_std < sigma  # DDIM under-disperses less with more steps


def _random_tiny(cond_dim: int = 4, **hp) -> DiffusionGenerator:
    """A tiny generator with random (not zero-initialised) output layers, so that c can matter."""
    torch.manual_seed(0)
    G = build_diffusion("diffusion_cond", res=32, cond_dim=cond_dim, size="tiny", sample_steps=3, **hp).G
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return G.eval()


def test_guidance_zero_never_reads_the_condition_and_sampling_is_deterministic():
    G = _random_tiny()
    z = torch.randn(6, G.z_dim, generator=torch.Generator().manual_seed(1))
    c1, c2 = torch.eye(4)[[0, 1, 2, 3, 0, 1]], torch.eye(4)[[3, 2, 1, 0, 3, 2]]
    for w in (0.0, 1.0, 3.0):
        G.guidance = w
        a, b = G(z, c1), G(z, c1)
        assert torch.equal(a, b) and a.shape == (6, 3, 32, 32) and a.abs().max() <= 1
        assert torch.equal(G(z.reshape(6, 3, 32, 32), c1), a)  # z flattened or shaped
        other = G(z, c2)
        assert torch.equal(a, other) if w == 0 else not torch.allclose(a, other, atol=1e-4), w
    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(UserError, match="guidance scale"):
            G.guidance = bad


# ------------------------------------------------------------------------------------------ names and settings
def test_model_ids_eval_names_and_scales():
    assert parse_model_id("diffusion_cond+pca").name == "diffusion_cond+pca"
    assert eval_name("diffusion_cond+pca", 2.0) == "diffusion_cond+pca@w2"
    assert eval_name("diffusion_cond", 0.5) == "diffusion_cond@w0.5" and eval_name("dcgan_cond") == "dcgan_cond"
    assert parse_eval_name("diffusion_cond+pca@w0.5") == ("diffusion_cond+pca", 0.5)
    assert paths.run("r").eval(eval_name("diffusion_cond", 4)).name == "diffusion_cond@w4"
    for bad in ("dcgan_cond@w2", "diffusion_cond@wx", "diffusion_cond@wnan", "nope@w1"):
        with pytest.raises(UserError):
            parse_eval_name(bad)
    assert parse_scales("0, 1,2,4") == [0.0, 1.0, 2.0, 4.0]
    for bad, msg in (("1,x", "invalid guidance scale"), ("-1", "invalid"), ("101", "invalid"), ("inf", "invalid"),
                     ("1,1.0", "twice"), ("", "invalid")):
        with pytest.raises(UserError, match=msg):
            parse_scales(bad)
    plan = evaluation_plan(["dcgan_cond", "diffusion_cond"], [0.0, 2.0], explicit=False)
    assert plan == [("dcgan_cond", None), ("diffusion_cond", 0.0), ("diffusion_cond", 2.0)]
    with pytest.raises(UserError, match="dcgan_cond is a GAN"):
        evaluation_plan(["dcgan_cond"], [1.0], explicit=True)
    root = paths.run("r").root / "eval"
    for name in ("diffusion_cond@w4", "diffusion_cond@w0", "diffusion_cond+pca@w1", "diffusion_cond", "x@w1"):
        (root / name).mkdir(parents=True)
    assert guided_evals_in(root, "diffusion_cond") == {0.0: "diffusion_cond@w0", 4.0: "diffusion_cond@w4"}
    from reports.check import is_model_name  # a CI gate may bound one scale: diffusion_cond@w0 must say "no"

    assert is_model_name("diffusion_cond@w0") and is_model_name("diffusion_cond+pca")
    assert not is_model_name("dcgan_cond@w0") and not is_model_name("diffusion_cond@w")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("{guidance: -1}", "guidance"),
        ("{cond_drop: 1.0}", "cond_drop"),
        ("{channel_mult: [1, 0]}", "channel_mult"),
        ("{timesteps: 5}", "timesteps"),
        ("{betas: [0.9, 1.5]}", "betas"),
        ("{prediction: x0}", "prediction"),
        ("{r1_gamma: 1.0}", "unknown setting.*r1_gamma"),  # a StyleGAN setting on the diffusion model
    ],
)
def test_bad_diffusion_settings_fail_when_the_config_loads(override, message):
    with pytest.raises(UserError, match=message):
        load_config("cpu", overrides=[f"train.per_model.diffusion_cond+pca.hparams={override}"])


def test_sizes_and_resolutions_build_or_refuse():
    tiny = build_diffusion("diffusion_cond", res=32, cond_dim=8, size="tiny")
    full = build_diffusion("diffusion_cond", res=64, cond_dim=8, size="full")
    assert tiny.z_dim == 3 * 32 * 32 and tiny.D is None and tiny.hparams["patch"] == 2
    assert full.hparams["attention"] and full.hparams["channel_mult"] == [1, 2, 2, 2]
    n_tiny, n_full = (sum(p.numel() for p in s.G.parameters()) for s in (tiny, full))
    assert n_tiny < 500_000 < 5_000_000 < n_full
    with torch.no_grad():
        assert full.G.net(torch.randn(2, 3, 64, 64), torch.tensor([0, 999]), torch.randn(2, 8)).shape == (2, 3, 64, 64)
    with pytest.raises(UserError, match="patch"):
        build_diffusion("diffusion_cond", res=36, cond_dim=8, size="tiny", patch=8)
    with pytest.raises(UserError, match="conditional"):
        build_diffusion("diffusion_cond", res=32, cond_dim=0)


# ------------------------------------------------------------------------------------------ training and resume
def _bench(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmark.cli.app", "-q", *args]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    """``bench train diffusion_cond`` killed after a checkpoint, resumed: weights, EMA, Adam state and stats are
    those of an uninterrupted run, bit for bit (as for the GANs, tests/test_train_engine.py)."""
    make_tiny_dataset(n=48)
    env = {**os.environ, paths.DATA_ROOT_ENV: str(tmp_path / "data"), paths.RUNS_ROOT_ENV: str(tmp_path / "runs"),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    common = ["--dataset", "tiny", "--preset", "cpu", "--kimg", "0.32", "--batch", "8"]
    common += ["--set", "train.checkpoint_kimg=0.016", "--set", "train.log_kimg=0.016", "--set", "train.seed=5"]
    common += ["--set", "train.snapshot_kimg=10", "--set", "train.per_model.diffusion_cond.hparams={sample_steps: 2}"]
    ckpts = tmp_path / "runs" / "killed" / "models" / "diffusion_cond" / "checkpoints"
    proc = subprocess.Popen(_bench("train", "diffusion_cond", "--run", "killed", *common), env=env, cwd=tmp_path)
    deadline = time.time() + 180
    while not ck.list_checkpoints(ckpts) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    seen_at_kill = int(ck.list_checkpoints(ckpts)[-1].name[5:14])
    assert 0 < seen_at_kill < 320
    assert not (ckpts.parent / "summary.json").exists()
    for run, extra in (("killed", ["--resume"]), ("whole", [])):
        done = subprocess.run(_bench("train", "diffusion_cond", "--run", run, *common, *extra), env=env, cwd=tmp_path)
        assert done.returncode == 0
    a, b = (tmp_path / "runs" / r / "models" / "diffusion_cond" for r in ("killed", "whole"))
    assert json.loads((a / "summary.json").read_text())["finished"]
    timing = {"images_per_s", "s_per_kimg", "memory_mb"}
    rows_a, rows_b = ([{k: v for k, v in r.items() if k not in timing} for r in read_stats(d / "stats.jsonl")]
                      for d in (a, b))
    assert rows_a == rows_b and len(rows_a) == 20 and "loss/denoise" in rows_a[-1] and "grad_norm/D" not in rows_a[0]
    sa, sb = (ck.load_checkpoint(ck.latest_checkpoint(d / "checkpoints")) for d in (a, b))
    for part in ("G", "G_ema"):
        assert sa[part].keys() == sb[part].keys()
        assert all(torch.equal(sa[part][k], sb[part][k]) for k in sa[part]), part
    assert all(torch.equal(x["exp_avg"], y["exp_avg"]) for x, y in
               zip(sa["opt_G"]["state"].values(), sb["opt_G"]["state"].values(), strict=True))
    assert sa["D"] == {} and sa["counters"]["g_steps"] == 40 and sa["counters"]["d_steps"] == 0
    start = build_diffusion("diffusion_cond", res=32, cond_dim=4, size="tiny").G.state_dict()
    assert not torch.equal(start["net.head.2.weight"], sa["G"]["net.head.2.weight"])  # it trained
    G, meta = ck.load_generator(a, guidance=3)
    assert meta["model"] == "diffusion_cond" and meta["ema"] and meta["guidance"] == 3.0 == G.guidance
    assert meta["z_dim"] == 3 * 32 * 32 == G.z_dim and G.sample_steps == 2  # sampling settings come back too
    assert G(torch.randn(2, meta["z_dim"]), torch.eye(4)[:2]).shape == (2, 3, 32, 32)


def test_guidance_on_a_gan_is_refused_in_one_line(tmp_path):
    make_tiny_dataset(n=48)
    assert run_bench("train", "dcgan_cond", "--dataset", "tiny", "--kimg", "0.016", "--batch", "8",
                     "--set", "train.checkpoint_kimg=0.016", "--set", "train.snapshot_kimg=1") == 0
    with pytest.raises(UserError, match="dcgan_cond is a GAN: it takes no guidance"):
        ck.load_generator(paths.run("default").model("dcgan_cond"), guidance=1.0)
    assert run_bench("evaluate", "--model", "dcgan_cond", "--guidance", "1,2") == 2
    assert run_bench("evaluate", "--model", "dcgan_cond", "--guidance", "1,x") == 2


# ------------------------------------------------------------------------------------------ dose-response
N_GENRES = 4
# 500 denoising steps (the cpu preset trains 40 kimg): conditioning is weak at w = 1, so guidance has room to act
WORLD_TRAIN = ["train.per_model.diffusion_cond={kimg: 8, batch: 16, hparams: {lr: 0.002, sample_steps: 8}}",
               "train.log_kimg=1", "train.checkpoint_kimg=8", "train.snapshot_kimg=8", "train.seed=0"]
WORLD_EVAL = ["eval.n=200", "eval.n_permutations=500", "eval.n_bootstrap=20", "eval.tsne_real=100",
              "eval.tsne_gen=50", "eval.sensitivity_z=8", "eval.covernet_batch=32", "eval.covernet_epochs=20",
              "eval.covernet_patience=20", "eval.seed=0"]


@pytest.fixture(scope="module")
def coupled_sweep(tmp_path_factory):
    """diffusion_cond trained briefly on the coupled world (genre decides the cover style), then evaluated by the
    pipeline at w = 0, 1, 4: three folders ``eval/diffusion_cond@w<w>``."""
    from benchmark.pipeline.evaluate import evaluate_run
    from core.config.schema import SplitConfig, SynthConfig
    from core.data.prepared import PreparedDataset
    from core.data.synth.world import synthesize_world
    from models.gans.train.loop import train_gan

    root = tmp_path_factory.mktemp("coupled")
    paths.set_roots(root, root / "runs")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        synthesize_world(paths.dataset("c1"), SynthConfig(tracks=480, genres=N_GENRES, coupling=1.0, res=[32],
                                                          seconds=1.0, seed=3), SplitConfig(), workers=1)
        cfg = load_config("cpu", [*WORLD_TRAIN, *WORLD_EVAL, "data.name=c1", "run=sweep"])
        run = paths.run("sweep")
        train_gan(PreparedDataset.open("c1"), run, "diffusion_cond", cfg.train, device_kind="cpu")
        results = evaluate_run(run, cfg, "diffusion_cond", guidance=[0.0, 1.0, 4.0])
    finally:
        torch.set_num_threads(n)
        paths.set_roots(None, None)
    return root, results


@pytest.mark.slow  # about 2 CPU-minutes: world, 8 kimg of training, covernet, three evaluations of 200 covers
def test_guidance_sweep_is_a_dose_response(coupled_sweep):
    """On the coupled world: the unconditional branch (w = 0) is not judged "yes"; the accuracy effect does not
    fall with w beyond its interval and rises significantly from w = 0 to w = 4."""
    root, results = coupled_sweep
    assert [r["guidance"] for r in results] == [0.0, 1.0, 4.0]
    for r in results:
        written = json.loads((root / "runs" / "sweep" / "eval" / eval_name("diffusion_cond", r["guidance"])
                              / "metrics.json").read_text())
        assert written["guidance"] == r["guidance"] and written["model"] == "diffusion_cond"
        assert written["metrics"]["conditional_accuracy"]["n"] == 200 and written["refused"] is None
    verdicts = [r["verdict"]["conditioning_works"] for r in results]
    acc = [r["metrics"]["conditional_accuracy"] for r in results]
    effects = [(a["effect"], *a["effect_interval"]) for a in acc]
    assert verdicts[0] != "yes", results[0]["verdict"]["reasons"]
    for (e_prev, lo_prev, _), (e_next, _, hi_next) in zip(effects, effects[1:], strict=False):
        assert e_next >= lo_prev and e_prev <= hi_next, effects  # monotone within its intervals
    assert effects[2][1] > effects[0][2], effects  # w = 4 above w = 0, intervals apart
    assert verdicts[2] == "yes", results[2]["verdict"]["reasons"]


# ------------------------------------------------------------------------------------------ the report
HOSTILE_REASON = "<script>alert('w')</script> & more"


def _point(w: float, verdict: str, effect: float, fid: float) -> dict:
    return {
        "model": "diffusion_cond", "guidance": w,
        "verdict": {"conditioning_works": verdict, "reasons": [f"{verdict} at {w:g}", HOSTILE_REASON]},
        "metrics": {
            "conditional_accuracy": {"value": 0.25 + effect, "effect": effect, "n": 200, "p_value": 0.5 / (1 + w),
                                     "effect_interval": [effect - 0.03, effect + 0.03], "extractor": "covernet"},
            "fid": {"value": fid, "interval": [fid - 1, fid + 1], "extractor": "covernet", "n": 200},
            "precision": {"value": 0.5 + w / 10}, "recall": {"value": 0.5 - w / 10},
            "cfid": {"value": 50 - w, "null_mean": 55.0, "effect": 5 + w},
        },
    }


def test_report_draws_the_dose_response_with_a_verdict_at_each_point(tmp_path):
    from reports.build import build_report

    run = paths.run("dose")
    (run.model("diffusion_cond") / "checkpoints").mkdir(parents=True)
    (run.model("diffusion_cond") / "train_config.json").write_text(json.dumps({"cond_dim": 4, "condition": "genre"}))
    sweep = [(4.0, "yes", 0.15, 55.0), (0.0, "no", 0.0, 76.0), (1.0, "inconclusive", 0.03, 73.0)]
    for w, verdict, effect, fid in sweep:
        folder = run.eval(eval_name("diffusion_cond", w))
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(_point(w, verdict, effect, fid)))
    index = build_report(run)
    html = index.read_text()
    section = html[html.index('id="guidance"'):]
    section = section[: section.index("</table>")]
    badges = [section.index(f'badge {v}">{v}') for v in ("no", "inconclusive", "yes")]
    assert badges == sorted(badges)  # rows in w order, each with its own verdict
    for w, _, effect, fid in sweep:
        assert f"{eval_name('diffusion_cond', w)}" in html
        assert f">{effect:.3g} <" in section and f">{fid:.4g} <" in section
    assert HOSTILE_REASON not in html and "&lt;script&gt;alert(&#39;w&#39;)&lt;/script&gt; &amp; more" in section
    assert (index.parent / "img" / "dose" / "dose_0.png").stat().st_size > 10_000
    assert "model-diffusion_cond@w" not in html  # the scales are points of one model, not leaderboard rows
