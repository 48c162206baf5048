"""Readers of the text files of the ImageNet localization release (Kaggle "ILSVRC" layout).

``LOC_synset_mapping.txt``: one class per line, ``<wnid> <name>[, <synonym>...]``::

    n01440764 tench, Tinca tinca

``LOC_train_solution.csv`` / ``LOC_val_solution.csv``: header ``ImageId,PredictionString``,
then one row per image with boxes; PredictionString repeats ``wnid x_min y_min x_max y_max``
(pixels), separated by spaces::

    ImageId,PredictionString
    ILSVRC2012_val_00000001,n01751748 10 20 300 400 n01751748 5 5 50 60
"""

import csv
import math
from typing import Dict, List, Tuple

__all__ = ["read_synset_mapping", "read_loc_solution_csv", "parse_prediction_string"]

CSV_HEADER = ["ImageId", "PredictionString"]


def read_synset_mapping(path: str) -> Dict[str, str]:
    """``{wnid: readable name}``; the name is the first comma-separated synonym.

    Raises ValueError naming the file and line for a line without a name or a repeated wnid.
    """
    mapping: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(None, 1)
            if len(parts) != 2 or not parts[1].split(",")[0].strip():
                raise ValueError(f"{path}:{lineno}: expected '<wnid> <name>', got {line!r}")
            wnid, names = parts
            if wnid in mapping:
                raise ValueError(f"{path}:{lineno}: wnid {wnid} appears twice")
            mapping[wnid] = names.split(",")[0].strip()
    if not mapping:
        raise ValueError(f"{path}: no classes")
    return mapping


def read_loc_solution_csv(path: str) -> Dict[str, str]:
    """``{ImageId: PredictionString}`` (unparsed: :func:`parse_prediction_string` does that).

    Raises ValueError naming the file when the header is not ``ImageId,PredictionString``
    or an ImageId appears more than once (every such id with its line numbers: which of
    the rows holds the right boxes cannot be known).
    """
    rows: Dict[str, str] = {}
    lines: Dict[str, List[int]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != CSV_HEADER:
            raise ValueError(
                f"{path}: expected the header 'ImageId,PredictionString', got {header}"
            )
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            image_id = row[0].strip()
            lines.setdefault(image_id, []).append(reader.line_num)
            if image_id not in rows:
                rows[image_id] = row[1] if len(row) > 1 else ""
    repeated = {k: v for k, v in lines.items() if len(v) > 1}
    if repeated:
        shown = "; ".join(
            f"ImageId {k} appears twice (lines {', '.join(map(str, v))})"
            if len(v) == 2
            else f"ImageId {k} appears {len(v)} times (lines {', '.join(map(str, v))})"
            for k, v in list(repeated.items())[:20]
        )
        more = f"; and {len(repeated) - 20} more" if len(repeated) > 20 else ""
        raise ValueError(f"{path}: {len(repeated)} repeated ImageId(s): {shown}{more}")
    return rows


def parse_prediction_string(
    text: str,
) -> Tuple[List[Tuple[str, Tuple[float, float, float, float]]], List[str]]:
    """Split a PredictionString into ``[(wnid, (x0, y0, x1, y1))]`` and a list of problems.

    Coordinates as written (float pixels). A group with a non-numeric / non-finite
    coordinate is left out (one problem each); a trailing incomplete group too.
    """
    tokens = text.split()
    objects, bad = [], []
    for i in range(0, len(tokens) - len(tokens) % 5, 5):
        wnid, coords = tokens[i], tokens[i + 1 : i + 5]
        try:
            values = tuple(float(c) for c in coords)
        except ValueError:
            bad.append(f"{wnid}: non-numeric coordinates {coords}")
            continue
        if not all(math.isfinite(v) for v in values):
            bad.append(f"{wnid}: non-finite coordinates {coords}")
            continue
        objects.append((wnid, values))
    if len(tokens) % 5:
        bad.append(f"incomplete group at the end: {tokens[-(len(tokens) % 5) :]}")
    return objects, bad
