"""The paper's OpenImages subset (appendix A.2): which classes, which samples.

Steps, in the paper's order, each logged with its counts (:class:`ClassSelection.steps`):

1. **leaf**: keep the leaf classes of ``bbox_labels_600_hierarchy.json`` (no
   ``Subcategory`` anywhere in the tree; "Part" lists do not make a parent). Boxable
   classes missing from the hierarchy are dropped too.
2. **fully annotated**: the paper drops the classes for which "the dataset has bounding
   boxes for only a subset of images". Two rules, computed on the **train** split:

   * **image-level labels** (the paper's rule, used when the human-verified image-level
     label file ``oidv6-train-annotations-human-imagelabels-boxable.csv`` is in the
     tree): a class is annotated for a subset when its boxes cover fewer than
     ``SubsetRules.min_box_coverage`` (default 0.8) of its verified-positive images
     (``Confidence`` 1), counted over the indexed train images
     (:func:`.openimages_index.image_label_coverage`). A class whose boxes cover every
     positive image is kept whatever its size or group-of share; a class with boxes but
     no positive image-level label is kept (nothing says it is partial). The 0.8 is
     ours: the paper names the rule, not a threshold; every dropped class is logged
     with its fraction, so the threshold can be checked against the data.
   * **heuristic** (the fallback when that file is absent, logged as a WARNING):

     - ``max_group_fraction`` (default 0.5): drop a class when more than this fraction
       of its boxes are ``IsGroupOf`` (one box around several instances: its objects
       are not boxed one by one, so a 'mask' sample would not be one object);
     - ``min_images`` (default 20): drop a class with fewer training images than this
       (too few to learn or evaluate; our addition, not the paper's).

     Both are our operational reading of the paper's sentence; neither threshold comes
     from the paper.

   Under both rules a class without any training box is dropped. The rule used is
   recorded in the step's ``rule`` note (``image-level labels`` / ``heuristic``), in the
   logged table and in ``MetadataCatalog`` (``subset_steps``, ``annotation_rule``).
3. **merged**: merge confusing classes through a mapping file (``Source,Target`` rows,
   display names or mids; default ``configs/openimages/class_merges.csv``, see its
   header for where it comes from). The class of a merged group is its final target
   (chains are followed); a group exists when at least one member survived steps 1-2
   (the target's own boxes count only if the target survived). Classes are ordered by
   the target's mid; ``label`` = position.
4. **mask**: one sample per box of a kept class (its ``target_object``); every other box
   of the image, of any class, stays in ``annotations`` and is painted by the mapper.
5. **clipped** (train only): at most ``max_per_class`` samples per class (paper: 50,000),
   chosen deterministically: the samples of a class are ranked by a CRC32 of
   ``"<seed>:<ImageID>:<position of the box among the image's rows>"`` and the lowest
   ranks kept, so adding or removing other images does not change the choice.

Classes depend on the train split only; val and test use the same classes (and are not
clipped). This module does not import detectron2.
"""

import csv
import logging
import os
import zlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:  # builtin.py imports SubsetRules at start-up; the CSV readers load with a dataset
    from .openimages_files import Hierarchy

__all__ = [
    "DEFAULT_MERGES",
    "SubsetRules",
    "ClassSelection",
    "read_class_merges",
    "select_classes",
    "mask_samples",
    "step_counts",
]

logger = logging.getLogger(__name__)

_REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
DEFAULT_MERGES = os.path.join(_REPO, "configs", "openimages", "class_merges.csv")


@dataclass(frozen=True)
class SubsetRules:
    """Parameters of the subset (see the module docstring).

    min_box_coverage: with the image-level label file (the paper's rule), classes whose
        boxes cover fewer than this fraction of their verified-positive training images
        are dropped; 0.0 keeps every class.
    min_images: heuristic rule (no image-level label file): classes with fewer training
        images (with a box of them) are dropped.
    max_group_fraction: heuristic rule: classes whose share of IsGroupOf boxes (train)
        exceeds this are dropped; 1.0 keeps every class.
    max_per_class: samples per class on train (0: no limit). The paper: 50,000.
    merges: path of the merge mapping; "" for none.
    seed: changes which samples the clipping keeps.
    """

    min_box_coverage: float = 0.8
    min_images: int = 20
    max_group_fraction: float = 0.5
    max_per_class: int = 50000
    merges: str = DEFAULT_MERGES
    seed: int = 0

    def __post_init__(self):
        if not 0.0 <= self.min_box_coverage <= 1.0:
            raise ValueError(
                f"SubsetRules.min_box_coverage = {self.min_box_coverage}: must be in [0, 1]"
            )
        if self.min_images < 0:
            raise ValueError(f"SubsetRules.min_images = {self.min_images}: must be >= 0")
        if not 0.0 <= self.max_group_fraction <= 1.0:
            raise ValueError(
                f"SubsetRules.max_group_fraction = {self.max_group_fraction}: must be in [0, 1]"
            )
        if self.max_per_class < 0:
            raise ValueError(
                f"SubsetRules.max_per_class = {self.max_per_class}: must be >= 0 (0: no limit)"
            )

    def as_dict(self) -> dict:
        return asdict(self)


