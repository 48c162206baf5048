"""Strong augmentations (TrivialAugmentWide, RandAugment, RandomErasing) and the exact object
region: images against torchvision's own ops, affine matrices against torchvision's warp,
erasing draws against torchvision's distribution, objectness against red pixels, polygon
geometry against supersampled point counts."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import ks_2samp
from torchvision.transforms import RandomErasing as TvRandomErasing
from torchvision.transforms import v2

import als_d2  # noqa: F401
from detectron2.config import get_cfg
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from als_d2.config import ConfigError, add_als_config, check_als_config
from als_d2.data.mapper import ClassificationDatasetMapper
from als_d2.data.object_region import ObjectRegion
from als_d2.data.strong_augment import (
    GEOMETRIC_OPS,
    AffineOpTransform,
    PixelOpTransform,
    RandAugment,
    RandomErasing,
    TrivialAugmentWide,
    op_transform,
)
from als_d2.data.transforms import RandomResizedCrop

OBJ, BG = (200, 30, 30), (30, 30, 200)  # red object on blue; the erase fill and black aren't red
MEAN_RGB = (124, 116, 104)  # detectron2's default pixel mean, RGB, rounded
PHOTOMETRIC_OPS = (
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
)
SPACE = v2.TrivialAugmentWide._AUGMENTATION_SPACE


def _ta_magnitude(op, bin_index, h, w, space=SPACE):
    return float(space[op][0](31, h, w)[bin_index])


# ---------------------------------------------------------------- images vs torchvision


def _tv_op(img: np.ndarray, op: str, magnitude: float, interpolation: str) -> np.ndarray:
    """torchvision's own AutoAugment op (its base class's dispatch, its arguments)."""
    ta = v2.TrivialAugmentWide(interpolation=v2.InterpolationMode(interpolation))
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)
    out = ta._apply_image_or_video_transform(
        x, op, magnitude, interpolation=ta.interpolation, fill=ta._fill
    )
    return out.permute(1, 2, 0).numpy()


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("op", list(SPACE))
def test_op_images_equal_torchvision(op, interpolation):
    h, w = 29, 40
    img = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    bins = (0, 7, 30) if SPACE[op][0](31, h, w) is not None else (0,)
    for b in bins:
        for sign in (1, -1) if SPACE[op][1] else (1,):
            m = sign * _ta_magnitude(op, b, h, w) if len(bins) > 1 else 0.0
            t = op_transform(op, m, (h, w), interpolation)
            np.testing.assert_array_equal(t.apply_image(img), _tv_op(img, op, m, interpolation))


# ------------------------------------------------------------- matrices vs torchvision


@pytest.mark.parametrize("size", [(37, 52), (48, 48)])
@pytest.mark.parametrize(
    "op,magnitude",
    [
        ("ShearX", 0.3),
        ("ShearX", -0.99),
        ("ShearY", 0.45),
        ("ShearY", -0.7),
        ("TranslateX", 9.6),
        ("TranslateX", -13.2),
        ("TranslateY", 7.0),
        ("TranslateY", -21.9),
        ("Rotate", 27.0),
        ("Rotate", -121.5),
        ("Rotate", 90.0),
    ],
)
def test_affine_matrix_matches_torchvision_warp(op, magnitude, size):
    """Output pixel (i, j) of torchvision's nearest warp of a random image holds the input
    pixel containing q = M^-1 (j + 0.5, i + 0.5) (fill 0 outside), M our forward matrix;
    where q lies on a pixel edge (a tie), either neighbour."""
    h, w = size
    img = np.random.default_rng(2).integers(1, 256, (h, w, 3), dtype=np.uint8)
    t = AffineOpTransform(op, magnitude, h, w, interpolation="nearest")
    out = _tv_op(img, op, magnitude, "nearest")
    a, b = t.matrix[:, :2], t.matrix[:, 2]
    jj, ii = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    q = (np.stack([jj, ii], -1) - b) @ np.linalg.inv(a).T
    match = np.zeros((h, w), bool)
    for dx in (-1e-4, 1e-4):  # a centre on a pixel edge (a tie) may read either side
        for dy in (-1e-4, 1e-4):
            qx, qy = np.floor(q[..., 0] + dx).astype(int), np.floor(q[..., 1] + dy).astype(int)
            inside = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
            expected = np.zeros_like(img)
            expected[inside] = img[qy[inside], qx[inside]]
            match |= (out == expected).all(-1)
    assert match.all()
    # boxes follow the same matrix: the transformed box contains the mapped corners
    corners = t.apply_coords(np.array([[3.0, 4.0], [10.0, 4.0], [10.0, 9.0], [3.0, 9.0]]))
    np.testing.assert_allclose(corners, np.array([[3, 4], [10, 4], [10, 9], [3, 9.0]]) @ a.T + b)


# --------------------------------------------------------------------- erasing


def _erase_draws(n, size, scale, ratio):
    np.random.seed(0)
    ours = RandomErasing(1.0, scale=scale, ratio=ratio)
    a = [ours.get_params(*size) for _ in range(n)]
    torch.manual_seed(0)
    img = torch.zeros(3, *size)
    b = []
    for _ in range(n):
        i, j, h, w, v = TvRandomErasing.get_params(img, scale=scale, ratio=ratio, value=[0.0])
        b.append(None if v is img else (i, j, h, w))
    return a, b


def _columns(draws, size):
    hh, ww = size
    ok = [d for d in draws if d is not None]
    top, left, h, w = (np.array(c, dtype=np.float64) for c in zip(*ok))
    return {
        "area": h * w / (hh * ww),
        "log_h_over_w": np.log(h / w),
        "top": top / np.maximum(hh - h, 1),
        "left": left / np.maximum(ww - w, 1),
    }, len(draws) - len(ok)


@pytest.mark.parametrize("ratio", [(0.3, 3.3), (1.5, 4.0)])
def test_erasing_draws_match_torchvision_distribution(ratio):
    """Two-sample KS statistic of 3000 of our draws against 3000 of torchvision's
    ``RandomErasing.get_params`` below 1.95 sqrt(2/n) (alpha 0.001) per quantity; with
    h/w in [1.5, 4] every erased rectangle is taller than wide, as in torchvision."""
    n, size = 3000, (40, 64)
    ours, theirs = _erase_draws(n, size, (0.02, 0.33), ratio)
    a, fails_a = _columns(ours, size)
    b, fails_b = _columns(theirs, size)
    for key in a:
        assert ks_2samp(a[key], b[key]).statistic < 1.95 * math.sqrt(2.0 / n), key
    assert abs(fails_a - fails_b) < 4 * math.sqrt(max(fails_a, fails_b, 4))
    if ratio[0] > 1:
        assert (np.exp(a["log_h_over_w"]) >= 1).all() and (np.exp(b["log_h_over_w"]) >= 1).all()


def test_erase_image_equals_torchvision_erase():
    img = np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    t = RandomErasing(1.0, value=(123.675, 116.28, 103.53))
    np.random.seed(5)
    e = t.get_transform(img)
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)
    ref = v2.functional.erase(x, e.top, e.left, e.h, e.w, torch.tensor(MEAN_RGB)[:, None, None])
    np.testing.assert_array_equal(e.apply_image(img), ref.permute(1, 2, 0).numpy())
    assert e.value == MEAN_RGB


# ------------------------------------------------------------ mapper: objectness vs red


def _write(tmp_path, boxes, size):
    h, w = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = BG
    for x0, y0, x1, y1 in boxes:
        img[y0:y1, x0:x1] = OBJ
    path = str(tmp_path / "img.png")
    Image.fromarray(img).save(path)
    d = {
        "file_name": path,
        "image_id": 1,
        "height": h,
        "width": w,
        "label": 3,
        "annotations": [
            {"bbox": list(map(float, b)), "bbox_mode": BoxMode.XYXY_ABS, "category_id": 3}
            for b in boxes
        ],
    }
    return d, img


def _red(image: torch.Tensor) -> np.ndarray:
    r, g, b = image.int().numpy()
    return (r - np.maximum(g, b)) > 20


def _bound(region: ObjectRegion, stretch: float) -> float:
    """Largest |objectness - red fraction| resampling allows, as a fraction of the frame.

    Red pixels: output centres p whose sample point q (input pixels) is red after the
    resampling; an input pixel is red iff its centre is in the box. Nearest and bilinear
    sampling read input centres within L-inf distance 1 of q, so p can be misclassified
    only where q is within sqrt(2) of the box boundary, i.e. p within r = sqrt(2) * stretch
    (the matrix's largest singular value; 1 for the crop's resize when it enlarges, its
    filter support otherwise, folded in the caller's stretch) of the region's boundary. The
    count of pixel centres inside the region differs from its area only at pixels meeting
    the boundary. Both sets lie within r + 1 of the boundary (length L, n convex pieces):
    at most (2 (r + 1)) L + n pi (r + 1)^2 pixels (Steiner's formula for the band).
    """
    r = math.sqrt(2.0) * stretch + 1.0
    h, w = region.image_size
    return (2 * r * region.perimeter() + len(region) * math.pi * r * r) / (h * w)


def _mapper(strong, augmentations=()):
    return ClassificationDatasetMapper(
        True, augmentations=list(augmentations), strong_augmentations=strong, paint_color=MEAN_RGB
    )


GEOMETRIC_CASES = [(op, b, s) for op in GEOMETRIC_OPS for b in (12, 30) for s in (1, -1)]


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("op,bin_index,sign", GEOMETRIC_CASES)
def test_geometric_op_objectness_equals_red_fraction(tmp_path, op, bin_index, sign, interpolation):
    """Object near the frame's corner, so the ops move part of it out: objectness equals the
    red fraction within the resampling bound, and the red pixels are those whose sample point
    falls in the box, except within sqrt(2) of its edge (the matrix checked pixel-wise)."""
    h, w = 48, 64
    box = (38, 5, 61, 30)
    d, _ = _write(tmp_path, [box], (h, w))
    m = sign * _ta_magnitude(op, bin_index, h, w)
    t = op_transform(op, m, (h, w), interpolation)
    out = _mapper([t])(d)
    red = _red(out["image"])
    region = ObjectRegion.from_boxes(np.array([box]), (h, w)).affine(t.matrix)
    stretch = float(np.linalg.norm(t.matrix[:, :2], 2))
    assert abs(out["objectness"] - red.mean()) <= _bound(region, stretch)
    assert out["objectness"] == pytest.approx(region.fraction(), abs=1e-12)
    # pixel-wise: q = M^-1 p in the box <=> red, except near the box's edge
    a, b = t.matrix[:, :2], t.matrix[:, 2]
    jj, ii = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    q = (np.stack([jj, ii], -1) - b) @ np.linalg.inv(a).T
    x0, y0, x1, y1 = box
    in_box = (q[..., 0] > x0) & (q[..., 0] < x1) & (q[..., 1] > y0) & (q[..., 1] < y1)
    edge = np.minimum.reduce([np.abs(q[..., 0] - x0), np.abs(q[..., 0] - x1)])
    edge = np.minimum(edge, np.minimum(np.abs(q[..., 1] - y0), np.abs(q[..., 1] - y1)))
    wrong = in_box != red
    assert (edge[wrong] < 1.0 + 1e-6).all()
    # boxes: the bounding box of the region, inside the frame, holding the red pixel centres
    boxes = out["boxes"].numpy()
    assert len(boxes) == (1 if region.area() > 0 else 0)
    assert (boxes >= 0).all() and (boxes[:, 2:] <= [w, h]).all()
    rows, cols = np.nonzero(red & ~wrong)
    if len(rows):
        assert cols.min() + 0.5 >= boxes[0, 0] - 1e-4 and cols.max() + 0.5 <= boxes[0, 2] + 1e-4
        assert rows.min() + 0.5 >= boxes[0, 1] - 1e-4 and rows.max() + 0.5 <= boxes[0, 3] + 1e-4


@pytest.mark.parametrize("op", PHOTOMETRIC_OPS)
def test_photometric_op_keeps_objectness(tmp_path, op):
    h, w = 40, 56
    boxes = [(30, 4, 52, 26), (10, 10, 36, 20)]
    d, img = _write(tmp_path, boxes, (h, w))
    plain = _mapper([T.NoOpTransform()])(d)
    for b in (5, 30):
        m = _ta_magnitude(op, b, h, w) if SPACE[op][0](31, h, w) is not None else 0.0
        out = _mapper([op_transform(op, m, (h, w))])(d)
        assert out["objectness"] == plain["objectness"]
        assert torch.equal(out["boxes"], plain["boxes"])
    # the no-op objectness is the red fraction (no resampling)
    assert plain["objectness"] == pytest.approx(_red(plain["image"]).mean(), abs=1e-12)


def test_erasing_objectness_equals_red_fraction_exactly(tmp_path):
    """No resampling: every pixel is red or not, the erased rectangle has integer edges, so
    objectness equals the red fraction to rounding; the union of the boxes is the red set."""
    h, w = 40, 56
    boxes = [(30, 4, 52, 26), (10, 10, 36, 20)]
    d, _ = _write(tmp_path, boxes, (h, w))
    mapper = _mapper([RandomErasing(1.0, value=MEAN_RGB)])
    erased = 0
    for seed in range(40):
        np.random.seed(seed)
        out = mapper(d)
        red = _red(out["image"])
        erased += red.sum() < 22 * 22 + 26 * 10 - 6 * 10
        assert out["objectness"] == pytest.approx(red.mean(), abs=1e-9)
        covered = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in out["boxes"].numpy().round().astype(int):
            covered[y0:y1, x0:x1] = True
        np.testing.assert_array_equal(covered, red)
    assert erased > 20


@pytest.mark.parametrize("policy", ["ta_wide", "ra"])
def test_policies_with_crop_flip_and_erasing_over_seeds(tmp_path, policy):
    """The whole training chain (crop, flip, TA or RA, erasing p=0.5) over 60 seeds:
    objectness within the resampling bound of the red fraction where no photometric op ran,
    equal to the chain's own geometry otherwise; painted_fraction stays 0."""
    h, w = 64, 80
    box = (40, 6, 75, 40)
    d, _ = _write(tmp_path, [box], (h, w))
    policy_aug = (
        TrivialAugmentWide(interpolation="bilinear")
        if policy == "ta_wide"
        else RandAugment(2, 9, interpolation="bilinear")
    )
    drawn = []
    draw = policy_aug.get_transform
    policy_aug.get_transform = lambda image: drawn.append(draw(image)) or drawn[-1]
    crop = RandomResizedCrop(48, scale=(0.35, 1.0))
    flip = T.RandomFlip(prob=0.5, horizontal=True, vertical=False)
    mapper = _mapper([policy_aug, RandomErasing(0.5, value=MEAN_RGB)], [crop, flip])
    counted = 0
    for seed in range(60):
        np.random.seed(seed)
        out = mapper(d)
        ops = drawn[-1].transforms if isinstance(drawn[-1], T.TransformList) else [drawn[-1]]
        assert 0.0 <= out["objectness"] <= 1.0 and out["painted_fraction"] == 0.0
        if any(isinstance(t, PixelOpTransform) for t in ops):
            continue
        counted += 1
        stretch = 1.0
        for t in ops:
            if isinstance(t, AffineOpTransform):
                stretch *= float(np.linalg.norm(t.matrix[:, :2], 2))
        region = ObjectRegion.from_boxes(out["boxes"].numpy(), (48, 48))
        red = _red(out["image"]).mean()
        # boxes bound the region: their perimeter bounds its boundary's length
        assert abs(out["objectness"] - red) <= _bound(region, stretch * 2.0), seed
    assert counted >= 15


def test_seeded_samples_reproduce(tmp_path):
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.INPUT.CLS.CROP_SIZE = 40
    cfg.INPUT.CLS.AUTO_AUGMENT = "ra"
    cfg.INPUT.CLS.RANDOM_ERASING = 0.5
    d, _ = _write(tmp_path, [(20, 8, 70, 50)], (64, 80))
    mapper = ClassificationDatasetMapper(cfg, is_train=True)
    samples = []
    for seed in (7, 7, 8):
        np.random.seed(seed)
        samples.append(mapper(d))
    a, b, c = samples
    for key in ("image", "boxes"):
        assert torch.equal(a[key], b[key])
    assert a["objectness"] == b["objectness"]
    assert not torch.equal(a["image"], c["image"])


# --------------------------------------------------------------------- config


def test_config_builds_and_validates():
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
    assert ClassificationDatasetMapper.from_config(cfg, True)["strong_augmentations"] == []
    cfg.INPUT.CLS.AUTO_AUGMENT = "ta_wide"
    cfg.INPUT.CLS.RANDOM_ERASING = 0.1
    strong = ClassificationDatasetMapper.from_config(cfg, True)["strong_augmentations"]
    assert [type(a) for a in strong] == [TrivialAugmentWide, RandomErasing]
    assert strong[0].interpolation == "bilinear" and strong[1].value == MEAN_RGB
    assert ClassificationDatasetMapper.from_config(cfg, False)["strong_augmentations"] == []
    check_als_config(cfg)
    for key, value in (
        ("AUTO_AUGMENT", "autoaugment"),
        ("AUTO_AUGMENT_INTERP", "bicubic"),
        ("AUTO_AUGMENT_BINS", 1),
        ("RA_NUM_OPS", -1),
        ("RA_MAGNITUDE", 31),
        ("RANDOM_ERASING", 1.5),
    ):
        bad = cfg.clone()
        setattr(bad.INPUT.CLS, key, value)
        with pytest.raises(ConfigError, match=f"INPUT.CLS.{key} = "):
            check_als_config(bad)


def test_randaugment_draws_torchvision_ops_at_fixed_magnitude():
    ra, h, w = RandAugment(3, 9), 30, 50
    space = v2.RandAugment._AUGMENTATION_SPACE
    np.random.seed(0)
    seen = set()
    for _ in range(200):
        ops = ra.get_transform(np.zeros((h, w, 3), np.uint8)).transforms
        assert len(ops) == 3
        for t in ops:
            if isinstance(t, T.NoOpTransform):
                seen.add("Identity")
                continue
            seen.add(t.op)
            if space[t.op][0](31, h, w) is None:
                assert t.magnitude == 0.0
                continue
            expected = _ta_magnitude(t.op, 9, h, w, space)
            assert abs(t.magnitude) == pytest.approx(expected, rel=1e-6)
    assert seen == set(space)


# ------------------------------------------------------------- polygon geometry


def _supersampled_area(inside, size, step=0.05):
    """Area of the points p of the frame where inside(p) holds, on a step x step grid."""
    h, w = size
    xs = np.arange(step / 2, w, step)
    ys = np.arange(step / 2, h, step)
    px, py = np.meshgrid(xs, ys)
    return inside(px, py).sum() * step * step


def _in_boxes(px, py, boxes):
    out = np.zeros(px.shape, bool)
    for x0, y0, x1, y1 in boxes:
        out |= (px > x0) & (px < x1) & (py > y0) & (py < y1)
    return out


@pytest.mark.parametrize("angle", [0.0, 17.0, -63.0, 135.0])
def test_region_area_against_supersampled_count(angle):
    """Overlapping boxes (partly outside the frame) rotated about an off-centre point,
    clipped to the frame, minus two rectangles: area within the supersampling error
    (about perimeter x step / 2) of a point count made from the inverse map."""
    size = (20, 30)
    boxes = np.array([[2, 3, 14, 12], [8, 6, 22, 18], [20, -4, 35, 5]], dtype=np.float64)
    holes = [(5, 5, 11, 9), (18.5, 0, 30, 2.5)]
    a = math.radians(angle)
    lin = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    centre = np.array([12.0, 7.0])
    matrix = np.concatenate([lin, (centre - lin @ centre)[:, None]], axis=1)
    region = ObjectRegion.from_boxes(boxes, size).affine(matrix)
    for hole in holes:
        region = region.subtract(hole)
    inv = np.linalg.inv(lin)

    def inside(px, py):
        qx = inv[0, 0] * (px - centre[0]) + inv[0, 1] * (py - centre[1]) + centre[0]
        qy = inv[1, 0] * (px - centre[0]) + inv[1, 1] * (py - centre[1]) + centre[1]
        frame = (qx > 0) & (qx < size[1]) & (qy > 0) & (qy < size[0])
        return _in_boxes(qx, qy, boxes) & frame & ~_in_boxes(px, py, holes)

    expected = _supersampled_area(inside, size)
    assert region.area() == pytest.approx(expected, abs=0.05 * region.perimeter())
    assert region.area() > 50
    # pieces do not overlap: the sum of their areas is the area of their union
    union = _supersampled_area(
        lambda px, py: np.logical_or.reduce([_in_poly(px, py, p) for p in region.polygons]), size
    )
    assert region.area() == pytest.approx(union, abs=0.05 * region.perimeter())


def _in_poly(px, py, poly):
    """Points strictly inside a convex polygon (either orientation)."""
    signs = []
    for (ax, ay), (bx, by) in zip(poly, np.roll(poly, -1, axis=0)):
        signs.append((bx - ax) * (py - ay) - (by - ay) * (px - ax))
    s = np.stack(signs)
    return (s > 0).all(0) | (s < 0).all(0)


def test_from_boxes_counts_overlaps_once_and_boxes_are_exact():
    size = (16, 24)
    boxes = np.array([[1, 1, 10, 9], [5, 4, 15, 14], [5, 4, 15, 14], [12, 0, 30, 3]], float)
    region = ObjectRegion.from_boxes(boxes, size)
    grid = np.zeros(size, bool)  # integer boxes: pixel counts are exact areas
    for x0, y0, x1, y1 in boxes.clip(0, [24, 16, 24, 16]).astype(int):
        grid[y0:y1, x0:x1] = True
    assert region.area() == pytest.approx(grid.sum())
    assert all(len(p) == 4 for p in region.polygons)
    pieces = np.zeros(size, int)
    for x0, y0, x1, y1 in region.boxes().astype(int):
        pieces[y0:y1, x0:x1] += 1
    np.testing.assert_array_equal(pieces, grid.astype(int))
    one = ObjectRegion.from_boxes(np.array([[2.5, 3.0, 9.0, 7.25]]), size)
    np.testing.assert_array_equal(one.boxes(), [[2.5, 3.0, 9.0, 7.25]])
    # a translation keeps rectangles: boxes stay exact, clipped to the frame
    moved = one.affine([[1, 0, 17.0], [0, 1, -4.0]])
    np.testing.assert_allclose(moved.boxes(), [[19.5, 0.0, 24.0, 3.25]])
    assert moved.area() == pytest.approx(4.5 * 3.25)


def test_trivialaugment_draws_ops_bins_and_signs_uniformly():
    """2800 draws: each of torchvision's 14 ops about 1/14 of the time (200 +- 5 sigma),
    signed ops negative about half the time, the magnitude bins all drawn."""
    ta, h, w = TrivialAugmentWide(), 30, 50
    np.random.seed(0)
    image = np.zeros((h, w, 3), np.uint8)
    counts, negative, signed, translations = {}, 0, 0, set()
    for _ in range(2800):
        t = ta.get_transform(image)
        op = "Identity" if isinstance(t, T.NoOpTransform) else t.op
        counts[op] = counts.get(op, 0) + 1
        if SPACE[op][1] and t.magnitude != 0.0:
            signed += 1
            negative += t.magnitude < 0
        if op == "TranslateX":
            translations.add(abs(t.magnitude))
    assert set(counts) == set(SPACE)
    sigma = math.sqrt(2800 * (1 / 14) * (13 / 14))
    assert all(abs(c - 200) < 5 * sigma for c in counts.values()), counts
    assert abs(negative / signed - 0.5) < 5 * 0.5 / math.sqrt(signed)
    expected = {abs(_ta_magnitude("TranslateX", b, h, w)) for b in range(31)}
    assert translations == expected - {0.0} or translations == expected


def test_painted_fraction_and_context_through_strong_ops(tmp_path):
    """'mask' sample (other object painted with the pixel mean) shifted by an integer
    TranslateX (no resampling): objectness is the red fraction, painted_fraction the
    fraction of pixel-mean pixels, exactly; a context sample keeps objectness 0."""
    h, w = 40, 56
    boxes = [(30, 4, 52, 26), (10, 10, 36, 20)]
    d, _ = _write(tmp_path, boxes, (h, w))
    d["target_object"] = 0
    t = op_transform("TranslateX", 13.7, (h, w))
    out = _mapper([t])(d)
    mean = (out["image"].permute(1, 2, 0).numpy() == MEAN_RGB).all(-1)
    assert out["objectness"] == pytest.approx(_red(out["image"]).mean(), abs=1e-12)
    assert out["painted_fraction"] == pytest.approx(mean.mean(), abs=1e-12)
    assert 0 < out["painted_fraction"] < 0.1 and 0 < out["objectness"]
    np.testing.assert_allclose(out["boxes"].numpy(), [[43, 4, 56, 26]])
    d = dict(d, paint_all_objects=True)
    d.pop("target_object")
    out = _mapper([t])(d)
    mean = (out["image"].permute(1, 2, 0).numpy() == MEAN_RGB).all(-1)
    assert out["objectness"] == 0.0 and len(out["boxes"]) == 0
    assert out["painted_fraction"] == pytest.approx(mean.mean(), abs=1e-12)


def test_strong_mapper_pickles(tmp_path):
    """Spawned DataLoader workers receive the mapper pickled: same samples after a round trip."""
    import pickle

    d, _ = _write(tmp_path, [(20, 8, 70, 50)], (64, 80))
    mapper = _mapper([TrivialAugmentWide(), RandAugment(), RandomErasing(0.5, value=MEAN_RGB)])
    clone = pickle.loads(pickle.dumps(mapper))
    for seed in range(5):
        np.random.seed(seed)
        a = mapper(d)
        np.random.seed(seed)
        b = clone(d)
        assert torch.equal(a["image"], b["image"]) and a["objectness"] == b["objectness"]
