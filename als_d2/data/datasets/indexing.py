"""What the dataset index builders share (ImageNet, OpenImages, WSOL metadata).

- :data:`KINDS`: the bad-input policy, stated once: each kind of problem, its severity
  and what happens to the input; the ImageNet, OpenImages and WSOL readers count these
  names (each lists its own in ``COUNTERS``), log them with :func:`problem_messages`, and
  ``tools/check_dataset.py`` reports them;
- :class:`Tally`: counted problems of bad input, with a few examples (file, file:line)
  per counter, the form every index reports them in;
- :func:`clip_box`: a box clipped to its image, empty and clipped boxes counted;
- :func:`count_outside` (with :func:`is_inside`), :func:`is_plain_name`: paths stay inside
  the dataset root;
- :func:`map_in_processes`: a process pool with a tqdm bar, and :func:`default_num_workers`.

It does not import detectron2, so that the pool's worker processes start light.
"""

import logging
import multiprocessing as mp
import os
import sys
from collections import Counter, OrderedDict
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Dict, List, Optional, Sequence, Tuple

__all__ = [
    "KINDS",
    "MAX_EXAMPLES",
    "Tally",
    "clip_box",
    "count_outside",
    "default_num_workers",
    "is_inside",
    "is_plain_name",
    "log_level",
    "map_in_processes",
    "problem_messages",
    "require_folder_in_root",
]

MAX_EXAMPLES = 5

# The bad-input policy of every reader (ImageNet: imagenet_index; OpenImages:
# openimages_files / openimages_index; WSOL metadata: wsol_metadata) and of
# tools/check_dataset.py (which adds the image checks: decoding, hashing). Each reader
# lists the kinds it counts (its ``COUNTERS``); its log takes severity and meaning from
# here (:func:`problem_messages`). Severities:
#   fatal    training or evaluation stops (check_dataset: exit status 1);
#   skipped  the file, image, object, box, row or line is dropped, counted and logged;
#   fixed    used after a documented correction, counted;
#   noted    kept as it is, reported.
FATAL, SKIPPED, FIXED, NOTED = "fatal", "skipped", "fixed", "noted"