class ClassSelection(NamedTuple):
    """The K classes of the subset.

    mids, names: the class (merge target) of each label 0..K-1.
    members: the original mids whose boxes carry each label.
    label_map: int32 (L,), boxable class index (descriptions order) -> label, -1 = none.
    dropped: ``{mid: reason}`` of every boxable class without a label.
    merges_applied: ``[(source mid, target mid)]`` that changed a surviving class.
    steps: ``[{"step", "classes", "alive", ...}]`` per class step: the number of classes,
        ``alive`` bool (L,) the boxable classes still in, and notes (drop / merge counts,
        the annotation rule); :func:`step_counts` adds the images and boxes of a split.
    annotation_rule: ``"image-level labels"`` or ``"heuristic"`` (step 2).
    """

    mids: List[str]
    names: List[str]
    members: List[List[str]]
    label_map: np.ndarray
    dropped: Dict[str, str]
    merges_applied: List[Tuple[str, str]]
    steps: List[dict]
    annotation_rule: str = "heuristic"


def read_class_merges(path: str, descriptions: Dict[str, str]) -> Tuple[Dict[str, str], List[str]]:
    """``({source mid: target mid}, problems)`` from a merge file.

    Format: CSV with the header ``Source,Target[,...]`` (extra columns, e.g. a reason, are
    ignored); lines starting with ``#`` and blank lines are skipped. Source and Target are
    display names of ``descriptions`` or mids (``/m/...``, ``/g/...``). A row naming an
    unknown class or an ambiguous name is skipped and reported in ``problems`` (a merge
    file written for another release may name classes this one lacks).

    Raises ValueError naming the file: bad header, a source mapped to two targets, a
    cycle (A -> B -> A).
    """
    by_name: Dict[str, List[str]] = {}
    for mid, name in descriptions.items():
        by_name.setdefault(name.casefold(), []).append(mid)

    def resolve(text: str) -> Tuple[Optional[str], str]:
        text = text.strip()
        if text in descriptions:
            return text, ""
        hits = by_name.get(text.casefold(), [])
        if len(hits) == 1:
            return hits[0], ""
        return None, ("ambiguous name (" + ", ".join(hits) + ")") if hits else "unknown class"

    merges: Dict[str, str] = {}
    problems: List[str] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        lines = [
            (n, line)
            for n, line in enumerate(f, 1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    rows = list(zip((n for n, _ in lines), csv.reader(line for _, line in lines)))
    if not rows or [c.strip() for c in rows[0][1][:2]] != ["Source", "Target"]:
        got = rows[0][1] if rows else None
        raise ValueError(f"{path}: expected the header 'Source,Target[,...]', got {got}")
    for lineno, row in rows[1:]:
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            problems.append(f"{path}:{lineno}: expected 'Source,Target', got {row}")
            continue
        (src, why_s), (dst, why_d) = resolve(row[0]), resolve(row[1])
        if src is None or dst is None:
            bad = [f"{t.strip()!r}: {w}" for t, w in ((row[0], why_s), (row[1], why_d)) if w]
            problems.append(f"{path}:{lineno}: {'; '.join(bad)}")
            continue
        if src == dst:
            continue
        if merges.get(src, dst) != dst:
            raise ValueError(f"{path}:{lineno}: {row[0].strip()} is merged into two classes")
        merges[src] = dst
    for start in merges:
        seen, node = {start}, start
        while node in merges:
            node = merges[node]
            if node in seen:
                raise ValueError(
                    f"{path}: the merges form a cycle through {descriptions.get(node, node)}"
                )
            seen.add(node)
    return merges, problems


def _final(mid: str, merges: Dict[str, str]) -> str:
    while mid in merges:
        mid = merges[mid]
    return mid


def select_classes(
    mids: Sequence[str],
    names: Sequence[str],
    train_label_stats: np.ndarray,
    hierarchy: "Hierarchy",
    rules: SubsetRules,
    merges: Optional[Dict[str, str]] = None,
    coverage: Optional[dict] = None,
) -> ClassSelection:
    """Steps 1-3 on the train statistics (``label_stats`` of the train index, aligned with
    ``mids``). ``merges``: from :func:`read_class_merges` (None: no merging).
    ``coverage``: ``positive_images`` and ``boxed_positive_images`` per class from
    :func:`.openimages_index.image_label_coverage` (the paper's rule for step 2), or None
    (the heuristic rule)."""
    merges = merges or {}
    stats = np.asarray(train_label_stats, dtype=np.int64).reshape(len(mids), 4)
    dropped: Dict[str, str] = {}
    leaves = set(hierarchy.leaves)
    in_tree = set(hierarchy.classes)

    def row(step: str, alive: Sequence[int], classes: Optional[int] = None, **notes) -> dict:
        mask = np.zeros(len(mids), dtype=bool)
        mask[list(alive)] = True
        return dict(
            step=step, classes=len(alive) if classes is None else classes, alive=mask, **notes
        )

    steps = [row("boxable", range(len(mids)))]
    alive = []
    for i, mid in enumerate(mids):
        if mid not in in_tree:
            dropped[mid] = "not in the hierarchy"
        elif mid not in leaves:
            dropped[mid] = "parent class"
        else:
            alive.append(i)
    steps.append(row("leaf", alive))

    if coverage is not None:
        kept, notes = _partly_boxed_by_image_labels(mids, stats, alive, coverage, rules, dropped)
    else:
        kept, notes = _partly_boxed_by_heuristic(mids, stats, alive, rules, dropped)
    steps.append(row("fully annotated", kept, **notes))

    groups: Dict[str, List[str]] = {}
    applied = []
    for i in kept:
        target = _final(mids[i], merges)
        groups.setdefault(target, []).append(mids[i])
        if target != mids[i]:
            applied.append((mids[i], target))
    targets = sorted(groups)
    label_of = {m: k for k, t in enumerate(targets) for m in groups[t]}
    label_map = np.array([label_of.get(m, -1) for m in mids], dtype=np.int32)
    name_of = dict(zip(mids, names))
    steps.append(row("merged", kept, classes=len(targets), merged_classes=len(applied)))
    return ClassSelection(
        mids=targets,
        names=[name_of.get(t, t) for t in targets],
        members=[sorted(groups[t]) for t in targets],
        label_map=label_map,
        dropped=dropped,
        merges_applied=applied,
        steps=steps,
        annotation_rule=notes["rule"],
    )


def _partly_boxed_by_image_labels(
    mids, stats, alive, coverage, rules, dropped
) -> Tuple[List[int], dict]:
    """Step 2, the paper's rule: boxes on fewer than ``min_box_coverage`` of the class's
    verified-positive training images."""
    positive = np.asarray(coverage["positive_images"], dtype=np.int64)
    boxed = np.asarray(coverage["boxed_positive_images"], dtype=np.int64)
    if len(positive) != len(mids) or len(boxed) != len(mids):
        raise ValueError(
            f"image-level coverage has {len(positive)} classes, the train index {len(mids)}"
        )
    kept: List[int] = []
    n_none = n_partial = n_unlabelled = 0
    for i in alive:
        if stats[i, 0] == 0:
            dropped[mids[i]] = "no training boxes"
            n_none += 1
        elif positive[i] and boxed[i] / positive[i] < rules.min_box_coverage:
            dropped[mids[i]] = (
                f"boxes on {boxed[i]}/{positive[i]} = {boxed[i] / positive[i]:.2f} of its positive "
                f"training images < min_box_coverage {rules.min_box_coverage}"
            )
            n_partial += 1
        else:
            n_unlabelled += int(positive[i] == 0)
            kept.append(i)
    notes = dict(
        rule="image-level labels",
        min_box_coverage=rules.min_box_coverage,
        dropped_partly_boxed=n_partial,
        dropped_no_boxes=n_none,
        kept_without_image_labels=n_unlabelled,
    )
    return kept, notes


def _partly_boxed_by_heuristic(mids, stats, alive, rules, dropped) -> Tuple[List[int], dict]:
    """Step 2 without image-level labels: our group-of share and min-images rules."""
    kept: List[int] = []
    n_few = n_group = 0
    for i in alive:
        images, boxes, group = stats[i, 0], stats[i, 1], stats[i, 2]
        if images < max(1, rules.min_images):  # a class without training boxes is never kept
            dropped[mids[i]] = f"{images} training images < min_images {max(1, rules.min_images)}"
            n_few += 1
        elif boxes and group / boxes > rules.max_group_fraction:
            dropped[mids[i]] = (
                f"{group}/{boxes} = {group / boxes:.2f} of its training boxes are group-of "
                f"> max_group_fraction {rules.max_group_fraction}"
            )
            n_group += 1
        else:
            kept.append(i)
    return kept, dict(rule="heuristic", dropped_few_images=n_few, dropped_group_of=n_group)


def mask_samples(
    index: dict, label_map: np.ndarray, max_per_class: int = 0, seed: int = 0
) -> Tuple[np.ndarray, dict]:
    """Steps 4-5: the boxes of ``index`` that become samples.

    Returns (int64 indices into the index's boxes, ascending; counts: ``mask_samples``,
    ``mask_images`` (before clipping), ``samples``, ``images`` (after), ``clipped_classes``
    and, when clipping, ``clipped`` = max_per_class). ``max_per_class`` 0 keeps every
    sample (val / test)."""
    labels = label_map[index["box_label"]] if len(index["box_label"]) else np.zeros(0, np.int32)
    chosen = np.flatnonzero(labels >= 0)
    counts = {
        "mask_samples": int(len(chosen)),
        "mask_images": int(len(np.unique(index["box_image"][chosen]))),
        "clipped_classes": 0,
    }
    if max_per_class > 0 and len(chosen):
        per_class = np.bincount(labels[chosen])
        full = np.flatnonzero(per_class > max_per_class)
        if len(full):
            box_image = index["box_image"]
            # position of each box among its image's rows (box_image is ascending)
            first = np.searchsorted(box_image, box_image, side="left")
            ordinal = np.arange(len(box_image)) - first
            ids = index["image_ids"]
            drop = []
            for k in full.tolist():
                members = chosen[labels[chosen] == k]
                keys = np.fromiter(
                    (
                        zlib.crc32(f"{seed}:{ids[box_image[j]]}:{ordinal[j]}".encode())
                        for j in members.tolist()
                    ),
                    dtype=np.int64,
                    count=len(members),
                )
                order = np.lexsort((members, keys))  # ties: the earlier box
                drop.append(members[order[max_per_class:]])
            chosen = np.setdiff1d(chosen, np.concatenate(drop), assume_unique=True)
            counts["clipped_classes"] = int(len(full))
    if max_per_class > 0:
        counts["clipped"] = int(max_per_class)
    counts["samples"] = int(len(chosen))
    counts["images"] = int(len(np.unique(index["box_image"][chosen])))
    return chosen, counts


def step_counts(
    index: dict, selection: ClassSelection, mask_counts: Optional[dict] = None
) -> List[dict]:
    """The steps of ``selection`` with the ``images`` and ``boxes`` of ``index`` (one
    split) still in after each, plus the 'mask' and 'clipped' steps from ``mask_counts``
    (:func:`mask_samples`): a table for logs and reports (no arrays)."""
    out = []
    box_image, box_label = index["box_image"], index["box_label"]
    for s in selection.steps:
        alive = s["alive"][box_label] if len(box_label) else np.zeros(0, dtype=bool)
        row = {k: v for k, v in s.items() if k != "alive"}
        row.update(images=int(len(np.unique(box_image[alive]))), boxes=int(alive.sum()))
        out.append(row)
    if mask_counts is not None:
        k, c = len(selection.mids), mask_counts
        out.append(dict(step="mask", classes=k, images=c["mask_images"], samples=c["mask_samples"]))
        if "clipped" in c:
            row = dict(step="clipped", classes=k, images=c["images"], samples=c["samples"])
            out.append(dict(row, clipped_classes=c["clipped_classes"], max_per_class=c["clipped"]))
    return out
