"""The ImageNet box metadata of Choe et al. (CVPR 2020), "Evaluating Weakly Supervised
Object Localization Methods Right" (github.com/clovaai/wsolevaluation), as detectron2
datasets.

That release boxes every image of ImageNet val (its split ``test``: 50,000 images, the
ILSVRC2012 boxes) and 10,000 ImageNetV2 images (its split ``val``: the "Threshold0.7"
variant, 10 per class, boxes drawn by Choe et al.). The ALS paper's Table 1 (context-only
ImageNet val: every object painted with the pixel mean) uses these boxes; on ImageNetV2
they give a context-only V2 set and the objectness deviation on V2.

Files: one folder per split, ``metadata/ILSVRC/<split>/``, four text files without header,
comma-separated, one record per line; image paths are relative to an image root::

    image_ids.txt     <path>                        val/ILSVRC2012_val_00000001.JPEG
    class_labels.txt  <path>,<label>                val/ILSVRC2012_val_00000001.JPEG,65
    image_sizes.txt   <path>,<width>,<height>       val/ILSVRC2012_val_00000001.JPEG,500,375
    localization.txt  <path>,<x0>,<y0>,<x1>,<y1>    val/ILSVRC2012_val_00000001.JPEG,111,108,441,193

``label``: 0..999, the position of the class wnid in the sorted ILSVRC wnids (the class
index of this project's ImageNet readers). Sizes and boxes in pixels (boxes XYXY, of that
size); an image with several boxes has several localization lines. The V2 paths are
``val2/<label>/<file>.jpeg``: ``<file>`` is the ImageNetV2 tarball's own name (a SHA-1) in
the current release; an older one used ``0.jpeg`` .. ``9.jpeg`` and ships ``mapping.txt``
to rename the tarball's files (nothing here reads it).

Expected tree under ``$DETECTRON2_DATASETS`` (what ``git clone`` of the repository plus its
``dataset/prepare_evaluation_data.sh`` give; :func:`.builtin.register_all_wsol`)::

    wsolevaluation/metadata/ILSVRC/test/{image_ids,class_labels,image_sizes,localization}.txt
    wsolevaluation/metadata/ILSVRC/val/{image_ids,class_labels,image_sizes,localization}.txt
    wsolevaluation/dataset/ILSVRC/val2/<label>/<file>.jpeg     ImageNetV2 Threshold0.7 images
    wsolevaluation/dataset/ILSVRC/val/ILSVRC2012_val_<n>.JPEG  ImageNet val (optional, below)
    imagenet/                                                  the project's ImageNet tree

Image root of split ``test``: ``wsolevaluation/dataset/ILSVRC`` when it has ``val/``, else
the project's ImageNet val: ``imagenet`` (standard layout, flat ``imagenet/val/``) or
``imagenet/ILSVRC/Data/CLS-LOC`` (Kaggle layout). Split ``val``: ``wsolevaluation/dataset/
ILSVRC``. Chosen when the dataset is loaded (the first that has the first folder of the
paths); symlinks are followed (``dataset/ILSVRC/val -> .../imagenet/val`` is fine).
Class names (``thing_classes``, ``wnids``) come from ``imagenet`` when it can be read,
else ``class_<i>`` (``num_classes`` = largest label + 1), as for ImageNetV2.

Each dataset dict (the keys of :mod:`.imagenet`)::

    file_name     str   image root joined with the path of image_ids.txt
    image_id      str   file name stem (e.g. "ILSVRC2012_val_00000001", as imagenet_val);
                        the path without extension when stems repeat (older V2 names)
    label         int   class index, from class_labels.txt
    height, width int   pixels, from image_sizes.txt (left out when it has no line)
    annotations   list  [{bbox: [x0, y0, x1, y1] float pixels, bbox_mode: BoxMode.XYXY_ABS,
                         category_id: label}], in file order; [] for images without boxes
    paint_all_objects True  subset "context" only

Subsets: "all" (every usable image of image_ids.txt, boxed or not); "context" (images with
at least one box, each with ``paint_all_objects``: the mapper paints every box).

Bad input. Every case is counted, logged (a line per counter with its number, its
severity and meaning, and the first examples, each naming file and line; a warning unless
the case is fixed) and skipped, as the ImageNet readers do. The kinds counted are
:data:`COUNTERS`: ``bad_lines``, ``orphan_lines`` (a line whose path is not in
image_ids.txt), ``degenerate_boxes`` (x1 <= x0 or y1 <= y0, as written or after
clipping), ``outside_root`` (an absolute path or one with '..'), ``unlabeled_images``,
``missing_images``, ``unsized_images``, ``unboxed_images``, ``clipped_boxes``; what each
means and what happens is the table :data:`.indexing.KINDS`, the policy of every reader.

Errors (nothing is loaded): any of the four files missing (``FileNotFoundError`` naming
every missing one), a path listed twice in image_ids / class_labels / image_sizes
(``ValueError`` naming the file, the path and its lines: which line is right cannot be
known), no image in image_ids.txt, and no listed image found under the image root
(``FileNotFoundError`` naming the root and a path it looked for).
"""

