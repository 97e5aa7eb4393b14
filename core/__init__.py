"""The foundation layer: errors, paths, config, progress, disk I/O, the prepared-dataset format, data import and
synthesis, audio features. It knows nothing of the application: nothing here imports ``models``, ``metrics``,
``reports``, ``benchmark`` or ``speed`` (``tests/test_layers.py`` enforces it)."""

__version__ = "0.1.0"
