"""Indexing of an ImageNet tree: which images, which labels, which boxes.

This module knows the on-disk layouts (see :mod:`als_d2.data.datasets.imagenet` for the
trees) and turns one split into an index (:func:`build_index`), one class folder after
the other, in one process: ``benchmarks/prepare.py`` measured no gain from a process pool
on 20k images (0.9-1.0x with 2 processes). ``tools/prepare_imagenet.py`` writes the index
to a file that the loader reads; ``tools/check_dataset.py`` reports it.

Bad input is counted in ``index["stats"]``, with up to ``MAX_EXAMPLES`` example paths in
``index["examples"]`` (all of them for ``tools/check_dataset.py``); what each counter
means and what happens to the file, object or box is the table
:data:`~.indexing.KINDS` (the counters here are :data:`COUNTERS`: the skipped
:data:`SKIP_COUNTERS`, plus ``rescaled_files`` and ``clipped_boxes``, which are fixed).

Errors (``ValueError`` / ``FileNotFoundError`` naming the file; nothing is indexed):
a CSV whose header is not ``ImageId,PredictionString`` or that lists an ImageId twice
(every repeated id and its lines are named: which row would be right is unknowable), a
synset mapping with a bad line or a repeated wnid, no class list, a missing split folder,
a split folder that resolves outside the root.

Paths stay inside the root *as resolved* (``os.path.realpath(root)``, checked by
:func:`~.indexing.count_outside`): linking the whole root elsewhere (``datasets/imagenet ->
/data/imagenet``) is fine; a symlink inside the tree whose target is outside it is
treated like a missing file and counted as ``outside_root`` (only symlinks are resolved,
so this costs nothing on a plain tree). Image paths come from listing folders, never from
CSV or XML contents.

Boxes of an image come from its XML when that parses, else from its CSV row; an image's
label comes from its class folder, else its CSV row, else its XML (first known wnid).
Image sizes are read (PIL header only, no decoding) only for images that have boxes.
"""

import logging
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image
from tqdm import tqdm

from .ilsvrc_xml import IlsvrcXmlError, parse_ilsvrc_xml
from .indexing import (
    KINDS,
    MAX_EXAMPLES,
    SKIPPED,
    Tally,
    clip_box,
    count_outside,
    is_plain_name,
    require_folder_in_root,
)
from .loc_files import parse_prediction_string, read_loc_solution_csv, read_synset_mapping

logger = logging.getLogger(__name__)

__all__ = [
    "LAYOUTS",
    "IMAGE_EXTENSIONS",
    "COUNTERS",
    "SKIP_COUNTERS",
    "resolve_layout",
    "layout_paths",
    "get_imagenet_class_info",
    "build_index",
    "build_imagenetv2_index",
]


LAYOUTS = ("auto", "standard", "kaggle", "imagenetv2")
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
CHUNK = 1000  # images per task outside class folders (flat val)
SYNSET_MAPPING = "LOC_synset_mapping.txt"
# the kinds of KINDS that the index counts (the image failures are the image checks' of
# tools/check_dataset.py), and the skipped ones of them
COUNTERS = (
    "bad_xml", "bad_objects", "bad_csv_groups", "unknown_wnid", "degenerate_boxes",
    "unreadable_images", "unlabeled_images", "unknown_labels", "unknown_folders",
    "outside_root", "duplicate_images", "orphan_xml", "orphan_csv_rows", "non_image_files",
    "rescaled_files", "clipped_boxes",
)  # fmt: skip
SKIP_COUNTERS = tuple(k for k in COUNTERS if KINDS[k][0] == SKIPPED)

Box = Tuple[float, float, float, float]
Objects = List[Tuple[str, Box]]  # [(wnid, (x0, y0, x1, y1))] as written in an XML or a CSV row


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _stem(rel_path: str) -> str:
    """``a/b/name.JPEG`` -> ``name``: how images, XMLs and CSV rows are matched."""
    return os.path.splitext(rel_path.rsplit("/", 1)[-1])[0]


# ----------------------------------------------------------------------------------------
# Tree layouts and class lists


