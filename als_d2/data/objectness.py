"""Objectness: the fraction of a frame covered by the union of a sample's boxes.

Exact geometry, no pixel masks. Boxes are XYXY_ABS floats in pixels: a pixel (row i,
column j) is the unit square [j, j+1] x [i, i+1], so a frame of shape (h, w) is the
rectangle [0, w] x [0, h] and its area is h * w. Overlapping boxes count once.

The union area is a sweep over x: the distinct vertical box edges cut the region into
strips, in each strip the set of boxes present is constant, and the covered length of
the strip is the union length of those boxes' y-intervals (intervals sorted by start;
each adds what it reaches beyond the furthest end of the previous ones). Area = sum of
strip width x covered length, in float64, exact up to rounding.

Three implementations (numpy calls cost ~1-2 µs each on small arrays, so the fastest
one depends on the number of boxes N):

* N <= ``PYTHON_SWEEP_MAX_BOXES``: the sweep in plain Python on floats, no numpy call
  (~1 µs for one box, ~13 µs for ten); a strip stops once it is covered top to bottom.
* N <= 64: bitsets, a constant number of numpy calls (~14 µs for 12 boxes, ~26 µs for
  50 on 2 busy cores; the sort of the 4N edges and the grid below dominate). Sorting
  the x edges (clipped to the region) and taking the running XOR of the boxes' bits
  (bit b toggles at both x edges of box b) gives the set of boxes present in every
  x-strip; the same over y gives the set present in every y-strip (equal edges may come
  in any order: the sets between them belong to strips of zero width). Strips of zero
  width at the region's borders (edges clipped onto them) are dropped. The cell
  (x-strip k, y-strip j) is covered iff the two sets intersect, so
  area = dx @ [X_k & Y_j != 0] @ dy: one AND outer product, no per-strip interval
  logic. For N <= 52 the 0/1 matrix is made in place: an AND of bits 0..51 read as a
  float64 is +0.0 or a subnormal, which ``np.ceil`` maps to 0.0 / 1.0 (exact; not
  used when the FPU flushes subnormals to zero).
* above: the x-sweep vectorised over (box, strip) pairs (``np.maximum.accumulate`` of
  the bottom edges of the boxes sorted by their top edge).
"""
from typing import Sequence, Tuple, Union

import numpy as np

try:  # the clip ufunc itself: np.clip adds a Python wrapper (numpy 2 moved numpy.core)
    from numpy._core.umath import clip as _clip
except ImportError:
    from numpy.core.umath import clip as _clip

__all__ = ["union_area", "objectness", "PYTHON_SWEEP_MAX_BOXES"]

Region = Tuple[float, float, float, float]

# Boxes up to which the plain-Python sweep is the fastest (measured on 2 cores).
PYTHON_SWEEP_MAX_BOXES = 11
_BITSET_MAX_BOXES = 64
_BITS = {}  # n -> uint64 [1, 2, 4, .., 2^(n-1)] twice: the bit of each edge's box
_REGIONS = {}  # region -> arrays of _region_arrays
_ROWS = np.array([[0], [1]])
_DENORMAL = 5e-324  # the smallest positive subnormal float64
# numpy >= 2 sorts floats with SIMD quicksort (x86-simd-sort, highway): 100 edges in ~1.8
# µs against ~5 for the stable merge sort; before, the stable sort was the faster one. The
# order of equal edges does not matter: the strips between them have zero width.
_SORT_KIND = "quicksort" if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else "stable"


