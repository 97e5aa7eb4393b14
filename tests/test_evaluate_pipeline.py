"""Calibration of `bench evaluate` end to end, on synthetic worlds where the truth is known.

The generators here are planted, not trained: an *oracle* returns real training covers of the genre it is asked
for; an *ignoring* generator returns real covers whatever it is asked. The whole evaluation pipeline (covernet
features, classifier, nulls, Holm verdict, t-SNE, plots, metrics.json) must say "yes" for the first and never "yes"
for the second, and the oracle's accuracy must rise with the world's coupling.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import benchmark.pipeline.evaluate as ev
from core import paths
from core.config import load_config
from core.config.schema import SplitConfig, SynthConfig
from core.data.prepared import PreparedDataset
from core.data.synth.world import synthesize_world
from tests.conftest import planted_loader

N_GENRES = 4


class PlantedG(nn.Module):
    """Looks up held-out real covers (val split): of the asked genre (oracle) or of any genre (ignoring).

    Held out, because covernet and the condition classifier are fit on the training covers: handing those back
    would score memorisation, not conditioning.
    """

    def __init__(self, ds: PreparedDataset, oracle: bool):
        super().__init__()
        rows = ds.split_rows("val")
        self.covers = torch.from_numpy(np.array(ds.covers(32)[rows])).permute(0, 3, 1, 2).float() / 127.5 - 1
        self.genre = torch.from_numpy(ds.genre_idx[rows])
        self.oracle = oracle
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        key = (z[:, 0].abs() * 1e4).long()
        out = []
        for i in range(len(z)):
            pool = torch.arange(len(self.genre))
            if self.oracle and c is not None:
                pool = pool[self.genre == int(c[i].argmax())]
            out.append(self.covers[pool[int(key[i]) % len(pool)]])
        return torch.stack(out)


def _world(name: str, coupling: float, tracks: int = 480) -> PreparedDataset:
    cfg = SynthConfig(tracks=tracks, genres=N_GENRES, coupling=coupling, res=[32], seconds=1.0, seed=3)
    synthesize_world(paths.dataset(name), cfg, SplitConfig(), workers=1)
    return PreparedDataset.open(name)


def _evaluate(ds, monkeypatch, oracle: bool, seed: int = 0, n: int = 400) -> dict:
    meta = {"res": 32, "cond_dim": N_GENRES, "z_dim": 4, "condition": "genre", "checkpoint": "planted",
            "images_seen": 0}
    monkeypatch.setattr(ev, "load_generator", planted_loader(PlantedG(ds, oracle), meta))
    cfg = load_config("cpu", ["eval.n_permutations=500", "eval.n_bootstrap=20", "eval.tsne_real=200",
                              "eval.tsne_gen=100", "eval.sensitivity_z=8", "eval.covernet_batch=32",
                              "eval.covernet_epochs=20", "eval.covernet_patience=20"]).eval
    return ev.evaluate_model(ds, paths.run("cal"), "planted", cfg, device_kind="cpu", n=n, seed=seed)


@pytest.fixture(scope="module")
def world_c1(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    paths.set_roots(root, root / "runs")
    _world("c1", 1.0)
    paths.set_roots(None, None)
    return root


def test_oracle_yes_ignoring_not(world_c1, monkeypatch):
    paths.set_roots(world_c1, world_c1 / "runs")
    ds = PreparedDataset.open("c1")
    good = _evaluate(ds, monkeypatch, oracle=True)
    assert good["verdict"]["conditioning_works"] == "yes", good["verdict"]["reasons"]
    acc = good["metrics"]["conditional_accuracy"]
    assert acc["p_value"] < 0.01 and acc["value"] > acc["null_mean"] + 0.2
    written = json.loads((paths.run("cal").eval("planted") / "metrics.json").read_text())
    assert written["schema_version"] == ev.SCHEMA_VERSION
    for key in ("fid", "kid", "precision", "recall", "density", "coverage", "intra_fid", "cas", "purity",
                "sensitivity", "tsne"):
        assert key in written["metrics"], key
    for entry in ("fid", "kid", "conditional_accuracy"):
        assert written["metrics"][entry]["n"] == 400 and written["metrics"][entry]["extractor"] == "covernet"
    for plot in ("samples.png", "tsne_genre.png", "tsne_colour.png", "tsne_mosaic.png"):
        assert (paths.run("cal").eval("planted") / plot).is_file()
    decisions = [_evaluate(ds, monkeypatch, oracle=False, seed=s)["verdict"]["conditioning_works"] for s in range(2)]
    assert "yes" not in decisions
    paths.set_roots(None, None)


def test_accuracy_rises_with_coupling(monkeypatch, tmp_path):
    accs = []
    for coupling in (0.0, 0.5, 1.0):
        ds = _world(f"k{int(coupling * 10)}", coupling, tracks=400)
        accs.append(_evaluate(ds, monkeypatch, oracle=True, n=300)["metrics"]["conditional_accuracy"]["value"])
    assert accs[0] < accs[1] < accs[2], accs
    assert accs[0] < 0.25 + 0.12  # chance is 0.25 for 4 genres