def resolve_layout(root: str, layout: str = "auto") -> str:
    """'kaggle' if ``root/ILSVRC/Data/CLS-LOC`` exists; 'imagenetv2' if every sub-folder
    of root is a class index (0, 1, ...); else 'standard'. Explicit layouts pass through."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown ImageNet layout {layout!r}; expected one of {LAYOUTS}")
    if layout != "auto":
        return layout
    if os.path.isdir(os.path.join(root, "ILSVRC", "Data", "CLS-LOC")):
        return "kaggle"
    try:
        subdirs = [e.name for e in os.scandir(root) if e.is_dir()]
    except FileNotFoundError:
        raise FileNotFoundError(f"ImageNet root {root} does not exist") from None
    if subdirs and all(s.isdigit() for s in subdirs):
        return "imagenetv2"
    return "standard"


def layout_paths(root: str, split: str, layout: str) -> Dict[str, str]:
    """Paths of one split: ``images``, ``annotations`` (XML folder), ``csv``
    (LOC_<split>_solution.csv), ``mapping`` (LOC_synset_mapping.txt), ``train`` images."""
    if layout == "kaggle":
        data = os.path.join(root, "ILSVRC", "Data", "CLS-LOC")
        ann = os.path.join(root, "ILSVRC", "Annotations", "CLS-LOC", split)
    elif layout == "standard":
        data = root
        ann = os.path.join(root, "bbox", split)
    else:
        raise ValueError(f"layout {layout!r} has no ILSVRC paths")
    return {
        "images": os.path.join(data, split),
        "annotations": ann,
        "csv": os.path.join(root, f"LOC_{split}_solution.csv"),
        "mapping": os.path.join(root, SYNSET_MAPPING),
        "train": os.path.join(data, "train"),
        "val": os.path.join(data, "val"),
    }


def _subdirs(path: str) -> List[str]:
    try:
        return sorted(e.name for e in os.scandir(path) if e.is_dir())
    except FileNotFoundError:
        return []


def get_imagenet_class_info(root: str, layout: str = "auto") -> Tuple[List[str], List[str]]:
    """``(wnids, names)`` of an ImageNet tree; class index = position in the sorted wnids.

    From ``root/LOC_synset_mapping.txt`` when present (names: first synonym), else the
    folder names of the train images (names = wnids), else those of val.
    Raises FileNotFoundError when none exists.
    """
    layout = resolve_layout(root, layout)
    if layout == "imagenetv2":
        raise ValueError(f"{root} is an ImageNetV2 tree, which has no class list")
    paths = layout_paths(root, "train", layout)
    if os.path.isfile(paths["mapping"]):
        mapping = read_synset_mapping(paths["mapping"])
        wnids = sorted(mapping)
        return wnids, [mapping[w] for w in wnids]
    for key in ("train", "val"):
        wnids = _subdirs(paths[key])
        if wnids:
            return wnids, list(wnids)
    raise FileNotFoundError(
        f"cannot determine the ImageNet classes of {root} ({layout} layout): neither "
        f"{paths['mapping']} nor class folders in {paths['train']} or {paths['val']}"
    )


# ----------------------------------------------------------------------------------------
# Listing folders (symlinks that leave the root are counted and skipped)


def _outside(e: os.DirEntry, real_root: str, tally: Tally) -> bool:
    """A symlink entry whose target is outside ``real_root`` (counted)."""
    return e.is_symlink() and count_outside(e.path, real_root, tally)


def _folder_outside(folder: str, real_root: str, tally: Tally) -> bool:
    """A folder that resolves outside ``real_root`` (counted)."""
    return os.path.isdir(folder) and count_outside(folder, real_root, tally, folder + "/")


def _list_xml(folder: str, real_root: str, tally: Tally) -> Dict[str, str]:
    """``{stem: XML path}`` of one annotation folder (missing: empty); other files are
    counted as ``non_image_files``."""
    out = {}
    if _folder_outside(folder, real_root, tally):
        return out
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return out
    for e in entries:
        if _outside(e, real_root, tally):
            continue
        if e.name.lower().endswith(".xml"):
            out[e.name[:-4]] = e.path
        elif not e.is_dir():
            tally.add("non_image_files", e.path)
    return out


def _list_split_folder(folder: str, wnid_to_idx: Dict[str, int], real_root: str, tally: Tally):
    """``(class folder names, loose image names)`` of the split's image folder, sorted;
    folders that are not classes and files that are not images are counted."""
    class_folders, loose = [], []
    for e in sorted(os.scandir(folder), key=lambda e: e.name):
        if _outside(e, real_root, tally):
            continue
        if e.is_dir():
            if e.name in wnid_to_idx:
                class_folders.append(e.name)
            else:
                tally.add("unknown_folders", e.path)
        elif _is_image(e.name):
            loose.append(e.name)
        else:
            tally.add("non_image_files", e.path)
    return class_folders, loose


def _read_csv_rows(path: str, real_root: str, tally: Tally) -> Dict[str, str]:
    """``{ImageId: PredictionString}`` of the split's LOC CSV (absent: empty). A CSV that
    resolves outside the root, and ImageIds that are paths, are counted and left out."""
    rows: Dict[str, str] = {}
    if os.path.isfile(path) and not count_outside(path, real_root, tally):
        rows = read_loc_solution_csv(path)
    for image_id in [k for k in rows if not is_plain_name(k)]:
        tally.add("outside_root", f"{path}: ImageId {image_id!r} is a path, not an image name")
        del rows[image_id]
    return rows


def _count_orphan_annotation_folders(
    ann_dir: str, class_folders: Sequence[str], real_root: str, tally: Tally
):
    """Count the XMLs of annotation sub-folders whose class folder of images is not there."""
    present = set(class_folders)
    for sub in _subdirs(ann_dir):
        if sub not in present:
            for xml_path in _list_xml(os.path.join(ann_dir, sub), real_root, tally).values():
                tally.add("orphan_xml", xml_path)


def _group_csv_rows(rows: Dict[str, str], class_folders: Sequence[str]):
    """``({class folder: {ImageId: row}}, {ImageId: row} of the others)``: a train ImageId
    starts with its wnid, so its row goes with the task of its class folder; the other
    rows are looked up by every task."""
    by_folder: Dict[str, Dict[str, str]] = {f: {} for f in class_folders}
    loose: Dict[str, str] = {}
    for image_id, row in rows.items():
        prefix = image_id.split("_", 1)[0]
        if prefix in by_folder:
            by_folder[prefix][image_id] = row
        else:
            loose[image_id] = row
    return by_folder, loose


# ----------------------------------------------------------------------------------------
# Tasks: one class folder, or one chunk of images outside class folders.
#
# A task is a tuple ``(rel_dir, label, ann_dir, csv_rows, loose)``: a class folder of
# images (``rel_dir``, relative to root), its class index, its annotation folder and the
# CSV rows of its images (the worker lists both folders); or, for images outside class
# folders (a flat val folder), ``(None, -1, None, {}, [relative paths])``.
# The context of every task of a split is a dict: ``root``, ``real_root``,
# ``wnid_to_idx``, ``flat_xml`` (``{stem: XML path}`` of the split's annotation folder
# itself), ``loose_csv`` (``{ImageId: PredictionString}`` of the CSV rows not tied to a
# class folder), ``max_examples``.


def _task_images(task: tuple, ctx: dict, tally: Tally):
    """``(relative image paths sorted, folder label, CSV rows, {stem: XML path})`` of a task."""
    rel_dir, label, ann_dir, csv_rows, loose = task
    if rel_dir is None:
        return loose, -1, {}, {}
    rel_paths = []
    folder = os.path.join(ctx["root"], rel_dir)
    try:
        entries = [] if _folder_outside(folder, ctx["real_root"], tally) else os.scandir(folder)
        entries = sorted(entries, key=lambda e: e.name)
    except FileNotFoundError:
        entries = []
    for e in entries:
        if _outside(e, ctx["real_root"], tally):
            continue
        if _is_image(e.name):
            rel_paths.append(rel_dir + "/" + e.name)
        elif not e.is_dir():
            tally.add("non_image_files", e.path)
    return rel_paths, label, csv_rows, _list_xml(ann_dir, ctx["real_root"], tally)


def _read_xml_objects(
    xml_path: str, tally: Tally
) -> Tuple[Optional[Objects], Optional[Tuple[int, int]]]:
    """``(objects, (width, height) the XML claims)`` of one XML; ``(None, None)`` when the
    file cannot be used (``bad_xml``). Broken ``<object>`` elements are counted
    (``bad_objects``)."""
    try:
        ann = parse_ilsvrc_xml(xml_path)
    except IlsvrcXmlError as e:
        tally.add("bad_xml", f"{xml_path}: {e.reason}")
        return None, None
    for reason in ann.bad_objects:
        tally.add("bad_objects", f"{xml_path}: {reason}")
    return ann.objects, (ann.width, ann.height)


def _read_csv_objects(row: str, stem: str, tally: Tally) -> Objects:
    """The objects of one PredictionString; bad groups are counted (``bad_csv_groups``)."""
    objects, bad = parse_prediction_string(row)
    for reason in bad:
        tally.add("bad_csv_groups", f"{stem}: {reason}")
    return objects


def _first_known_label(objects: Optional[Objects], wnid_to_idx: Dict[str, int]) -> int:
    """The class index of the first object whose wnid is a class; -1 if none."""
    for wnid, _ in objects or ():
        if wnid in wnid_to_idx:
            return wnid_to_idx[wnid]
    return -1


def _read_image_size(path: str, tally: Tally) -> Optional[Tuple[int, int]]:
    """``(width, height)`` from the image header (no decoding); None if unreadable (counted)."""
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:  # OSError, SyntaxError, DecompressionBombError, ...
        tally.add("unreadable_images", f"{path}: {e!r}")
        return None


def _scale_to_image(
    xml_size, size: Tuple[int, int], xml_path: str, tally: Tally
) -> Tuple[float, float]:
    """``(sx, sy)`` from the frame an XML's boxes are written in (its ``<size>``; None for
    a CSV row: the image's own) to the real image; a mismatch is counted (``rescaled_files``)."""
    if xml_size is None or xml_size == size:
        return 1.0, 1.0
    tally.add(
        "rescaled_files",
        f"{xml_path}: <size> {xml_size[0]}x{xml_size[1]}, image {size[0]}x{size[1]}",
    )
    return size[0] / xml_size[0], size[1] / xml_size[1]