def _as_boxes(boxes) -> np.ndarray:
    if hasattr(boxes, "detach"):  # torch.Tensor, without importing torch here
        boxes = boxes.detach().cpu().numpy()
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _sweep_python(rows, rx0: float, ry0: float, rx1: float, ry1: float) -> float:
    """The sweep in plain Python; ``rows``: iterable of (x0, y0, x1, y1) floats."""
    rects = []
    for x0, y0, x1, y1 in rows:
        if x0 < rx0:
            x0 = rx0
        if y0 < ry0:
            y0 = ry0
        if x1 > rx1:
            x1 = rx1
        if y1 > ry1:
            y1 = ry1
        if x1 > x0 and y1 > y0:
            rects.append((y0, y1, x0, x1))
    if not rects:
        return 0.0
    if len(rects) == 1:
        y0, y1, x0, x1 = rects[0]
        return (x1 - x0) * (y1 - y0)
    rects.sort()  # by top edge
    xs = sorted({r[2] for r in rects} | {r[3] for r in rects})
    area = 0.0
    xa = xs[0]
    for xb in xs[1:]:  # strip [xa, xb]: the boxes with x0 <= xa and x1 >= xb are present
        reach, length = ry0, 0.0
        for y0, y1, x0, x1 in rects:
            if y1 > reach and x0 <= xa and x1 >= xb:
                length += y1 - (y0 if y0 > reach else reach)
                reach = y1
                if reach >= ry1:  # the strip is covered
                    break
        area += length * (xb - xa)
        xa = xb
    return area


def _region_arrays(rx0: float, ry0: float, rx1: float, ry1: float):
    """Per-region constants: lower and upper bounds as 2x1 columns (x row, y row), and the
    searchsorted keys (just above the lower bound, the upper bound) of each axis."""
    key = (rx0, ry0, rx1, ry1)
    r = _REGIONS.get(key)
    if r is None:
        if len(_REGIONS) >= 64:
            _REGIONS.clear()
        r = _REGIONS[key] = (
            np.array([[rx0], [ry0]]),
            np.array([[rx1], [ry1]]),
            np.array([np.nextafter(rx0, np.inf), rx1]),
            np.array([np.nextafter(ry0, np.inf), ry1]),
        )
    return r


def _bitset_area(b: np.ndarray, rx0: float, ry0: float, rx1: float, ry1: float) -> float:
    """Union area by box bitsets over the x- and y-strips; ``b``: Nx4 float, N <= 64."""
    n = b.shape[0]
    lo, hi, keys_x, keys_y = _region_arrays(rx0, ry0, rx1, ry1)
    bits = _BITS.get(n)
    if bits is None:
        bits = np.left_shift(np.uint64(1), np.arange(n, dtype=np.uint64))
        bits = _BITS[n] = np.concatenate([bits, bits])  # the bit of each edge's box
    # edges[0] = [x0.., x1..], edges[1] = [y0.., y1..], clipped to the region; the ends
    # clipped from below by the clipped starts: a reversed box is empty
    edges = np.empty((2, 2 * n))
    starts = edges[:, :n]
    bt = b.T
    _clip(bt[:2], lo, hi, out=starts)
    _clip(bt[2:], starts, hi, out=edges[:, n:])
    order = edges.argsort(axis=1, kind=_SORT_KIND)  # methods, ufuncs: no Python-level wrappers
    edges = edges[_ROWS, order]
    # sets[0, k]: boxes present between the k-th and (k+1)-th sorted x edge; sets[1]: over y
    sets = np.bitwise_xor.accumulate(bits[order], axis=1)
    flat = edges.ravel()
    d = flat[1:] - flat[:-1]  # strip widths; d[2n - 1] spans the two rows and is never used
    # strips k < s and k >= t have zero width (edges clipped onto the region's border)
    sx, tx = edges[0].searchsorted(keys_x).tolist()
    sy, ty = edges[1].searchsorted(keys_y).tolist()
    m = 2 * n - 1
    sx = sx - 1 if sx else 0
    sy = sy - 1 if sy else 0
    tx = m if tx > m else tx
    ty = m if ty > m else ty
    if tx <= sx or ty <= sy:
        return 0.0
    covered = np.bitwise_and.outer(sets[0, sx:tx], sets[1, sy:ty]).view(np.float64)
    if n <= 52 and _DENORMAL + 0.0 != 0.0:
        # bits 0..51 are the mantissa: X & Y read as a float64 is +0.0 or a positive
        # subnormal, and ceil maps those to exactly 0.0 / 1.0 in place (one SIMD pass).
        # The test above is False when the FPU flushes subnormals (FTZ/DAZ).
        np.ceil(covered, out=covered)
    else:
        np.not_equal(covered.view(np.uint64), 0, out=covered, casting="unsafe")
    dx = d[sx:tx]
    dy = d[2 * n + sy : 2 * n + ty]
    if covered.size < 8192:
        return float(dx.dot(covered.dot(dy)))
    # blocks of 64 rows: OpenBLAS multithreads larger matrix-vector products, and waking
    # threads costs more than the product (up to 100s of µs on a busy machine)
    area = 0.0
    for r in range(0, covered.shape[0], 64):
        area += float(dx[r : r + 64].dot(covered[r : r + 64].dot(dy)))
    return area


