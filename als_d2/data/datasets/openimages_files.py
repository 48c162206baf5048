"""Readers of the OpenImages V6 detection files, in the formats they are published in.

``oidv6-class-descriptions-boxable.csv`` / ``class-descriptions-boxable.csv``: no header
(a ``LabelName,DisplayName`` header line is tolerated), one class per line::

    /m/011k07,Tortoise

``bbox_labels_600_hierarchy.json``: nested ``{"LabelName": mid, "Subcategory": [...]}``
(some nodes also list ``"Part": [...]``), rooted at ``/m/0bl9f`` ("Entity", not a class).

``oidv6-train-annotations-bbox.csv``, ``validation-annotations-bbox.csv``,
``test-annotations-bbox.csv``: a header naming the columns, then one row per box::

    ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside[,XClick1X,...]
    000002b66c9c498e,xclick,/m/01g317,1,0.012500,0.195312,0.148438,0.587500,0,1,0,0,0

Coordinates are normalised to [0, 1]; the flags are 1, 0 or -1 (unknown). Columns are
found by name (the V6 train file has eight more, the XClick points, which are not used;
``Source`` and ``Confidence``, always 1 for boxes, are not used either). The train file
has ~14.6M rows: :func:`read_bbox_csv` streams it in byte ranges, in parallel, keeping
compact arrays (``array``/numpy), never one Python object per row.

``oidv6-train-annotations-human-imagelabels-boxable.csv`` (V5: ``train-annotations-human-
imagelabels-boxable.csv``; also ``validation-...`` / ``test-...``, not read): the
human-verified image-level labels of the boxable classes, one row per (image, class)::

    ImageID,Source,LabelName,Confidence
    000002b66c9c498e,verification,/m/014j1m,0

``Confidence`` 1: verified present, 0: verified absent. :func:`read_image_labels_csv`
streams it as the box CSVs are and keeps the positive rows (the subset rule "classes
annotated with boxes for only a subset of their images" compares them with the boxes).

Bad input is counted (``tally``) and named by file and line, the row skipped or fixed;
what each kind means is the policy table :data:`.indexing.KINDS`. A file that cannot be
used at all (missing columns, a hierarchy that is not the published structure, a class
listed twice) raises ``ValueError`` naming it. This module does not import detectron2
(worker processes).
"""

import csv
import json
import math
import os
from array import array
from dataclasses import dataclass
from typing import Callable, Dict, List, NamedTuple, Optional, Set, Tuple

import numpy as np

from .indexing import Tally, is_plain_name, map_in_processes

__all__ = [
    "BBOX_COLUMNS",
    "FLAG_COLUMNS",
    "HIERARCHY_ROOT",
    "MAX_HIERARCHY_BYTES",
    "Hierarchy",
    "BoxRows",
    "read_class_descriptions",
    "read_hierarchy",
    "read_bbox_header",
    "read_bbox_csv",
    "IMAGE_LABEL_COLUMNS",
    "ImageLabelRows",
    "read_image_labels_header",
    "read_image_labels_csv",
]

HIERARCHY_ROOT = "/m/0bl9f"
MAX_HIERARCHY_BYTES = 16 << 20  # the published file is ~90 KiB
BBOX_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")
IMAGE_LABEL_COLUMNS = ("ImageID", "LabelName", "Confidence")
FLAG_COLUMNS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
GROUP_OF = FLAG_COLUMNS.index("IsGroupOf")
DEPICTION = FLAG_COLUMNS.index("IsDepiction")
CHUNK_BYTES = 32 << 20  # one parsing task (~250k rows of the V6 train file)
_FLAG_VALUES = {"1": 1, "0": 0, "-1": -1, "": -1}


# ----------------------------------------------------------------------------------------
# Class descriptions and hierarchy


