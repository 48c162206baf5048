"""Modeling: the ImageClassifier meta-architecture, ALS/LS/hard/mixing targets, losses."""
from .classifier import ImageClassifier
from .losses import soft_cross_entropy
from .targets import TargetBuilder

__all__ = ["ImageClassifier", "TargetBuilder", "soft_cross_entropy"]
