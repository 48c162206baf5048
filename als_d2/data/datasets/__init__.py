"""ImageNet / ImageNetV2 / WSOL / OpenImages readers and their registration in detectron2's
DatasetCatalog; :func:`register_coco_with_defaults` for COCO-format files without
``iscrowd`` / ``area``.

Importing this package registers the builtin names (:mod:`.builtin`) without touching the
disk or importing the readers: the names below are imported from their module on first
use (``from als_d2.data.datasets import load_imagenet_dicts`` works as usual).
"""

import importlib

from .builtin import (  # registers the builtin names at import
    register_all_imagenet,
    register_all_openimages,
    register_all_wsol,
)
from .coco_defaults import fill_coco_defaults, register_coco_files, register_coco_with_defaults

# public name: the module that defines it (imported on first access)
_LAZY = {
    "IlsvrcAnnotation": "ilsvrc_xml",
    "IlsvrcXmlError": "ilsvrc_xml",
    "parse_ilsvrc_xml": "ilsvrc_xml",
    "LAYOUTS": "imagenet",
    "SPLITS": "imagenet",
    "SUBSETS": "imagenet",
    "get_imagenet_class_info": "imagenet",
    "load_imagenet_dicts": "imagenet",
    "prepare_imagenet": "imagenet",
    "prepared_path": "imagenet",
    "read_prepared": "imagenet",
    "register_imagenet": "imagenet",
    "SubsetRules": "openimages_subset",
    "load_openimages_dicts": "openimages",
    "register_openimages": "openimages",
    "load_wsol_metadata": "wsol_metadata",
    "read_wsol_metadata": "wsol_metadata",
    "register_wsol": "wsol_metadata",
}

__all__ = [
    "IlsvrcAnnotation",
    "IlsvrcXmlError",
    "parse_ilsvrc_xml",
    "LAYOUTS",
    "SPLITS",
    "SUBSETS",
    "get_imagenet_class_info",
    "load_imagenet_dicts",
    "prepare_imagenet",
    "prepared_path",
    "read_prepared",
    "register_imagenet",
    "SubsetRules",
    "load_openimages_dicts",
    "register_openimages",
    "load_wsol_metadata",
    "read_wsol_metadata",
    "register_wsol",
    "register_all_imagenet",
    "register_all_openimages",
    "register_all_wsol",
    "fill_coco_defaults",
    "register_coco_files",
    "register_coco_with_defaults",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
