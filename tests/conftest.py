"""Shared fixtures: isolated data/runs roots and a tiny prepared dataset built directly with the writer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import paths
from core.data.prepared import ATTRIBUTES, DatasetWriter

os.environ.setdefault("OMP_NUM_THREADS", "2")
REAL_AUDIO = Path(__file__).resolve().parent / "data" / "audio"  # shipped CC BY / public-domain excerpts (README.md)


def readme_blocks(heading: str, lang: str) -> list[str]:
    """The ``lang`` code blocks of README.md's section ``## heading``, so a test can run the documented example."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [b.split("```", 1)[0] for b in section.split(f"```{lang}\n")[1:]]


@pytest.fixture
def one_thread():
    """One torch thread: the same reductions in every run of a comparison, and two cores left for the rest."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_bench(*args: str) -> int:
    """``bench -q ARGS`` in-process; its exit status (0 when it returns normally)."""
    from benchmark.cli.app import main

    try:
        main(["-q", *args])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def planted_loader(G, meta: dict):  # noqa: ANN001 - any generator module
    """A stand-in for ``load_generator`` that hands back ``G`` as the real one does: with ``z_dim`` from ``meta``."""

    def load(*_args, **_kwargs):
        G.z_dim = meta["z_dim"]
        return G, dict(meta)

    return load


FAST_TRAIN = ["--preset", "cpu", "--batch", "8", "--set", "train.snapshot_kimg=0.016",
              "--set", "train.checkpoint_kimg=0.016"]  # fmt: skip


def one_line(capsys) -> str:  # noqa: ANN001 - pytest fixture
    """What a refused command printed: exactly one line, never a traceback or "internal error"."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "internal error" not in err and "Traceback" not in err, err
    return " ".join(err.split())


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: equal before and after means nothing was touched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def isolated_roots(tmp_path, monkeypatch):
    """Every test gets its own data and runs roots; nothing leaks into ./data or ./runs."""
    monkeypatch.setenv(paths.DATA_ROOT_ENV, str(tmp_path / "data"))
    monkeypatch.setenv(paths.RUNS_ROOT_ENV, str(tmp_path / "runs"))
    paths.set_roots(None, None)
    yield
    paths.set_roots(None, None)


def make_tiny_dataset(
    name: str = "tiny",
    n: int = 40,
    genres: tuple[str, ...] = ("a", "b", "c", "d"),
    res: tuple[int, ...] = (32,),
    seconds: float = 0.5,
    sr: int = 22050,
    seed: int = 0,
    artists: bool = True,
):
    """A small prepared dataset: per-genre colour covers and per-genre tones, written via DatasetWriter."""
    rng = np.random.default_rng(seed)
    w = DatasetWriter(paths.dataset(name), n, res, int(seconds * sr), sr, force=True)
    t = np.arange(int(seconds * sr)) / sr
    rows = []
    for i in range(n):
        g = i % len(genres)
        covers = {}
        for r in res:
            img = np.zeros((r, r, 3), np.uint8)
            img[..., g % 3] = 60 + 40 * g
            img += rng.integers(0, 20, size=img.shape, dtype=np.uint8)
            covers[r] = img
        wave = 0.3 * np.sin(2 * np.pi * (220 + 110 * g) * t) + 0.01 * rng.standard_normal(len(t))
        w.put(i, covers, wave)
        row = {a: float(rng.random()) for a in ATTRIBUTES}
        row.update(
            track_id=f"t{i:04d}",
            album_id=f"al{i:04d}",
            artist_id=f"ar{i // 3:03d}" if artists else None,
            artist=f"Artist {i // 3}",
            album=f"Album {i}",
            track=f"Track {i}",
            genre=genres[g],
        )
        rows.append(row)
    return w.finish(pd.DataFrame(rows), kind="test", source={"fixture": True}, genres=list(genres))


@pytest.fixture
def tiny_dataset():
    return make_tiny_dataset()
