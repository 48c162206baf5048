"""ImageNet-1k (ILSVRC2012 CLS-LOC) and ImageNetV2 as detectron2 datasets.

Expected trees (``root`` is what :func:`register_imagenet` gets; layout "auto" picks
"kaggle" when ``root/ILSVRC/Data/CLS-LOC`` exists, "imagenetv2" when every sub-folder of
root is a number, else "standard")::

    standard (the official ILSVRC2012 tarballs)
    root/train/<wnid>/<wnid>_<n>.JPEG
    root/val/ILSVRC2012_val_<n>.JPEG             (flat, or val/<wnid>/ILSVRC2012_val_<n>.JPEG)
    root/bbox/train/<wnid>/<wnid>_<n>.xml
    root/bbox/val/ILSVRC2012_val_<n>.xml
    root/LOC_synset_mapping.txt                  (optional: readable class names)
    root/LOC_val_solution.csv                    (optional: val labels and boxes)

    kaggle (the Kaggle "ImageNet Object Localization Challenge" download)
    root/ILSVRC/Data/CLS-LOC/train/<wnid>/<wnid>_<n>.JPEG
    root/ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_<n>.JPEG
    root/ILSVRC/Annotations/CLS-LOC/train/<wnid>/<wnid>_<n>.xml
    root/ILSVRC/Annotations/CLS-LOC/val/ILSVRC2012_val_<n>.xml
    root/LOC_synset_mapping.txt, root/LOC_train_solution.csv, root/LOC_val_solution.csv

    imagenetv2 (the official "imagenetv2-matched-frequency-format-val" tarball)
    root/<class index 0..999>/<name>.jpeg

Classes: index = position in the sorted wnids, from ``LOC_synset_mapping.txt`` if present
(``thing_classes`` = first synonym of each line, e.g. "tench"), else from the train class
folders (``thing_classes`` = wnids). ``class_root`` takes them from another ImageNet tree
(ImageNetV2 uses it; without one, its classes are ``class_<i>``).

Labels: class folder, else the image's CSV row, else its XML. Boxes: the XML, else the CSV
row; clipped to the real image, rescaled when the XML's <size> differs from the real size,
degenerate ones dropped. What happens to bad input (always counted and logged) is listed
in :mod:`als_d2.data.datasets.imagenet_index`.

Each dataset dict (detectron2 keys, plus ``label``)::

    file_name    str   root joined with the image path
    image_id     str   file name stem (e.g. "n01440764_10026"); unique per image (when stems
                       repeat in a split, the relative path, without the extension if
                       that is enough)
    label        int   class index of the image
    height, width int  pixels; present for images that have boxes (read from the image
                       header); left out for images without boxes, to keep indexing fast
    annotations  list  [{bbox: [x0, y0, x1, y1] float pixels, bbox_mode: BoxMode.XYXY_ABS,
                         category_id: int}]; [] for images without boxes
    target_object int  subset "mask" only: index into annotations of the one object kept
    paint_all_objects True  subset "context" only

Subsets: "all"; "boxed" (images with at least one box); "mask" (one dict per box whose
class is the image label, each keeping all annotations of its image: 'mask' ImageNet);
"context" (images with boxes, each with ``paint_all_objects``: every object painted out).

The index of a split is cached (:mod:`.index_cache`); the second start reads the cache.
"""

import functools
import logging
import os
from typing import List, Optional

from detectron2.structures import BoxMode
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager

from . import index_cache
from .catalog import check_dataset_root, register_lazy, set_class_metadata
from .imagenet_index import (
    LAYOUTS,
    SKIP_COUNTERS,
    build_imagenetv2_index,
    build_index,
    get_imagenet_class_info,
    index_inputs,
    resolve_layout,
)

__all__ = [
    "SPLITS",
    "SUBSETS",
    "LAYOUTS",
    "get_imagenet_class_info",
    "load_imagenet_index",
    "load_imagenet_dicts",
    "register_imagenet",
]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")
SUBSETS = ("all", "boxed", "mask", "context")
# bump when the index format or its semantics change (2: outside_root, duplicate_images;
# 3: unknown_labels)
INDEX_VERSION = 3


