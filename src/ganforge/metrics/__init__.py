"""Evaluation: feature extractors, metrics computed from shared features, and the
evaluation entry points (see docs/evaluation.md)."""

from ganforge.metrics.evaluate import compare_sources, evaluate, parse_metrics
from ganforge.metrics.features import Features, get_extractor
from ganforge.metrics.frechet import feature_stats, fid_from_features, frechet_distance, intra_fid
from ganforge.metrics.inception_score import inception_score
from ganforge.metrics.kid import kid
from ganforge.metrics.mixtures import ModeStats, mode_stats
from ganforge.metrics.prdc import manifold_metrics
from ganforge.metrics.stacked import StackedModeStats, stacked_mode_stats

__all__ = [
    "Features",
    "ModeStats",
    "StackedModeStats",
    "compare_sources",
    "evaluate",
    "feature_stats",
    "fid_from_features",
    "frechet_distance",
    "get_extractor",
    "inception_score",
    "intra_fid",
    "kid",
    "manifold_metrics",
    "mode_stats",
    "parse_metrics",
    "stacked_mode_stats",
]
