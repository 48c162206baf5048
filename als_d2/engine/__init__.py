"""Engine: ClassificationTrainer and DetectionTrainer (composed like d2's DefaultTrainer),
the epoch schedule, launch helpers."""

from .schedule import apply_epoch_schedule
from .detection import DetectionTrainer
from .trainer import ClassificationTrainer

__all__ = ["ClassificationTrainer", "DetectionTrainer", "apply_epoch_schedule"]
