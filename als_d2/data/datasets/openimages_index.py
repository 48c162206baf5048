"""Indexing of an OpenImages V6 detection tree: which images, which boxes, what size.

Expected tree (``root``, e.g. ``$DETECTRON2_DATASETS/openimages``; the CSV/JSON files may
also sit in ``root/annotations/``)::

    root/oidv6-train-annotations-bbox.csv       (or train-annotations-bbox.csv, V5)
    root/validation-annotations-bbox.csv
    root/test-annotations-bbox.csv
    root/oidv6-class-descriptions-boxable.csv   (or class-descriptions-boxable.csv)
    root/bbox_labels_600_hierarchy.json
    root/oidv6-train-annotations-human-imagelabels-boxable.csv   (optional; or
                                                 train-annotations-human-imagelabels-boxable.csv)
    root/train/<ImageID>.jpg
    root/validation/<ImageID>.jpg
    root/test/<ImageID>.jpg

:func:`build_index` streams the split's box CSV (:mod:`.openimages_files`, in parallel),
matches ImageIDs to image files, reads each image's size from its header (PIL, no
decoding; in parallel) and keeps compact arrays. It applies no subset rule (those are
cheap and live in :mod:`.openimages_subset`), so the prepared index
(:func:`.openimages.prepare_openimages`) does not depend on the hierarchy, the merge file
or the rules. :func:`image_label_coverage` counts, per
class, the train images verified to contain it and those of them with a box of it (the
paper's "annotated for a subset" rule). It does not import detectron2.

Bad input: every case is counted in ``index["stats"]``, with up to ``MAX_EXAMPLES``
examples naming the file and line in ``index["examples"]`` (all of them for
``tools/check_dataset.py``), and logged by the prepare step and by the loader. The kinds
counted are :data:`COUNTERS` (:data:`LABEL_COUNTERS` for the image-level label CSV); what
each means, its severity and what happens to the row, box or image is the table
:data:`~.indexing.KINDS`, the policy of every reader. Boxes are taken in the stored
frame of the image (``exif_rotated`` is counted; the mapper rotates pixels and boxes).

Errors (``ValueError`` / ``FileNotFoundError`` naming the file; nothing is indexed): a
missing CSV, descriptions file or image folder, a CSV header without the needed
columns, a descriptions file with a bad line or a repeated class.
"""

import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .imagenet_index import IMAGE_EXTENSIONS
from .indexing import (
    MAX_EXAMPLES,
    Tally,
    default_num_workers,
    count_outside,
    map_in_processes,
    require_folder_in_root,
)
from .openimages_files import (
    DEPICTION,
    FLAG_COLUMNS,
    GROUP_OF,
    BoxRows,
    read_bbox_csv,
    read_class_descriptions,
    read_image_labels_csv,
)

__all__ = [
    "SPLITS",
    "COUNTERS",
    "LABEL_COUNTERS",
    "TOTALS",
    "LABEL_TOTALS",
    "is_openimages_tree",
    "split_paths",
    "build_index",
    "label_stats",
    "image_label_coverage",
]

SPLITS = ("train", "val", "test")
HEADER_CHUNK = 2000  # images per header-reading task
CSV_NAMES = {
    "train": ("oidv6-train-annotations-bbox.csv", "train-annotations-bbox.csv"),
    "val": ("validation-annotations-bbox.csv",),
    "test": ("test-annotations-bbox.csv",),
}
IMAGE_DIRS = {"train": "train", "val": "validation", "test": "test"}
# human-verified image-level labels: classes are chosen on train, so only its file is read
IMAGE_LABEL_NAMES = {
    "train": (
        "oidv6-train-annotations-human-imagelabels-boxable.csv",
        "train-annotations-human-imagelabels-boxable.csv",
    ),
    "val": ("validation-annotations-human-imagelabels-boxable.csv",),
    "test": ("test-annotations-human-imagelabels-boxable.csv",),
}
DESCRIPTION_NAMES = ("oidv6-class-descriptions-boxable.csv", "class-descriptions-boxable.csv")
HIERARCHY_NAMES = ("bbox_labels_600_hierarchy.json",)
ANNOTATION_DIRS = ("", "annotations")
# the kinds of indexing.KINDS that build_index counts, in log order
COUNTERS = (
    "bad_rows", "inverted_boxes", "degenerate_boxes", "unknown_labels", "bad_image_ids",
    "missing_images", "unreadable_images", "outside_root", "duplicate_images",
    "non_image_files", "bad_flags", "clipped_boxes", "exif_rotated",
)  # fmt: skip
# those that image_label_coverage counts (the image-level label reader)
LABEL_COUNTERS = ("bad_rows", "unknown_labels", "bad_image_ids")
# the other entries of the stats: totals, not problems
TOTALS = ("rows", "dropped_rows", "images", "boxes", "classes", "group_of_boxes", "depiction_boxes")
LABEL_TOTALS = ("rows", "positive_rows", "negative_rows", "positives_outside_index")


