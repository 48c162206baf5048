"""Registers the ImageNet datasets of als-d2 under ``$DETECTRON2_DATASETS`` (default
``datasets/``) at import, as detectron2's builtin.py does for COCO. Registration is lazy:
nothing is read until ``DatasetCatalog.get(name)``.

=============================  ==============================================  ======  =======
name                           root                                            split   subset
=============================  ==============================================  ======  =======
imagenet_train                 imagenet                                        train   all
imagenet_train_boxed           imagenet                                        train   boxed
imagenet_train_boxed_mask      imagenet                                        train   mask
imagenet_val                   imagenet                                        val     all
imagenet_val_context           imagenet                                        val     context
imagenetv2_matched_frequency   imagenetv2-matched-frequency-format-val         (val)   all
=============================  ==============================================  ======  =======

``imagenet`` may have the standard or the Kaggle layout (auto-detected); ImageNetV2 takes
its class names from ``imagenet`` when that is there. See :mod:`.imagenet` for the trees.
"""
import os

from .imagenet import register_imagenet

__all__ = ["PREDEFINED_SPLITS_IMAGENET", "register_all_imagenet"]

# name: (folder under $DETECTRON2_DATASETS, split, layout, subset)
PREDEFINED_SPLITS_IMAGENET = {
    "imagenet_train": ("imagenet", "train", "auto", "all"),
    "imagenet_train_boxed": ("imagenet", "train", "auto", "boxed"),
    "imagenet_train_boxed_mask": ("imagenet", "train", "auto", "mask"),
    "imagenet_val": ("imagenet", "val", "auto", "all"),
    "imagenet_val_context": ("imagenet", "val", "auto", "context"),
    "imagenetv2_matched_frequency": (
        "imagenetv2-matched-frequency-format-val",
        "val",
        "imagenetv2",
        "all",
    ),
}


def register_all_imagenet(root: str) -> None:
    """Register every name of ``PREDEFINED_SPLITS_IMAGENET`` under ``root``."""
    imagenet_root = os.path.join(root, "imagenet")
    for name, (folder, split, layout, subset) in PREDEFINED_SPLITS_IMAGENET.items():
        class_root = imagenet_root if layout == "imagenetv2" else None
        register_imagenet(
            name, os.path.join(root, folder), split, layout, subset, class_root=class_root
        )


if __name__.endswith(".builtin"):
    # Assume pre-defined datasets live in `./datasets`.
    _root = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
    register_all_imagenet(_root)
