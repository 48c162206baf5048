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
"""
import logging
import multiprocessing as mp
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .ilsvrc_xml import IlsvrcXmlError, parse_ilsvrc_xml
from .loc_files import parse_prediction_string, read_loc_solution_csv, read_synset_mapping

__all__ = [
    "LAYOUTS",
    "IMAGE_EXTENSIONS",
    "resolve_layout",
    "layout_paths",
    "get_imagenet_class_info",
    "build_index",
    "build_imagenetv2_index",
    "default_num_workers",
    "map_in_processes",
]

logger = logging.getLogger(__name__)

LAYOUTS = ("auto", "standard", "kaggle", "imagenetv2")
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
MAX_EXAMPLES = 5
CHUNK = 1000  # images per task outside class folders (flat val)
SYNSET_MAPPING = "LOC_synset_mapping.txt"
SKIP_COUNTERS = (
    "bad_xml", "bad_objects", "bad_csv_groups", "unknown_wnid", "degenerate_boxes",
    "unreadable_images", "unlabeled_images", "unknown_folders", "outside_root",
    "duplicate_images", "orphan_xml", "orphan_csv_rows", "non_image_files",
)  # fmt: skip


def clip_box_to_image(box: Tuple[float, float, float, float], width: float, height: float):
    """An XYXY_ABS box (pixels) clipped to the image [0, width] x [0, height]; may be empty."""
    x0, y0, x1, y1 = box
    return (min(max(x0, 0.0), width), min(max(y0, 0.0), height), min(max(x1, 0.0), width), min(max(y1, 0.0), height))


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


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


def is_inside(path: str, real_root: str) -> bool:
    """Whether ``path`` resolves (symlinks followed) to ``real_root`` or below it."""
    real = os.path.realpath(path)
    return real == real_root or real.startswith(os.path.join(real_root, ""))


def is_plain_name(name: str) -> bool:
    """A file name without directory parts (``..``, separators, NUL, drive): what an
    ImageId of a LOC_*_solution.csv must be."""
    return (
        bool(name)
        and name not in (".", "..")
        and not any(c in name for c in ("/", "\\", "\0"))
        and not os.path.isabs(name)
        and os.path.basename(name) == name
    )


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


def default_num_workers() -> int:
    """``$ALS_D2_INDEX_WORKERS``, else the usable CPUs (at most 16)."""
    env = os.environ.get("ALS_D2_INDEX_WORKERS")
    if env:
        return max(1, int(env))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(16, cpus))


def map_in_processes(fn, tasks: Sequence, num_workers: int, desc: str, unit: str = "task",
                     show_progress: bool = False, initializer=None, initargs: tuple = ()) -> list:
    """``[fn(t) for t in tasks]`` in order, in up to ``num_workers`` processes (serial for one
    worker or one task), with a tqdm bar when ``show_progress``. Processes fork where they
    can (workers inherit large lookup tables for free), else spawn. ``initializer(*initargs)``
    runs in each worker; in the serial case the caller sets up its own context."""
    from tqdm import tqdm

    bar = dict(total=len(tasks), desc=desc, unit=unit, disable=None if show_progress else True)
    if num_workers <= 1 or len(tasks) <= 1:
        return [fn(t) for t in tqdm(tasks, **bar)]
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    with ProcessPoolExecutor(
        max_workers=min(num_workers, len(tasks)),
        mp_context=mp.get_context(method),
        initializer=initializer,
        initargs=initargs,
    ) as pool:
        results = pool.map(fn, tasks, chunksize=1)  # submits all before tqdm starts
        return list(tqdm(results, **bar))


# ----------------------------------------------------------------------------------------
# Worker side: everything below runs in the indexing processes.

_WORKER: Dict[str, object] = {}


def _context(root: str, wnid_to_idx, flat_xml, loose_csv, real_root=None, max_examples=MAX_EXAMPLES) -> dict:
    return dict(root=root, wnid_to_idx=wnid_to_idx, flat_xml=flat_xml, loose_csv=loose_csv,
                real_root=real_root or os.path.realpath(root), max_examples=max_examples)


def _init_worker(*args) -> None:
    _WORKER.update(_context(*args))


class _Tally:
    def __init__(self, max_examples: Optional[int] = MAX_EXAMPLES):
        self.stats: Counter = Counter()
        self.examples: Dict[str, List[str]] = {}
        self.max_examples = max_examples  # None: keep every example

    def add(self, key: str, example: str, n: int = 1) -> None:
        self.stats[key] += n
        ex = self.examples.setdefault(key, [])
        if self.max_examples is None or len(ex) < self.max_examples:
            ex.append(example)


def _outside(e: os.DirEntry, real_root: str, tally: _Tally) -> bool:
    """A symlink entry whose target is outside ``real_root`` (counted)."""
    if e.is_symlink() and not is_inside(e.path, real_root):
        tally.add("outside_root", f"{e.path} -> {os.path.realpath(e.path)}")
        return True
    return False


def _folder_outside(folder: str, real_root: Optional[str], tally: _Tally) -> bool:
    if real_root is not None and os.path.isdir(folder) and not is_inside(folder, real_root):
        tally.add("outside_root", f"{folder}/ -> {os.path.realpath(folder)}")
        return True
    return False


def _list_xml(folder: Optional[str], tally: _Tally, real_root: Optional[str] = None) -> Dict[str, str]:
    out = {}
    if not folder or _folder_outside(folder, real_root, tally):
        return out
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return out
    for e in entries:
        if real_root is not None and _outside(e, real_root, tally):
            continue
        if e.name.lower().endswith(".xml"):
            out[e.name[:-4]] = e.path
        elif not e.is_dir():
            tally.add("non_image_files", e.path)
    return out


def _known_label(objects, wnid_to_idx) -> int:
    for wnid, _ in objects:
        if wnid in wnid_to_idx:
            return wnid_to_idx[wnid]
    return -1


def _index_task(task, ctx: Optional[dict] = None) -> dict:
    """One class folder (``("folder", rel_dir, label, ann_dir, csv_rows)``: the worker lists
    it) or one chunk of loose images (``("items", [rel_path, ...])``). ``ctx``: the lookup
    tables of :func:`_init_worker` (default: those installed in this worker process)."""
    ctx = _WORKER if ctx is None else ctx
    root, wnid_to_idx = ctx["root"], ctx["wnid_to_idx"]
    flat_xml, loose_csv = ctx["flat_xml"], ctx["loose_csv"]
    real_root = ctx["real_root"]
    tally = _Tally(ctx["max_examples"])
    if task[0] == "folder":
        _, rel_dir, folder_label, ann_dir, csv_rows = task
        items = []
        folder = os.path.join(root, rel_dir)
        try:
            entries = [] if _folder_outside(folder, real_root, tally) else sorted(os.scandir(folder), key=lambda e: e.name)
        except FileNotFoundError:
            entries = []
        for e in entries:
            if _outside(e, real_root, tally):
                continue
            if _is_image(e.name):
                items.append(rel_dir + "/" + e.name)
            elif not e.is_dir():
                tally.add("non_image_files", e.path)
        xml_map = _list_xml(ann_dir, tally, real_root)
    else:
        _, items = task
        folder_label, csv_rows, xml_map = -1, {}, {}

    images = []  # (rel_path, label, width, height, [(cat, x0, y0, x1, y1)])
    used_flat_xml, used_loose_csv = [], []
    seen_stems = set()
    for rel in items:
        stem = os.path.splitext(rel.rsplit("/", 1)[-1])[0]
        seen_stems.add(stem)
        path = os.path.join(root, rel)
        xml_path = xml_map.get(stem)
        if xml_path is None and stem in flat_xml:
            xml_path = flat_xml[stem]
            used_flat_xml.append(stem)
        row = csv_rows.get(stem)
        if row is None and stem in loose_csv:
            row = loose_csv[stem]
            used_loose_csv.append(stem)

        xml_objects = csv_objects = None
        xml_size = None
        if xml_path is not None:
            try:
                ann = parse_ilsvrc_xml(xml_path)
            except IlsvrcXmlError as e:
                tally.add("bad_xml", f"{xml_path}: {e.reason}")
            else:
                xml_objects, xml_size = ann.objects, (ann.width, ann.height)
                for reason in ann.bad_objects:
                    tally.add("bad_objects", f"{xml_path}: {reason}")
        if row is not None:
            csv_objects, bad = parse_prediction_string(row)
            for reason in bad:
                tally.add("bad_csv_groups", f"{stem}: {reason}")

        label = folder_label
        if label < 0 and csv_objects:
            label = _known_label(csv_objects, wnid_to_idx)
        if label < 0 and xml_objects:
            label = _known_label(xml_objects, wnid_to_idx)
        if label < 0:
            tally.add("unlabeled_images", path)
            continue

        if xml_objects is not None:
            objects, src_size = xml_objects, xml_size
        else:
            objects, src_size = csv_objects or [], None
        width = height = -1
        boxes = []
        if objects:
            try:
                with Image.open(path) as im:
                    width, height = im.size
            except Exception as e:  # OSError, SyntaxError, DecompressionBombError, ...
                tally.add("unreadable_images", f"{path}: {e!r}")
                continue
            sx = sy = 1.0
            if src_size is not None and src_size != (width, height):
                sx, sy = width / src_size[0], height / src_size[1]
                tally.add(
                    "rescaled_files",
                    f"{xml_path}: <size> {src_size[0]}x{src_size[1]}, image {width}x{height}",
                )
            for wnid, (x0, y0, x1, y1) in objects:
                cat = wnid_to_idx.get(wnid)
                if cat is None:
                    tally.add("unknown_wnid", f"{xml_path or stem}: {wnid}")
                    continue
                box = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
                c = clip_box_to_image(box, width, height)
                if c[2] <= c[0] or c[3] <= c[1]:
                    tally.add("degenerate_boxes", f"{xml_path or stem}: {wnid} {box}")
                    continue
                if c != box:
                    tally.add("clipped_boxes", f"{xml_path or stem}: {wnid} {box}")
                boxes.append((cat, *c))
        images.append((rel, label, width, height, boxes))

    for stem, xml_path in xml_map.items():
        if stem not in seen_stems:
            tally.add("orphan_xml", xml_path)
    for stem in csv_rows:
        if stem not in seen_stems:
            tally.add("orphan_csv_rows", stem)
    return {
        "images": images,
        "stats": tally.stats,
        "examples": tally.examples,
        "used_flat_xml": used_flat_xml,
        "used_loose_csv": used_loose_csv,
    }


# ----------------------------------------------------------------------------------------
# Main process side.


def _run_tasks(tasks, initargs, num_workers: int, desc: str, show_progress: bool) -> List[dict]:
    """Run ``_index_task`` over ``tasks`` (``initargs``: the arguments of :func:`_context`)."""
    if num_workers <= 1 or len(tasks) <= 1:
        ctx = _context(*initargs)
        return map_in_processes(lambda t: _index_task(t, ctx), tasks, 1, desc, show_progress=show_progress)
    return map_in_processes(_index_task, tasks, num_workers, desc, show_progress=show_progress,
                            initializer=_init_worker, initargs=initargs)


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
    if not os.path.isdir(paths["images"]):
        raise FileNotFoundError(
            f"ImageNet {split} images not found: {paths['images']} ({layout} layout)"
        )
    real_root = os.path.realpath(root)
    if not is_inside(paths["images"], real_root):
        raise ValueError(
            f"ImageNet {split} images {paths['images']} resolve to {os.path.realpath(paths['images'])}, "
            f"outside the dataset root {real_root}: link the whole root instead of a folder inside it"
        )

    tally = _Tally(max_examples)
    csv_rows = {}
    if os.path.isfile(paths["csv"]):
        if is_inside(paths["csv"], real_root):
            csv_rows = read_loc_solution_csv(paths["csv"])
        else:
            tally.add("outside_root", f"{paths['csv']} -> {os.path.realpath(paths['csv'])}")
    for image_id in [k for k in csv_rows if not is_plain_name(k)]:
        tally.add("outside_root", f"{paths['csv']}: ImageId {image_id!r} is a path, not an image name")
        del csv_rows[image_id]
    ann_dir = paths["annotations"]
    flat_xml = _list_xml(ann_dir, tally, real_root)

    folders, loose = [], []
    for e in sorted(os.scandir(paths["images"]), key=lambda e: e.name):
        if _outside(e, real_root, tally):
            continue
        if e.is_dir():
            if e.name in wnid_to_idx:
                folders.append(e.name)
            else:
                tally.add("unknown_folders", e.path)
        elif _is_image(e.name):
            loose.append(e.name)
        else:
            tally.add("non_image_files", e.path)

    folder_set = set(folders)
    for sub in _subdirs(ann_dir):
        if sub not in folder_set:  # annotations of a class folder that is not there
            for xml_path in _list_xml(os.path.join(ann_dir, sub), tally, real_root).values():
                tally.add("orphan_xml", xml_path)

    # CSV rows go with the task of their class folder (train ImageIds start with the wnid);
    # the others are looked up by every task.
    by_folder: Dict[str, Dict[str, str]] = {f: {} for f in folders}
    loose_csv: Dict[str, str] = {}
    for stem, row in csv_rows.items():
        prefix = stem.split("_", 1)[0]
        if prefix in folder_set:
            by_folder[prefix][stem] = row
        else:
            loose_csv[stem] = row

    rel_images = os.path.relpath(paths["images"], root).replace(os.sep, "/")
    tasks = [
        ("folder", f"{rel_images}/{f}", wnid_to_idx[f], os.path.join(ann_dir, f), by_folder[f])
        for f in folders
    ]
    tasks += [
        ("items", [f"{rel_images}/{n}" for n in loose[i : i + CHUNK]])
        for i in range(0, len(loose), CHUNK)
    ]
    workers = default_num_workers() if num_workers is None else num_workers
    results = _run_tasks(
        tasks,
        (root, wnid_to_idx, flat_xml, loose_csv, real_root, max_examples),
        workers,
        f"Indexing ImageNet {split}",
        show_progress,
    )

    rel_paths, labels, sizes = [], [], []
    box_image, box_cat, box_xyxy = [], [], []
    used_flat_xml, used_loose_csv = set(), set()
    for r in results:
        for key, n in r["stats"].items():
            tally.stats[key] += n
            kept = tally.examples.setdefault(key, [])
            room = None if max_examples is None else max(0, max_examples - len(kept))
            kept.extend(r["examples"].get(key, [])[:room])
        used_flat_xml.update(r["used_flat_xml"])
        used_loose_csv.update(r["used_loose_csv"])
        for rel, label, w, h, boxes in r["images"]:
            i = len(rel_paths)
            rel_paths.append(rel)
            labels.append(label)
            sizes.append((w, h))
            for cat, *xyxy in boxes:
                box_image.append(i)
                box_cat.append(cat)
                box_xyxy.append(xyxy)
    for stem in flat_xml.keys() - used_flat_xml:
        # flat XMLs matched by name from class folders are used there, the rest are orphans
        tally.add("orphan_xml", flat_xml[stem])
    for stem in loose_csv.keys() - used_loose_csv:
        tally.add("orphan_csv_rows", stem)
    _count_duplicates(rel_paths, root, tally)

    box_image = np.asarray(box_image, dtype=np.int32)
    stats = dict(tally.stats)
    stats.update(
        images=len(rel_paths),
        boxed_images=int(len(np.unique(box_image))),
        objects=len(box_cat),
        classes=len(wnids),
    )
    return {
        "wnids": wnids,
        "names": names,
        "rel_paths": rel_paths,
        "labels": np.asarray(labels, dtype=np.int32),
        "sizes": np.asarray(sizes, dtype=np.int32).reshape(-1, 2),
        "box_image": box_image,
        "box_cat": np.asarray(box_cat, dtype=np.int32),
        "box_xyxy": np.asarray(box_xyxy, dtype=np.float64).reshape(-1, 4),
        "stats": stats,
        "examples": tally.examples,
        "seconds": time.perf_counter() - t0,
    }


def _count_duplicates(rel_paths: Sequence[str], root: str, tally: _Tally) -> None:
    """Count every image whose name stem was seen before in the split (kept: the dataset
    dicts then use relative paths as image_id)."""
    first: Dict[str, str] = {}
    for rel in rel_paths:
        stem = os.path.splitext(rel.rsplit("/", 1)[-1])[0]
        if stem in first:
            tally.add("duplicate_images", f"{os.path.join(root, rel)} (same name as {first[stem]})")
        else:
            first[stem] = rel


def build_imagenetv2_index(
    root: str, class_root: Optional[str] = None, max_examples: Optional[int] = MAX_EXAMPLES
) -> dict:
    """Index an ImageNetV2 tree ``root/<class index>/<name>.jpeg`` (no boxes).

    Classes: the wnids / names of the ImageNet tree at ``class_root`` when it can be read,
    else ``class_<i>`` for i < (largest folder index + 1). Same keys as :func:`build_index`.
    """
    t0 = time.perf_counter()
    tally = _Tally(max_examples)
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
