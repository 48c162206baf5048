"""objectness.py: exact union area of boxes, against brute-force counts of transformed boxes."""

import numpy as np
import pytest
import torch

import als_d2  # noqa: F401
from detectron2.data import transforms as T

from als_d2.objectness import objectness, union_area
from als_d2.data.transforms import RandomResizedCrop, clip_boxes


def _grid_fraction(boxes: np.ndarray, h: int, w: int, sub: int) -> float:
    """Fraction of the sample points ((k + 0.5) / sub, in pixels) inside the union of boxes."""
    ys = (np.arange(h * sub) + 0.5) / sub
    xs = (np.arange(w * sub) + 0.5) / sub
    inside = np.zeros((ys.size, xs.size), dtype=bool)
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        inside |= ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
    return float(inside.mean())


def _count_bound(boxes: np.ndarray, h: int, w: int, sub: int) -> float:
    """
    Bound on |sample-count area - exact area| / (h w) for a grid of spacing g = 1/sub:
    only the g x g cells around sample points that meet the union's boundary can be
    miscounted (g^2 each); that boundary lies on the boxes' edges (clipped to the frame),
    and a segment of length L meets at most L/g + 2 cells per side, so
    error <= sum_k (2 g (w_k + h_k) + 8 g^2), divided by the frame area.
    """
    b = clip_boxes(boxes, (h, w)).astype(np.float64)
    g = 1.0 / sub
    per = (b[:, 2] - b[:, 0]) + (b[:, 3] - b[:, 1])
    return float((2 * g * per + 8 * g * g).sum()) / (h * w)


def _random_boxes(rng, n, h, w):
    xy0 = rng.uniform([-0.2 * w, -0.2 * h], [w, h], size=(n, 2))
    wh = rng.uniform(0.5, 0.7 * max(h, w), size=(n, 2))
    return np.concatenate([xy0, xy0 + wh], axis=1)


def test_simple_cases():
    assert objectness(np.zeros((0, 4)), (10, 20)) == 0.0
    assert objectness([[0, 0, 20, 10]], (10, 20)) == 1.0
    assert objectness([[-5, -5, 30, 30]], (10, 20)) == 1.0  # clipped to the frame
    assert objectness([[5, 2, 15, 7]], (10, 20)) == pytest.approx(50 / 200)
    assert objectness([[30, 0, 40, 10]], (10, 20)) == 0.0  # outside
    assert objectness([[5, 5, 5, 9]], (10, 20)) == 0.0  # degenerate
    # overlapping boxes count once: identical, nested, two halves, crossing
    assert objectness([[0, 0, 10, 10]] * 5, (10, 20)) == pytest.approx(0.5)
    assert objectness([[0, 0, 10, 10], [2, 2, 4, 4]], (10, 20)) == pytest.approx(0.5)
    assert objectness([[0, 0, 10, 10], [10, 0, 20, 10]], (10, 20)) == pytest.approx(1.0)
    cross = [[0, 4, 20, 6], [9, 0, 11, 10]]  # 40 + 20 - 4
    assert objectness(cross, (10, 20)) == pytest.approx(56 / 200)
    cross4 = cross + [[0, 4, 20, 6], [9, 0, 11, 10]]  # the same boxes twice
    assert objectness(cross4, (10, 20)) == pytest.approx(56 / 200)
    assert objectness(torch.tensor(cross4, dtype=torch.float32), (10, 20)) == pytest.approx(
        56 / 200
    )


def test_union_area_region():
    boxes = [[0, 0, 10, 10], [5, 5, 15, 15]]
    assert union_area(boxes, (0, 0, 100, 100)) == pytest.approx(175)
    assert union_area(boxes, (5, 5, 10, 10)) == pytest.approx(25)
    assert union_area(boxes, (20, 20, 30, 30)) == 0.0


