"""Modeling: the ImageClassifier meta-architecture, ALS/LS/hard/mixing targets, losses,
and the C4 ROI head that fits every ResNet depth (registered at import)."""

from .classifier import ImageClassifier
from .losses import soft_cross_entropy
from .roi_heads import ResNetRes5ROIHeads
from .targets import TargetBuilder

__all__ = ["ImageClassifier", "ResNetRes5ROIHeads", "TargetBuilder", "soft_cross_entropy"]
