"""als_d2: Adaptive Label Smoothing pretraining and COCO transfer on detectron2.

``compat`` is imported first: it makes detectron2 importable without compiled ops.
Importing ``als_d2`` registers the project's pieces in detectron2's registries, as
detectron2 projects do: the ``imagenet_*`` datasets (DatasetCatalog, lazily) and the
``ImageClassifier`` meta-architecture.
"""
from . import compat  # noqa: F401  (must stay first)
from . import data  # noqa: F401  (registers datasets)
from . import modeling  # noqa: F401  (registers ImageClassifier)

__version__ = "0.1.0"