def _check_vs_fine_grid(n: int, trials: int) -> list:
    """``trials`` random frames (8-39 px a side) of ``n`` random boxes: objectness within
    :func:`_count_bound` of a 1/8 px grid count; returns the objectness values."""
    rng = np.random.default_rng(n)
    values = []
    for _ in range(trials):
        h, w = (int(v) for v in rng.integers(8, 40, size=2))
        boxes = _random_boxes(rng, n, h, w)
        exact = objectness(boxes, (h, w))
        brute = _grid_fraction(boxes, h, w, sub=8)
        assert abs(exact - brute) <= _count_bound(boxes, h, w, sub=8) + 1e-9
        values.append(exact)
    return values


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 20])
def test_random_boxes_vs_fine_grid(n):
    assert all(0.0 <= exact <= 1.0 for exact in _check_vs_fine_grid(n, trials=25))


def test_repeated_boxes_count_once():
    rng = np.random.default_rng(3)
    for _ in range(50):
        b = _random_boxes(rng, 3, 50, 60)
        dup = np.concatenate([b, b[:1], b[1:2]])  # 5 boxes, same union
        assert objectness(dup, (50, 60)) == pytest.approx(objectness(b, (50, 60)), abs=1e-6)


def test_transformed_boxes_vs_pixel_count():
    """
    Hundreds of random RandomResizedCrops (+ flips) of images with overlapping boxes:
    objectness of the transformed, clipped boxes vs. a brute-force count of output
    sample points (spacing 1/8 px) mapped back through the inverse transform into the
    input image and tested against the ORIGINAL boxes. The two differ by at most the
    boundary bound of ``_count_bound``: sum over boxes of 2 g (w + h) + 8 g^2 with
    g = 1/8 px, i.e. a quarter of the half-perimeters in pixels, / (S * S) (typically
    0.005-0.02 here); boxes grown by a quarter pixel per side already fail it.
    """
    rng = np.random.default_rng(0)
    np.random.seed(0)
    size, sub = 32, 8
    augs = T.AugmentationList([RandomResizedCrop(size), T.RandomFlip(prob=0.5)])
    pts = (np.arange(size * sub) + 0.5) / sub
    px, py = np.meshgrid(pts, pts)
    points = np.stack([px.ravel(), py.ravel()], axis=1)
    n_flips = 0
    for trial in range(300):
        h, w = (int(v) for v in rng.integers(30, 120, size=2))
        boxes = _random_boxes(rng, int(rng.integers(1, 6)), h, w)
        aug_input = T.AugInput(np.zeros((h, w, 3), np.uint8), boxes=boxes.astype(np.float32))
        tfms = augs(aug_input)
        assert aug_input.image.shape[:2] == (size, size)
        n_flips += any(isinstance(t, T.HFlipTransform) for t in tfms.transforms)
        out_boxes = clip_boxes(aug_input.boxes, (size, size))
        exact = objectness(out_boxes, (size, size))

        src = tfms.inverse().apply_coords(points.copy())  # output points -> input pixels
        inside = np.zeros(len(src), dtype=bool)
        for x0, y0, x1, y1 in boxes:
            inside |= (src[:, 0] >= x0) & (src[:, 0] < x1) & (src[:, 1] >= y0) & (src[:, 1] < y1)
        brute = inside.mean()
        bound = _count_bound(out_boxes, size, size, sub)
        assert abs(exact - brute) <= bound + 1e-6, (trial, exact, brute, bound)
        assert bound < 0.25  # the check is meaningful: a few pixels' area at most
    assert 100 < n_flips < 200


@pytest.mark.parametrize("n", [30, 50, 70])
def test_many_boxes_vs_fine_grid(n):
    _check_vs_fine_grid(n, trials=10)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 12, 40])
