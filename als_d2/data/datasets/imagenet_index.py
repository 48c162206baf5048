"""Indexing of an ImageNet tree: which images, which labels, which boxes.

This module knows the on-disk layouts (see :mod:`als_d2.data.datasets.imagenet` for the
trees) and turns one split into a compact index (:func:`build_index`), in parallel over
class folders (processes) with a tqdm bar, cached on disk (:mod:`.index_cache`). It does
not import detectron2, so that its worker processes start light.

Policy for bad input (every case is counted in ``index["stats"]``, with up to
``MAX_EXAMPLES`` example paths in ``index["examples"]`` (all of them for
``tools/check_dataset.py``), and logged by the loader):

==================  =========================================================  ==============
counter             what                                                        what happens
==================  =========================================================  ==============
bad_xml             XML unreadable / too large / malformed / DOCTYPE / no size  file ignored
bad_objects         <object> without name or bndbox, bad coordinate             object dropped
bad_csv_groups      PredictionString group with bad coordinates / incomplete    object dropped
unknown_wnid        object whose wnid is not a class                            object dropped
degenerate_boxes    zero / negative area after clipping (inverted coordinates)  box dropped
unreadable_images   annotated image whose header PIL cannot read                image dropped
unlabeled_images    image outside a class folder with no label in CSV or XML    image dropped
unknown_labels      image outside a class folder whose CSV / XML wnids are none  image dropped
                    of the classes (not in ``LOC_synset_mapping.txt``)
unknown_folders     image folder whose name is not a class wnid                 folder dropped
outside_root        file / folder resolving outside the root (symlink), CSV     dropped
                    ImageId that is a path (``../../etc/passwd``)
duplicate_images    image name (stem) seen before in the split (two class        kept, image_id =
                    folders, ``x.JPEG`` and ``x.png``)                          relative path
orphan_xml          XML without a matching image                                ignored
orphan_csv_rows     CSV row without a matching image                            ignored
non_image_files     file that is neither an image nor (in annotations) an XML   ignored
rescaled_files      XML <size> differs from the real image size                 boxes rescaled
clipped_boxes       box reaching outside the image                              box clipped
==================  =========================================================  ==============

Errors (``ValueError`` / ``FileNotFoundError`` naming the file; nothing is indexed):
a CSV whose header is not ``ImageId,PredictionString`` or that lists an ImageId twice
(every repeated id and its lines are named: which row would be right is unknowable), a
synset mapping with a bad line or a repeated wnid, no class list, a missing split folder,
a split folder that resolves outside the root.

Paths stay inside the root *as resolved* (``os.path.realpath(root)``): linking the whole
root elsewhere (``datasets/imagenet -> /data/imagenet``) is fine; a symlink inside the
tree whose target is outside it is treated like a missing file and counted as
``outside_root`` (only symlinks are resolved, so this costs nothing on a plain tree).
Image paths come from listing folders, never from CSV or XML contents.

Boxes of an image come from its XML when that parses, else from its CSV row; an image's
label comes from its class folder, else its CSV row, else its XML (first known wnid).
Image sizes are read (PIL header only, no decoding) only for images that have boxes.

:func:`build_index` in steps: read the split's CSV and list its flat XML folder and its
image folder (main process); one task per class folder (:class:`ClassFolderTask`, whose
worker lists the folder) or per chunk of loose images (:class:`LooseImagesTask`);
:func:`index_task` indexes each image of a task (:func:`index_image`: its annotation
sources, objects, label, size, boxes scaled, clipped and validated); the results are
merged in task order into the index's arrays (:func:`merge_results`).
"""

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Sequence, Set, Tuple, Union

import numpy as np
from PIL import Image

from .ilsvrc_xml import IlsvrcXmlError, parse_ilsvrc_xml
from .indexing import (
    MAX_EXAMPLES,
    Tally,
    clip_box,
    default_num_workers,
    is_inside,
    is_plain_name,
    map_in_processes,
    require_folder_in_root,
)
from .loc_files import parse_prediction_string, read_loc_solution_csv, read_synset_mapping

logger = logging.getLogger(__name__)

__all__ = [
    "LAYOUTS",
    "IMAGE_EXTENSIONS",
    "SKIP_COUNTERS",
    "resolve_layout",
    "layout_paths",
    "get_imagenet_class_info",
    "index_inputs",
    "build_index",
    "build_imagenetv2_index",
]


