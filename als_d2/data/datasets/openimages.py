"""OpenImages V6 (detection boxes), the paper's leaf-class 'mask' subset, as detectron2
datasets.

The tree and the bad-input policy are in :mod:`.openimages_index`, the file formats in
:mod:`.openimages_files`, the subset rules (leaf classes, partially annotated classes,
merges, 'mask' expansion, clipping) in :mod:`.openimages_subset`.

Each dataset dict is one object (a 'mask' sample, as ``imagenet_train_boxed_mask``)::

    file_name     str   root joined with e.g. "train/000002b66c9c498e.jpg"
    image_id      str   the ImageID (shared by the samples of one image)
    height, width int   pixels of the stored image (header; no EXIF rotation)
    label         int   class of the target object, 0..K-1 (merged, see MetadataCatalog)
    annotations   list  every usable box of the image, of any class: [{bbox: [x0, y0, x1,
                        y1] float pixels, bbox_mode: BoxMode.XYXY_ABS, category_id: label
                        of the box, or -1 for a class outside the subset}]; the list is
                        shared by the samples of one image (read-only)
    target_object int   index into annotations of this sample's object (the mapper paints
                        every other box with the pixel mean)

Pixel boxes are ``XMin * width``, ``YMin * height``, ... of the real image size, rounded to
0.001 pixel (the index keeps normalised coordinates as float32: the CSVs have 6 decimals).

Prepared files: ``tools/prepare_openimages.py --root ROOT`` (:func:`prepare_openimages`)
reads the raw files once and writes ``ROOT/als_d2_<split>.json.gz`` per split (or under
``--output-dir``; :mod:`.prepared`: gzipped JSON, the same tree gives the same bytes): the
split's index (:func:`.openimages_index.build_index`; its arrays as base64 little-endian
bytes) and its problem counts. Preparing train also writes ``als_d2_classes.json.gz``: the
train statistics every split chooses its classes from (class list, per-class box counts,
the image-level label coverage). Loading reads those two files, the hierarchy and the
merge file (small), and computes the subset (seconds): changing the rules, the hierarchy
or the merge file needs no new prepare step; a changed CSV, image folder or image-level
label file does (nothing is re-checked against the tree). A missing file is an error
naming the prepare command.
"""

import base64
import functools
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import log_first_n

from .catalog import check_dataset_root, register_lazy, set_class_metadata
from .openimages_files import read_hierarchy
from .indexing import problem_messages
from .openimages_index import (
    COUNTERS,
    IMAGE_LABEL_NAMES,
    LABEL_COUNTERS,
    SPLITS,
    build_index,
    image_label_coverage,
    split_paths,
)
from .openimages_subset import (
    ClassSelection,
    SubsetRules,
    mask_samples,
    read_class_merges,
    select_classes,
    step_counts,
)
from .prepared import gc_paused, read_prepared_file, write_prepared_file

__all__ = [
    "SPLITS",
    "SubsetRules",
    "prepare_openimages",
    "prepared_path",
    "read_prepared_index",
    "read_prepared_classes",
    "get_openimages_classes",
    "load_openimages_dicts",
    "register_openimages",
]

logger = logging.getLogger(__name__)

FORMAT = "als_d2.openimages_index/1"  # a split's prepared file; bump when it changes
CLASSES_FORMAT = "als_d2.openimages_classes/1"  # the train statistics' prepared file
CLASSES = "classes"  # prepared_path's name of the train statistics' file
_ARRAYS = ("sizes", "box_image", "box_label", "box_xyxy", "box_flags")  # of a split's index


def _warn_once(msg: str) -> None:
    """A warning about the train split's class choice, logged once per process: the
    classes are chosen again at every split's load."""
    log_first_n(logging.WARNING, msg, n=1, name=__name__, key="message")


def prepared_path(root: str, split: str, output_dir: Optional[str] = None) -> str:
    """Where :func:`prepare_openimages` writes the index of ``split`` (or, for
    ``split="classes"``, the train statistics): ``<output_dir or root>/als_d2_<split>.json.gz``."""
    return os.path.join(output_dir or root, f"als_d2_{split}.json.gz")


