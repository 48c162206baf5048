"""Engine: ClassificationTrainer (a DefaultTrainer), the epoch schedule, launch helpers."""
from .schedule import apply_epoch_schedule
from .trainer import ClassificationTrainer

__all__ = ["ClassificationTrainer", "apply_epoch_schedule"]