def read_class_descriptions(path: str) -> Dict[str, str]:
    """``{mid: display name}`` in file order.

    Raises ValueError naming the file and line for a line that is not ``mid,name`` (empty
    name, extra fields) or a mid listed twice, and for a file without classes.
    """
    out: Dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        for row in reader:
            line = f"{path}:{reader.line_num}"
            if not row or not any(c.strip() for c in row):
                continue
            if len(out) == 0 and [c.strip() for c in row] == ["LabelName", "DisplayName"]:
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise ValueError(f"{line}: expected 'LabelName,DisplayName', got {row}")
            mid, name = row[0].strip(), row[1].strip()
            if mid in out:
                raise ValueError(f"{line}: class {mid} is listed twice")
            out[mid] = name
    if not out:
        raise ValueError(f"{path}: no classes")
    return out


class Hierarchy(NamedTuple):
    """The class tree of ``bbox_labels_600_hierarchy.json``.

    root: the root mid (``/m/0bl9f``; not a class).
    classes: every mid of the tree except the root, in first-visit (depth-first) order.
    children: ``{mid: set of Subcategory mids}`` merged over every place the mid appears
        (a class may sit under several parents); "Part" lists add classes, not children.
    parents: ``{mid: set of parent mids}`` (the root included).
    """

    root: str
    classes: List[str]
    children: Dict[str, Set[str]]
    parents: Dict[str, Set[str]]

    @property
    def leaves(self) -> List[str]:
        """Classes without a Subcategory anywhere in the tree, in ``classes`` order."""
        return [m for m in self.classes if not self.children.get(m)]


def read_hierarchy(path: str, max_bytes: int = MAX_HIERARCHY_BYTES) -> Hierarchy:
    """Parse ``bbox_labels_600_hierarchy.json`` (iteratively: no recursion limit).

    Raises ValueError naming the file when it is larger than ``max_bytes``, not JSON, or
    not the published structure (a node that is not an object with a string
    ``LabelName``, a ``Subcategory``/``Part`` that is not a list).
    """
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: larger than the {max_bytes}-byte limit for a class hierarchy")
    try:
        tree = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: not a JSON class hierarchy ({e})") from None
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply for a class hierarchy") from None

    def label(node, where: str) -> str:
        if (
            not isinstance(node, dict)
            or not isinstance(node.get("LabelName"), str)
            or not node["LabelName"]
        ):
            raise ValueError(
                f'{path}: {where}: expected {{"LabelName": <mid>, ...}}, got {str(node)[:80]}'
            )
        return node["LabelName"]

    root = label(tree, "root")
    classes: List[str] = []
    seen: Set[str] = set()
    children: Dict[str, Set[str]] = {}
    parents: Dict[str, Set[str]] = {}
    stack = [(tree, None, "root")]
    while stack:
        node, parent, where = stack.pop()
        mid = label(node, where)
        if parent is not None:
            parents.setdefault(mid, set()).add(parent)
            if mid not in seen:
                seen.add(mid)
                classes.append(mid)
        pending = []
        for key in ("Subcategory", "Part"):
            subs = node.get(key, [])
            if not isinstance(subs, list):
                raise ValueError(
                    f"{path}: {mid}: '{key}' must be a list, got {type(subs).__name__}"
                )
            for i, sub in enumerate(subs):
                sub_mid = label(sub, f"{mid} {key}[{i}]")
                if key == "Subcategory":
                    children.setdefault(mid, set()).add(sub_mid)
                pending.append((sub, mid, f"{mid} {key}[{i}]"))
        stack.extend(reversed(pending))  # depth-first, in file order
    if root in children.get(root, set()) or root in seen:
        raise ValueError(f"{path}: the root {root} appears inside the tree")
    return Hierarchy(root, classes, children, parents)


# ----------------------------------------------------------------------------------------
# Box CSVs