import functools
import logging
import math
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from detectron2.structures import BoxMode

from .catalog import check_dataset_root, register_lazy, set_class_metadata
from .imagenet_index import get_imagenet_class_info
from .indexing import MAX_EXAMPLES, Tally, clip_box, problem_messages

logger = logging.getLogger(__name__)

__all__ = [
    "COUNTERS",
    "WSOL_FILES",
    "SPLITS",
    "SUBSETS",
    "PREDEFINED_SPLITS_WSOL",
    "WsolMetadata",
    "read_wsol_metadata",
    "load_wsol_metadata",
    "register_wsol",
    "register_all_wsol",
]


WSOL_FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")
_FORMATS = {
    "image_ids.txt": "<path>",
    "class_labels.txt": "<path>,<label>",
    "image_sizes.txt": "<path>,<width>,<height>",
    "localization.txt": "<path>,<x0>,<y0>,<x1>,<y1>",
}
SPLITS = ("test", "val")  # Choe et al.'s names: test = ImageNet val, val = ImageNetV2 (boxed)
SUBSETS = ("all", "context")
# the kinds of indexing.KINDS that the reader and the loader count, in log order
COUNTERS = (
    "bad_lines", "orphan_lines", "degenerate_boxes", "outside_root", "unlabeled_images",
    "missing_images", "unsized_images", "unboxed_images", "clipped_boxes",
)  # fmt: skip

Box = Tuple[float, float, float, float]


class WsolMetadata(NamedTuple):
    """The four files of one split, parsed (paths as written, relative to the image root).

    image_ids: the usable paths of image_ids.txt, in file order.
    labels: ``{path: class index}``.
    sizes: ``{path: (width, height)}`` in pixels.
    boxes: ``{path: [(x0, y0, x1, y1), ...]}`` float pixels, clipped to the size, file order.
    stats: ``{counter: count}`` (see the module docstring; only non-zero ones).
    examples: ``{counter: ["<file>:<line>: <reason>", ...]}`` (up to ``max_examples``).
    """

    image_ids: List[str]
    labels: Dict[str, int]
    sizes: Dict[str, Tuple[int, int]]
    boxes: Dict[str, List[Box]]
    stats: Dict[str, int]
    examples: Dict[str, List[str]]


def _is_safe_path(path: str) -> bool:
    """A relative path that stays below its root (no '..', not absolute, no drive, no NUL)."""
    parts = path.replace("\\", "/").split("/")
    return (
        not os.path.isabs(path)
        and not path.startswith(("/", "\\"))
        and ".." not in parts
        and ":" not in parts[0]
        and "\0" not in path
    )


def _lines(path: str):
    """``(line number, stripped line)`` of every non-blank line."""
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if line:
                yield lineno, line


def _check_repeats(path: str, lines: Dict[str, List[int]]) -> None:
    repeated = {k: v for k, v in lines.items() if len(v) > 1}
    if not repeated:
        return
    shown = "; ".join(
        f"{k!r} on lines {', '.join(map(str, v))}" for k, v in list(repeated.items())[:20]
    )
    more = f"; and {len(repeated) - 20} more" if len(repeated) > 20 else ""
    raise ValueError(
        f"{path}: {len(repeated)} path(s) listed more than once (which line is right cannot be "
        f"known): {shown}{more}"
    )


def _read_records(path: str, n_fields: int, known: Optional[set], tally: Tally):
    """``(lineno, path, [values...])`` of the lines of ``path`` with ``n_fields`` fields
    whose image path is in ``known`` (others counted); values still strings."""
    fmt = _FORMATS[os.path.basename(path)]
    for lineno, line in _lines(path):
        where = f"{path}:{lineno}"
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != n_fields or not parts[0]:
            tally.add("bad_lines", f"{where}: expected '{fmt}', got {line!r}")
            continue
        if known is not None and parts[0] not in known:
            tally.add("orphan_lines", f"{where}: {parts[0]!r} is not in image_ids.txt")
            continue
        yield lineno, parts[0], parts[1:]


