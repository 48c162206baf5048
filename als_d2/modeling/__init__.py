"""Modeling: the ImageClassifier meta-architecture, ALS/LS/hard/mixing targets, losses."""
