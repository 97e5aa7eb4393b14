"""The one module that owns where things live on disk.

Data goes to ``<data root>/<dataset>/`` and runs to ``<runs root>/<run>/``. The roots come from, in order:
an explicit ``set_roots`` call (the CLI's ``--data-root`` / ``--runs-root``), the environment variables
``COVERBENCH_DATA_ROOT`` / ``COVERBENCH_RUNS_ROOT``, and finally ``./data`` and ``./runs``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError

DATA_ROOT_ENV = "COVERBENCH_DATA_ROOT"
RUNS_ROOT_ENV = "COVERBENCH_RUNS_ROOT"
CONFIGS_ENV = "COVERBENCH_CONFIGS"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+@-]{0,99}$")  # '@': eval/<model>@w<guidance scale>
_overrides: dict[str, Path | None] = {"data": None, "runs": None}


def set_roots(data_root: str | Path | None = None, runs_root: str | Path | None = None) -> None:
    """Override the data and runs roots for this process (None leaves a root to env/default)."""
    _overrides["data"] = Path(data_root) if data_root else None
    _overrides["runs"] = Path(runs_root) if runs_root else None


def data_root() -> Path:
    return _overrides["data"] or Path(os.environ.get(DATA_ROOT_ENV) or "data")


def runs_root() -> Path:
    return _overrides["runs"] or Path(os.environ.get(RUNS_ROOT_ENV) or "runs")


def project_root() -> Path:
    """The source checkout (the folder holding ``configs/``)."""
    return Path(__file__).resolve().parent.parent


def configs_dir() -> Path:
    env = os.environ.get(CONFIGS_ENV)
    return Path(env) if env else project_root() / "configs"


def check_name(name: str, what: str = "name") -> str:
    """Dataset and run names become folder names: keep them plain (no separators, no '..')."""
    if not _NAME_RE.match(name or ""):
        raise UserError(f"invalid {what} {name!r}: use letters, digits, '.', '_', '+', '@' or '-' (max 100 characters)")
    return name


@dataclass(frozen=True)
class DatasetPaths:
    """Files of one prepared dataset (see DESIGN.md, 'Prepared dataset')."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def tracks(self) -> Path:
        return self.root / "tracks.parquet"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected.csv"

    @property
    def audio(self) -> Path:
        return self.root / "audio.npy"

    def covers(self, res: int) -> Path:
        return self.root / f"covers_{int(res)}.npy"

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def exists(self) -> bool:
        return self.manifest.is_file() and self.tracks.is_file()


@dataclass(frozen=True)
class RunPaths:
    """Folders of one run: resolved config, encoders, models, evaluations, report."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    def encoder(self, name: str) -> Path:
        return self.root / "encoders" / check_name(name, "encoder")

    def model(self, name: str) -> Path:
        return self.root / "models" / check_name(name, "model")

    def eval(self, model: str) -> Path:
        return self.root / "eval" / check_name(model, "model")

    @property
    def report(self) -> Path:
        return self.root / "report"


def dataset(name: str) -> DatasetPaths:
    """The files of prepared dataset ``name`` under the data root."""
    return DatasetPaths(data_root() / check_name(name, "dataset name"))


def run(name: str) -> RunPaths:
    """The folders of run ``name`` under the runs root."""
    return RunPaths(runs_root() / check_name(name, "run name"))