def _read_header(path: str, required: Tuple[str, ...], what: str) -> Tuple[Dict[str, int], int]:
    with open(path, "rb") as f:
        first = f.readline()
        offset = f.tell()
    text = first.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    header = [c.strip() for c in next(csv.reader([text]), [])]
    columns = {name: i for i, name in reversed(list(enumerate(header)))}
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(
            f"{path}: not an OpenImages {what}: the header lacks {missing} (got {header[:16]})"
        )
    return columns, offset


def read_bbox_header(path: str) -> Tuple[Dict[str, int], int]:
    """``({column: position}, byte offset of the first data row)``.

    Raises ValueError naming the file when a column of ``BBOX_COLUMNS`` is missing.
    Flag columns may be missing (their values are then unknown, -1).
    """
    return _read_header(path, BBOX_COLUMNS, "box CSV")


class BoxRows(NamedTuple):
    """The usable rows of one box CSV (M rows, in file order).

    image_ids: N distinct ImageIDs, in first-seen order.
    box_image: int32 (M,), index into ``image_ids``.
    box_label: int32 (M,), index into the class list the CSV was read against.
    box_xyxy: float32 (M, 4), (XMin, YMin, XMax, YMax) normalised, clipped to [0, 1],
        positive width and height.
    box_flags: int8 (M, 5), ``FLAG_COLUMNS`` values (1, 0 or -1 = unknown).
    rows: data rows read (good and bad).
    """

    image_ids: List[str]
    box_image: np.ndarray
    box_label: np.ndarray
    box_xyxy: np.ndarray
    box_flags: np.ndarray
    rows: int


def _chunk_starts(path: str, data_start: int, size: int, chunk_bytes: int) -> List[int]:
    """Byte offsets of the first line starting at or after each multiple of chunk_bytes."""
    starts = [data_start]
    with open(path, "rb") as f:
        pos = data_start + chunk_bytes
        while pos < size:
            f.seek(pos - 1)
            f.readline()  # to the end of the line holding byte pos - 1
            line_start = f.tell()
            if line_start >= size:
                break
            if line_start > starts[-1]:
                starts.append(line_start)
            pos = max(pos + chunk_bytes, line_start + 1)
    return starts


def _range_lines(path: str, start: int, end: int) -> List[str]:
    """The lines of bytes [start, end) of a file (UTF-8, bad bytes replaced)."""
    with open(path, "rb") as f:
        f.seek(start)
        text = f.read(end - start).decode("utf-8", errors="replace")
    lines = text.split("\n")  # not splitlines(): it also splits at \x0b, \x1c, \u2028, ...
    if lines and lines[-1] == "":
        lines.pop()
    return lines


@dataclass(frozen=True)
class CsvRange:
    """One parsing task: the data rows in bytes [start, end) of the CSV at ``path``,
    whose ``columns`` are ``{name: position}``, read against ``label_to_idx``; keep
    ``max_examples`` examples per counter (None: all)."""

    path: str
    start: int
    end: int
    columns: Dict[str, int]
    label_to_idx: Dict[str, int]
    max_examples: Optional[int]