def _find(root: str, names: Sequence[str]) -> Tuple[Optional[str], List[str]]:
    tried = [os.path.join(root, d, n) for n in names for d in ANNOTATION_DIRS]
    return next((p for p in tried if os.path.isfile(p)), None), tried


def is_openimages_tree(root: str) -> bool:
    """Whether ``root`` (or ``root/annotations``) holds an OpenImages class descriptions file."""
    return _find(root, DESCRIPTION_NAMES)[0] is not None


def split_paths(root: str, split: str, required: bool = True) -> Dict[str, Optional[str]]:
    """``csv``, ``images`` (folder), ``descriptions``, ``hierarchy``, ``image_labels`` (the
    human-verified image-level label CSV, None when absent: it is optional) of one split.

    With ``required``, a missing CSV or descriptions file raises FileNotFoundError
    listing the paths tried (the hierarchy is checked by whoever needs it)."""
    if split not in SPLITS:
        raise ValueError(f"unknown OpenImages split {split!r}; expected one of {SPLITS}")
    csv_path, tried_csv = _find(root, CSV_NAMES[split])
    desc, tried_desc = _find(root, DESCRIPTION_NAMES)
    hier, _ = _find(root, HIERARCHY_NAMES)
    image_labels, _ = _find(root, IMAGE_LABEL_NAMES[split])
    if required and csv_path is None:
        raise FileNotFoundError(f"OpenImages {split} boxes not found; tried {tried_csv}")
    if required and desc is None:
        raise FileNotFoundError(f"OpenImages class descriptions not found; tried {tried_desc}")
    return {
        "csv": csv_path or tried_csv[0],
        "images": os.path.join(root, IMAGE_DIRS[split]),
        "descriptions": desc or tried_desc[0],
        "hierarchy": hier or os.path.join(root, HIERARCHY_NAMES[0]),
        "image_labels": image_labels,
    }