LAYOUTS = ("auto", "standard", "kaggle", "imagenetv2")
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
CHUNK = 1000  # images per task outside class folders (flat val)
SYNSET_MAPPING = "LOC_synset_mapping.txt"
SKIP_COUNTERS = (
    "bad_xml", "bad_objects", "bad_csv_groups", "unknown_wnid", "degenerate_boxes",
    "unreadable_images", "unlabeled_images", "unknown_labels", "unknown_folders", "outside_root",
    "duplicate_images", "orphan_xml", "orphan_csv_rows", "non_image_files",
)  # fmt: skip

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


def index_inputs(root: str, split: str, layout: str, class_root: Optional[str] = None):
    """The folders and files that an index of this split depends on (for the fingerprint):
    ``(dirs, subdirs_of, files)``."""
    p = layout_paths(root, split, layout)
    files = [p["csv"], p["mapping"]]
    dirs = [p["train"]]  # its entries decide the classes when there is no mapping
    if class_root is not None and os.path.abspath(class_root) != os.path.abspath(root):
        cl = resolve_layout(class_root) if os.path.isdir(class_root) else "standard"
        if cl != "imagenetv2":
            cp = layout_paths(class_root, "train", cl)
            files.append(cp["mapping"])
            dirs.append(cp["train"])
    return dirs, [p["images"], p["annotations"]], files


# ----------------------------------------------------------------------------------------
# Listing folders (symlinks that leave the root are counted and skipped)


def _outside(e: os.DirEntry, real_root: str, tally: Tally) -> bool:
    """A symlink entry whose target is outside ``real_root`` (counted)."""
    if e.is_symlink() and not is_inside(e.path, real_root):
        tally.add("outside_root", f"{e.path} -> {os.path.realpath(e.path)}")
        return True
    return False


def _folder_outside(folder: str, real_root: str, tally: Tally) -> bool:
    """A folder that resolves outside ``real_root`` (counted)."""
    if os.path.isdir(folder) and not is_inside(folder, real_root):
        tally.add("outside_root", f"{folder}/ -> {os.path.realpath(folder)}")
        return True
    return False


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
    if os.path.isfile(path):
        if is_inside(path, real_root):
            rows = read_loc_solution_csv(path)
        else:
            tally.add("outside_root", f"{path} -> {os.path.realpath(path)}")
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
# Tasks: one class folder or one chunk of loose images. Everything from here to
# index_task runs in the indexing processes.


@dataclass(frozen=True)
class IndexContext:
    """What every task of a split reads (sent once to each worker process).

    wnid_to_idx: ``{wnid: class index}``; flat_xml: ``{stem: XML path}`` of the split's
    annotation folder itself (not of its class sub-folders); loose_csv: ``{ImageId:
    PredictionString}`` of the CSV rows not tied to a class folder; max_examples: as
    :class:`~.indexing.Tally`.
    """

    root: str
    real_root: str
    wnid_to_idx: Dict[str, int]
    flat_xml: Dict[str, str]
    loose_csv: Dict[str, str]
    max_examples: Optional[int]


@dataclass
class TaskImages:
    """The images of one task (paths relative to root, sorted), with the label of their
    class folder (-1: none), the CSV rows and XMLs that belong to that folder."""

    rel_paths: List[str]
    label: int = -1
    csv_rows: Dict[str, str] = field(default_factory=dict)
    xml_by_stem: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClassFolderTask:
    """One class folder of images (``rel_dir``), its class index and its annotation
    folder, with the CSV rows of its images; the worker lists both folders."""

    rel_dir: str
    label: int
    ann_dir: str
    csv_rows: Dict[str, str]

    def images(self, context: IndexContext, tally: Tally) -> TaskImages:
        rel_paths = []
        folder = os.path.join(context.root, self.rel_dir)
        try:
            entries = (
                [] if _folder_outside(folder, context.real_root, tally) else os.scandir(folder)
            )
            entries = sorted(entries, key=lambda e: e.name)
        except FileNotFoundError:
            entries = []
        for e in entries:
            if _outside(e, context.real_root, tally):
                continue
            if _is_image(e.name):
                rel_paths.append(self.rel_dir + "/" + e.name)
            elif not e.is_dir():
                tally.add("non_image_files", e.path)
        xml_by_stem = _list_xml(self.ann_dir, context.real_root, tally)
        return TaskImages(rel_paths, self.label, self.csv_rows, xml_by_stem)


@dataclass(frozen=True)
class LooseImagesTask:
    """A chunk of images outside class folders (``rel_paths``; a flat val folder)."""

    rel_paths: List[str]

    def images(self, context: IndexContext, tally: Tally) -> TaskImages:
        return TaskImages(self.rel_paths)


class ImageRecord(NamedTuple):
    """One indexed image: label, size in pixels (-1 where not read), boxes
    ``[(class index, x0, y0, x1, y1)]`` XYXY_ABS pixels of the real image."""

    rel_path: str
    label: int
    width: int
    height: int
    boxes: List[Tuple[int, float, float, float, float]]


