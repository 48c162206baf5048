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

Prepared files: ``tools/prepare_imagenet.py --root ROOT`` (:func:`prepare_imagenet`) reads
the tree once and writes one file per split, ``ROOT/als_d2_<split>.json.gz`` (or under
``--output-dir``): gzipped JSON with the class lists, every image (path, label, size,
boxes) and the problem counts. Registration reads that file; when it is missing, the
error names the prepare command to run. Nothing is re-checked against the tree: after
the tree changes, run the prepare step again. ImageNetV2 trees (10k files, no
annotations) are listed at load, not prepared.
"""

import functools
import logging
import os
from typing import Dict, List, Optional, Sequence

from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager

from .catalog import check_dataset_root, register_lazy, set_class_metadata
from .imagenet_index import (
    LAYOUTS,
    SKIP_COUNTERS,
    build_imagenetv2_index,
    build_index,
    get_imagenet_class_info,
    resolve_layout,
)
from .indexing import problem_messages
from .prepared import gc_paused, read_prepared_file, write_prepared_file

__all__ = [
    "SPLITS",
    "SUBSETS",
    "LAYOUTS",
    "get_imagenet_class_info",
    "prepare_imagenet",
    "prepared_path",
    "read_prepared",
    "load_imagenet_dicts",
    "register_imagenet",
]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")
SUBSETS = ("all", "boxed", "mask", "context")
FORMAT = "als_d2.imagenet_index/1"  # the prepared file's "format"; bump when it changes


def _check_args(split: str, layout: str, subset: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown ImageNet layout {layout!r}; expected one of {LAYOUTS}")
    if subset not in SUBSETS:
        raise ValueError(f"unknown ImageNet subset {subset!r}; expected one of {SUBSETS}")
    if layout != "imagenetv2" and split not in SPLITS:
        raise ValueError(f"unknown ImageNet split {split!r}; expected one of {SPLITS}")
    if layout == "imagenetv2" and subset != "all":
        raise ValueError(f"ImageNetV2 has no boxes: subset must be 'all', got {subset!r}")


def prepared_path(root: str, split: str, output_dir: Optional[str] = None) -> str:
    """Where :func:`prepare_imagenet` writes the index of ``split``:
    ``<output_dir or root>/als_d2_<split>.json.gz``."""
    return os.path.join(output_dir or root, f"als_d2_{split}.json.gz")


def _prepare_command(root: str, split: str, output_dir: Optional[str]) -> str:
    out = f" --output-dir {output_dir}" if output_dir else ""
    return f"python tools/prepare_imagenet.py --root {root} --splits {split}{out}"


def prepare_imagenet(
    root: str,
    layout: str = "auto",
    splits: Sequence[str] = SPLITS,
    *,
    class_root: Optional[str] = None,
    output_dir: Optional[str] = None,
    show_progress: bool = False,
) -> Dict[str, str]:
    """Index each split of the ILSVRC tree at ``root`` (:func:`.imagenet_index.build_index`)
    and write it to :func:`prepared_path`; returns ``{split: path}``.

    The file (gzipped JSON, written to a temporary name, then renamed) holds ``format``,
    ``split``, ``layout``, ``wnids``, ``names``, ``images`` (``[rel_path, label, width,
    height, [[class, x0, y0, x1, y1], ...]]``: see ``build_index``), ``stats`` and
    ``examples`` (the problem counts, :data:`.indexing.KINDS`)."""
    root = PathManager.get_local_path(root)
    layout = resolve_layout(root, layout)
    if layout == "imagenetv2":
        raise ValueError(f"{root} is an ImageNetV2 tree: it is listed at load, not prepared")
    written = {}
    for split in splits:
        _check_args(split, layout, "all")
        index = build_index(root, split, layout, class_root, show_progress)
        _log_index(index, root, split, layout, f"indexed in {index['seconds']:.1f}s")
        path = prepared_path(root, split, output_dir)
        content = {"format": FORMAT, "split": split, "layout": layout}
        content.update((k, index[k]) for k in ("wnids", "names", "images", "stats", "examples"))
        write_prepared_file(path, content)
        written[split] = path
    return written


def read_prepared(root: str, split: str, index_file: Optional[str] = None) -> dict:
    """The content of the prepared file of ``split`` (:func:`prepare_imagenet`), from
    ``index_file`` or :func:`prepared_path`. Raises :class:`.catalog.DatasetNotPreparedError`
    naming the prepare command when it is missing, ValueError when it is not one."""
    path = index_file or prepared_path(root, split)
    out_dir = os.path.dirname(index_file) if index_file else None
    return read_prepared_file(
        path,
        FORMAT,
        "ImageNet index",
        f"ImageNet {split} at {root}",
        _prepare_command(root, split, out_dir),
    )


def _log_index(index: dict, root: str, split: str, layout: str, source: str) -> None:
    s = index["stats"]
    logger.info(
        f"ImageNet {split} at {root} ({layout} layout; {source}): {s['images']} images, "
        f"{s['boxed_images']} with boxes, {s['objects']} objects, {s['classes']} classes; "
        f"{s.get('rescaled_files', 0)} XMLs rescaled to the real image size, "
        f"{s.get('clipped_boxes', 0)} boxes clipped."
    )
    where = f"ImageNet {split} at {root}"  # clipped_boxes: counted in the line above
    for level, msg in problem_messages(
        where, s, index["examples"], ("rescaled_files", *SKIP_COUNTERS)
    ):
        logger.log(level, msg)


def _dicts_from_index(index: dict, root: str, subset: str) -> List[dict]:
    """The dataset dicts of ``subset`` from an index's ``images`` (see the module docstring)."""
    images = index["images"]
    ids = [os.path.splitext(im[0].rsplit("/", 1)[-1])[0] for im in images]
    if len(set(ids)) != len(ids):  # e.g. the same val image in two class folders
        logger.warning(f"ImageNet at {root}: file names repeat; image_id = relative path instead.")
        ids = [os.path.splitext(im[0])[0] for im in images]
        if len(set(ids)) != len(ids):  # x.JPEG and x.png in one folder: keep the extension too
            ids = [im[0] for im in images]

    prefix = os.path.join(root, "")  # root + separator: cheaper than a join per image
    dicts, off_label = [], 0
    for (rel, label, width, height, boxes), image_id in zip(images, ids):
        if subset != "all" and not boxes:
            continue
        record = {"file_name": prefix + rel, "image_id": image_id, "label": label}
        if width > 0:
            record["height"], record["width"] = height, width
        anns = [
            {"bbox": [x0, y0, x1, y1], "bbox_mode": BoxMode.XYXY_ABS, "category_id": cat}
            for cat, x0, y0, x1, y1 in boxes
        ]
        if subset == "mask":  # one dict per object of the image's class
            for t, ann in enumerate(anns):
                if ann["category_id"] != label:
                    off_label += 1
                    continue
                anns_t = [dict(a, bbox=list(a["bbox"])) for a in anns]
                dicts.append(dict(record, annotations=anns_t, target_object=t))
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