def _stream_csv(
    path: str,
    read_header: Callable[[str], Tuple[Dict[str, int], int]],
    parse: Callable[[CsvRange], dict],
    label_to_idx: Dict[str, int],
    tally: Optional[Tally] = None,
    *,
    num_workers: int = 1,
    chunk_bytes: int = CHUNK_BYTES,
    show_progress: bool = False,
) -> Tuple[List[str], int, Dict[str, object]]:
    """Run ``parse`` over the line-aligned byte ranges (:class:`CsvRange`, ``chunk_bytes``
    each) of a CSV whose header ``read_header`` checks, in ``num_workers`` processes (a
    tqdm bar with ``show_progress``), and join the results (``parse`` returns
    :meth:`_Range.result`: ``ids``, range-local ``img``, counters, examples, and arrays or
    counts of its own).

    Adds the counters and the examples (``"<path>:<line>: <why>"``) to ``tally`` (a fresh
    one when None: then they are lost). Returns ``(image_ids in first-seen order, data
    rows read, {key: the ranges' arrays concatenated (``img``: indices into image_ids) or
    their numbers summed})``.
    """
    tally = tally if tally is not None else Tally()
    columns, data_start = read_header(path)
    size = os.path.getsize(path)
    starts = (
        _chunk_starts(path, data_start, size, chunk_bytes) if size > data_start else [data_start]
    )
    tasks = [
        CsvRange(path, a, b, columns, label_to_idx, tally.max_examples)
        for a, b in zip(starts, starts[1:] + [size])
    ]
    results = map_in_processes(
        parse, tasks, num_workers, f"Reading {os.path.basename(path)}", "chunk", show_progress
    )

    ids: Dict[str, int] = {}
    line0 = 2  # the header is line 1
    rows = 0
    for r in results:
        for key, n in r["stats"].items():
            tally.stats[key] += n
        for key, k, why in r["local_examples"]:
            kept = tally.examples.setdefault(key, [])
            if tally.max_examples is None or len(kept) < tally.max_examples:
                kept.append(f"{path}:{line0 + k}: {why}")
        line0 += r["lines"]
        rows += r["rows"]
        remap = np.fromiter(
            (ids.setdefault(i, len(ids)) for i in r["ids"]), dtype=np.int32, count=len(r["ids"])
        )
        r["img"] = remap[r["img"]] if len(r["img"]) else r["img"]
    own = [k for k in results[0] if k not in ("ids", "stats", "local_examples", "lines", "rows")]
    joined = {
        k: np.concatenate([r[k] for r in results])
        if isinstance(results[0][k], np.ndarray)
        else sum(r[k] for r in results)
        for k in own
    }
    return list(ids), rows, joined


class _Range:
    """What the parsers of one byte range share: its lines, the count of data ``rows``
    (the parsers count them in their own loop: a generator here costs ~10% on 14.6M
    rows), its ImageIDs (range-local indices), its counters and examples (``(counter,
    line within the range, why)``, numbered by :func:`_stream_csv`)."""

    def __init__(self, task: CsvRange):
        self.lines = _range_lines(task.path, task.start, task.end)
        self.max_examples = task.max_examples
        self.ids: Dict[str, int] = {}
        self.bad_ids: Set[str] = set()
        self.stats: Dict[str, int] = {}
        self.local: List[Tuple[str, int, str]] = []
        self.rows = 0

    def bad(self, key: str, k: int, why: str) -> None:
        n = self.stats[key] = self.stats.get(key, 0) + 1
        if self.max_examples is None or n <= self.max_examples:
            self.local.append((key, k, why))

    def new_image(self, image_id: str, k: int) -> int:
        """The range-local index of an ImageID not in ``ids`` yet (the parsers look there
        first); -1 (counted as ``bad_image_ids``) for one that is not a plain file name."""
        if image_id in self.bad_ids or not is_plain_name(image_id):
            self.bad_ids.add(image_id)
            self.bad("bad_image_ids", k, f"ImageID {image_id!r} is not a file name")
            return -1
        local_id = self.ids[image_id] = len(self.ids)
        return local_id

    def result(self, img: array, **arrays) -> dict:
        return {
            "ids": list(self.ids),
            "img": _int32(img),
            "stats": self.stats,
            "local_examples": self.local,
            "lines": len(self.lines),
            "rows": self.rows,
            **arrays,
        }


def _int32(values: array) -> np.ndarray:
    return np.frombuffer(values, dtype=np.int32) if len(values) else np.zeros(0, np.int32)


