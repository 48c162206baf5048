"""Weight conversion between torchvision, als_d2 classifiers and detectron2 detectors."""
from .torchvision import als_to_torchvision, torchvision_to_als

__all__ = ["als_to_torchvision", "torchvision_to_als"]