def _prepare_command(root: str, splits: str, output_dir: Optional[str]) -> str:
    """The command that writes the files of ``splits`` ("train val"; "classes": train)."""
    out = f" --output-dir {output_dir}" if output_dir else ""
    splits = "train" if splits == CLASSES else splits
    return f"python tools/prepare_openimages.py --root {root} --splits {splits}{out}"


def _pack(a: np.ndarray) -> dict:
    """An array as JSON: dtype (explicit byte order), shape, base64 of its bytes (14.6M
    train boxes: one string instead of 160M JSON numbers)."""
    a = np.ascontiguousarray(a)
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return {
        "dtype": a.dtype.str,
        "shape": list(a.shape),
        "base64": base64.b64encode(a.tobytes()).decode("ascii"),
    }


def _unpack(d: dict) -> np.ndarray:
    data = base64.b64decode(d["base64"])
    return np.frombuffer(data, dtype=np.dtype(d["dtype"])).reshape(d["shape"])


def prepare_openimages(
    root: str,
    splits: Sequence[str] = SPLITS,
    *,
    output_dir: Optional[str] = None,
    num_workers: Optional[int] = None,
    show_progress: bool = False,
) -> Dict[str, str]:
    """Index each split of the OpenImages tree at ``root`` (:func:`.openimages_index.build_index`:
    stream the box CSV, list the image folder, read the image headers; in ``num_workers``
    processes, default ``$ALS_D2_INDEX_WORKERS`` or the CPUs) and write it to
    :func:`prepared_path`; preparing train also counts its image-level labels
    (:func:`.openimages_index.image_label_coverage`, when the tree has the file) and writes
    the train statistics (``prepared_path(root, "classes")``). Returns ``{split or
    "classes": path}``.

    A split's file holds ``format``, ``split``, ``mids``, ``image_ids``, ``file_names``,
    the arrays ``sizes``, ``box_image``, ``box_label``, ``box_xyxy``, ``box_flags``
    (packed: dtype, shape, base64), ``stats`` and ``examples`` (the problem counts). The
    classes file holds ``format``, ``mids``, ``names``, ``label_stats`` (L x 4 lists) and
    ``coverage`` (None without the image-level label file)."""
    root = PathManager.get_local_path(root)
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown OpenImages split {split!r}; expected one of {SPLITS}")
    build = dict(num_workers=num_workers, show_progress=show_progress)
    written = {}
    for split in splits:
        index = build_index(root, split, **build)
        _log_index(index, root, split, f"indexed in {index['seconds']:.1f}s")
        content = {"format": FORMAT, "split": split}
        content.update((k, index[k]) for k in ("mids", "image_ids", "file_names"))
        content.update((k, _pack(index[k])) for k in _ARRAYS)
        content.update(stats=index["stats"], examples=index["examples"])
        written[split] = prepared_path(root, split, output_dir)
        write_prepared_file(written[split], content, compresslevel=1)  # 14.6M boxes: 20 s, not 55
        if split != "train":
            continue
        labels_path = split_paths(root, "train", required=False)["image_labels"]
        coverage = None
        if labels_path is not None:
            coverage = image_label_coverage(index, labels_path, **build)
            _log_coverage(coverage, f"counted in {coverage.pop('seconds'):.1f}s")
            for key in ("positive_images", "boxed_positive_images"):
                coverage[key] = coverage[key].tolist()
        written[CLASSES] = prepared_path(root, CLASSES, output_dir)
        write_prepared_file(
            written[CLASSES],
            {
                "format": CLASSES_FORMAT,
                "mids": index["mids"],
                "names": index["names"],
                "label_stats": index["label_stats"].tolist(),
                "coverage": coverage,
            },
        )
    return written


def read_prepared_index(root: str, split: str, index_dir: Optional[str] = None) -> dict:
    """The index of ``split`` from its prepared file (in ``index_dir``, default ``root``):
    ``mids``, ``image_ids``, ``file_names``, the arrays of :func:`.openimages_index.build_index`
    (read-only), ``stats``, ``examples``. Raises :class:`.catalog.DatasetNotPreparedError`
    naming the prepare command when the file is missing, ValueError when it is not one."""
    if split not in SPLITS:
        raise ValueError(f"unknown OpenImages split {split!r}; expected one of {SPLITS}")
    index = read_prepared_file(
        prepared_path(root, split, index_dir),
        FORMAT,
        "OpenImages index",
        f"OpenImages {split} at {root}",
        _prepare_command(root, split, index_dir),
    )
    for key in _ARRAYS:
        index[key] = _unpack(index[key])
    return index