def _parse_box_range(task: CsvRange) -> dict:
    """Parse the rows of one range of a box CSV (see :func:`_stream_csv`); also returns
    ``lab``, ``xyxy``, ``flags``."""
    columns, label_to_idx = task.columns, task.label_to_idx
    r = _Range(task)
    bad, ids = r.bad, r.ids
    i_id, i_lab = columns["ImageID"], columns["LabelName"]
    i_x0, i_x1, i_y0, i_y1 = (columns[c] for c in ("XMin", "XMax", "YMin", "YMax"))
    i_flags = [columns.get(c, -1) for c in FLAG_COLUMNS]
    width = max(columns.values()) + 1 if columns else 0
    needed = max(i_id, i_lab, i_x0, i_x1, i_y0, i_y1) + 1

    img, lab = array("i"), array("i")
    xyxy, flags = array("f"), array("b")
    flag_values = _FLAG_VALUES
    for k, line in enumerate(r.lines):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        # one line at a time: a stray quote cannot swallow the lines after it
        row = line.split(",") if '"' not in line else next(csv.reader([line]), [])
        r.rows += 1
        if len(row) < needed:
            bad("bad_rows", k, f"{len(row)} fields, expected {width}")
            continue
        if (label := label_to_idx.get(row[i_lab])) is None:
            bad("unknown_labels", k, f"LabelName {row[i_lab]!r} is not a class")
            continue
        try:
            x0, x1, y0, y1 = float(row[i_x0]), float(row[i_x1]), float(row[i_y0]), float(row[i_y1])
        except ValueError:
            bad(
                "bad_rows",
                k,
                f"non-numeric coordinates {[row[i_x0], row[i_x1], row[i_y0], row[i_y1]]}",
            )
            continue
        if not (
            math.isfinite(x0) and math.isfinite(x1) and math.isfinite(y0) and math.isfinite(y1)
        ):
            bad(
                "bad_rows",
                k,
                f"non-finite coordinates {[row[i_x0], row[i_x1], row[i_y0], row[i_y1]]}",
            )
            continue
        if x0 > x1 or y0 > y1:
            bad("inverted_boxes", k, f"XMin > XMax or YMin > YMax: {x0}, {x1}, {y0}, {y1}")
            continue
        c0, c1 = min(max(x0, 0.0), 1.0), min(max(x1, 0.0), 1.0)
        d0, d1 = min(max(y0, 0.0), 1.0), min(max(y1, 0.0), 1.0)
        if c1 <= c0 or d1 <= d0:
            bad("degenerate_boxes", k, f"empty box {x0}, {x1}, {y0}, {y1}")
            continue
        local_id = ids.get(row[i_id])
        if local_id is None and (local_id := r.new_image(row[i_id], k)) < 0:
            continue
        if (c0, c1, d0, d1) != (x0, x1, y0, y1):
            bad("clipped_boxes", k, f"outside [0, 1]: {x0}, {x1}, {y0}, {y1}")
        fl = []
        for i in i_flags:
            v = flag_values.get(row[i].strip()) if 0 <= i < len(row) else -1
            if v is None:
                bad("bad_flags", k, f"flag {row[i]!r} is not 1, 0 or -1 (taken as unknown)")
                v = -1
            fl.append(v)
        img.append(local_id)
        lab.append(label)
        xyxy.extend((c0, d0, c1, d1))
        flags.extend(fl)
    return r.result(
        img,
        lab=_int32(lab),
        xyxy=np.frombuffer(xyxy, dtype=np.float32).reshape(-1, 4)
        if len(xyxy)
        else np.zeros((0, 4), np.float32),
        flags=np.frombuffer(flags, dtype=np.int8).reshape(-1, len(FLAG_COLUMNS))
        if len(flags)
        else np.zeros((0, len(FLAG_COLUMNS)), np.int8),
    )


def read_bbox_csv(
    path: str, label_to_idx: Dict[str, int], tally: Optional[Tally] = None, **options
) -> BoxRows:
    """Stream one box CSV (local path) into compact arrays (see :class:`BoxRows`).

    Rows of mids not in ``label_to_idx`` (``{mid: class index}``) are skipped
    (``unknown_labels``); skipped or fixed rows are counted in ``tally`` with examples
    ``"<path>:<line>: <why>"``. ``options``: ``num_workers`` (parsing processes, 1),
    ``chunk_bytes`` (the file is cut into ranges of about this size at line starts;
    fields never hold line breaks in these files), ``show_progress`` (a tqdm bar, False).
    """
    image_ids, rows, out = _stream_csv(
        path, read_bbox_header, _parse_box_range, label_to_idx, tally, **options
    )
    return BoxRows(image_ids, out["img"], out["lab"], out["xyxy"], out["flags"], rows)