def _image_boxes(
    objects: Objects, scale, size, where: str, wnid_to_idx: Dict[str, int], tally: Tally
):
    """``[(class index, x0, y0, x1, y1)]``: the objects scaled to the real image and clipped
    to it; objects of unknown wnids and boxes empty after clipping are dropped (counted),
    clipped boxes counted. ``where``: the XML path or the ImageId, for the examples."""
    (sx, sy), (width, height) = scale, size
    boxes = []
    for wnid, (x0, y0, x1, y1) in objects:
        cat = wnid_to_idx.get(wnid)
        if cat is None:
            tally.add("unknown_wnid", f"{where}: {wnid}")
            continue
        clipped = clip_box(
            (x0 * sx, y0 * sy, x1 * sx, y1 * sy), width, height, tally, f"{where}: {wnid}"
        )
        if clipped is not None:
            boxes.append([cat, *map(float, clipped)])
    return boxes


def index_image(
    rel: str,
    xml_path: Optional[str],
    csv_row: Optional[str],
    folder_label: int,
    wnid_to_idx: Dict[str, int],
    root: str,
    tally: Tally,
) -> Optional[list]:
    """One image from its XML and/or CSV row (either may be None), as ``[rel, label, width,
    height, boxes]`` (see :func:`build_index`); None when it is dropped (no label, or boxes
    but an unreadable header), every problem counted."""
    stem = _stem(rel)
    xml_objects, xml_size = (
        _read_xml_objects(xml_path, tally) if xml_path is not None else (None, None)
    )
    csv_objects = _read_csv_objects(csv_row, stem, tally) if csv_row is not None else None

    label = folder_label
    if label < 0:
        label = _first_known_label(csv_objects, wnid_to_idx)
    if label < 0:
        label = _first_known_label(xml_objects, wnid_to_idx)
    path = os.path.join(root, rel)
    if label < 0:
        wnids = sorted({wnid for wnid, _ in (csv_objects or []) + (xml_objects or [])})
        if wnids:  # labelled, but by wnids that are not classes
            tally.add("unknown_labels", f"{path}: {', '.join(wnids)} not in {SYNSET_MAPPING}")
        else:
            tally.add("unlabeled_images", path)
        return None

    # boxes from the XML when it parsed, else from the CSV row (in the image's own frame)
    objects, frame = (
        (xml_objects, xml_size) if xml_objects is not None else (csv_objects or [], None)
    )
    if not objects:
        return [rel, label, -1, -1, []]
    size = _read_image_size(path, tally)
    if size is None:
        return None
    scale = _scale_to_image(frame, size, xml_path, tally)
    boxes = _image_boxes(objects, scale, size, xml_path or stem, wnid_to_idx, tally)
    return [rel, label, size[0], size[1], boxes]