def _load_index(
    root: str, split: str, layout: str, class_root: Optional[str], index_file: Optional[str]
) -> dict:
    """The index of a split: the prepared file, or the listing of an ImageNetV2 tree."""
    root = PathManager.get_local_path(root)
    if index_file is None and resolve_layout(root, layout) == "imagenetv2":
        index = build_imagenetv2_index(root, class_root)
        _log_index(index, root, split, "imagenetv2", "listed")
        return index
    index = read_prepared(root, split, index_file)
    _log_index(index, root, split, index["layout"], "prepared file")
    return index


def load_imagenet_dicts(
    root: str,
    split: str,
    layout: str = "auto",
    subset: str = "all",
    *,
    class_root: Optional[str] = None,
    index_file: Optional[str] = None,
) -> List[dict]:
    """Load one split of ImageNet (or ImageNetV2) as a list of detectron2 dataset dicts.

    Args:
        root: the tree (see the module docstring for the layouts).
        split: "train" or "val" (ignored for ImageNetV2).
        layout: "auto", "standard", "kaggle" or "imagenetv2".
        subset: "all", "boxed", "mask" or "context" (see the module docstring).
        class_root: ImageNetV2 only: the ImageNet tree to take the class list from (an
            ILSVRC tree's class list is the one it was prepared with).
        index_file: the prepared file (default :func:`prepared_path` of root and split).

    Returns:
        list[dict] with ``file_name, image_id, label, annotations`` (+ ``height, width``
        for images with boxes, ``target_object`` / ``paint_all_objects`` per subset).
    """
    _check_args(split, layout, subset)
    index = _load_index(root, split, layout, class_root, index_file)
    with gc_paused():
        return _dicts_from_index(index, root, subset)


def _load_registered(
    name: str,
    root: str,
    split: str,
    layout: str,
    subset: str,
    class_root,
    missing_hint: Optional[str] = None,
    index_file: Optional[str] = None,
):
    check_dataset_root(name, root, missing_hint)
    index = _load_index(root, split, layout, class_root, index_file)
    classes = {
        "thing_classes": list(index["names"]),
        "wnids": list(index["wnids"]),
        "num_classes": len(index["wnids"]),
    }
    set_class_metadata(name, root, classes)
    with gc_paused():
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
    index_file: Optional[str] = None,
) -> None:
    """Register an ImageNet split in DatasetCatalog (lazily: nothing is read now).

    MetadataCatalog gets ``evaluator_type="classification"``, ``image_root``, ``split``,
    ``layout``, ``subset`` now, and ``thing_classes``, ``wnids``, ``num_classes`` when the
    dataset is first loaded with ``DatasetCatalog.get(name)`` (from the prepared file).
    Arguments as in :func:`load_imagenet_dicts`; a ``root`` that does not exist is a
    :class:`.catalog.DatasetRootMissingError` at load, naming ``DETECTRON2_DATASETS`` and
    ``missing_hint`` (how to create it); a missing prepared file is a
    :class:`.catalog.DatasetNotPreparedError` naming the prepare command.
    """
    _check_args(split, layout, subset)
    load = functools.partial(
        _load_registered, name, root, split, layout, subset, class_root, missing_hint, index_file
    )
    register_lazy(name, load, root, split, layout=layout, subset=subset)