def read_prepared_classes(root: str, index_dir: Optional[str] = None) -> dict:
    """The train statistics (``mids``, ``names``, ``label_stats`` int64 (L, 4), ``coverage``
    with int64 arrays, or None) from their prepared file; errors as
    :func:`read_prepared_index`."""
    content = read_prepared_file(
        prepared_path(root, CLASSES, index_dir),
        CLASSES_FORMAT,
        "OpenImages class statistics",
        f"OpenImages classes (chosen on train) at {root}",
        _prepare_command(root, CLASSES, index_dir),
    )
    content["label_stats"] = np.asarray(content["label_stats"], dtype=np.int64).reshape(-1, 4)
    coverage = content["coverage"]
    if coverage is not None:
        for key in ("positive_images", "boxed_positive_images"):
            coverage[key] = np.asarray(coverage[key], dtype=np.int64)
    return content


def _log_coverage(coverage: dict, source: str, once: bool = False) -> None:
    """Log the image-level label counts; their warnings ``once`` per process (at loads)."""
    s, path = coverage["stats"], coverage["path"]
    logger.info(
        f"OpenImages image-level labels {path} ({source}): {s['rows']} rows, "
        f"{s['positive_rows']} positive, {s['negative_rows']} verified absent; "
        f"{s['positives_outside_index']} positive rows of images without boxes in the train "
        "index left out."
    )
    where = f"OpenImages image-level labels {path}"
    for level, msg in problem_messages(where, s, coverage["examples"], LABEL_COUNTERS):
        if once:
            log_first_n(level, msg, n=1, name=__name__, key="message")
        else:
            logger.log(level, msg)


def _log_index(index: dict, root: str, split: str, source: str) -> None:
    s = index["stats"]
    logger.info(
        f"OpenImages {split} at {root} ({source}): {s['rows']} CSV rows, {s['images']} images, "
        f"{s['boxes']} boxes ({s['group_of_boxes']} group-of, {s['depiction_boxes']} depictions), "
        f"{s['classes']} boxable classes; {s.get('dropped_rows', 0)} rows of images left out, "
        f"{s.get('clipped_boxes', 0)} boxes clipped to the image."
    )
    where = f"OpenImages {split} at {root}"
    for level, msg in problem_messages(where, s, index["examples"], COUNTERS):
        logger.log(level, msg)


def get_openimages_classes(
    root: str,
    rules: Optional[SubsetRules] = None,
    *,
    index_dir: Optional[str] = None,
    train_stats: Optional[dict] = None,
) -> ClassSelection:
    """The K classes of the subset (steps 1-3 of :mod:`.openimages_subset`), chosen on the
    train statistics of ``root`` (``train_stats``: :func:`read_prepared_classes`, read if
    None) with its hierarchy, the image-level label coverage (when the tree had the file at
    the prepare step; else the heuristic rule, with a warning) and ``rules.merges``."""
    rules = rules or SubsetRules()
    root = PathManager.get_local_path(root)
    stats = train_stats or read_prepared_classes(root, index_dir)
    paths = split_paths(root, "train", required=False)
    if not os.path.isfile(paths["hierarchy"]):
        raise FileNotFoundError(f"OpenImages class hierarchy {paths['hierarchy']} not found")
    hierarchy = read_hierarchy(paths["hierarchy"])
    merges = {}
    if rules.merges:
        descriptions = dict(zip(stats["mids"], stats["names"]))
        merges, problems = read_class_merges(rules.merges, descriptions)
        if problems:
            _warn_once(
                f"OpenImages merges {rules.merges}: {len(problems)} row(s) skipped "
                f"(e.g. {'; '.join(problems[:3])})"
            )
    unknown_leaves = set(hierarchy.leaves) - set(stats["mids"])
    if unknown_leaves:
        _warn_once(
            f"OpenImages hierarchy {paths['hierarchy']}: {len(unknown_leaves)} leaf class(es) "
            f"missing from the class descriptions (e.g. {sorted(unknown_leaves)[:3]}); they have "
            "no boxes here."
        )
    coverage = stats["coverage"]
    if coverage is None:
        tried = [os.path.join(root, n) for n in IMAGE_LABEL_NAMES["train"]]
        _warn_once(
            f"OpenImages at {root}: no human-verified image-level label file (tried {tried} and "
            "annotations/ at the prepare step); classes annotated for only a subset of their "
            f"images are chosen by our heuristic rule (group-of share > max_group_fraction "
            f"{rules.max_group_fraction} or < min_images {rules.min_images} training images), not "
            f"the paper's rule (boxes on fewer than min_box_coverage {rules.min_box_coverage} of "
            "the positive images); with the file, run again: "
            f"{_prepare_command(root, 'train', index_dir)}"
        )
    else:
        _log_coverage(coverage, "prepared file", once=True)
        logger.info(
            f"OpenImages at {root}: classes annotated for only a subset of their images are chosen "
            f"by the paper's rule: boxes on fewer than min_box_coverage {rules.min_box_coverage} "
            f"of the positive images of {coverage['path']}."
        )
    return select_classes(
        stats["mids"], stats["names"], stats["label_stats"], hierarchy, rules, merges, coverage
    )