def test_input_types_agree(n):
    """numpy, lists and torch tensors (float64 and float32) give the same area, with
    repeated edges, identical, degenerate and reversed boxes."""
    rng = np.random.default_rng(100 + n)
    for _ in range(30):
        b = _random_boxes(rng, n, 50, 60)
        if rng.random() < 0.3:  # repeated edges, identical and degenerate boxes
            b = np.round(b)
            b[0] = b[-1]
            b[-1, 2] = b[-1, 0]
            b[len(b) // 2] = b[len(b) // 2][[2, 3, 0, 1]]  # reversed: empty
        region = (-3.0, 2.0, 57.5, 49.0)
        ref = union_area(b, region)
        assert union_area(b.tolist(), region) == ref
        assert union_area(torch.tensor(b), region) == ref
        b32 = b.astype(np.float32)
        assert union_area(torch.from_numpy(b32), region) == union_area(b32.tolist(), region)


def test_frame_covered_and_bad_shapes():
    boxes = [[0, 0, 20, 5], [0, 4, 20, 10], [5, 0, 8, 10], [-1, -1, 30, 30]]
    assert objectness(boxes, (10, 20)) == 1.0
    assert objectness([[0, 0, 10, 10], [0, 0, 10, 10], [10, 0, 20, 10]], (10, 20)) == 1.0
    assert objectness([], (10, 20)) == 0.0 and objectness([0, 0, 10, 10], (10, 20)) == 0.5
    with pytest.raises(ValueError, match=r"boxes must be Nx4.*\(1, 3\)"):
        union_area([[1, 2, 3]], (0, 0, 1, 1))
    with pytest.raises(ValueError, match="empty frame"):
        objectness([[0, 0, 1, 1]], (0, 5))


def _painted_area(boxes: np.ndarray, region) -> float:
    """
    Independent exact reference: the region cut at every distinct clipped box edge into
    cells, each box paints the cells it spans (index ranges from a binary search), and
    the area is the sum of the painted cells' areas. O(N^3) memory/time, no bitsets.
    """
    rx0, ry0, rx1, ry1 = region
    rects = []
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4).tolist():
        x0, x1 = max(x0, rx0), min(x1, rx1)
        y0, y1 = max(y0, ry0), min(y1, ry1)
        if x1 > x0 and y1 > y0:
            rects.append((x0, y0, x1, y1))
    if not rects:
        return 0.0
    xs = sorted({v for r in rects for v in (r[0], r[2])})
    ys = sorted({v for r in rects for v in (r[1], r[3])})
    painted = np.zeros((len(xs) - 1, len(ys) - 1), dtype=bool)
    for x0, y0, x1, y1 in rects:
        painted[xs.index(x0) : xs.index(x1), ys.index(y0) : ys.index(y1)] = True
    return float(np.diff(xs) @ painted.astype(np.float64) @ np.diff(ys))


@pytest.mark.parametrize("n", [1, 3, 21, 50, 100])
def test_vs_painted_cells(n):
    """``union_area`` against ``_painted_area`` on random boxes with reversed, empty,
    repeated and outside-the-frame ones, for frames and sub-regions, for every input type."""
    rng = np.random.default_rng(1000 + n)
    for trial in range(12):
        h, w = (int(v) for v in rng.integers(8, 300, size=2))
        b = _random_boxes(rng, n, h, w)
        k = rng.choice(n, size=n // 4, replace=False)
        b[k[0::4]] = b[k[0::4]][:, [2, 3, 0, 1]]  # reversed: empty
        b[k[1::4], 2] = b[k[1::4], 0]  # zero width
        b[k[2::4]] += [2 * w, 0, 2 * w, 0]  # outside the frame
        b[k[3::4]] = b[0]  # repeated
        if trial % 3 == 0:  # integer edges: many repeated edge values
            b = np.round(b)
        if trial % 2:
            region = (
                float(rng.uniform(-5, w / 3)),
                float(rng.uniform(-5, h / 3)),
                float(rng.uniform(w / 2, w + 5)),
                float(rng.uniform(h / 2, h + 5)),
            )
        else:
            region = (0.0, 0.0, float(w), float(h))
        ref = _painted_area(b, region)
        tol = dict(rel=1e-9, abs=1e-9)
        assert union_area(b, region) == pytest.approx(ref, **tol)
        assert union_area(b.tolist(), region) == pytest.approx(ref, **tol)
        assert union_area(torch.tensor(b), region) == pytest.approx(ref, **tol)
        assert union_area(b.astype(np.float32), region) == pytest.approx(
            _painted_area(b.astype(np.float32), region), **tol
        )
        if region[0] == 0.0:
            assert objectness(b, (h, w)) == pytest.approx(ref / (h * w), **tol)
