"""The object region of a sample as disjoint convex polygons, kept exact under affine maps,
frame clipping and erased rectangles.

Coordinates are those of :mod:`als_d2.objectness`: pixels, x right, y down, pixel (row i,
column j) is the unit square [j, j+1] x [i, i+1], a frame of shape (h, w) is [0, w] x [0, h].
A region is a list of convex polygons (Kx2 float64 vertex arrays, in order around the
polygon) with disjoint interiors, so its area is the sum of their areas:

* boxes -> region (:meth:`ObjectRegion.from_boxes`): the union of the boxes cut into
  disjoint rectangles by the x-sweep of :func:`als_d2.objectness.union_area` (strips between
  consecutive box edges, the merged y-intervals of each strip; neighbouring strips with the
  same intervals joined), so overlapping boxes count once;
* affine map p -> A p + t (:meth:`ObjectRegion.affine`): each vertex mapped (a convex
  polygon stays convex), then clipped to the output frame;
* clipping (Sutherland-Hodgman): a convex polygon cut by the half-plane n . p <= c keeps
  its vertices inside and, for each edge crossing the line, the crossing point
  p_a + (p_b - p_a) (c - n . p_a) / (n . p_b - n . p_a); the result is convex;
* minus a rectangle [x0, x1] x [y0, y1] (:meth:`ObjectRegion.subtract`): the polygon cut
  into its parts left of x0, right of x1, and between them above y0 and below y1: up to
  4 convex pieces with disjoint interiors;
* area (shoelace): |sum_k (x_k y_{k+1} - x_{k+1} y_k)| / 2.

The boxes of a region (:meth:`ObjectRegion.boxes`) are the bounding boxes of its polygons:
the exact pieces when every polygon is a rectangle (boxes, translations, flips, erased
rectangles), a superset of the region after a rotation or shear.
"""

import math
from typing import List, Sequence, Tuple

import numpy as np

__all__ = ["ObjectRegion", "clip_halfplane", "polygon_area"]

# pieces thinner than this (square pixels) are dropped: crossings of nearly parallel lines
_MIN_AREA = 1e-9

# Polygons have a handful of vertices: plain Python floats are several times faster than
# numpy arrays here.
Polygon = List[Tuple[float, float]]


def polygon_area(poly: Sequence[Sequence[float]]) -> float:
    """Area (square pixels, >= 0) of a simple polygon, K (x, y) vertices in order (shoelace)."""
    if len(poly) < 3:
        return 0.0
    twice = 0.0
    for a in range(len(poly)):
        (xa, ya), (xb, yb) = poly[a - 1], poly[a]
        twice += xa * yb - xb * ya
    return 0.5 * abs(twice)


def clip_halfplane(poly: Sequence[Sequence[float]], normal: Sequence[float], c: float) -> Polygon:
    """
    The part of a convex polygon where ``normal . p <= c`` (one Sutherland-Hodgman step).

    Args:
        poly: K (x, y) vertices in order (K may be 0).
        normal: (nx, ny).
        c: offset, pixels times |normal|.

    Returns:
        list of (x, y) in the same order, empty when nothing is left.
    """
    nx, ny = float(normal[0]), float(normal[1])
    s = [nx * x + ny * y - c for x, y in poly]  # <= 0 inside
    out: Polygon = []
    k = len(poly)
    for a in range(k):
        b = a + 1 if a + 1 < k else 0
        if s[a] <= 0:
            out.append((float(poly[a][0]), float(poly[a][1])))
        if (s[a] <= 0) != (s[b] <= 0):  # the edge crosses the line: add the crossing point
            t = s[a] / (s[a] - s[b])
            (xa, ya), (xb, yb) = poly[a], poly[b]
            out.append((xa + t * (xb - xa), ya + t * (yb - ya)))
    return out


def _clip_box(poly: Polygon, x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """The part of a convex polygon inside [x0, x1] x [y0, y1]."""
    for normal, c in (((-1.0, 0.0), -x0), ((1.0, 0.0), x1), ((0.0, -1.0), -y0), ((0.0, 1.0), y1)):
        poly = clip_halfplane(poly, normal, c)
    return poly


def _rect(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _union_rectangles(boxes: Sequence[Sequence[float]]) -> List[Tuple[float, float, float, float]]:
    """Disjoint rectangles (x0, y0, x1, y1) whose union is the union of the non-empty
    ``boxes`` (N 4-tuples): x-sweep, merged y-intervals per strip, equal neighbours joined."""
    boxes = [b for b in boxes if b[2] > b[0] and b[3] > b[1]]
    xs = sorted({x for b in boxes for x in (b[0], b[2])})
    out, open_ = [], {}  # open_: y-interval -> x where its rectangle started
    for xa, xb in zip(xs, xs[1:]):
        spans = sorted((b[1], b[3]) for b in boxes if b[0] <= xa and xb <= b[2])
        merged = []
        for y0, y1 in spans:
            if merged and y0 <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], y1)
            else:
                merged.append([y0, y1])
        now = {(y0, y1) for y0, y1 in merged}
        for span in list(open_):
            if span not in now:  # the rectangle of this interval ends at xa
                out.append((open_.pop(span), span[0], xa, span[1]))
        for span in now:
            open_.setdefault(span, xa)
    if xs:
        out.extend((x0, y0, xs[-1], y1) for (y0, y1), x0 in open_.items())
    return out


