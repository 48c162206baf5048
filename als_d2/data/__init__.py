"""Data: ImageNet-with-boxes datasets in detectron2's catalog, box-aware transforms, the mapper."""

from . import datasets  # noqa: F401  (registers the builtin imagenet_* names)
from .mapper import ClassificationDatasetMapper

__all__ = ["ClassificationDatasetMapper"]