def _index_task(task: tuple, ctx: dict) -> Tuple[list, Tally, List[str], List[str]]:
    """``(images, tally, flat XML stems used, loose CSV ImageIds used)`` of one task: each
    image's XML is its folder's, else the flat folder's of the same stem; its CSV row is
    its folder's, else a loose one. XMLs and CSV rows of the folder without an image are
    counted as orphans."""
    tally = Tally(ctx["max_examples"])
    rel_paths, label, csv_rows, xml_by_stem = _task_images(task, ctx, tally)
    images, used_xml, used_csv, seen = [], [], [], set()
    flat_xml, loose_csv = ctx["flat_xml"], ctx["loose_csv"]
    for rel in rel_paths:
        stem = _stem(rel)
        seen.add(stem)
        xml_path = xml_by_stem.get(stem)
        if xml_path is None and stem in flat_xml:
            xml_path = flat_xml[stem]
            used_xml.append(stem)
        csv_row = csv_rows.get(stem)
        if csv_row is None and stem in loose_csv:
            csv_row = loose_csv[stem]
            used_csv.append(stem)
        image = index_image(rel, xml_path, csv_row, label, ctx["wnid_to_idx"], ctx["root"], tally)
        if image is not None:
            images.append(image)
    for stem, xml_path in xml_by_stem.items():
        if stem not in seen:
            tally.add("orphan_xml", xml_path)
    for stem in csv_rows:
        if stem not in seen:
            tally.add("orphan_csv_rows", stem)
    return images, tally, used_xml, used_csv


