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

The index of a split (CSV rows and image sizes) is cached (:mod:`.index_cache`), and so
are the per-class counts of the train image-level label file; the subset is computed
from them at each load (seconds), so changing the rules, the hierarchy
or the merge file needs no re-indexing. Classes come from the train split; loading val
or test reads the train statistics from a small cache (or indexes train once).
"""

import functools
import logging
import os
from typing import List, Optional

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.structures import BoxMode
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import log_first_n

from . import index_cache
from .catalog import register_lazy, set_class_metadata
from .openimages_files import read_hierarchy
from .openimages_index import (
    INFO_COUNTERS,
    SKIP_COUNTERS,
    IMAGE_LABEL_NAMES,
    SPLITS,
    build_index,
    image_label_coverage,
    index_inputs,
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

__all__ = [
    "SPLITS",
    "SubsetRules",
    "load_openimages_index",
    "get_openimages_classes",
    "load_openimages_dicts",
    "register_openimages",
]

logger = logging.getLogger(__name__)

INDEX_VERSION = 1  # bump when the index format or its semantics change
_STATS_KEYS = ("mids", "names", "label_stats")
_LABEL_COUNTERS = ("bad_rows", "unknown_labels", "bad_image_ids")  # of the image-level label reader


def _warn_once(msg: str) -> None:
    """A warning about the train split's class choice, logged once per process: the
    classes are chosen again (from caches) at every split's load."""
    log_first_n(logging.WARNING, msg, n=1, name=__name__, key="message")


def _cache_key(root: str, split: str) -> tuple:
    return ("openimages", os.path.abspath(root), split)


def load_openimages_index(
    root: str, split: str, *, use_cache: bool = True, num_workers: Optional[int] = None
) -> dict:
    """The index of one split (see :func:`openimages_index.build_index` for its keys), from
    the cache when the CSV, the descriptions and the image folder are unchanged, else
    built (in parallel) and cached. Indexing train also caches its class statistics."""
    root = PathManager.get_local_path(root)
    split_paths(root, split)  # a missing file: FileNotFoundError before anything else
    build = dict(num_workers=num_workers, show_progress=comm.is_main_process())
    if not use_cache:
        index = build_index(root, split, **build)
        _log_index(index, root, split, "indexed, cache off")
        return index

    def save_train_stats(index: dict, fingerprint) -> None:  # what val / test need of train, small
        if split == "train":
            stats_path, stats_key = _stats_cache(root)
            index_cache.save_cached(
                stats_path,
                INDEX_VERSION,
                stats_key,
                fingerprint,
                {k: index[k] for k in _STATS_KEYS},
            )

    index, source = index_cache.load_or_build(
        "openimages",
        _cache_key(root, split),
        INDEX_VERSION,
        index_inputs(root, split),
        lambda: build_index(root, split, **build),
        paths_ok=_paths_ok,
        on_built=save_train_stats,
    )
    _log_index(index, root, split, source)
    return index


def _paths_ok(index: dict) -> bool:
    try:
        return all(
            p.count("/") == 1 and ".." not in p.split("/") and not p.startswith(("/", "\\"))
            for p in index["file_names"]
        )
    except (KeyError, TypeError, AttributeError):
        return False


def _stats_cache(root: str):
    key = ("openimages-train-stats",) + _cache_key(root, "train")[1:]
    return index_cache.cache_path("openimages-stats", key), key


def _train_stats(root: str, use_cache: bool, num_workers: Optional[int]) -> dict:
    """``mids``, ``names``, ``label_stats`` of the train split: the small cache, else the
    train index (built if needed; the small cache is then written)."""
    fingerprint = None
    if use_cache:
        path, key = _stats_cache(root)
        fingerprint = index_cache.tree_fingerprint(*index_inputs(root, "train"))
        cached = index_cache.load_cached(path, INDEX_VERSION, key, fingerprint)
        if cached is not None:
            return cached
    try:
        index = load_openimages_index(root, "train", use_cache=use_cache, num_workers=num_workers)
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"The OpenImages classes are chosen on the train split (hierarchy, annotation rules, "
            f"merges), which is needed to load any split: {e}"
        ) from None
    stats = {k: index[k] for k in _STATS_KEYS}
    if use_cache:
        index_cache.save_cached(path, INDEX_VERSION, key, fingerprint, stats)
    return stats


