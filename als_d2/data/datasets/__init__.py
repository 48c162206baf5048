"""ImageNet / ImageNetV2 readers and their registration in detectron2's DatasetCatalog;
:func:`register_coco_with_defaults` for COCO-format files without ``iscrowd`` / ``area``.

Importing this package registers the builtin names (:mod:`.builtin`), without touching
the disk.
"""
from .ilsvrc_xml import IlsvrcAnnotation, IlsvrcXmlError, parse_ilsvrc_xml
from .imagenet import (
    LAYOUTS,
    SPLITS,
    SUBSETS,
    get_imagenet_class_info,
    load_imagenet_dicts,
    load_imagenet_index,
    register_imagenet,
)
from .coco_defaults import fill_coco_defaults, register_coco_with_defaults
from . import builtin as _builtin  # noqa: F401  (registers imagenet_* at import)
from .builtin import register_all_imagenet
from .openimages import SubsetRules, load_openimages_dicts, register_all_openimages, register_openimages  # noqa: F401
from .wsol_metadata import load_wsol_metadata, read_wsol_metadata, register_all_wsol, register_wsol  # noqa: F401

__all__ = [
    "IlsvrcAnnotation",
    "IlsvrcXmlError",
    "parse_ilsvrc_xml",
    "LAYOUTS",
    "SPLITS",
    "SUBSETS",
    "get_imagenet_class_info",
    "load_imagenet_dicts",
    "load_imagenet_index",
    "register_imagenet",
    "register_all_imagenet",
    "load_wsol_metadata",
    "read_wsol_metadata",
    "register_wsol",
    "register_all_wsol",
    "fill_coco_defaults",
    "register_coco_with_defaults",
]
