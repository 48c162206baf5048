"""als_d2: Adaptive Label Smoothing pretraining and COCO transfer on detectron2.

``compat`` is imported first: it makes detectron2 importable without compiled ops.
"""
from . import compat  # noqa: F401  (must stay first)

__version__ = "0.1.0"