def _image_label_coverage(
    root: str, use_cache: bool, num_workers: Optional[int], train_index: Optional[dict] = None
) -> Optional[dict]:
    """Per-class positive / boxed-positive image counts of the train image-level label
    file (:func:`openimages_index.image_label_coverage`), None when the tree has no such
    file. Cached like the index (invalidated when the label file, the train CSV, the
    descriptions or the train image folder change); computing them needs the train
    index (``train_index``, else loaded)."""
    labels_path = split_paths(root, "train", required=False)["image_labels"]
    if labels_path is None:
        return None
    build = dict(num_workers=num_workers, show_progress=comm.is_main_process())
    if not use_cache:
        index = train_index or load_openimages_index(
            root, "train", use_cache=False, num_workers=num_workers
        )
        coverage = image_label_coverage(index, labels_path, **build)
        _log_coverage(coverage, "read, cache off")
        return coverage
    dirs, subdirs, files = index_inputs(root, "train")
    coverage, source = index_cache.load_or_build(
        "openimages-labels",
        ("openimages-image-labels",) + _cache_key(root, "train")[1:],
        INDEX_VERSION,
        (dirs, subdirs, [*files, labels_path]),
        lambda: image_label_coverage(
            train_index or load_openimages_index(root, "train", num_workers=num_workers),
            labels_path,
            **build,
        ),
        built="counted",
    )
    _log_coverage(coverage, source)
    return coverage


def _log_coverage(coverage: dict, source: str) -> None:
    s, path = coverage["stats"], coverage["path"]
    logger.info(
        f"OpenImages image-level labels {path} ({source}): {s['rows']} rows, "
        f"{s['positive_rows']} positive, {s['negative_rows']} verified absent; "
        f"{s['positives_outside_index']} positive rows of images without boxes in the train "
        "index left out."
    )
    for key in _LABEL_COUNTERS:
        if s.get(key):
            examples = "; ".join(coverage["examples"].get(key, [])[:3])
            _warn_once(f"OpenImages image-level labels {path}: {key} = {s[key]} (e.g. {examples})")


def _log_index(index: dict, root: str, split: str, source: str) -> None:
    s = index["stats"]
    logger.info(
        f"OpenImages {split} at {root} ({source}): {s['rows']} CSV rows, {s['images']} images, "
        f"{s['boxes']} boxes ({s['group_of_boxes']} group-of, {s['depiction_boxes']} depictions), "
        f"{s['classes']} boxable classes; {s.get('dropped_rows', 0)} rows of images left out, "
        f"{s.get('clipped_boxes', 0)} boxes clipped to the image."
    )
    for key in (*SKIP_COUNTERS, *INFO_COUNTERS):
        if not s.get(key):
            continue
        examples = "; ".join(index["examples"].get(key, [])[:3])
        level = logging.INFO if key in INFO_COUNTERS else logging.WARNING
        logger.log(level, f"OpenImages {split} at {root}: {key} = {s[key]} (e.g. {examples})")


