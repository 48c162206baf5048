"""Engine: ClassificationTrainer (a DefaultTrainer) and launch helpers."""
