"""Weight conversion between torchvision, als_d2 classifiers and detectron2 detectors.

- :mod:`.torchvision`: torchvision <-> ImageClassifier key renaming;
- :mod:`.formats`: safe reading, format recognition and conversion of ResNet weight files;
- :mod:`.detection`: checkpointers that carry a classifier backbone into C4/FPN detectors.
"""
from .detection import ClassifierCheckpointer, TransferCheckpointer
from .formats import convert, detect_format, load_weights_file, read_canonical
from .torchvision import als_to_torchvision, torchvision_to_als

__all__ = [
    "ClassifierCheckpointer",
    "TransferCheckpointer",
    "als_to_torchvision",
    "convert",
    "detect_format",
    "load_weights_file",
    "read_canonical",
    "torchvision_to_als",
]