def _sweep_numpy(b: np.ndarray, rx0: float, ry0: float, rx1: float, ry1: float) -> float:
    """The sweep vectorised over (box, strip) pairs; ``b``: Nx4 float64."""
    c = np.minimum(np.maximum(b, (rx0, ry0, rx0, ry0)), (rx1, ry1, rx1, ry1))
    c = c[(c[:, 2] > c[:, 0]) & (c[:, 3] > c[:, 1])]
    if c.shape[0] == 0:
        return 0.0
    c = c[np.argsort(c[:, 1], kind="stable")]  # by top edge
    # Strips between consecutive sorted x edges (zero-width strips from repeated edges
    # contribute nothing); a box is present in a strip iff it covers the strip's centre.
    xs = np.sort(c[:, 0::2], axis=None)
    dx = np.diff(xs)
    cx = xs[:-1] + 0.5 * dx
    # bottom edge (relative to ry0) of each box in each strip, 0 where absent: N x strips
    ends = ((c[:, 0:1] < cx) & (cx < c[:, 2:3])) * (c[:, 3:4] - ry0)
    # each interval adds what it reaches beyond the furthest end of those before it
    reach = np.maximum.accumulate(ends[:-1], axis=0)
    gain = ends[1:] - np.maximum(c[1:, 1:2] - ry0, reach)
    np.maximum(gain, 0.0, out=gain)
    first = np.maximum(ends[0] - (c[0, 1] - ry0), 0.0)
    return float((gain.sum(axis=0) + first) @ dx)


def union_area(boxes, region: Union[Region, Sequence[float]]) -> float:
    """
    Area of (union of ``boxes``) intersected with ``region``.

    Args:
        boxes: Nx4 XYXY_ABS in pixels: numpy array, torch tensor, or a list of 4-sequences.
            Boxes may overlap, extend past the region, or be empty/degenerate
            (x1 <= x0 or y1 <= y0).
        region: (x0, y0, x1, y1) in pixels, e.g. (0, 0, w, h) for a whole frame.

    Returns:
        float: the area in square pixels (>= 0), exact up to float64 rounding.
    """
    rx0, ry0, rx1, ry1 = (float(v) for v in region)
    if isinstance(boxes, (list, tuple)) and len(boxes) <= PYTHON_SWEEP_MAX_BOXES:
        rows = [tuple(float(v) for v in r) for r in boxes]
        if any(len(r) != 4 for r in rows):
            raise ValueError("union_area: boxes must be Nx4")
        return max(_sweep_python(rows, rx0, ry0, rx1, ry1), 0.0)
    b = _as_boxes(boxes)
    if b.shape[0] == 0:
        return 0.0
    n = b.shape[0]
    if n <= PYTHON_SWEEP_MAX_BOXES:
        return max(_sweep_python(b.tolist(), rx0, ry0, rx1, ry1), 0.0)
    if n <= _BITSET_MAX_BOXES:
        return max(_bitset_area(b, rx0, ry0, rx1, ry1), 0.0)
    return max(_sweep_numpy(b, rx0, ry0, rx1, ry1), 0.0)


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