# what each kind of problem means, by severity; the index counters keep the readers' names
FATAL_KINDS = {
    "index_error": "the split cannot be indexed (reader error naming the file)",
    "empty_split": "no usable image in the split",
}
SKIPPED_KINDS = {
    "bad_xml": "XML unreadable / too large / malformed / DOCTYPE / no <size>: file ignored",
    "bad_objects": "<object> without name or bndbox, or a bad coordinate: object dropped",
    "bad_csv_groups": (
        "CSV PredictionString group with bad coordinates or incomplete: object dropped"
    ),
    "bad_rows": (
        "OpenImages CSV row with too few fields, a non-numeric / non-finite coordinate, or "
        "(image-level labels) a Confidence other than 1 / 0: row skipped"
    ),
    "bad_lines": (
        "WSOL metadata line with a wrong field count, an empty path or one with a comma, a "
        "non-integer / out-of-range label or size, a non-numeric / non-finite coordinate: "
        "line ignored"
    ),
    "unknown_wnid": "object whose wnid is not a class: object dropped",
    "inverted_boxes": "OpenImages box with XMin > XMax or YMin > YMax: row skipped",
    "degenerate_boxes": "empty or inverted box after clipping: box (row) dropped",
    "unreadable_images": "annotated image whose header cannot be read: image dropped",
    "unlabeled_images": (
        "image without a label (no class folder, CSV row, XML or usable WSOL "
        "class_labels.txt line): image dropped"
    ),
    "unknown_labels": (
        "label that is not a class: ImageNet image whose CSV row / XML names only wnids "
        "not in LOC_synset_mapping.txt, image dropped; OpenImages row whose LabelName is "
        "not in the class descriptions, row skipped"
    ),
    "unknown_folders": "image folder that is not a class: folder dropped",
    "outside_root": (
        "path resolving outside the dataset root (symlink, absolute path, '..'), or an "
        "ImageNet CSV ImageId that is a path: dropped"
    ),
    "bad_image_ids": (
        "OpenImages CSV ImageID that is not a plain file name ('../x', 'a/b'): row skipped"
    ),
    "missing_images": (
        "image listed by the annotations (OpenImages CSV ImageID, WSOL image_ids.txt) "
        "without a file under the image root: image and its boxes dropped"
    ),
    "duplicate_images": (
        "image name seen before in the split: ImageNet keeps both (image_id = relative "
        "path); OpenImages keeps the first file of an ImageID (x.jpg before x.png)"
    ),
    "unboxed_images": (
        "WSOL image without a usable localization.txt box: kept in subset 'all', "
        "dropped in 'context'"
    ),
    "orphan_xml": "XML without an image: ignored",
    "orphan_csv_rows": "CSV row without an image: ignored",
    "orphan_lines": (
        "WSOL class_labels / image_sizes / localization line whose path is not in "
        "image_ids.txt: ignored"
    ),
    "non_image_files": "file that is neither an image nor an annotation: ignored",
    "empty_images": "zero-byte image file: skipped in training, an error in evaluation",
    "undecodable_images": (
        "truncated / corrupt / unknown image data: skipped in training, an error in evaluation"
    ),
    "decompression_bombs": "image above --max-pixels (or a file above --max-file-mb): not decoded",
}
FIXED_KINDS = {
    "rescaled_files": "XML <size> differs from the real image: boxes rescaled",
    "clipped_boxes": "box reaching outside the image ([0, 1] for OpenImages): clipped",
    "bad_flags": "OpenImages Is* flag other than 1 / 0 / -1: taken as -1 (unknown)",
    "format_mismatch": "file content is another format than its extension says: decoded by content",
    "converted_images": "not 8-bit RGB (greyscale, CMYK, palette, alpha, 16-bit): converted to RGB",
    "exif_rotated": (
        "EXIF orientation other than 1: pixels rotated by the mapper, boxes follow "
        "(indexes keep the stored frame)"
    ),
}
NOTED_KINDS = {  # reported for the user to judge; nothing is changed or dropped
    "duplicate_content": "byte-identical to another image (same or other split): both kept",
    "unsized_images": (
        "WSOL image without a usable image_sizes.txt line: kept without a size, its boxes "
        "not clipped"
    ),
}
# kind -> (severity, what it means), in report order
KINDS: "OrderedDict[str, Tuple[str, str]]" = OrderedDict(
    (kind, (severity, meaning))
    for severity, kinds in (
        (FATAL, FATAL_KINDS),
        (SKIPPED, SKIPPED_KINDS),
        (FIXED, FIXED_KINDS),
        (NOTED, NOTED_KINDS),
    )
    for kind, meaning in kinds.items()
)
IMAGE_FAILURES = ("empty_images", "undecodable_images", "decompression_bombs")


def log_level(kind: str) -> int:
    """The logging level of a counted ``kind``: INFO for a documented correction (fixed),
    WARNING otherwise (fatal, skipped, noted; also a kind missing from :data:`KINDS`)."""
    return logging.INFO if KINDS.get(kind, (None,))[0] == FIXED else logging.WARNING


def problem_messages(
    where: str, stats: Dict[str, int], examples: Dict[str, List[str]], kinds: Sequence[str]
) -> List[Tuple[int, str]]:
    """``[(logging level, message)]``, one per kind of ``kinds`` counted in ``stats``, in
    that order: ``"<where>: <kind> = <n> [<severity>: <meaning>] (e.g. <3 examples>)"``,
    severity and meaning from :data:`KINDS` (what every reader logs)."""
    out = []
    for kind in kinds:
        n = stats.get(kind)
        if not n:
            continue
        severity, meaning = KINDS.get(kind, ("unknown", "not in indexing.KINDS"))
        shown = "; ".join(examples.get(kind, [])[:3])
        out.append(
            (log_level(kind), f"{where}: {kind} = {n} [{severity}: {meaning}] (e.g. {shown})")
        )
    return out


