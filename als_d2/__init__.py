"""als_d2: Adaptive Label Smoothing pretraining and COCO transfer on detectron2.

``compat`` is imported first: it makes detectron2 importable without compiled ops (its
docstring lists its two side effects). Importing ``als_d2`` then registers the project's
pieces in detectron2's registries, as detectron2 projects do: the builtin datasets
(DatasetCatalog; the readers are imported when a dataset is first loaded) and the
``ImageClassifier`` meta-architecture.
"""

from . import compat  # must stay first

with compat.quiet_detectron2_imports():  # the warnings detectron2 and fvcore raise at import
    from . import data  # noqa: F401  (registers the builtin datasets)
    from . import modeling  # noqa: F401  (registers ImageClassifier)

__version__ = "0.1.0"