def _log_steps(rows: List[dict], root: str, split: str) -> None:
    lines = [f"{'step':<16} {'classes':>7} {'images':>9} {'boxes/samples':>13}  notes"]
    for r in rows:
        n = r.get("samples", r.get("boxes", 0))
        notes = ", ".join(
            f"{k}={v}"
            for k, v in r.items()
            if k not in ("step", "classes", "images", "boxes", "samples")
        )
        lines.append(f"{r['step']:<16} {r['classes']:>7} {r['images']:>9} {n:>13}  {notes}")
    logger.info(f"OpenImages {split} subset at {root}:\n" + "\n".join(lines))


def _dicts(index: dict, root: str, selection: ClassSelection, chosen: np.ndarray) -> List[dict]:
    """One dict per chosen box (ascending, hence grouped by image)."""
    box_image = index["box_image"]
    labels = selection.label_map[index["box_label"]].tolist() if len(box_image) else []
    starts = np.searchsorted(box_image, np.arange(len(index["image_ids"]) + 1)).tolist()
    chosen_images = box_image[chosen].tolist()
    chosen = chosen.tolist()
    prefix = os.path.join(root, "")
    sizes = index["sizes"].tolist()
    dicts: List[dict] = []
    last, anns, record = -1, None, None
    for j, i in zip(chosen, chosen_images):
        a = starts[i]
        if i != last:
            w, h = sizes[i]
            xyxy = np.round(
                index["box_xyxy"][a : starts[i + 1]].astype(np.float64) * [w, h, w, h], 3
            ).tolist()
            anns = [
                {"bbox": box, "bbox_mode": BoxMode.XYXY_ABS, "category_id": labels[a + t]}
                for t, box in enumerate(xyxy)
            ]
            record = {
                "file_name": prefix + index["file_names"][i],
                "image_id": index["image_ids"][i],
                "height": h,
                "width": w,
            }
            last = i
        dicts.append(dict(record, label=labels[j], annotations=anns, target_object=j - a))
    return dicts