# ----------------------------------------------------------------------------------------
# Human-verified image-level labels


def read_image_labels_header(path: str) -> Tuple[Dict[str, int], int]:
    """``({column: position}, byte offset of the first data row)`` of an image-level label
    CSV. Raises ValueError naming the file when a column of ``IMAGE_LABEL_COLUMNS`` is
    missing."""
    return _read_header(path, IMAGE_LABEL_COLUMNS, "image-level label CSV")


class ImageLabelRows(NamedTuple):
    """The positive (``Confidence`` 1) rows of one image-level label CSV, in file order.

    image_ids: distinct ImageIDs of the positive rows, first-seen order.
    image: int32 (P,), index into ``image_ids``.
    label: int32 (P,), index into the class list the CSV was read against.
    rows: data rows read (good and bad); negatives: rows with ``Confidence`` 0 (verified
        absent: read, not kept).
    """

    image_ids: List[str]
    image: np.ndarray
    label: np.ndarray
    rows: int
    negatives: int


def _parse_label_range(task: CsvRange) -> dict:
    """Parse the rows of one range of an image-level label CSV (see :func:`_stream_csv`);
    keeps the positive rows (``lab``) and counts the verified-absent ones (``negatives``)."""
    columns, label_to_idx = task.columns, task.label_to_idx
    r = _Range(task)
    bad, ids = r.bad, r.ids
    i_id, i_lab, i_conf = columns["ImageID"], columns["LabelName"], columns["Confidence"]
    needed = max(i_id, i_lab, i_conf) + 1
    width = max(columns.values()) + 1

    img, lab = array("i"), array("i")
    negatives = 0
    for k, line in enumerate(r.lines):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        row = line.split(",") if '"' not in line else next(csv.reader([line]), [])  # as for boxes
        r.rows += 1
        if len(row) < needed:
            bad("bad_rows", k, f"{len(row)} fields, expected {width}")
            continue
        conf = row[i_conf].strip()
        if conf != "1":
            try:
                value = float(conf)
            except ValueError:
                value = math.nan
            if value == 0.0:
                negatives += 1
                continue
            if value != 1.0:
                bad("bad_rows", k, f"Confidence {row[i_conf]!r} is not 1 or 0")
                continue
        if (label := label_to_idx.get(row[i_lab])) is None:
            bad("unknown_labels", k, f"LabelName {row[i_lab]!r} is not a class")
            continue
        local_id = ids.get(row[i_id])
        if local_id is None and (local_id := r.new_image(row[i_id], k)) < 0:
            continue
        img.append(local_id)
        lab.append(label)
    return r.result(img, lab=_int32(lab), negatives=negatives)


def read_image_labels_csv(
    path: str, label_to_idx: Dict[str, int], tally: Optional[Tally] = None, **options
):
    """Stream one human-verified image-level label CSV (``ImageID,Source,LabelName,
    Confidence``; ~9M rows for V6 train) into compact arrays (:class:`ImageLabelRows`), as
    :func:`read_bbox_csv` does (same ``options``): bad rows skipped and counted in
    ``tally`` (``bad_rows``: too few fields or a Confidence other than 1 / 0;
    ``unknown_labels``; ``bad_image_ids``) with examples naming file and line."""
    image_ids, rows, out = _stream_csv(
        path, read_image_labels_header, _parse_label_range, label_to_idx, tally, **options
    )
    return ImageLabelRows(image_ids, out["img"], out["lab"], rows, out["negatives"])
