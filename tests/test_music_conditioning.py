"""Music conditioning end to end, on synthetic worlds where the truth is planted.

A *track oracle* returns the real (held-out test) cover of the track whose condition it is asked for: a generator
that uses its condition perfectly. An *ignoring* generator returns the cover of a random test track, whatever it is
asked. For every kind of condition (genre one-hots, an audio embedding from a trained encoder, Spotify-style
attributes) the whole evaluation must say "yes" for the oracle and never "yes" for the ignorer; an audio-conditioned
oracle must never say "yes" on a world whose covers ignore their music (coupling 0). A short real training of a
music-conditioned GAN runs the whole path: encoder fit by `train all`, gan+condition ids, evaluation, leaderboard.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import benchmark.pipeline.evaluate as ev
from benchmark.pipeline.encode import encode
from core import paths
from core.config import load_config
from core.config.schema import SplitConfig, SynthConfig
from core.data.prepared import PreparedDataset
from core.data.synth.world import synthesize_world
from core.errors import UserError
from models.conditions import load_conditions
from tests.conftest import planted_loader, run_bench

N_GENRES = 4
EVAL_SET = [
    "eval.n_permutations=1300", "eval.n_bootstrap=20", "eval.tsne_real=200", "eval.tsne_gen=100",
    "eval.sensitivity_z=8", "eval.covernet_batch=32", "eval.covernet_epochs=20", "eval.covernet_patience=20",
]
ENC_SET = ["encoders.epochs=2", "encoders.tsne_points=100", "encoders.eval_max_points=200"]


class TrackG(nn.Module):
    """Real test covers looked up by condition: the asked track's own (oracle) or a random track's (ignoring).

    A condition that belongs to no test track (the sensitivity grid uses training conditions) maps to the nearest
    test tracks' conditions; ties (one-hot genres) are broken by z, so z still varies the output.
    """

    def __init__(self, ds: PreparedDataset, conditions: np.ndarray, oracle: bool):
        super().__init__()
        rows = ds.split_rows("test")
        self.covers = torch.from_numpy(np.array(ds.covers(32)[rows])).permute(0, 3, 1, 2).float() / 127.5 - 1
        self.cond = torch.from_numpy(conditions[rows]).double()
        self.oracle = oracle
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        key = (z[:, 0].abs() * 1e4).long()
        out = []
        for i in range(len(z)):
            pool = torch.arange(len(self.cond))
            if self.oracle:
                dist = ((self.cond - c[i].double()) ** 2).sum(1)
                pool = pool[dist <= dist.min() + 1e-9]
            out.append(self.covers[pool[int(key[i]) % len(pool)]])
        return torch.stack(out)


def _world(name: str, coupling: float) -> PreparedDataset:
    cfg = SynthConfig(tracks=480, genres=N_GENRES, coupling=coupling, res=[32], seconds=2.0, seed=5)
    synthesize_world(paths.dataset(name), cfg, SplitConfig(), workers=1)
    return PreparedDataset.open(name)


def _encoded_world(root, name: str, coupling: float) -> None:
    paths.set_roots(root, root / "runs")
    ds = _world(name, coupling)
    encode(ds, paths.run(name), ["genre", "attributes", "pca"], load_config("cpu", ENC_SET), workers=1)
    paths.set_roots(None, None)


@pytest.fixture(scope="module")
def coupled(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    _encoded_world(root, "c1", 1.0)
    return root


@pytest.fixture(scope="module")
def uncoupled(tmp_path_factory):
    root = tmp_path_factory.mktemp("music0")
    _encoded_world(root, "c0", 0.0)
    return root


def _planted(ds: PreparedDataset, condition: str, oracle: bool, monkeypatch, seed: int = 0) -> dict:
    run = paths.run(ds.name)
    conditions = load_conditions(ds, condition, run)
    meta = {"res": 32, "cond_dim": conditions.shape[1], "z_dim": 4, "condition": condition, "checkpoint": "planted",
            "images_seen": 0, "model": "planted"}
    monkeypatch.setattr(ev, "load_generator", planted_loader(TrackG(ds, conditions, oracle), meta))
    cfg = load_config("cpu", EVAL_SET).eval
    return ev.evaluate_model(ds, run, f"planted+{condition}", cfg, device_kind="cpu", n=400, seed=seed)


@pytest.mark.parametrize("condition", ["genre", "pca", "attributes"])
def test_oracle_says_yes_and_ignoring_generator_does_not(coupled, condition, monkeypatch):
    paths.set_roots(coupled, coupled / "runs")
    ds = PreparedDataset.open("c1")
    good = _planted(ds, condition, oracle=True, monkeypatch=monkeypatch)
    assert good["refused"] is None, good["extractor"]["guard"]
    assert good["verdict"]["conditioning_works"] == "yes", good["verdict"]["reasons"]
    bad = _planted(ds, condition, oracle=False, monkeypatch=monkeypatch)
    assert bad["verdict"]["conditioning_works"] != "yes", bad["verdict"]["reasons"]
    continuous = condition != "genre"
    assert good["verdict"]["kind"] == ("continuous" if continuous else "categorical")
    assert good["condition_kind"] == good["verdict"]["kind"]
    for key in ("fjd", "cfid"):  # joint distances: the follower beats its shuffled pairing, the ignorer does not
        assert good["metrics"][key]["p_value"] < 0.01 and good["metrics"][key]["effect"] > 0
        assert bad["metrics"][key]["value"] > good["metrics"][key]["value"]
    if continuous:
        r, r_bad = good["metrics"]["retrieval"], bad["metrics"]["retrieval"]
        ceiling = r["details"]["ceiling"]
        assert r["details"]["ceiling_p_value"] < 0.01 and ceiling > 0.6
        assert abs(r["value"] - ceiling) < 0.08  # the oracle hands back exactly the covers the ceiling scores
        assert r["p_value"] < 0.01 and r["details"]["median_rank"] < r["details"]["median_rank_null_mean"]
        assert abs(r_bad["value"] - 0.5) < 0.06 and r_bad["p_value"] > 0.01
        assert "retrieval" in good["verdict"]["family"] and "cfid" in good["verdict"]["family"]
    else:
        assert "retrieval" not in good["metrics"] and good["verdict"]["tests"]["cfid"]["role"] == "secondary"
    paths.set_roots(None, None)


def test_audio_oracle_never_yes_when_covers_ignore_their_music(uncoupled, monkeypatch):
    paths.set_roots(uncoupled, uncoupled / "runs")
    ds = PreparedDataset.open("c0")
    for seed in range(2):
        m = _planted(ds, "pca", oracle=True, monkeypatch=monkeypatch, seed=seed)
        assert m["verdict"]["conditioning_works"] != "yes", m["verdict"]["reasons"]
        assert m["metrics"]["retrieval"]["details"]["ceiling"] < 0.6  # real covers carry no music to retrieve
    paths.set_roots(None, None)


def test_music_conditioned_gan_trains_and_evaluates_in_a_matrix(coupled, tmp_path):
    """train all: the encoders the matrix needs, then dcgan_cond under genre and under pca; evaluate all."""
    import shutil

    from benchmark.pipeline.train import encoders_for, train_all

    root = tmp_path / "w"
    shutil.copytree(coupled / "c1", root / "c1")
    paths.set_roots(root, root / "runs")
    ds = PreparedDataset.open("c1")
    cfg = load_config("cpu", [
        *ENC_SET, *EVAL_SET, "run=matrix", "data.name=c1", "train.models=[dcgan_cond, dcgan_cond+pca]",
        "train.kimg=0.5", "train.batch=16", "train.snapshot_kimg=0.5", "train.checkpoint_kimg=0.5",
        "eval.n=200",
    ])
    assert encoders_for(cfg) == ["genre", "attributes", "pca"]
    stages = train_all(ds, paths.run("matrix"), cfg)
    assert [(s.kind, s.name, s.status) for s in stages] == [
        ("encoder", "genre", "trained"), ("encoder", "attributes", "trained"), ("encoder", "pca", "trained"),
        ("gan", "dcgan_cond", "trained"), ("gan", "dcgan_cond+pca", "trained"),
    ]
    tc = json.loads((paths.run("matrix").model("dcgan_cond+pca") / "train_config.json").read_text())
    assert tc["condition"] == "pca" and tc["gan"] == "dcgan_cond" and tc["cond_dim"] == 32
    m = ev.evaluate_model(ds, paths.run("matrix"), "dcgan_cond+pca", cfg.eval, device_kind="cpu")
    assert m["model"] == "dcgan_cond+pca" and m["condition"] == "pca" and m["verdict"]["kind"] == "continuous"
    r = m["metrics"]["retrieval"]
    assert r["details"]["ceiling_p_value"] < 0.01 and r["details"]["ceiling"] > 0.6 and r["n"] == 200
    assert r["interval"][0] <= r["value"] <= r["interval"][1]
    assert m["metrics"]["conditional_accuracy"]["details"]["labels"].startswith("k-means cluster (k=4) of pca")
    # the CLI's leaderboard compares both cells of the matrix
    roots = ["--data-root", str(root), "--runs-root", str(root / "runs")]
    assert run_bench(*roots, "--preset", "cpu", "evaluate", "--run", "matrix", "--n", "200", *_sets(EVAL_SET)) == 0
    paths.set_roots(root, root / "runs")
    assert {p.name for p in (root / "runs" / "matrix" / "eval").iterdir() if p.is_dir()} >= {
        "dcgan_cond", "dcgan_cond+pca"}
    # the report's music page puts the pca-conditioned model under pca, with its retrieval beside the ceiling
    from reports.build import build_report

    page = (build_report(paths.run("matrix")).parent / "music.html").read_text()
    blocks = {b.split("</h2>")[0]: b for b in page.split("<h2>")[1:]}
    assert "dcgan_cond+pca" in blocks["pca"] and f"{r['details']['ceiling']:.3g}" in blocks["pca"]
    assert "dcgan_cond+pca" not in blocks["genre"] and "dcgan_cond</a>" in blocks["genre"]
    paths.set_roots(None, None)


def _sets(items: list[str]) -> list[str]:
    return [a for s in items for a in ("--set", s)]


def test_bad_conditions_are_one_line_errors(coupled, tmp_path):
    import shutil

    from models.gans.train.loop import train_gan

    root = tmp_path / "w"
    shutil.copytree(coupled / "c1", root / "c1")
    shutil.copytree(coupled / "runs" / "c1", root / "runs" / "c1")
    paths.set_roots(root, root / "runs")
    ds = PreparedDataset.open("c1")
    cfg = load_config("cpu", ["train.kimg=0.1", "train.batch=16"]).train
    with pytest.raises(UserError, match=r"no 'cnn' embeddings in run 'c1': run `bench encode --encoder cnn --run c1"):
        train_gan(ds, paths.run("c1"), "dcgan_cond+cnn", cfg, device_kind="cpu")
    shutil.copytree(root / "c1", root / "other")  # same track ids, another dataset
    other = PreparedDataset.open("other")
    with pytest.raises(UserError, match="computed on dataset 'c1', not 'other'"):
        load_conditions(other, "pca", paths.run("c1"))
    with pytest.raises(UserError, match="dcgan is unconditional"):
        load_config("cpu", ["train.models=[dcgan+pca]"])
    paths.set_roots(None, None)


def _judged_numbers(doc: dict) -> dict:
    """Every test and metric that does not need to generate again (sensitivity and the regenerated null do)."""
    out = {}
    for key, entry in doc["metrics"].items():
        if key in ("sensitivity", "tsne"):
            continue
        entry = dict(entry)
        details = dict(entry.pop("details", None) or {})
        details.pop("accuracy_shuffled_generator", None)
        out[key] = {**entry, "details": details}
    return out


def _flat(doc, prefix: str = "") -> dict:
    """Nested dicts and lists as one ``path -> leaf`` dict, so a difference names its path."""
    if isinstance(doc, dict):
        return {k: v for key, item in doc.items() for k, v in _flat(item, f"{prefix}/{key}").items()}
    if isinstance(doc, (list, tuple)):
        return {k: v for i, item in enumerate(doc) for k, v in _flat(item, f"{prefix}[{i}]").items()}
    return {prefix: doc}


def _same_numbers(a: dict, b: dict) -> None:
    """Exactly equal, leaf by leaf (the first difference named by its path)."""
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for key, va in fa.items():
        assert va == fb[key], (key, va, fb[key])


def test_exported_covers_judged_as_images_give_bench_evaluates_numbers(coupled, tmp_path):
    """A trained dcgan_cond+pca: `bench export` 500 covers with their manifest, judge them with evaluate_images
    (the folder path), and every number that does not need z equals `bench evaluate`'s exactly."""
    import shutil

    import benchmark
    from models.gans.train.loop import train_gan

    root = tmp_path / "w"
    shutil.copytree(coupled / "c1", root / "c1")
    shutil.copytree(coupled / "runs" / "c1", root / "runs" / "c1")  # the encoders (pca) of the world
    paths.set_roots(root, root / "runs")
    ds, run = PreparedDataset.open("c1"), paths.run("c1")
    train_sets = ["train.kimg=0.25", "train.batch=16", "train.snapshot_kimg=0.25", "train.checkpoint_kimg=0.25"]
    cfg = load_config("cpu", [*EVAL_SET, *train_sets, "run=c1", "eval.n=500"])
    train_gan(ds, run, "dcgan_cond+pca", cfg.train)
    via_bench = ev.evaluate_model(ds, run, "dcgan_cond+pca", cfg.eval, device_kind="cpu")
    roots = ["--data-root", str(root), "--runs-root", str(root / "runs")]
    out = tmp_path / "covers"
    assert run_bench(*roots, "--preset", "cpu", *_sets(EVAL_SET), "export", "--model", "dcgan_cond+pca", "--n",
                     "500", "--out", str(out), "--run", "c1") == 0  # fmt: skip
    assert len(list(out.glob("*.png"))) == 500
    judged = benchmark.evaluate_images(out, out / "manifest.csv", ds, condition="pca", run=run, name="exported",
                                       cfg=cfg.eval, device="cpu")  # fmt: skip
    assert via_bench["condition_kind"] == judged["condition_kind"] == "continuous"
    _same_numbers(_judged_numbers(judged), _judged_numbers(via_bench))
    assert {"fid", "kid", "conditional_accuracy", "purity", "cas", "retrieval", "fjd", "cfid", "intra_fid",
            "per_condition"} <= set(_judged_numbers(judged))  # fmt: skip
    assert "sensitivity" in via_bench["metrics"] and "z_id groups" in judged["skipped"]["sensitivity"]
    paths.set_roots(None, None)