def load_openimages_dicts(
    root: str,
    split: str,
    rules: Optional[SubsetRules] = None,
    *,
    index_dir: Optional[str] = None,
    report: Optional[dict] = None,
) -> List[dict]:
    """Load one split of the paper's OpenImages subset as detectron2 'mask' dicts, from the
    prepared files (:func:`prepare_openimages`).

    Args:
        root: the tree (see :mod:`.openimages_index`).
        split: "train", "val" or "test"; only train is clipped to ``rules.max_per_class``.
        rules: :class:`SubsetRules` (default: the paper's cap, the image-level label
            rule with ``min_box_coverage`` 0.8 or the heuristic without the label file,
            the shipped merge file).
        index_dir: where the prepared files are (default ``root``).
        report: a dict to fill with ``selection`` (:class:`ClassSelection`), ``steps``
            (counts per step on this split, as logged) and ``stats`` (reader counters).

    Returns:
        list[dict], one per sample (see the module docstring).
    """
    rules = rules or SubsetRules()
    root = PathManager.get_local_path(root)
    index = read_prepared_index(root, split, index_dir)
    _log_index(index, root, split, "prepared file")
    train_stats = read_prepared_classes(root, index_dir)
    if list(index["mids"]) != list(train_stats["mids"]):
        raise ValueError(
            f"OpenImages {split} at {root} was prepared with other class descriptions than "
            f"train; run again: {_prepare_command(root, f'train {split}', index_dir)}"
        )
    selection = get_openimages_classes(root, rules, index_dir=index_dir, train_stats=train_stats)
    cap = rules.max_per_class if split == "train" else 0
    chosen, counts = mask_samples(index, selection.label_map, cap, rules.seed)
    rows = step_counts(index, selection, counts)
    _log_steps(rows, root, split)
    names = dict(zip(train_stats["mids"], train_stats["names"]))
    by_rule = {
        m: why
        for m, why in selection.dropped.items()
        if why not in ("parent class", "not in the hierarchy")
    }
    if by_rule:
        shown = "; ".join(f"{names.get(m, m)} ({why})" for m, why in list(by_rule.items())[:20])
        logger.info(
            f"OpenImages: {len(by_rule)} leaf class(es) dropped by the {selection.annotation_rule} "
            f"rule: {shown}"
        )
    if selection.merges_applied:
        shown = ", ".join(
            f"{names.get(a, a)} -> {names.get(b, b)}" for a, b in selection.merges_applied
        )
        logger.info(f"OpenImages: {len(selection.merges_applied)} class(es) merged: {shown}")
    with gc_paused():
        dicts = _dicts(index, root, selection, chosen)
    if report is not None:
        report.update(selection=selection, steps=rows, stats=dict(index["stats"]))
    return dicts


def _load_registered(
    name: str, root: str, split: str, rules: SubsetRules, index_dir: Optional[str] = None
) -> List[dict]:
    check_dataset_root(name, root, "put the OpenImages tree there (see docs/datasets.md)")
    report: dict = {}
    dicts = load_openimages_dicts(root, split, rules, index_dir=index_dir, report=report)
    sel: ClassSelection = report["selection"]
    classes = {
        "thing_classes": list(sel.names),
        "label_names": list(sel.mids),
        "class_members": [list(m) for m in sel.members],
        "num_classes": len(sel.mids),
    }
    set_class_metadata(name, root, classes)
    meta = MetadataCatalog.get(name)
    meta.subset_steps = report["steps"]  # counts of the last load (plain data)
    meta.annotation_rule = sel.annotation_rule
    return dicts


def register_openimages(
    name: str,
    root: str,
    split: str,
    rules: Optional[SubsetRules] = None,
    *,
    index_dir: Optional[str] = None,
) -> None:
    """Register one split of the OpenImages subset in DatasetCatalog (lazily: nothing is
    read now).

    MetadataCatalog gets ``evaluator_type="classification"``, ``image_root``, ``split``,
    ``subset="leaf_mask"``, ``subset_rules`` now, and ``thing_classes`` (display names of
    the K classes), ``label_names`` (their mids), ``class_members`` (mids merged into each),
    ``num_classes``, ``subset_steps`` (the logged counts) and ``annotation_rule`` (which
    rule found the classes annotated for only a subset: ``"image-level labels"``, the
    paper's, or ``"heuristic"``) at the first ``DatasetCatalog.get(name)``, from the
    prepared files (in ``index_dir``, default ``root``; a missing one is a
    :class:`.catalog.DatasetNotPreparedError` naming the prepare command).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown OpenImages split {split!r}; expected one of {SPLITS}")
    rules = rules or SubsetRules()
    load = functools.partial(_load_registered, name, root, split, rules, index_dir)
    register_lazy(name, load, root, split, subset="leaf_mask", subset_rules=rules.as_dict())


# The builtin names live with the others (registered lazily at import):
from .builtin import PREDEFINED_SPLITS_OPENIMAGES, register_all_openimages  # noqa: E402,F401
