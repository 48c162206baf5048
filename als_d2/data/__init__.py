"""Data: ImageNet-with-boxes datasets in detectron2's catalog, box-aware transforms, the mapper."""
