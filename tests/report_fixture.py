"""A real, tiny run for the report tests: one trained and evaluated model plus two crafted ones, hostile names.

Built once per test session (both report test files share it through ``tiny_report_run``): a 160-track dataset
whose artist/album/genre names and rejected inputs carry HTML and script payloads, ``dcgan_cond`` trained for 64
images and evaluated on 60 covers with a 1-epoch covernet, the relationship probe, the genre/attributes encoders;
then ``dcgan`` (trained, metrics edited from the real file) and ``wgan_gp`` (metrics only, no training folder) so
the leaderboard has rows to sort and a row without training numbers.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

HOSTILE_ARTIST = "<script>alert(1)</script>"
HOSTILE_ALBUM = '"><img src=x onerror=alert(1)>'
HOSTILE_TRACK = "{{ 7*7 }} & <b>bold</b>"
HOSTILE_GENRE = "<i>noise</i>"
HOSTILE_REJECTED_ITEM = '"><img src=x onerror=alert(2)>'
HOSTILE_REJECTED_SOURCE = "<script>alert(3)</script>"
N_REJECTED = 260
RUN = "tiny"
DATASET = "hostile"
GENRES = ("rock", HOSTILE_GENRE, "jazz", "pop")
OVERRIDES = [
    "train.kimg=0.064",
    "train.log_kimg=0.016",
    "train.checkpoint_kimg=0.064",
    "train.snapshot_kimg=0.064",
    "eval.n_permutations=100",
    "eval.n_bootstrap=10",
    "eval.kid_subsets=5",
    "eval.kid_subset_size=50",
    "eval.sensitivity_z=4",
    "eval.tsne_real=60",
    "eval.tsne_gen=30",
    "eval.covernet_epochs=1",
    "eval.covernet_width=4",
    "encoders.tsne_points=100",
]


@dataclass(frozen=True)
class TinyRun:
    data_root: Path
    runs_root: Path

    @property
    def run_dir(self) -> Path:
        return self.runs_root / RUN

    def copy_run(self, dest_root: Path, name: str = RUN) -> Path:
        """A private copy of the run (tests that edit or delete parts work on copies)."""
        dest = dest_root / name
        shutil.copytree(self.run_dir, dest, ignore=shutil.ignore_patterns("report"))
        return dest


_cache: dict[str, TinyRun] = {}


def _plant_hostile_names(ds_root: Path) -> None:
    tracks = pd.read_parquet(ds_root / "tracks.parquet")
    tracks.loc[0, "artist"] = HOSTILE_ARTIST
    tracks.loc[1, "album"] = HOSTILE_ALBUM
    tracks.loc[2, "track"] = HOSTILE_TRACK
    tracks.to_parquet(ds_root / "tracks.parquet", index=False)
    rows = [{"item": HOSTILE_REJECTED_ITEM, "source": HOSTILE_REJECTED_SOURCE, "reason": "cover <unreadable> & odd"}]
    rows += [{"item": f"t{i:04d}.mp3", "source": "tracks.csv", "reason": "no audio"} for i in range(N_REJECTED - 1)]
    pd.DataFrame(rows).to_csv(ds_root / "rejected.csv", index=False)


def _craft(run_dir: Path) -> None:
    """dcgan: unconditional copy with worse FID; wgan_gp: metrics only, best FID, inconclusive."""
    src = json.loads((run_dir / "eval" / "dcgan_cond" / "metrics.json").read_text())
    # FIDs chosen above and below any real value, so the sorted order is known
    for name, fid, verdict, conditional in (("dcgan", 9e9, "no", False), ("wgan_gp", -1.0, "inconclusive", False)):
        doc = json.loads(json.dumps(src))
        doc.update(model=name, conditional=conditional, condition=None)
        doc["metrics"]["fid"]["value"] = fid
        doc["metrics"]["conditional_accuracy"]["p_value"] = 0.5 if name == "dcgan" else 0.02
        doc["verdict"]["conditioning_works"] = verdict
        shutil.copytree(run_dir / "eval" / "dcgan_cond", run_dir / "eval" / name)
        (run_dir / "eval" / name / "metrics.json").write_text(json.dumps(doc))
    skip = shutil.ignore_patterns("checkpoints")
    shutil.copytree(run_dir / "models" / "dcgan_cond", run_dir / "models" / "dcgan", ignore=skip)
    summary = json.loads((run_dir / "models" / "dcgan" / "summary.json").read_text())
    summary.update(model="dcgan", train_seconds=1234.5, images_per_s=summary["images_per_s"] * 10)
    (run_dir / "models" / "dcgan" / "summary.json").write_text(json.dumps(summary))
    tc = json.loads((run_dir / "models" / "dcgan" / "train_config.json").read_text())
    tc.update(model="dcgan", cond_dim=0, condition=None)
    (run_dir / "models" / "dcgan" / "train_config.json").write_text(json.dumps(tc))


def build_tiny_run(base: Path) -> TinyRun:
    """Build (once per process) the tiny run under ``base``."""
    if "run" in _cache:
        return _cache["run"]
    from benchmark.pipeline.encode import encode
    from benchmark.pipeline.evaluate import evaluate_model, evaluate_relationship
    from benchmark.pipeline.train import write_run_config
    from core import paths
    from core.config import load_config
    from core.data.prepared import PreparedDataset
    from models.gans.train.loop import train_gan
    from tests.conftest import make_tiny_dataset

    data_root, runs_root = base / "data", base / "runs"
    paths.set_roots(data_root, runs_root)
    try:
        make_tiny_dataset(DATASET, n=160, genres=GENRES, res=(32,))
        _plant_hostile_names(data_root / DATASET)
        ds = PreparedDataset.open(DATASET)
        cfg = load_config("cpu", [*OVERRIDES, f"run={RUN}"])
        run = paths.run(RUN)
        write_run_config(run, cfg)
        encode(ds, run, ["genre", "attributes"], cfg)
        train_gan(ds, run, "dcgan_cond", cfg.train)
        evaluate_model(ds, run, "dcgan_cond", cfg.eval, device_kind="cpu", n=60)
        evaluate_relationship(ds, run, cfg.eval, device_kind="cpu")
        _craft(run.root)
    finally:
        paths.set_roots(None, None)
    _cache["run"] = TinyRun(data_root, runs_root)
    return _cache["run"]