@dataclass
class TaskResult:
    """What a task returns: its images in order, its counted problems, and the stems of
    the context's flat XMLs and loose CSV rows it used (the others are orphans)."""

    images: List[ImageRecord]
    tally: Tally
    used_flat_xml: List[str]
    used_loose_csv: List[str]


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
            boxes.append((cat, *clipped))
    return boxes


def index_image(
    rel: str,
    xml_path: Optional[str],
    csv_row: Optional[str],
    folder_label: int,
    context: IndexContext,
    tally: Tally,
) -> Optional[ImageRecord]:
    """Index one image from its XML and/or CSV row (either may be None); None when it is
    dropped (no label, or boxes but an unreadable header), every problem counted."""
    stem = _stem(rel)
    xml_objects, xml_size = (
        _read_xml_objects(xml_path, tally) if xml_path is not None else (None, None)
    )
    csv_objects = _read_csv_objects(csv_row, stem, tally) if csv_row is not None else None

    label = folder_label
    if label < 0:
        label = _first_known_label(csv_objects, context.wnid_to_idx)
    if label < 0:
        label = _first_known_label(xml_objects, context.wnid_to_idx)
    path = os.path.join(context.root, rel)
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
        return ImageRecord(rel, label, -1, -1, [])
    size = _read_image_size(path, tally)
    if size is None:
        return None
    scale = _scale_to_image(frame, size, xml_path, tally)
    boxes = _image_boxes(objects, scale, size, xml_path or stem, context.wnid_to_idx, tally)
    return ImageRecord(rel, label, size[0], size[1], boxes)


def index_task(task: Union[ClassFolderTask, LooseImagesTask], context: IndexContext) -> TaskResult:
    """Index the images of one task (:class:`ClassFolderTask` or :class:`LooseImagesTask`):
    each image's XML is its folder's, else the flat folder's of the same stem; its CSV
    row is its folder's, else a loose one. XMLs and CSV rows of the folder without an
    image are counted as orphans."""
    tally = Tally(context.max_examples)
    listed = task.images(context, tally)
    result = TaskResult([], tally, [], [])
    seen_stems: Set[str] = set()
    for rel in listed.rel_paths:
        stem = _stem(rel)
        seen_stems.add(stem)
        xml_path = listed.xml_by_stem.get(stem)
        if xml_path is None and stem in context.flat_xml:
            xml_path = context.flat_xml[stem]
            result.used_flat_xml.append(stem)
        csv_row = listed.csv_rows.get(stem)
        if csv_row is None and stem in context.loose_csv:
            csv_row = context.loose_csv[stem]
            result.used_loose_csv.append(stem)
        record = index_image(rel, xml_path, csv_row, listed.label, context, tally)
        if record is not None:
            result.images.append(record)
    for stem, xml_path in listed.xml_by_stem.items():
        if stem not in seen_stems:
            tally.add("orphan_xml", xml_path)
    for stem in listed.csv_rows:
        if stem not in seen_stems:
            tally.add("orphan_csv_rows", stem)
    return result


# ----------------------------------------------------------------------------------------
# Main process: list the split, run the tasks, merge.


def _make_tasks(
    rel_images: str, class_folders, loose, wnid_to_idx, ann_dir: str, csv_by_folder
) -> list:
    """One :class:`ClassFolderTask` per class folder, then one :class:`LooseImagesTask`
    per ``CHUNK`` loose images."""
    tasks = [
        ClassFolderTask(
            f"{rel_images}/{f}", wnid_to_idx[f], os.path.join(ann_dir, f), csv_by_folder[f]
        )
        for f in class_folders
    ]
    tasks += [
        LooseImagesTask([f"{rel_images}/{n}" for n in loose[i : i + CHUNK]])
        for i in range(0, len(loose), CHUNK)
    ]
    return tasks


def merge_results(results: Sequence[TaskResult], tally: Tally) -> dict:
    """The images of all tasks in order as the index's arrays (``rel_paths``, ``labels``,
    ``sizes``, ``box_image``, ``box_cat``, ``box_xyxy``; see :func:`build_index`); the
    tasks' counts and examples are merged into ``tally``."""
    rel_paths, labels, sizes = [], [], []
    box_image, box_cat, box_xyxy = [], [], []
    for r in results:
        tally.merge(r.tally)
        for image in r.images:
            i = len(rel_paths)
            rel_paths.append(image.rel_path)
            labels.append(image.label)
            sizes.append((image.width, image.height))
            for cat, *xyxy in image.boxes:
                box_image.append(i)
                box_cat.append(cat)
                box_xyxy.append(xyxy)
    return {
        "rel_paths": rel_paths,
        "labels": np.asarray(labels, dtype=np.int32),
        "sizes": np.asarray(sizes, dtype=np.int32).reshape(-1, 2),
        "box_image": np.asarray(box_image, dtype=np.int32),
        "box_cat": np.asarray(box_cat, dtype=np.int32),
        "box_xyxy": np.asarray(box_xyxy, dtype=np.float64).reshape(-1, 4),
    }


