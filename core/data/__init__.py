"""Datasets: the prepared format, splits, the synthetic world, real-data import and cover loaders."""
