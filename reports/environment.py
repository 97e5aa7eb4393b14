"""What the environment page shows: package versions, device, git commit. Never fails: unknowns say so."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from core.paths import project_root
from core.versions import package_versions

PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "scikit-learn",
    "torchmetrics",
    "clean-fid",
    "openTSNE",
    "librosa",
    "soundfile",
    "pandas",
    "pyarrow",
    "pillow",
    "matplotlib",
    "jinja2",
    "pydantic",
)


def versions() -> dict[str, str]:
    return package_versions(PACKAGES)


def git_commit(root: Path | None = None) -> str:
    """``git rev-parse HEAD`` of the source checkout, or "unknown" (no git, not a checkout, timeout)."""
    try:
        r = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root or project_root(),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = r.stdout.strip()
    return sha if r.returncode == 0 and sha else "unknown"


def device_info() -> dict[str, str]:
    """The machine that builds the report (the runs' own devices are listed per model)."""
    info = {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor() or "-"}
    try:
        import torch

        info["cuda available"] = str(torch.cuda.is_available())
        if torch.cuda.is_available():
            info["cuda device"] = torch.cuda.get_device_name(0)
            info["cuda version"] = str(torch.version.cuda)
    except Exception as e:  # a broken torch install must not stop the report
        info["torch"] = f"unavailable ({type(e).__name__})"
    return info
