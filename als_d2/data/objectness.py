"""Objectness: the fraction of a frame covered by the union of a sample's boxes.

Exact geometry, no pixel masks. Boxes are XYXY_ABS floats in pixels: a pixel (row i,
column j) is the unit square [j, j+1] x [i, i+1], so a frame of shape (h, w) is the
rectangle [0, w] x [0, h] and its area is h * w. Overlapping boxes count once.

The union area is computed by a sweep over x, vectorised over all x positions at
once: the sorted vertical box edges cut the region into strips, in each strip the set
of boxes present is constant, and the covered length of the strip is the union length
of those boxes' y-intervals (intervals sorted by start; each adds what it reaches
beyond the running maximum of the previous ends). Area = sum of strip width x covered
length, in float64, exact up to rounding. Up to three boxes take inclusion-exclusion
in plain Python, which is faster there.
"""
from typing import Sequence, Tuple, Union

import numpy as np

__all__ = ["union_area", "objectness"]

Region = Tuple[float, float, float, float]


def _as_boxes(boxes) -> np.ndarray:
    if hasattr(boxes, "detach"):  # torch.Tensor, without importing torch here
        boxes = boxes.detach().cpu().numpy()
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _small_union_area(b: list, rx0: float, ry0: float, rx1: float, ry1: float) -> float:
    """Inclusion-exclusion in plain Python for up to 3 boxes (faster than numpy there)."""
    rects = []
    for x0, y0, x1, y1 in b:
        x0, y0 = max(x0, rx0), max(y0, ry0)
        x1, y1 = min(x1, rx1), min(y1, ry1)
        if x1 > x0 and y1 > y0:
            rects.append((x0, y0, x1, y1))
    # terms: (sign, rectangle) for every non-empty intersection of a subset of rects
    terms = []
    for r in rects:
        new = [(1.0, r)]
        for sign, t in terms:
            x0, y0 = max(r[0], t[0]), max(r[1], t[1])
            x1, y1 = min(r[2], t[2]), min(r[3], t[3])
            if x1 > x0 and y1 > y0:
                new.append((-sign, (x0, y0, x1, y1)))
        terms.extend(new)
    return sum(sign * (t[2] - t[0]) * (t[3] - t[1]) for sign, t in terms)


def union_area(boxes, region: Union[Region, Sequence[float]]) -> float:
    """
    Area of (union of ``boxes``) intersected with ``region``.

    Args:
        boxes: Nx4 array-like (numpy or torch), XYXY_ABS in pixels. Boxes may overlap,
            extend past the region, or be empty/degenerate (x1 <= x0 or y1 <= y0).
        region: (x0, y0, x1, y1) in pixels, e.g. (0, 0, w, h) for a whole frame.

    Returns:
        float: the area in square pixels (>= 0), exact up to float64 rounding.
    """
    b = _as_boxes(boxes)
    n = b.shape[0]
    if n == 0:
        return 0.0
    rx0, ry0, rx1, ry1 = (float(v) for v in region)
    if n <= 3:
        return max(_small_union_area(b.tolist(), rx0, ry0, rx1, ry1), 0.0)
    lo = np.array([rx0, ry0, rx0, ry0])
    hi = np.array([rx1, ry1, rx1, ry1])
    c = np.minimum(np.maximum(b, lo), hi)
    c = c[(c[:, 2] > c[:, 0]) & (c[:, 3] > c[:, 1])]
    if c.shape[0] == 0:
        return 0.0
    c = c[np.argsort(c[:, 1], kind="stable")]  # by top edge, for the interval sweep
    x0, y0, x1, y1 = c[:, 0:1], c[:, 1:2], c[:, 2:3], c[:, 3:4]  # N x 1 each
    # Strips between consecutive sorted x edges (zero-width strips from repeated edges
    # contribute nothing); a box is present in a strip iff it covers the strip's centre.
    xs = np.sort(c[:, 0::2], axis=None)
    cx = 0.5 * (xs[:-1] + xs[1:])
    ends = np.where((x0 < cx) & (cx < x1), y1, -np.inf)  # N x strips: y1 of the boxes present
    # Union length of each strip's y-intervals (sorted by start): each interval adds
    # what it reaches beyond the furthest end of the intervals before it.
    reach = np.empty_like(ends)
    reach[0] = -np.inf
    np.maximum.accumulate(ends[:-1], axis=0, out=reach[1:])
    gain = ends - np.maximum(y0, reach)  # -inf for the boxes absent from the strip
    np.maximum(gain, 0.0, out=gain)
    return float((gain @ np.diff(xs)).sum())


def objectness(boxes, image_size: Tuple[int, int]) -> float:
    """
    Fraction of the frame covered by the union of ``boxes``.

    Args:
        boxes: Nx4 array-like (numpy or torch), XYXY_ABS in pixels of the frame; parts
            outside the frame are ignored, overlaps count once.
        image_size: (h, w) of the frame in pixels.

    Returns:
        float in [0, 1]; 0.0 when there are no boxes.
    """
    h, w = image_size
    if h <= 0 or w <= 0:
        raise ValueError(f"objectness: empty frame {image_size}")
    o = union_area(boxes, (0.0, 0.0, float(w), float(h))) / (float(h) * float(w))
    return min(max(o, 0.0), 1.0)