# ----------------------------------------------------------------------------------------
# Main process: list the split, run the tasks, merge.


def _count_duplicates(images: Sequence[list], root: str, tally: Tally) -> None:
    """Count every image whose name stem was seen before in the split (kept: the dataset
    dicts then use relative paths as image_id)."""
    first: Dict[str, str] = {}
    for rel, *_ in images:
        stem = _stem(rel)
        if stem in first:
            tally.add("duplicate_images", f"{os.path.join(root, rel)} (same name as {first[stem]})")
        else:
            first[stem] = rel


def _index_dict(wnids, names, images, tally: Tally, t0: float) -> dict:
    stats = dict(tally.stats)
    stats.update(
        images=len(images),
        boxed_images=sum(1 for im in images if im[4]),
        objects=sum(len(im[4]) for im in images),
        classes=len(wnids),
    )
    return {
        "wnids": list(wnids),
        "names": list(names),
        "images": images,
        "rel_paths": [im[0] for im in images],
        "stats": stats,
        "examples": tally.examples,
        "seconds": time.perf_counter() - t0,
    }


def build_index(
    root: str,
    split: str,
    layout: str,
    class_root: Optional[str] = None,
    show_progress: bool = True,
    max_examples: Optional[int] = MAX_EXAMPLES,
) -> dict:
    """Index one split of an ILSVRC tree ('standard' or 'kaggle' layout), one task per
    class folder (or chunk of images outside class folders), with a tqdm bar.

    ``max_examples``: example paths kept per counter (None: every one, for reports).

    Returns a dict: ``wnids``, ``names`` (class lists), ``images`` (N, in folder order):
    ``[rel_path, label, width, height, boxes]`` with ``rel_path`` relative to root,
    '/'-separated, ``width, height`` pixels (-1 where not read: images without boxes),
    ``boxes`` ``[[class index, x0, y0, x1, y1]]`` XYXY_ABS float pixels of the real image;
    ``rel_paths`` (N); ``stats`` (counts), ``examples`` (a few paths per count), ``seconds``.
    """
    t0 = time.perf_counter()
    paths = layout_paths(root, split, layout)
    wnids, names = get_imagenet_class_info(class_root or root, "auto" if class_root else layout)
    wnid_to_idx = {w: i for i, w in enumerate(wnids)}
    real_root = os.path.realpath(root)
    require_folder_in_root(
        paths["images"], real_root, f"ImageNet {split} image folder ({layout} layout)"
    )

    # main process: the CSV, the flat XML folder, the split's folder
    tally = Tally(max_examples)
    csv_rows = _read_csv_rows(paths["csv"], real_root, tally)
    flat_xml = _list_xml(paths["annotations"], real_root, tally)
    class_folders, loose = _list_split_folder(paths["images"], wnid_to_idx, real_root, tally)
    _count_orphan_annotation_folders(paths["annotations"], class_folders, real_root, tally)
    csv_by_folder, loose_csv = _group_csv_rows(csv_rows, class_folders)

    # one task per class folder or chunk of loose images
    ctx = dict(
        root=root,
        real_root=real_root,
        wnid_to_idx=wnid_to_idx,
        flat_xml=flat_xml,
        loose_csv=loose_csv,
        max_examples=max_examples,
    )
    rel_images = os.path.relpath(paths["images"], root).replace(os.sep, "/")
    ann_dir = paths["annotations"]
    tasks = [
        (f"{rel_images}/{f}", wnid_to_idx[f], os.path.join(ann_dir, f), csv_by_folder[f], None)
        for f in class_folders
    ]
    tasks += [
        (None, -1, None, {}, [f"{rel_images}/{n}" for n in loose[i : i + CHUNK]])
        for i in range(0, len(loose), CHUNK)
    ]
    bar = dict(desc=f"Indexing ImageNet {split}", unit="folder", disable=not show_progress or None)
    results = [_index_task(task, ctx) for task in tqdm(tasks, **bar)]

    images, used_xml, used_csv = [], set(), set()
    for task_images, task_tally, task_xml, task_csv in results:
        images += task_images
        tally.merge(task_tally)
        used_xml.update(task_xml)
        used_csv.update(task_csv)
    for stem in flat_xml.keys() - used_xml:  # flat XMLs and loose CSV rows no image used
        tally.add("orphan_xml", flat_xml[stem])
    for stem in loose_csv.keys() - used_csv:
        tally.add("orphan_csv_rows", stem)
    _count_duplicates(images, root, tally)
    return _index_dict(wnids, names, images, tally, t0)


