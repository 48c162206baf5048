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
imagenet_val_wsol              wsolevaluation (metadata/ILSVRC/test)           test    all
imagenet_val_wsol_context      wsolevaluation (metadata/ILSVRC/test)           test    context
imagenetv2_wsol                wsolevaluation (metadata/ILSVRC/val)            val     all
imagenetv2_wsol_context        wsolevaluation (metadata/ILSVRC/val)            val     context
=============================  ==============================================  ======  =======

The ``*_wsol*`` names read the box metadata of Choe et al. 2020 (a clone of
clovaai/wsolevaluation): split ``test`` is ImageNet val (images from
``wsolevaluation/dataset/ILSVRC/val``, else the ``imagenet`` tree's val), split ``val`` is
the boxed ImageNetV2 Threshold0.7 images (``wsolevaluation/dataset/ILSVRC/val2``). See
:mod:`.wsol_metadata` for the tree, the file formats and the bad-line policy.

The embedded default dataset (``tools/make_synthetic_imagenet.py --root
$DETECTRON2_DATASETS/synthetic_imagenet``, Kaggle layout, plus a COCO-format split) is
registered the same way, as ``synthetic_imagenet_{train,train_boxed,train_boxed_mask,val,
val_context}`` and ``synthetic_coco_{train,val}`` (:func:`.coco_defaults.register_coco_with_defaults`:
detectron2's ``register_coco_instances``, with COCO's ``iscrowd`` / ``area`` defaults filled in
for evaluation when a file lacks them).

``imagenet`` may have the standard or the Kaggle layout (auto-detected); ImageNetV2 takes
its class names from ``imagenet`` when that is there. See :mod:`.imagenet` for the trees.
"""
import os

from .catalog import datasets_home
from .imagenet import register_imagenet
from .openimages import register_all_openimages
from .wsol_metadata import register_all_wsol

__all__ = [
    "PREDEFINED_SPLITS_IMAGENET",
    "register_all_imagenet",
    "register_all_openimages",
    "register_all_wsol",
    "register_synthetic_imagenet",
]

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
            name, os.path.join(root, folder), split, layout, subset, class_root=class_root,
            missing_hint=f"put the {folder} tree there (standard or Kaggle ILSVRC layout; see the README's "
                         f"dataset section)",
        )


def register_synthetic_imagenet(root: str, prefix: str = "synthetic") -> None:
    """Register the generated dataset at ``root`` (see :mod:`als_d2.data.synthetic`) as
    ``{prefix}_imagenet_<split>`` (same splits/subsets as ImageNet, Kaggle layout) and
    ``{prefix}_coco_{train,val}``. A missing ``root`` is an error at load that says how to
    create it (``tools/make_synthetic_imagenet.py --root ...``)."""
    from .coco_defaults import register_coco_with_defaults

    builtin = os.path.abspath(root) == os.path.abspath(os.path.join(datasets_home(), "synthetic_imagenet"))
    target = "$DETECTRON2_DATASETS/synthetic_imagenet" if builtin else root
    hint = f"create it with: tools/make_synthetic_imagenet.py --root {target}"
    for name, (_, split, _, subset) in PREDEFINED_SPLITS_IMAGENET.items():
        if name.startswith("imagenet_"):
            register_imagenet(f"{prefix}_{name}", root, split, "kaggle", subset, missing_hint=hint)
    for split in ("train", "val"):
        register_coco_with_defaults(
            f"{prefix}_coco_{split}",
            {},
            os.path.join(root, "coco", "annotations", f"instances_{split}.json"),
            os.path.join(root, "coco", split),
        )


if __name__.endswith(".builtin"):
    # Assume pre-defined datasets live in `./datasets`.
    _root = datasets_home()
    register_all_imagenet(_root)
    register_synthetic_imagenet(os.path.join(_root, "synthetic_imagenet"))
    register_all_openimages(_root)
    register_all_wsol(_root)
