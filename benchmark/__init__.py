"""The application layer: the ``bench`` CLI (``benchmark.cli``) and the one orchestration package
(``benchmark.pipeline``) that orders the stages (encode, train, evaluate, probe, power, calibrate, report) over
``models``, ``metrics`` and ``reports``, which in turn stand on ``core``."""

from core import __version__

__all__ = ["__version__"]