def build_imagenetv2_index(
    root: str, class_root: Optional[str] = None, max_examples: Optional[int] = MAX_EXAMPLES
) -> dict:
    """Index an ImageNetV2 tree ``root/<class index>/<name>.jpeg`` (no boxes).

    Classes: the wnids / names of the ImageNet tree at ``class_root`` when it can be read,
    else ``class_<i>`` for i < (largest folder index + 1). Same keys as :func:`build_index`.
    """
    t0 = time.perf_counter()
    tally = Tally(max_examples)
    real_root = os.path.realpath(root)
    wnids = names = None
    if class_root is not None:
        try:
            wnids, names = get_imagenet_class_info(class_root)
        except (FileNotFoundError, ValueError) as e:
            logger.info(f"ImageNetV2 {root}: no ImageNet class names ({e}); using class_<i>.")
    folders = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        raise FileNotFoundError(f"ImageNetV2 root {root} does not exist") from None
    for e in entries:
        if _outside(e, real_root, tally):
            continue
        if e.is_dir() and e.name.isdigit() and (wnids is None or int(e.name) < len(wnids)):
            folders.append((int(e.name), e.name))
        elif e.is_dir():
            tally.add("unknown_folders", e.path)
        else:
            tally.add("non_image_files", e.path)
    folders.sort()
    if wnids is None:
        n = folders[-1][0] + 1 if folders else 0
        wnids = names = [f"class_{i}" for i in range(n)]
    images = []
    for idx, name in folders:
        for e in sorted(os.scandir(os.path.join(root, name)), key=lambda e: e.name):
            if _outside(e, real_root, tally):
                continue
            if _is_image(e.name):
                images.append([f"{name}/{e.name}", idx, -1, -1, []])
            else:
                tally.add("non_image_files", e.path)
    return _index_dict(wnids, names, images, tally, t0)
