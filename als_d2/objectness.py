"""Objectness: the fraction of a frame covered by the union of a sample's boxes.

Exact geometry, no pixel masks. Boxes are XYXY_ABS floats in pixels: a pixel (row i,
column j) is the unit square [j, j+1] x [i, i+1], so a frame of shape (h, w) is the
rectangle [0, w] x [0, h] and its area is h * w. Overlapping boxes count once.

The union area is a sweep over x: the distinct vertical edges of the boxes (clipped to
the region) cut it into strips; inside a strip the boxes present do not change, and the
covered length of the strip is the length of the union of their y-intervals. Area = sum
over strips of width x covered length, in float64 (exact up to rounding). A sample has
1-3 boxes on ImageNet: this plain-Python sweep takes a few microseconds there, well
under 1% of mapping the sample (``benchmarks/loader.py`` reports both); its cost grows
as N^2 for N boxes.
"""

from typing import Sequence, Tuple

import numpy as np

__all__ = ["union_area", "objectness"]


def _as_rows(boxes) -> list:
    """Nx4 boxes (numpy, torch on any device, or nested sequences) as a list of 4 floats."""
    if hasattr(boxes, "detach"):  # a torch.Tensor, without importing torch here
        boxes = boxes.detach().cpu().numpy()
    b = np.asarray(boxes, dtype=np.float64)
    if b.size % 4 != 0:
        raise ValueError(f"boxes must be Nx4 (x0, y0, x1, y1), got shape {b.shape}")
    return b.reshape(-1, 4).tolist()


def union_area(boxes, region: Sequence[float]) -> float:
    """
    Area of (union of ``boxes``) intersected with ``region``.

    Args:
        boxes: Nx4 XYXY_ABS in pixels: numpy array, torch tensor, or a list of 4-sequences.
            Boxes may overlap, extend past the region, or be empty (x1 <= x0 or y1 <= y0).
        region: (x0, y0, x1, y1) in pixels, e.g. (0, 0, w, h) for a whole frame.

    Returns:
        float: the area in square pixels (>= 0).
    """
    rx0, ry0, rx1, ry1 = (float(v) for v in region)
    rects = []  # the boxes clipped to the region, as (y0, y1, x0, x1); empty ones dropped
    for x0, y0, x1, y1 in _as_rows(boxes):
        x0, y0, x1, y1 = max(x0, rx0), max(y0, ry0), min(x1, rx1), min(y1, ry1)
        if x1 > x0 and y1 > y0:
            rects.append((y0, y1, x0, x1))
    rects.sort()  # by top edge: each y-interval then extends the union below or adds to it
    xs = sorted({x for _, _, x0, x1 in rects for x in (x0, x1)})
    area = 0.0
    for xa, xb in zip(xs, xs[1:]):
        covered, reach = 0.0, ry0  # covered length of the strip [xa, xb]; union ends at reach
        for y0, y1, x0, x1 in rects:
            if x0 <= xa and xb <= x1 and y1 > reach:  # present in the strip, adds below reach
                covered += y1 - max(y0, reach)
                reach = y1
        area += covered * (xb - xa)
    return area


def objectness(boxes, image_size: Tuple[int, int]) -> float:
    """
    Fraction of the frame covered by the union of ``boxes``.

    Args:
        boxes: Nx4 XYXY_ABS in pixels of the frame (numpy, torch, or a list of
            4-sequences); parts outside the frame are ignored, overlaps count once.
        image_size: (h, w) of the frame in pixels.

    Returns:
        float in [0, 1]; 0.0 when there are no boxes.
    """
    h, w = image_size
    if h <= 0 or w <= 0:
        raise ValueError(f"objectness: empty frame {image_size}")
    o = union_area(boxes, (0.0, 0.0, float(w), float(h))) / (float(h) * float(w))
    return min(max(o, 0.0), 1.0)