def _count_unused(context: IndexContext, results: Sequence[TaskResult], tally: Tally) -> None:
    """Count the flat XMLs and loose CSV rows that no image used as orphans."""
    used_xml = {stem for r in results for stem in r.used_flat_xml}
    used_csv = {stem for r in results for stem in r.used_loose_csv}
    for stem in context.flat_xml.keys() - used_xml:
        tally.add("orphan_xml", context.flat_xml[stem])
    for stem in context.loose_csv.keys() - used_csv:
        tally.add("orphan_csv_rows", stem)


def _count_duplicates(rel_paths: Sequence[str], root: str, tally: Tally) -> None:
    """Count every image whose name stem was seen before in the split (kept: the dataset
    dicts then use relative paths as image_id)."""
    first: Dict[str, str] = {}
    for rel in rel_paths:
        stem = _stem(rel)
        if stem in first:
            tally.add("duplicate_images", f"{os.path.join(root, rel)} (same name as {first[stem]})")
        else:
            first[stem] = rel


def build_index(
    root: str,
    split: str,
    layout: str,
    class_root: Optional[str] = None,
    num_workers: Optional[int] = None,
    show_progress: bool = True,
    max_examples: Optional[int] = MAX_EXAMPLES,
) -> dict:
    """Index one split of an ILSVRC tree ('standard' or 'kaggle' layout).

    ``max_examples``: example paths kept per counter (None: every one, for reports).

    Returns a dict: ``wnids``, ``names`` (class lists), ``rel_paths`` (N, relative to root,
    '/'-separated), ``labels`` int32 (N,), ``sizes`` int32 (N, 2) width, height in pixels
    (-1 where not read), ``box_image`` int32 (M,) image index of each box (ascending),
    ``box_cat`` int32 (M,), ``box_xyxy`` float64 (M, 4) XYXY_ABS pixels of the real image,
    ``stats`` (counts), ``examples`` (a few paths per count), ``seconds``.
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

    # worker processes: one task per class folder or chunk of loose images
    context = IndexContext(root, real_root, wnid_to_idx, flat_xml, loose_csv, max_examples)
    rel_images = os.path.relpath(paths["images"], root).replace(os.sep, "/")
    tasks = _make_tasks(
        rel_images, class_folders, loose, wnid_to_idx, paths["annotations"], csv_by_folder
    )
    workers = default_num_workers() if num_workers is None else num_workers
    results = map_in_processes(
        index_task,
        tasks,
        workers,
        f"Indexing ImageNet {split}",
        show_progress=show_progress,
        context=context,
    )

    index = merge_results(results, tally)
    _count_unused(context, results, tally)
    _count_duplicates(index["rel_paths"], root, tally)
    stats = dict(tally.stats)
    stats.update(
        images=len(index["rel_paths"]),
        boxed_images=int(len(np.unique(index["box_image"]))),
        objects=len(index["box_cat"]),
        classes=len(wnids),
    )
    return {
        "wnids": wnids,
        "names": names,
        **index,
        "stats": stats,
        "examples": tally.examples,
        "seconds": time.perf_counter() - t0,
    }


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
    rel_paths, labels = [], []
    for idx, name in folders:
        for e in sorted(os.scandir(os.path.join(root, name)), key=lambda e: e.name):
            if _outside(e, real_root, tally):
                continue
            if _is_image(e.name):
                rel_paths.append(f"{name}/{e.name}")
                labels.append(idx)
            else:
                tally.add("non_image_files", e.path)
    stats = dict(tally.stats)
    stats.update(images=len(rel_paths), boxed_images=0, objects=0, classes=len(wnids))
    return {
        "wnids": list(wnids),
        "names": list(names),
        "rel_paths": rel_paths,
        "labels": np.asarray(labels, dtype=np.int32),
        "sizes": np.full((len(rel_paths), 2), -1, dtype=np.int32),
        "box_image": np.zeros((0,), dtype=np.int32),
        "box_cat": np.zeros((0,), dtype=np.int32),
        "box_xyxy": np.zeros((0, 4), dtype=np.float64),
        "stats": stats,
        "examples": tally.examples,
        "seconds": time.perf_counter() - t0,
    }
