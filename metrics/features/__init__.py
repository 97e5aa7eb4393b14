"""Feature extractors (Inception, colour statistics) and the real-feature cache.

Submodules are imported on use (``metrics.features.inception`` loads torch and the weights lazily).
"""