def _check_args(split: str, layout: str, subset: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown ImageNet layout {layout!r}; expected one of {LAYOUTS}")
    if subset not in SUBSETS:
        raise ValueError(f"unknown ImageNet subset {subset!r}; expected one of {SUBSETS}")
    if layout != "imagenetv2" and split not in SPLITS:
        raise ValueError(f"unknown ImageNet split {split!r}; expected one of {SPLITS}")
    if layout == "imagenetv2" and subset != "all":
        raise ValueError(f"ImageNetV2 has no boxes: subset must be 'all', got {subset!r}")


def load_imagenet_index(
    root: str,
    split: str,
    layout: str = "auto",
    class_root: Optional[str] = None,
    *,
    use_cache: bool = True,
    num_workers: Optional[int] = None,
) -> dict:
    """The compact index of one split (see :func:`imagenet_index.build_index` for its keys),
    from the cache when the tree has not changed, else built (in parallel) and cached.
    ImageNetV2 trees (10k files, listed in well under a second) are not cached."""
    _check_args(split, layout, "all")
    root = PathManager.get_local_path(root)
    layout = resolve_layout(root, layout)
    if layout == "imagenetv2":
        index = build_imagenetv2_index(root, class_root)
        _log_index(index, root, split, layout, "listed")
        return index

    key = (
        "imagenet",
        os.path.abspath(root),
        split,
        layout,
        os.path.abspath(class_root) if class_root else None,
    )
    build = dict(num_workers=num_workers, show_progress=comm.is_main_process())
    if not use_cache:
        index = build_index(root, split, layout, class_root, **build)
        _log_index(index, root, split, layout, "indexed, cache off")
        return index

    index, source = index_cache.load_or_build(
        "imagenet",
        key,
        INDEX_VERSION,
        index_inputs(root, split, layout, class_root),
        lambda: build_index(root, split, layout, class_root, **build),
        paths_ok=_relative_paths_ok,
    )
    _log_index(index, root, split, layout, source)
    return index


def _relative_paths_ok(index: dict) -> bool:
    """Every path of the index is relative and stays below the root (no '..', no '/...')."""
    try:
        return all(
            not p.startswith(("/", "\\"))
            and ".." not in p.split("/")
            and ":" not in p.split("/", 1)[0]
            for p in index["rel_paths"]
        )
    except (KeyError, TypeError, AttributeError):
        return False


def _log_index(index: dict, root: str, split: str, layout: str, source: str) -> None:
    s = index["stats"]
    logger.info(
        f"ImageNet {split} at {root} ({layout} layout; {source}): {s['images']} images, "
        f"{s['boxed_images']} with boxes, {s['objects']} objects, {s['classes']} classes; "
        f"{s.get('rescaled_files', 0)} XMLs rescaled to the real image size, "
        f"{s.get('clipped_boxes', 0)} boxes clipped."
    )
    skipped = {k: s[k] for k in SKIP_COUNTERS if s.get(k)}
    for key in ("rescaled_files", *skipped):
        if not s.get(key):
            continue
        examples = "; ".join(index["examples"].get(key, [])[:3])
        level = logging.INFO if key == "rescaled_files" else logging.WARNING
        logger.log(level, f"ImageNet {split} at {root}: {key} = {s[key]} (e.g. {examples})")


def _dicts_from_index(index: dict, root: str, subset: str) -> List[dict]:
    rel_paths = index["rel_paths"]
    n = len(rel_paths)
    labels = index["labels"].tolist()
    sizes = index["sizes"].tolist()
    box_image = index["box_image"].tolist()
    cats = index["box_cat"].tolist()
    xyxy = index["box_xyxy"].tolist()

    stems = [os.path.splitext(p.rsplit("/", 1)[-1])[0] for p in rel_paths]
    if len(set(stems)) != n:  # e.g. the same val image in two class folders
        logger.warning(f"ImageNet at {root}: file names repeat; image_id = relative path instead.")
        stems = [os.path.splitext(p)[0] for p in rel_paths]
        if len(set(stems)) != n:  # x.JPEG and x.png in one folder: keep the extension too
            stems = list(rel_paths)

    starts = [0] * (n + 1)  # boxes of image i: starts[i]:starts[i + 1] (box_image ascending)
    for i in box_image:
        starts[i + 1] += 1
    for i in range(n):
        starts[i + 1] += starts[i]

    prefix = os.path.join(root, "")  # root + separator: cheaper than a join per image
    dicts, off_label = [], 0
    for i in range(n):
        a, b = starts[i], starts[i + 1]
        if subset != "all" and a == b:
            continue
        record = {
            "file_name": prefix + rel_paths[i],
            "image_id": stems[i],
            "label": labels[i],
        }
        if sizes[i][0] > 0:
            record["height"], record["width"] = sizes[i][1], sizes[i][0]
        anns = (
            [
                {"bbox": xyxy[j], "bbox_mode": BoxMode.XYXY_ABS, "category_id": cats[j]}
                for j in range(a, b)
            ]
            if a != b
            else []
        )
        if subset == "mask":
            for t in range(b - a):
                if anns[t]["category_id"] != labels[i]:
                    off_label += 1
                    continue
                d = dict(record, annotations=[dict(x, bbox=list(x["bbox"])) for x in anns])
                d["target_object"] = t
                dicts.append(d)
            continue
        record["annotations"] = anns
        if subset == "context":
            record["paint_all_objects"] = True
        dicts.append(record)
    if subset == "mask":
        logger.info(
            f"ImageNet 'mask' set at {root}: {len(dicts)} samples (one per object) from "
            f"{len({d['image_id'] for d in dicts})} images; {off_label} objects of another "
            "class than the image label are kept as annotations but are no target."
        )
    return dicts


def load_imagenet_dicts(
    root: str,
    split: str,
    layout: str = "auto",
    subset: str = "all",
    *,
    class_root: Optional[str] = None,
    use_cache: bool = True,
    num_workers: Optional[int] = None,
) -> List[dict]:
    """Load one split of ImageNet (or ImageNetV2) as a list of detectron2 dataset dicts.

    Args:
        root: the tree (see the module docstring for the layouts).
        split: "train" or "val" (ignored for ImageNetV2).
        layout: "auto", "standard", "kaggle" or "imagenetv2".
        subset: "all", "boxed", "mask" or "context" (see the module docstring).
        class_root: another ImageNet tree to take the class list from (else root's own).
        use_cache: read / write the index cache under ``$ALS_D2_CACHE``.
        num_workers: indexing processes (default ``$ALS_D2_INDEX_WORKERS`` or the CPUs).

    Returns:
        list[dict] with ``file_name, image_id, label, annotations`` (+ ``height, width``
        for images with boxes, ``target_object`` / ``paint_all_objects`` per subset).
    """
    _check_args(split, layout, subset)
    index = load_imagenet_index(
        root, split, layout, class_root, use_cache=use_cache, num_workers=num_workers
    )
    return _dicts_from_index(index, root, subset)


def _load_registered(
    name: str,
    root: str,
    split: str,
    layout: str,
    subset: str,
    class_root,
    missing_hint: Optional[str] = None,
):
    check_dataset_root(name, root, missing_hint)
    index = load_imagenet_index(root, split, layout, class_root)
    classes = {
        "thing_classes": list(index["names"]),
        "wnids": list(index["wnids"]),
        "num_classes": len(index["wnids"]),
    }
    set_class_metadata(name, root, classes)
    return _dicts_from_index(index, root, subset)


def register_imagenet(
    name: str,
    root: str,
    split: str,
    layout: str = "auto",
    subset: str = "all",
    *,
    class_root: Optional[str] = None,
    missing_hint: Optional[str] = None,
) -> None:
    """Register an ImageNet split in DatasetCatalog (lazily: nothing is read now).

    MetadataCatalog gets ``evaluator_type="classification"``, ``image_root``, ``split``,
    ``layout``, ``subset`` now, and ``thing_classes``, ``wnids``, ``num_classes`` when the
    dataset is first loaded with ``DatasetCatalog.get(name)`` (the class list is on disk).
    Arguments as in :func:`load_imagenet_dicts`; a ``root`` that does not exist is a
    :class:`.catalog.DatasetRootMissingError` at load, naming ``DETECTRON2_DATASETS`` and
    ``missing_hint`` (how to create it).
    """
    _check_args(split, layout, subset)
    load = functools.partial(
        _load_registered, name, root, split, layout, subset, class_root, missing_hint
    )
    register_lazy(name, load, root, split, layout=layout, subset=subset)
