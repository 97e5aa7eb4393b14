"""The stages that join data, models and metrics: evaluation of trained generators."""