def _list_images(folder: str, real_root: str, tally: Tally) -> Dict[str, str]:
    """``{ImageID: file name}`` of the image folder (one scandir; no file is opened)."""
    require_folder_in_root(folder, real_root, "OpenImages image folder")
    found: Dict[str, str] = {}
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        stem, ext = os.path.splitext(e.name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            if not e.is_dir():
                tally.add("non_image_files", e.path)
            continue
        if e.is_symlink() and count_outside(e.path, real_root, tally):
            continue
        if stem in found:
            tally.add(
                "duplicate_images",
                f"{e.path} (ImageID {stem} is also {found[stem]}; that one is used)",
            )
            continue
        found[stem] = e.name
    return found


def _read_headers(paths: List[str]) -> List[Tuple[int, int, int, str]]:
    """``(width, height, EXIF orientation, error)`` per path; width = -1 on error."""
    out = []
    for path in paths:
        try:
            with Image.open(path) as im:
                w, h = im.size
                try:
                    orientation = int(im.getexif().get(0x0112, 1) or 1)
                except Exception:  # broken EXIF: the mapper ignores it too
                    orientation = 1
            out.append((w, h, orientation, ""))
        except Exception as e:  # OSError, SyntaxError, DecompressionBombError, ...
            out.append((-1, -1, 1, repr(e)))
    return out


def _header_sizes(paths: List[str], num_workers: int, show_progress: bool):
    chunks = [paths[i : i + HEADER_CHUNK] for i in range(0, len(paths), HEADER_CHUNK)]
    parts = map_in_processes(
        _read_headers, chunks, num_workers, "Reading image headers", "chunk", show_progress
    )
    return [r for part in parts for r in part]


def label_stats(
    box_image: np.ndarray, box_label: np.ndarray, box_flags: np.ndarray, num_labels: int
) -> np.ndarray:
    """int64 (L, 4) per class: images with a box of it, boxes, group-of boxes, depiction boxes."""
    out = np.zeros((num_labels, 4), dtype=np.int64)
    if len(box_label) == 0:
        return out
    out[:, 1] = np.bincount(box_label, minlength=num_labels)
    out[:, 2] = np.bincount(
        box_label, weights=box_flags[:, GROUP_OF] == 1, minlength=num_labels
    ).astype(np.int64)
    out[:, 3] = np.bincount(
        box_label, weights=box_flags[:, DEPICTION] == 1, minlength=num_labels
    ).astype(np.int64)
    pairs = np.unique(box_image.astype(np.int64) * num_labels + box_label)
    out[:, 0] = np.bincount(pairs % num_labels, minlength=num_labels)
    return out


def _match_image_files(
    image_ids: List[str], files: Dict[str, str], split: str, root: str, tally: Tally
):
    """``(CSV image indices with a file, their paths relative to root)``; ImageIDs of the
    CSV without a file are counted (``missing_images``)."""
    folder = os.path.join(root, IMAGE_DIRS[split])
    present = []
    for i, image_id in enumerate(image_ids):
        if image_id in files:
            present.append(i)
        else:
            tally.add("missing_images", os.path.join(folder, image_id + ".jpg"))
    return present, [f"{IMAGE_DIRS[split]}/{files[image_ids[i]]}" for i in present]


def _keep_readable(
    image_ids: List[str], present: List[int], rel: List[str], headers, root: str, tally: Tally
):
    """The images whose header gave a size: ``(keep, image_ids, file_names, sizes)`` where
    ``keep`` int64 (N_csv,) maps a CSV image index to its index in the lists, -1 for images
    dropped (no file, or unreadable: counted); EXIF-rotated images are counted (kept)."""
    keep = np.full(len(image_ids), -1, dtype=np.int64)
    kept_ids, file_names, sizes = [], [], []
    for i, r, (w, h, orientation, err) in zip(present, rel, headers):
        if w <= 0 or h <= 0:
            tally.add("unreadable_images", f"{os.path.join(root, r)}: {err or 'empty image'}")
            continue
        if orientation != 1:
            tally.add("exif_rotated", f"{os.path.join(root, r)}: EXIF orientation {orientation}")
        keep[i] = len(kept_ids)
        kept_ids.append(image_ids[i])
        file_names.append(r)
        sizes.append((w, h))
    return keep, kept_ids, file_names, sizes


def _boxes_of_kept_images(rows: BoxRows, keep: np.ndarray) -> Dict[str, np.ndarray]:
    """The boxes of the kept images, ordered by (new) image index, file order within an
    image: ``box_image``, ``box_label``, ``box_xyxy``, ``box_flags`` (see :func:`build_index`)."""
    new_image = keep[rows.box_image] if len(rows.box_image) else np.zeros(0, np.int64)
    kept = new_image >= 0
    order = np.argsort(new_image[kept], kind="stable")
    return {
        "box_image": new_image[kept][order].astype(np.int32),
        "box_label": rows.box_label[kept][order].astype(np.int32),
        "box_xyxy": rows.box_xyxy[kept][order].astype(np.float32),
        "box_flags": rows.box_flags[kept][order].astype(np.int8).reshape(-1, len(FLAG_COLUMNS)),
    }


def build_index(
    root: str,
    split: str,
    *,
    num_workers: Optional[int] = None,
    show_progress: bool = True,
    max_examples: Optional[int] = MAX_EXAMPLES,
) -> dict:
    """Index one split of an OpenImages tree: list the image folder, stream the box CSV,
    match ImageIDs to files, read the image headers, keep the readable images and their boxes.

    Returns a dict: ``mids``, ``names`` (the L boxable classes, descriptions order),
    ``image_ids`` (N, CSV order), ``file_names`` (N, relative to root, '/'-separated),
    ``sizes`` int32 (N, 2) width, height in pixels (stored frame, from the header),
    ``box_image`` int32 (M,) image of each box (ascending; file order within an image),
    ``box_label`` int32 (M,) index into ``mids``, ``box_xyxy`` float32 (M, 4) XMin, YMin,
    XMax, YMax normalised to [0, 1], ``box_flags`` int8 (M, 5) (``FLAG_COLUMNS``; 1, 0,
    -1), ``label_stats`` int64 (L, 4) (see :func:`label_stats`), ``stats`` (the
    :data:`COUNTERS` counted, and the :data:`TOTALS`), ``examples`` (up to ``max_examples``
    per counter, None: all), ``seconds``.
    """
    t0 = time.perf_counter()
    paths = split_paths(root, split)
    descriptions = read_class_descriptions(paths["descriptions"])
    mids, names = list(descriptions), list(descriptions.values())
    workers = default_num_workers() if num_workers is None else num_workers
    tally = Tally(max_examples)

    files = _list_images(
        paths["images"], os.path.realpath(root), tally
    )  # fail early on a missing folder
    label_to_idx = {m: i for i, m in enumerate(mids)}
    rows = read_bbox_csv(
        paths["csv"], label_to_idx, tally, num_workers=workers, show_progress=show_progress
    )
    present, rel = _match_image_files(rows.image_ids, files, split, root, tally)
    headers = _header_sizes([os.path.join(root, r) for r in rel], workers, show_progress)
    keep, image_ids, file_names, sizes = _keep_readable(
        rows.image_ids, present, rel, headers, root, tally
    )
    boxes = _boxes_of_kept_images(rows, keep)

    flags = boxes["box_flags"]
    stats = dict(tally.stats)
    stats.update(
        rows=rows.rows,
        dropped_rows=int(len(rows.box_image) - len(boxes["box_image"])),
        images=len(image_ids),
        boxes=int(len(boxes["box_image"])),
        classes=len(mids),
        group_of_boxes=int((flags[:, GROUP_OF] == 1).sum()),
        depiction_boxes=int((flags[:, DEPICTION] == 1).sum()),
    )
    return {
        "mids": mids,
        "names": names,
        "image_ids": image_ids,
        "file_names": file_names,
        "sizes": np.asarray(sizes, dtype=np.int32).reshape(-1, 2),
        **boxes,
        "label_stats": label_stats(boxes["box_image"], boxes["box_label"], flags, len(mids)),
        "stats": stats,
        "examples": tally.examples,
        "seconds": time.perf_counter() - t0,
    }


def image_label_coverage(
    index: dict,
    path: str,
    *,
    num_workers: Optional[int] = None,
    show_progress: bool = True,
    max_examples: Optional[int] = MAX_EXAMPLES,
) -> dict:
    """How many of each class's verified-positive images carry a box of it.

    Streams the image-level label CSV at ``path`` (:func:`read_image_labels_csv`) against
    the classes of ``index`` (a train index of :func:`build_index`) and counts, per class,
    over the images of the index (images with boxes whose files are there; positives on
    other images are counted in ``stats["positives_outside_index"]`` and left out, so a
    partial download or a reduced box CSV does not make classes look partly boxed):

    ``positive_images`` int64 (L,): images with a ``Confidence`` 1 row of the class;
    ``boxed_positive_images`` int64 (L,): those of them with at least one box of it.

    Also ``path``, ``stats`` (``rows``, ``positive_rows``, ``negative_rows``,
    ``positives_outside_index``: :data:`LABEL_TOTALS`; and the :data:`LABEL_COUNTERS`
    counted), ``examples`` (file:line, up to ``max_examples`` per counter) and ``seconds``.
    """
    t0 = time.perf_counter()
    mids = list(index["mids"])
    num_labels = len(mids)
    tally = Tally(max_examples)
    workers = default_num_workers() if num_workers is None else num_workers
    label_to_idx = {m: i for i, m in enumerate(mids)}
    rows = read_image_labels_csv(
        path, label_to_idx, tally, num_workers=workers, show_progress=show_progress
    )

    position = {image_id: i for i, image_id in enumerate(index["image_ids"])}
    remap = np.fromiter(
        (position.get(i, -1) for i in rows.image_ids), dtype=np.int64, count=len(rows.image_ids)
    )
    image = remap[rows.image] if len(rows.image) else np.zeros(0, np.int64)
    inside = image >= 0
    positive = np.unique(image[inside] * num_labels + rows.label[inside])
    boxed = np.unique(index["box_image"].astype(np.int64) * num_labels + index["box_label"])
    covered = np.intersect1d(positive, boxed, assume_unique=True)

    stats = dict(tally.stats)
    stats.update(
        rows=rows.rows,
        positive_rows=int(len(rows.image)),
        negative_rows=rows.negatives,
        positives_outside_index=int((~inside).sum()),
    )
    return {
        "path": path,
        "positive_images": np.bincount(positive % num_labels, minlength=num_labels).astype(
            np.int64
        ),
        "boxed_positive_images": np.bincount(covered % num_labels, minlength=num_labels).astype(
            np.int64
        ),
        "stats": stats,
        "examples": tally.examples,
        "seconds": time.perf_counter() - t0,
    }