def _read_image_ids(path: str, tally: Tally) -> List[str]:
    """The usable paths of image_ids.txt, in file order (a path with a comma or one that
    leaves the root: counted, skipped). ValueError for a repeated path or none at all."""
    image_ids: List[str] = []
    id_lines: Dict[str, List[int]] = {}
    for lineno, line in _lines(path):
        where = f"{path}:{lineno}"
        if "," in line:
            tally.add(
                "bad_lines",
                f"{where}: expected '<path>' (a path with a comma cannot be "
                f"named in the other files), got {line!r}",
            )
            continue
        if not _is_safe_path(line):
            tally.add("outside_root", f"{where}: {line!r} is not a path below the image root")
            continue
        id_lines.setdefault(line, []).append(lineno)
        if len(id_lines[line]) == 1:
            image_ids.append(line)
    _check_repeats(path, id_lines)
    if not image_ids:
        raise ValueError(f"{path}: no usable image path")
    return image_ids


def _read_labels(path: str, known: set, num_classes: Optional[int], tally: Tally) -> Dict[str, int]:
    """``{path: class index}`` of class_labels.txt (labels in [0, num_classes))."""
    labels: Dict[str, int] = {}
    label_lines: Dict[str, List[int]] = {}
    for lineno, image, (value,) in _read_records(path, 2, known, tally):
        label_lines.setdefault(image, []).append(lineno)
        try:
            label = int(value)
        except ValueError:
            tally.add("bad_lines", f"{path}:{lineno}: label {value!r} is not an integer")
            continue
        if label < 0 or (num_classes is not None and label >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            tally.add("bad_lines", f"{path}:{lineno}: label {label} is not in {bound}")
            continue
        labels.setdefault(image, label)
    _check_repeats(path, label_lines)
    return labels


def _read_sizes(path: str, known: set, tally: Tally) -> Dict[str, Tuple[int, int]]:
    """``{path: (width, height)}`` of image_sizes.txt (positive integers)."""
    sizes: Dict[str, Tuple[int, int]] = {}
    size_lines: Dict[str, List[int]] = {}
    for lineno, image, values in _read_records(path, 3, known, tally):
        size_lines.setdefault(image, []).append(lineno)
        try:
            width, height = int(values[0]), int(values[1])
        except ValueError:
            tally.add("bad_lines", f"{path}:{lineno}: width, height {values} are not integers")
            continue
        if width <= 0 or height <= 0:
            tally.add("bad_lines", f"{path}:{lineno}: size {width}x{height} is not positive")
            continue
        sizes.setdefault(image, (width, height))
    _check_repeats(path, size_lines)
    return sizes


def _read_boxes(path: str, known: set, sizes: Dict[str, Tuple[int, int]], tally: Tally):
    """``{path: [(x0, y0, x1, y1)]}`` of localization.txt, clipped to the image where its
    size is known (kept unclipped otherwise: policy ``unsized_images``)."""
    boxes: Dict[str, List[Box]] = {}
    for lineno, image, values in _read_records(path, 5, known, tally):
        where = f"{path}:{lineno}"
        try:
            box = tuple(float(v) for v in values)
        except ValueError:
            tally.add("bad_lines", f"{where}: non-numeric coordinates {values}")
            continue
        if not all(math.isfinite(v) for v in box):
            tally.add("bad_lines", f"{where}: non-finite coordinates {values}")
            continue
        if box[2] <= box[0] or box[3] <= box[1]:
            tally.add("degenerate_boxes", f"{where}: x1 <= x0 or y1 <= y0 in {values}")
            continue
        if image in sizes:
            box = clip_box(box, *sizes[image], tally, f"{where}:")
            if box is None:
                continue
        boxes.setdefault(image, []).append(box)
    return boxes


def read_wsol_metadata(
    metadata_dir: str, num_classes: Optional[int] = None, max_examples: Optional[int] = MAX_EXAMPLES
) -> WsolMetadata:
    """Parse the four files of one split folder (e.g. ``metadata/ILSVRC/test``).

    Args:
        metadata_dir: the folder holding image_ids.txt, class_labels.txt, image_sizes.txt,
            localization.txt.
        num_classes: labels must be below it (None: any label >= 0).
        max_examples: examples kept per counter (None: all).

    Returns:
        :class:`WsolMetadata`. Bad lines are counted and skipped (module docstring);
        raises FileNotFoundError / ValueError for the errors listed there.
    """
    files = {name: os.path.join(metadata_dir, name) for name in WSOL_FILES}
    missing = [p for p in files.values() if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"WSOL metadata (Choe et al. 2020) at {metadata_dir}: missing {', '.join(missing)} "
            f"(expected the four files {', '.join(WSOL_FILES)} of wsolevaluation's "
            "metadata/ILSVRC/<split>/)"
        )
    tally = Tally(max_examples)
    image_ids = _read_image_ids(files["image_ids.txt"], tally)
    known = set(image_ids)
    labels = _read_labels(files["class_labels.txt"], known, num_classes, tally)
    sizes = _read_sizes(files["image_sizes.txt"], known, tally)
    boxes = _read_boxes(files["localization.txt"], known, sizes, tally)
    return WsolMetadata(image_ids, labels, sizes, boxes, dict(tally.stats), tally.examples)


def _present(image_root: str, paths: Sequence[str]) -> set:
    """The paths that exist under ``image_root``: one listing per folder, not one stat
    per image (the 50,000 val images are in one folder)."""
    by_dir: Dict[str, List[str]] = {}
    for p in paths:
        d, _, base = p.replace("\\", "/").rpartition("/")
        by_dir.setdefault(d, []).append(base)
    out = set()
    for d, names in by_dir.items():
        try:
            with os.scandir(os.path.join(image_root, d) if d else image_root) as it:
                listed = {e.name for e in it if not e.is_dir()}
        except (FileNotFoundError, NotADirectoryError):
            continue
        prefix = d + "/" if d else ""
        out.update(prefix + n for n in names if n in listed)
    return out


def _pick_image_root(image_root: Union[str, Sequence[str]], image_ids: Sequence[str]) -> str:
    """``image_root``, or the first of several candidates that holds the first folder of
    the paths (the first candidate when none does)."""
    if isinstance(image_root, str):
        return image_root
    candidates = list(image_root)
    top = image_ids[0].replace("\\", "/").split("/", 1)[0]
    for c in candidates:
        if os.path.isdir(os.path.join(c, top)):
            return c
    return candidates[0]


def _log(meta: WsolMetadata, metadata_dir: str, image_root: str, subset: str, n: int) -> None:
    s = meta.stats
    logger.info(
        f"WSOL metadata {metadata_dir} (images under {image_root}; subset {subset}): {n} images, "
        f"{sum(len(b) for b in meta.boxes.values())} boxes read; "
        f"{s.get('clipped_boxes', 0)} boxes clipped to the image size."
    )
    for level, msg in problem_messages(f"WSOL metadata {metadata_dir}", s, meta.examples, COUNTERS):
        logger.log(level, msg)


def _load(
    metadata_dir: str,
    image_root: Union[str, Sequence[str]],
    subset: str,
    num_classes: Optional[int],
    check_images: bool,
) -> Tuple[List[dict], WsolMetadata]:
    if subset not in SUBSETS:
        raise ValueError(f"unknown WSOL subset {subset!r}; expected one of {SUBSETS}")
    meta = read_wsol_metadata(metadata_dir, num_classes)
    root = _pick_image_root(image_root, meta.image_ids)
    tally = Tally()  # counters of this load, merged into meta's for the log
    tally.stats.update(meta.stats)
    tally.examples.update({k: list(v) for k, v in meta.examples.items()})
    ids_file = os.path.join(metadata_dir, "image_ids.txt")

    usable = []
    for rel in meta.image_ids:
        if rel not in meta.labels:
            tally.add(
                "unlabeled_images", f"{ids_file}: {rel!r} has no usable line in class_labels.txt"
            )
        else:
            usable.append(rel)
    if check_images and usable:
        present = _present(root, usable)
        if not present:
            raise FileNotFoundError(
                f"WSOL metadata {metadata_dir}: none of its {len(usable)} images is under {root} "
                f"(e.g. {os.path.join(root, usable[0])}); see "
                "als_d2/data/datasets/wsol_metadata.py for the expected tree (older ImageNetV2 "
                "metadata names files 0.jpeg..9.jpeg: rename with wsolevaluation's mapping.txt, or "
                "use the current metadata)"
            )
        for rel in usable:
            if rel not in present:
                tally.add("missing_images", os.path.join(root, rel))
        usable = [rel for rel in usable if rel in present]

    stems = [os.path.splitext(rel.rsplit("/", 1)[-1])[0] for rel in usable]
    if len(set(stems)) != len(stems):  # e.g. val2/<label>/0.jpeg of the older V2 names
        stems = [os.path.splitext(rel)[0] for rel in usable]
        if len(set(stems)) != len(stems):
            stems = list(usable)

    prefix = os.path.join(root, "")
    dicts = []
    for rel, image_id in zip(usable, stems):
        label = meta.labels[rel]
        record = {"file_name": prefix + rel, "image_id": image_id, "label": label}
        size = meta.sizes.get(rel)
        if size is not None:
            record["width"], record["height"] = size
        else:
            tally.add(
                "unsized_images", f"{ids_file}: {rel!r} has no usable line in image_sizes.txt"
            )
        anns = [
            {"bbox": list(b), "bbox_mode": BoxMode.XYXY_ABS, "category_id": label}
            for b in meta.boxes.get(rel, ())
        ]
        if not anns:
            tally.add(
                "unboxed_images", f"{ids_file}: {rel!r} has no usable line in localization.txt"
            )
            if subset == "context":
                continue
        record["annotations"] = anns
        if subset == "context":
            record["paint_all_objects"] = True
        dicts.append(record)

    meta = meta._replace(stats=dict(tally.stats), examples=tally.examples)
    _log(meta, metadata_dir, root, subset, len(dicts))
    return dicts, meta


def load_wsol_metadata(
    metadata_dir: str,
    image_root: Union[str, Sequence[str]],
    subset: str = "all",
    *,
    num_classes: Optional[int] = None,
    check_images: bool = True,
) -> List[dict]:
    """Load one split of Choe et al.'s metadata as detectron2 dataset dicts.

    Args:
        metadata_dir: e.g. ``wsolevaluation/metadata/ILSVRC/test``.
        image_root: the folder the paths of image_ids.txt are relative to (e.g.
            ``wsolevaluation/dataset/ILSVRC``), or several candidates: the first that holds
            the first folder of the paths is used.
        subset: "all" or "context" (module docstring).
        num_classes: labels must be below it (lines with others are counted as bad).
        check_images: drop (and count) images that are not on disk, listing each folder
            once; raise FileNotFoundError when none is there.

    Returns:
        list[dict] with ``file_name, image_id, label, height, width, annotations`` (boxes
        XYXY_ABS float pixels, ``category_id`` = label) and, for "context",
        ``paint_all_objects: True``; in the order of image_ids.txt.
    """
    return _load(metadata_dir, image_root, subset, num_classes, check_images)[0]


WSOL_HOW = (
    "clone Choe et al.'s metadata there: git clone https://github.com/clovaai/wsolevaluation "
    "$DETECTRON2_DATASETS/wsolevaluation (metadata/ILSVRC/{test,val}/)"
)


def _class_info(class_root: Optional[str]) -> Optional[Tuple[List[str], List[str]]]:
    if class_root is None:
        return None
    try:
        return get_imagenet_class_info(class_root)
    except (FileNotFoundError, ValueError) as e:
        logger.info(
            f"WSOL metadata: no ImageNet class names from {class_root} ({e}); using class_<i>."
        )
        return None


def _load_registered(name, metadata_dir, image_root, subset, class_root) -> List[dict]:
    # a missing metadata folder: DatasetRootMissingError, one line in the tools
    check_dataset_root(name, metadata_dir, WSOL_HOW)
    info = _class_info(class_root)
    dicts, meta = _load(metadata_dir, image_root, subset, len(info[0]) if info else None, True)
    if info is not None:
        wnids, names = info
    else:
        n = max(meta.labels.values(), default=-1) + 1
        wnids = names = [f"class_{i}" for i in range(n)]
    set_class_metadata(
        name,
        metadata_dir,
        {"thing_classes": list(names), "wnids": list(wnids), "num_classes": len(wnids)},
    )
    return dicts


def register_wsol(
    name: str,
    metadata_dir: str,
    image_root: Union[str, Sequence[str]],
    subset: str = "all",
    *,
    class_root: Optional[str] = None,
    split: str = "",
) -> None:
    """Register one split of Choe et al.'s metadata in DatasetCatalog (lazily: nothing is
    read now). MetadataCatalog gets ``evaluator_type="classification"``, ``image_root``
    (the first candidate), ``split`` (Choe et al.'s), ``subset``, ``metadata_dir`` now, and
    ``thing_classes``, ``wnids``, ``num_classes`` at the first load (from the ImageNet tree
    ``class_root`` when it can be read, else ``class_<i>``). Other arguments as in
    :func:`load_wsol_metadata`."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown WSOL subset {subset!r}; expected one of {SUBSETS}")
    roots = image_root if isinstance(image_root, str) else tuple(image_root)
    if not roots:
        raise ValueError("image_root: at least one folder")
    load = functools.partial(_load_registered, name, metadata_dir, roots, subset, class_root)
    first = roots if isinstance(roots, str) else roots[0]
    register_lazy(name, load, first, split, subset=subset, metadata_dir=metadata_dir)


# The builtin names live with the others (registered lazily at import):
from .builtin import PREDEFINED_SPLITS_WSOL, register_all_wsol  # noqa: E402,F401