class ObjectRegion:
    """
    A region of a frame as disjoint convex polygons (see the module docstring).

    Attributes:
        polygons: list of polygons, each a list of (x, y) vertices in pixels of the frame.
        image_size: (h, w) of the frame.
    """

    def __init__(self, polygons: List[Polygon], image_size: Tuple[int, int]):
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.polygons = [list(p) for p in polygons if polygon_area(p) > _MIN_AREA]

    @classmethod
    def from_boxes(cls, boxes, image_size: Tuple[int, int]) -> "ObjectRegion":
        """The union of Nx4 XYXY_ABS ``boxes`` (pixels) inside the frame ``image_size`` (h, w)."""
        h, w = float(image_size[0]), float(image_size[1])
        rows = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).tolist()
        b = [
            (min(max(x0, 0.0), w), min(max(y0, 0.0), h), min(max(x1, 0.0), w), min(max(y1, 0.0), h))
            for x0, y0, x1, y1 in rows
        ]
        return cls([_rect(*r) for r in _union_rectangles(b)], image_size)

    def area(self) -> float:
        """Area of the region, square pixels."""
        return float(sum(polygon_area(p) for p in self.polygons))

    def fraction(self) -> float:
        """Area / frame area, in [0, 1]: the objectness of the region."""
        h, w = self.image_size
        return min(max(self.area() / (float(h) * float(w)), 0.0), 1.0)

    def perimeter(self) -> float:
        """Sum of the perimeters of the polygons (pixels; edges shared by pieces count twice)."""
        return float(sum(math.dist(p[a - 1], p[a]) for p in self.polygons for a in range(len(p))))

    def affine(self, matrix, image_size: Tuple[int, int] = None) -> "ObjectRegion":
        """
        The region mapped by p -> A p + t, clipped to the output frame.

        Args:
            matrix: 2x3 [A | t], pixel coordinates of the input frame to those of the output.
            image_size: (h, w) of the output frame; default: the same as the input's.
        """
        (a, b, tx), (c, d, ty) = np.asarray(matrix, dtype=np.float64).reshape(2, 3).tolist()
        h, w = self.image_size if image_size is None else image_size
        polys = [
            _clip_box([(a * x + b * y + tx, c * x + d * y + ty) for x, y in p], 0, 0, w, h)
            for p in self.polygons
        ]
        return ObjectRegion(polys, (h, w))

    def subtract(self, box: Sequence[float]) -> "ObjectRegion":
        """The region minus the rectangle ``box`` = (x0, y0, x1, y1), pixels."""
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (x1 > x0 and y1 > y0):
            return ObjectRegion(self.polygons, self.image_size)
        pieces = []
        for p in self.polygons:
            middle = clip_halfplane(clip_halfplane(p, (-1.0, 0.0), -x0), (1.0, 0.0), x1)
            pieces += [
                clip_halfplane(p, (1.0, 0.0), x0),  # left of the rectangle
                clip_halfplane(p, (-1.0, 0.0), -x1),  # right of it
                clip_halfplane(middle, (0.0, 1.0), y0),  # above it
                clip_halfplane(middle, (0.0, -1.0), -y1),  # below it
            ]
        return ObjectRegion(pieces, self.image_size)

    def boxes(self) -> np.ndarray:
        """Mx4 float64 XYXY_ABS bounding boxes of the polygons, one per polygon (exact
        pieces for rectangles, a superset after rotations and shears)."""
        out = np.zeros((len(self.polygons), 4))
        for k, p in enumerate(self.polygons):
            xs, ys = [x for x, _ in p], [y for _, y in p]
            out[k] = (min(xs), min(ys), max(xs), max(ys))
        return out

    def __len__(self) -> int:
        return len(self.polygons)

    def __repr__(self) -> str:
        return (
            f"ObjectRegion({len(self)} polygons, area={self.area():.3f}, frame={self.image_size})"
        )
