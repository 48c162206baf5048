"""Registers the datasets of als-d2 under ``$DETECTRON2_DATASETS`` (default ``datasets/``)
at import, as detectron2's builtin.py does for COCO. Registration is lazy twice over:
nothing is read until ``DatasetCatalog.get(name)``, and the reader modules (index builders,
XML/CSV parsers, lxml) are imported only then, so ``import als_d2`` stays cheap.

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
openimages_train_leaf_mask     openimages                                      train   leaf_mask
openimages_val_leaf            openimages                                      val     leaf_mask
openimages_test_leaf           openimages                                      test    leaf_mask
=============================  ==============================================  ======  =======

The ``*_wsol*`` names read the box metadata of Choe et al. 2020 (a clone of
clovaai/wsolevaluation): split ``test`` is ImageNet val (images from
``wsolevaluation/dataset/ILSVRC/val``, else the ``imagenet`` tree's val), split ``val`` is
the boxed ImageNetV2 Threshold0.7 images (``wsolevaluation/dataset/ILSVRC/val2``). See
:mod:`.wsol_metadata` for the tree, the file formats and the bad-line policy, and
:mod:`.openimages` for the OpenImages subset (default :class:`.openimages_subset.SubsetRules`).

The embedded default dataset (``tools/make_synthetic_imagenet.py --root
$DETECTRON2_DATASETS/synthetic_imagenet``, Kaggle layout, plus a COCO-format split) is
registered the same way, as ``synthetic_imagenet_{train,train_boxed,train_boxed_mask,val,
val_context}`` and ``synthetic_coco_{train,val}``
(:func:`.coco_defaults.register_coco_with_defaults`: detectron2's ``register_coco_instances``,
with COCO's ``iscrowd`` / ``area`` defaults filled in for evaluation when a file lacks them).

``imagenet`` may have the standard or the Kaggle layout (auto-detected); it is read from
the files ``tools/prepare_imagenet.py --root $DETECTRON2_DATASETS/imagenet`` writes
(``imagenet/als_d2_<split>.json.gz``; loading without them is a one-line error naming that
command). ImageNetV2 takes its class names from ``imagenet`` when that is there. See
:mod:`.imagenet` for the trees.

Each name gets the metadata its reader's ``register_*`` function would set now
(``register_imagenet``, ``register_openimages``, ``register_wsol``), and the classes at
the first load (the reader's ``_load_registered``).
"""

import importlib
import os
from typing import Callable, List

from .catalog import datasets_home, register_lazy
from .coco_defaults import (
    register_coco_with_defaults,
)  # its PathHandler must exist before an evaluator opens json_file
from .openimages_subset import SubsetRules  # dataclass only (numpy; no reader)

__all__ = [
    "PREDEFINED_SPLITS_IMAGENET",
    "PREDEFINED_SPLITS_OPENIMAGES",
    "PREDEFINED_SPLITS_WSOL",
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

# name: (folder under $DETECTRON2_DATASETS, split)
PREDEFINED_SPLITS_OPENIMAGES = {
    "openimages_train_leaf_mask": ("openimages", "train"),
    "openimages_val_leaf": ("openimages", "val"),
    "openimages_test_leaf": ("openimages", "test"),
}

# name: (Choe et al.'s split, subset); see register_all_wsol for the folders
PREDEFINED_SPLITS_WSOL = {
    "imagenet_val_wsol": ("test", "all"),
    "imagenet_val_wsol_context": ("test", "context"),
    "imagenetv2_wsol": ("val", "all"),
    "imagenetv2_wsol_context": ("val", "context"),
}


def _on_load(reader: str, *args) -> Callable[[], List[dict]]:
    """A DatasetCatalog loader: imports ``.<reader>`` (e.g. ``imagenet``) when the dataset is
    loaded and returns its ``_load_registered(*args)``: the dicts, class metadata set."""

    def load() -> List[dict]:
        return importlib.import_module(f"{__package__}.{reader}")._load_registered(*args)

    return load


def register_all_imagenet(root: str) -> None:
    """Register every name of ``PREDEFINED_SPLITS_IMAGENET`` under ``root``."""
    imagenet_root = os.path.join(root, "imagenet")
    for name, (folder, split, layout, subset) in PREDEFINED_SPLITS_IMAGENET.items():
        folder_root = os.path.join(root, folder)
        class_root = imagenet_root if layout == "imagenetv2" else None
        hint = (
            f"put the {folder} tree there (standard or Kaggle ILSVRC layout; see the README's "
            "dataset section)"
        )
        load = _on_load("imagenet", name, folder_root, split, layout, subset, class_root, hint)
        register_lazy(name, load, folder_root, split, layout=layout, subset=subset)


def register_all_openimages(root: str) -> None:
    """Register every name of ``PREDEFINED_SPLITS_OPENIMAGES`` under ``root`` with the
    default :class:`SubsetRules`."""
    rules = SubsetRules()
    for name, (folder, split) in PREDEFINED_SPLITS_OPENIMAGES.items():
        folder_root = os.path.join(root, folder)
        load = _on_load("openimages", name, folder_root, split, rules)
        register_lazy(
            name, load, folder_root, split, subset="leaf_mask", subset_rules=rules.as_dict()
        )


def register_all_wsol(root: str) -> None:
    """Register every name of ``PREDEFINED_SPLITS_WSOL`` under ``root`` (the tree of
    :mod:`.wsol_metadata`'s docstring)."""
    wsol = os.path.join(root, "wsolevaluation")
    imagenet = os.path.join(root, "imagenet")
    image_roots = {
        "test": (
            os.path.join(wsol, "dataset", "ILSVRC"),
            imagenet,
            os.path.join(imagenet, "ILSVRC", "Data", "CLS-LOC"),
        ),
        "val": (os.path.join(wsol, "dataset", "ILSVRC"),),
    }
    for name, (split, subset) in PREDEFINED_SPLITS_WSOL.items():
        metadata_dir = os.path.join(wsol, "metadata", "ILSVRC", split)
        roots = image_roots[split]
        load = _on_load("wsol_metadata", name, metadata_dir, roots, subset, imagenet)
        register_lazy(name, load, roots[0], split, subset=subset, metadata_dir=metadata_dir)


def register_synthetic_imagenet(root: str, prefix: str = "synthetic") -> None:
    """Register the generated dataset at ``root`` (see :mod:`als_d2.data.synthetic`) as
    ``{prefix}_imagenet_<split>`` (same splits/subsets as ImageNet, Kaggle layout) and
    ``{prefix}_coco_{train,val}``. A missing ``root`` is an error at load that says how to
    create it (``tools/make_synthetic_imagenet.py --root ...``)."""
    builtin = os.path.abspath(root) == os.path.abspath(
        os.path.join(datasets_home(), "synthetic_imagenet")
    )
    target = "$DETECTRON2_DATASETS/synthetic_imagenet" if builtin else root
    hint = f"create it with: tools/make_synthetic_imagenet.py --root {target}"
    for name, (_, split, _, subset) in PREDEFINED_SPLITS_IMAGENET.items():
        if name.startswith("imagenet_"):
            load = _on_load(
                "imagenet", f"{prefix}_{name}", root, split, "kaggle", subset, None, hint
            )
            register_lazy(f"{prefix}_{name}", load, root, split, layout="kaggle", subset=subset)
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
