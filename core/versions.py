"""Which versions made a result: Python, coverbench and the packages whose behaviour can change numbers."""

from __future__ import annotations

import platform
from importlib import metadata

from core import __version__

PACKAGES = ("numpy", "pandas", "pyarrow", "pillow", "soundfile", "librosa", "torch", "pydantic")


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python, coverbench and each installed package's version ("not installed" where missing)."""
    out = {"python": platform.python_version(), "coverbench": __version__}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
