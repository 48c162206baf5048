"""Weight conversion between torchvision, als_d2 classifiers and detectron2 detectors.

- :mod:`.torchvision`: torchvision <-> ImageClassifier key renaming;
- :mod:`.formats`: safe reading, format recognition and conversion of ResNet weight files;
- :mod:`.detection`: checkpointers that carry a classifier backbone into C4/FPN detectors;
- :mod:`.evaluation`: strict loading for evaluation and CAMs (no skipped head or backbone).
"""
from .detection import ClassifierCheckpointer, TransferCheckpointer
from .evaluation import CheckpointMismatchError, EvaluationCheckpointer
from .formats import convert, detect_format, load_weights_file, read_canonical
from .torchvision import als_to_torchvision, torchvision_to_als

__all__ = [
    "CheckpointMismatchError",
    "ClassifierCheckpointer",
    "EvaluationCheckpointer",
    "TransferCheckpointer",
    "als_to_torchvision",
    "convert",
    "detect_format",
    "load_weights_file",
    "read_canonical",
    "torchvision_to_als",
]
