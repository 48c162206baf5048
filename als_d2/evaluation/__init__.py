"""Evaluation: classification accuracy (and calibration) as detectron2 DatasetEvaluators."""
from .evaluator import ClassificationEvaluator

__all__ = ["ClassificationEvaluator"]