class Tally:
    """Counts of problems (``stats``: counter -> number) and up to ``max_examples``
    examples each (``examples``: counter -> [str]; ``max_examples`` None keeps all)."""

    def __init__(self, max_examples: Optional[int] = MAX_EXAMPLES):
        self.stats: Counter = Counter()
        self.examples: Dict[str, List[str]] = {}
        self.max_examples = max_examples

    def add(self, key: str, example: str, n: int = 1) -> None:
        """Count ``n`` problems of kind ``key``; keep ``example`` if there is room."""
        self.stats[key] += n
        kept = self.examples.setdefault(key, [])
        if self.max_examples is None or len(kept) < self.max_examples:
            kept.append(example)

    def merge(self, other: "Tally") -> None:
        """Add the counts of ``other``, and its examples while there is room."""
        for key, n in other.stats.items():
            self.stats[key] += n
            kept = self.examples.setdefault(key, [])
            room = None if self.max_examples is None else max(0, self.max_examples - len(kept))
            kept.extend(other.examples.get(key, [])[:room])


def is_inside(path: str, real_root: str) -> bool:
    """Whether ``path`` resolves (symlinks followed) to ``real_root`` or below it."""
    real = os.path.realpath(path)
    return real == real_root or real.startswith(os.path.join(real_root, ""))


def count_outside(path: str, real_root: str, tally: Tally, shown: Optional[str] = None) -> bool:
    """The readers' path-safety check: whether ``path`` resolves (symlinks followed) outside
    ``real_root``; such a path is counted as ``outside_root`` (example ``"<shown or path> ->
    <target>"``) and the caller drops it. Names read from files (CSV ImageIds) must also
    pass :func:`is_plain_name` before they are joined to a folder."""
    if is_inside(path, real_root):
        return False
    tally.add("outside_root", f"{shown or path} -> {os.path.realpath(path)}")
    return True


def clip_box(box: Tuple[float, ...], width: float, height: float, tally: Tally, what: str):
    """``box`` (x0, y0, x1, y1 in pixels) clipped to the image [0, width] x [0, height];
    None when nothing is left (counted: ``degenerate_boxes``, inverted boxes included). A
    box that clipping changed is counted (``clipped_boxes``). Examples: ``"<what> <box>: ..."``."""
    x0, y0, x1, y1 = box
    clipped = (
        min(max(x0, 0.0), width),
        min(max(y0, 0.0), height),
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
    )
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        tally.add(
            "degenerate_boxes",
            f"{what} {box}: empty after clipping to the image ({width}x{height})",
        )
        return None
    if clipped != box:
        tally.add("clipped_boxes", f"{what} {box}: clipped to the image ({width}x{height})")
    return clipped


def require_folder_in_root(folder: str, real_root: str, what: str) -> None:
    """FileNotFoundError when ``folder`` (``what``: e.g. "OpenImages image folder") is
    missing, ValueError when it resolves outside ``real_root``; both name it."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{what} {folder} not found")
    if not is_inside(folder, real_root):
        raise ValueError(
            f"{what} {folder} resolves to {os.path.realpath(folder)}, outside the dataset root "
            f"{real_root}: link the whole root instead of a folder inside it"
        )


def is_plain_name(name: str) -> bool:
    """A file name without directory parts (``..``, separators, NUL, drive): what an
    image id read from a CSV must be before it is joined to a folder."""
    return (
        bool(name)
        and name not in (".", "..")
        and not any(c in name for c in ("/", "\\", "\0"))
        and not os.path.isabs(name)
        and os.path.basename(name) == name
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


def map_in_processes(
    fn: Callable,
    tasks: Sequence,
    num_workers: int,
    desc: str,
    unit: str = "task",
    show_progress: bool = False,
) -> list:
    """``[fn(t) for t in tasks]`` in order, in up to ``num_workers`` processes (serial for
    one worker or one task), with a tqdm bar when ``show_progress``. Processes fork where
    they can, else spawn."""
    from tqdm import tqdm

    bar = dict(total=len(tasks), desc=desc, unit=unit, disable=None if show_progress else True)
    if num_workers <= 1 or len(tasks) <= 1:
        return [fn(t) for t in tqdm(tasks, **bar)]
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    with ProcessPoolExecutor(
        max_workers=min(num_workers, len(tasks)), mp_context=mp.get_context(method)
    ) as pool:
        return list(tqdm(pool.map(fn, tasks, chunksize=1), **bar))  # all submitted now