def get_openimages_classes(
    root: str,
    rules: Optional[SubsetRules] = None,
    *,
    use_cache: bool = True,
    num_workers: Optional[int] = None,
    train_stats: Optional[dict] = None,
    train_index: Optional[dict] = None,
) -> ClassSelection:
    """The K classes of the subset (steps 1-3 of :mod:`.openimages_subset`), chosen on the
    train split of ``root`` with its hierarchy, its image-level labels (when the tree has
    them; else the heuristic rule, with a warning) and ``rules.merges``. ``train_stats``
    / ``train_index``: already loaded, to avoid reading them again."""
    rules = rules or SubsetRules()
    root = PathManager.get_local_path(root)
    if train_stats is None and train_index is not None:
        train_stats = {k: train_index[k] for k in _STATS_KEYS}
    stats = train_stats or _train_stats(root, use_cache, num_workers)
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
    coverage = _image_label_coverage(root, use_cache, num_workers, train_index)
    if coverage is None:
        tried = [os.path.join(root, n) for n in IMAGE_LABEL_NAMES["train"]]
        _warn_once(
            f"OpenImages at {root}: no human-verified image-level label file (tried {tried} and "
            "annotations/); classes annotated for only a subset of their images are chosen by our "
            f"heuristic rule (group-of share > max_group_fraction {rules.max_group_fraction} or "
            f"< min_images {rules.min_images} training images), not the paper's rule (boxes on "
            f"fewer than min_box_coverage {rules.min_box_coverage} of the positive images)."
        )
    elif len(coverage["positive_images"]) != len(stats["mids"]):
        raise RuntimeError(
            f"OpenImages at {root}: the image-level label counts do not match the train classes; "
            "delete the index caches (their paths are logged) and reload."
        )
    else:
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
    use_cache: bool = True,
    num_workers: Optional[int] = None,
    report: Optional[dict] = None,
) -> List[dict]:
    """Load one split of the paper's OpenImages subset as detectron2 'mask' dicts.

    Args:
        root: the tree (see :mod:`.openimages_index`).
        split: "train", "val" or "test"; only train is clipped to ``rules.max_per_class``.
        rules: :class:`SubsetRules` (default: the paper's cap, the image-level label
            rule with ``min_box_coverage`` 0.8 or the heuristic without the label file,
            the shipped merge file).
        use_cache: read / write the index cache under ``$ALS_D2_CACHE``.
        num_workers: indexing processes (default ``$ALS_D2_INDEX_WORKERS`` or the CPUs).
        report: a dict to fill with ``selection`` (:class:`ClassSelection`), ``steps``
            (counts per step on this split, as logged) and ``stats`` (reader counters).

    Returns:
        list[dict], one per sample (see the module docstring).
    """
    rules = rules or SubsetRules()
    root = PathManager.get_local_path(root)
    index = load_openimages_index(root, split, use_cache=use_cache, num_workers=num_workers)
    if split == "train":
        train_stats = {k: index[k] for k in _STATS_KEYS}
    else:
        train_stats = _train_stats(root, use_cache, num_workers)
    if list(index["mids"]) != list(train_stats["mids"]):
        raise RuntimeError(
            f"OpenImages {split} at {root} was indexed with other class descriptions than train; "
            "delete the index caches (their paths are logged) and reload."
        )
    selection = get_openimages_classes(
        root,
        rules,
        use_cache=use_cache,
        num_workers=num_workers,
        train_stats=train_stats,
        train_index=index if split == "train" else None,
    )
    cap = rules.max_per_class if split == "train" else 0
    chosen, counts = mask_samples(index, selection.label_map, cap, rules.seed)
    rows = step_counts(index, selection, counts)
    _log_steps(rows, root, split)
    by_rule = {
        m: why
        for m, why in selection.dropped.items()
        if why not in ("parent class", "not in the hierarchy")
    }
    if by_rule:
        names = dict(zip(train_stats["mids"], train_stats["names"]))
        shown = "; ".join(f"{names.get(m, m)} ({why})" for m, why in list(by_rule.items())[:20])
        logger.info(
            f"OpenImages: {len(by_rule)} leaf class(es) dropped by the {selection.annotation_rule} "
            f"rule: {shown}"
        )
    if selection.merges_applied:
        names = dict(zip(train_stats["mids"], train_stats["names"]))
        shown = ", ".join(
            f"{names.get(a, a)} -> {names.get(b, b)}" for a, b in selection.merges_applied
        )
        logger.info(f"OpenImages: {len(selection.merges_applied)} class(es) merged: {shown}")
    dicts = _dicts(index, root, selection, chosen)
    if report is not None:
        report.update(selection=selection, steps=rows, stats=dict(index["stats"]))
    return dicts


def _load_registered(name: str, root: str, split: str, rules: SubsetRules) -> List[dict]:
    report: dict = {}
    dicts = load_openimages_dicts(root, split, rules, report=report)
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
    name: str, root: str, split: str, rules: Optional[SubsetRules] = None
) -> None:
    """Register one split of the OpenImages subset in DatasetCatalog (lazily: nothing is
    read now).

    MetadataCatalog gets ``evaluator_type="classification"``, ``image_root``, ``split``,
    ``subset="leaf_mask"``, ``subset_rules`` now, and ``thing_classes`` (display names of
    the K classes), ``label_names`` (their mids), ``class_members`` (mids merged into each),
    ``num_classes``, ``subset_steps`` (the logged counts) and ``annotation_rule`` (which
    rule found the classes annotated for only a subset: ``"image-level labels"``, the
    paper's, or ``"heuristic"``) at the first ``DatasetCatalog.get(name)``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown OpenImages split {split!r}; expected one of {SPLITS}")
    rules = rules or SubsetRules()
    load = functools.partial(_load_registered, name, root, split, rules)
    register_lazy(name, load, root, split, subset="leaf_mask", subset_rules=rules.as_dict())


# The builtin names live with the others (registered lazily at import):
from .builtin import PREDEFINED_SPLITS_OPENIMAGES, register_all_openimages  # noqa: E402,F401
