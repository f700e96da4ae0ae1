"""Evaluation metrics computed from samples or shared features."""

from ganforge.metrics.mixtures import ModeStats, mode_stats

__all__ = ["ModeStats", "mode_stats"]
