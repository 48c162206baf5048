"""Evaluation of image classifiers: accuracy, calibration (ECE, MCE, over/under
confidence, NLL, Brier), objectness agreement, temperature scaling, reliability
diagrams and class activation maps."""

from .calibration import (
    bin_statistics,
    calibration_metrics,
    metrics_from_stats,
    paper_bin_statistics,
    paper_ece_mce,
    sample_stats,
    sample_stats_from_logits,
)
from .evaluator import ClassificationEvaluator
from .temperature import fit_temperature, temperature_scaling_report

__all__ = [
    "ClassificationEvaluator",
    "calibration_metrics",
    "metrics_from_stats",
    "sample_stats",
    "sample_stats_from_logits",
    "bin_statistics",
    "paper_bin_statistics",
    "paper_ece_mce",
    "fit_temperature",
    "temperature_scaling_report",
]
