"""Confidence against objectness (paper section 4.2: ALS's confidence "is grounded in object
size"): a table by objectness decile and the rank correlation of the two.

Inputs are per-sample arrays of one evaluation set: ``confidence`` (max softmax, in [0, 1]),
``correct`` (bool) and ``objectness`` (the fraction of the evaluation crop covered by the
objects, in [0, 1]; NaN = unknown, left out).
"""

from typing import Dict, List

import numpy as np

__all__ = ["objectness_deciles", "spearman", "conf_objectness_spearman", "DECILES"]

DECILES = 10


def _known(confidence, correct, objectness):
    obj = np.asarray(objectness, dtype=np.float64)
    known = ~np.isnan(obj)
    return (
        np.asarray(confidence, dtype=np.float64)[known],
        np.asarray(correct, dtype=bool)[known],
        obj[known],
    )


def objectness_deciles(confidence, correct, objectness, groups: int = DECILES) -> List[Dict]:
    """Samples of known objectness sorted by it (stable) and split into ``groups``
    contiguous chunks of equal size (``np.array_split``: the first ``n % groups`` hold one
    more; empty chunks left out). Per chunk: ``objectness_min`` / ``objectness_max`` (its
    range), ``mean_objectness``, ``mean_confidence``, ``accuracy`` and ``count``."""
    conf, right, obj = _known(confidence, correct, objectness)
    order = np.argsort(obj, kind="mergesort")
    rows = []
    for chunk in np.array_split(order, groups):
        if len(chunk) == 0:
            continue
        rows.append(
            {
                "objectness_min": float(obj[chunk].min()),
                "objectness_max": float(obj[chunk].max()),
                "mean_objectness": float(obj[chunk].mean()),
                "mean_confidence": float(conf[chunk].mean()),
                "accuracy": float(right[chunk].mean()),
                "count": int(len(chunk)),
            }
        )
    return rows


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(sorted_x[1:] != sorted_x[:-1]) + 1]
    ends = np.r_[starts[1:], len(x)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + 1 + e) / 2.0
    return ranks


def spearman(x, y) -> float:
    """Spearman's rank correlation (Pearson's on average ranks, ties as in
    ``scipy.stats.spearmanr``); NaN with fewer than 2 samples or a constant input."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        return float("nan")
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def conf_objectness_spearman(confidence, objectness) -> float:
    """:func:`spearman` of confidence and objectness over the samples of known objectness."""
    conf, _, obj = _known(confidence, np.zeros(len(confidence), bool), objectness)
    return spearman(conf, obj)
