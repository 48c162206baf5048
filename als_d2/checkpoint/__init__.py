"""Weight conversion between torchvision, als_d2 classifiers and detectron2 detectors.

- :mod:`.torchvision`: torchvision <-> ImageClassifier key renaming;
- :mod:`.file_io`: reading weight files without running pickled code, atomic writes;
- :mod:`.conversion`: format recognition and conversion of ResNet weight files;
- :mod:`.detection`: checkpointers that carry a classifier backbone into C4/FPN detectors;
- :mod:`.evaluation`: strict loading for evaluation and CAMs (no skipped head or backbone).
"""

from .conversion import convert, detect_format, read_canonical
from .detection import ClassifierCheckpointer, TransferCheckpointer
from .evaluation import CheckpointMismatchError, EvaluationCheckpointer
from .file_io import UnsafeWeightsError, WeightsFileError, load_weights_file
from .torchvision import als_to_torchvision, torchvision_to_als

__all__ = [
    "CheckpointMismatchError",
    "ClassifierCheckpointer",
    "EvaluationCheckpointer",
    "TransferCheckpointer",
    "UnsafeWeightsError",
    "WeightsFileError",
    "als_to_torchvision",
    "convert",
    "detect_format",
    "load_weights_file",
    "read_canonical",
    "torchvision_to_als",
]
