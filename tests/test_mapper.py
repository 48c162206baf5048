"""ClassificationDatasetMapper: objectness on pixels, painting variants, context frequency."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

import als_d2  # noqa: F401
from detectron2.config import get_cfg
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from als_d2.config import add_als_config
from als_d2.data.mapper import ClassificationDatasetMapper, pixel_mean_rgb
from als_d2.objectness import objectness as objectness_fn

OBJ, BG = (200, 30, 30), (30, 30, 200)  # red objects on blue: R - max(G, B) > 20 survives jitter
MEAN_BGR = [103.530, 116.280, 123.675]  # detectron2's default PIXEL_MEAN (BGR)
MEAN_RGB_U8 = np.array([124, 116, 104], np.uint8)  # rounded, RGB


def _cfg(**cls):
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.INPUT.CLS.CROP_SIZE = 48
    cfg.INPUT.CLS.TEST_RESIZE = 56
    for k, v in cls.items():
        setattr(cfg.INPUT.CLS, k, v)
    return cfg


def _write(tmp_path, name, boxes, size=(120, 160), quality=None, colors=None):
    """Image (h, w) = size: background BG, integer XYXY boxes filled with OBJ (or ``colors``)."""
    h, w = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = BG
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        img[int(y0) : int(y1), int(x0) : int(x1)] = OBJ if colors is None else colors[k]
    path = tmp_path / name
    if quality is None:
        Image.fromarray(img).save(path)
    else:
        Image.fromarray(img).save(path, quality=quality)
    return str(path), img


def _dict(path, boxes, size=(120, 160), label=7, **extra):
    h, w = size
    d = {
        "file_name": path,
        "image_id": 1,
        "height": h,
        "width": w,
        "label": label,
        "annotations": [
            {"bbox": list(map(float, b)), "bbox_mode": BoxMode.XYXY_ABS, "category_id": label}
            for b in boxes
        ],
    }
    d.update(extra)
    return d


def _object_fraction(image: torch.Tensor) -> float:
    """Fraction of red pixels: R - max(G, B) > 20 (OBJ under any jitter; not BG, not the mean)."""
    r, g, b = image.int()
    return float((r - torch.maximum(g, b) > 20).float().mean())


def test_output_keys_types_and_cfg_construction(tmp_path):
    boxes = [(20, 30, 90, 100)]
    path, _ = _write(tmp_path, "a.png", boxes)
    d = _dict(path, boxes)
    m = ClassificationDatasetMapper(_cfg(), is_train=True)
    out = m(d)
    assert set(out) == (set(d) - {"annotations"}) | {
        "image",
        "boxes",
        "has_boxes",
        "objectness",
        "context",
        "painted_fraction",
    }
    assert "annotations" in d  # the input dict is not modified
    assert out["image"].dtype == torch.uint8 and out["image"].shape == (3, 48, 48)
    assert out["label"] == 7 and isinstance(out["label"], int)
    assert isinstance(out["objectness"], float) and 0.0 <= out["objectness"] <= 1.0
    assert out["boxes"].dtype == torch.float32 and out["boxes"].shape[1] == 4
    assert out["has_boxes"] is True and out["context"] is False
    assert objectness_fn(out["boxes"], (48, 48)) == pytest.approx(out["objectness"])
    assert "image" not in d  # the input dict is not modified
    # explicit arguments
    m2 = ClassificationDatasetMapper(True, augmentations=[])
    assert m2(d)["image"].shape == (3, 120, 160)


def test_no_boxes_means_unknown_objectness(tmp_path):
    path, _ = _write(tmp_path, "a.png", [])
    out = ClassificationDatasetMapper(_cfg(VARIANT="context", CONTEXT_PROB=0.9), is_train=True)(
        _dict(path, [])
    )
    assert out["has_boxes"] is False and out["boxes"].shape == (0, 4) and out["context"] is False
    # objectness is a float in [0, 1] always: 1.0, the whole-frame object a hard label assumes
    assert out["objectness"] == 1.0 and isinstance(out["objectness"], float)


@pytest.mark.parametrize("fmt", ["BGR", "RGB"])
def test_image_is_rgb_whatever_the_format(tmp_path, fmt):
    path, img = _write(tmp_path, "a.png", [(10, 10, 50, 40)])
    cfg = _cfg()
    cfg.INPUT.FORMAT = fmt
    kwargs = ClassificationDatasetMapper.from_config(cfg, is_train=False)
    kwargs["augmentations"] = []
    out = ClassificationDatasetMapper(**kwargs)(_dict(path, [(10, 10, 50, 40)]))
    assert np.array_equal(out["image"].permute(1, 2, 0).numpy(), img)


def test_pixel_mean_reordered_to_rgb():
    assert pixel_mean_rgb(MEAN_BGR, "BGR") == MEAN_BGR[::-1]
    assert pixel_mean_rgb([1, 2, 3], "RGB") == [1, 2, 3]
    cfg = _cfg()
    assert cfg.INPUT.FORMAT == "BGR"
    assert ClassificationDatasetMapper(cfg, is_train=True).paint_color == tuple(MEAN_BGR[::-1])
    with pytest.raises(ValueError):
        pixel_mean_rgb([1, 2, 3], "YUV-BT.601")


def test_object_pixels_match_objectness_under_jitter(tmp_path):
    """End to end: fraction of object-coloured output pixels vs objectness, jitter ON."""
    rng = np.random.default_rng(0)
    np.random.seed(0)
    cfg = _cfg(CROP_SIZE=64)
    assert len(cfg.INPUT.CLS.COLOR_JITTER) == 3 and cfg.INPUT.CLS.LIGHTING_STD > 0
    m = ClassificationDatasetMapper(cfg, is_train=True)
    diffs, values = [], []
    for k in range(8):  # 8 images with 1-3 (possibly overlapping) objects, 10 samples each
        n = int(rng.integers(1, 4))
        xy = rng.integers(0, [130, 90], size=(n, 2))
        wh = rng.integers(15, 80, size=(n, 2))
        boxes = [
            tuple(int(v) for v in np.minimum(np.r_[p, p + s], [160, 120, 160, 120]))
            for p, s in zip(xy, wh)
        ]
        path, _ = _write(tmp_path, f"{k}.png", boxes)
        d = _dict(path, boxes)
        for _ in range(10):
            out = m(d)
            diffs.append(abs(_object_fraction(out["image"]) - out["objectness"]))
            values.append(out["objectness"])
    print("mean |object pixels - objectness|:", np.mean(diffs))
    assert np.mean(diffs) < 0.02, np.mean(diffs)
    assert np.max(diffs) < 0.06
    assert np.std(values) > 0.1  # crops vary: the comparison is not trivial


def test_object_pixels_match_objectness_jpeg(tmp_path):
    np.random.seed(1)
    boxes = [(30, 20, 100, 90), (70, 60, 140, 110)]
    path, _ = _write(tmp_path, "a.jpg", boxes, quality=95)
    m = ClassificationDatasetMapper(_cfg(CROP_SIZE=64), is_train=True)
    diffs = [
        abs(_object_fraction(o["image"]) - o["objectness"])
        for o in (m(_dict(path, boxes)) for _ in range(40))
    ]
    assert np.mean(diffs) < 0.02


def test_exif_orientation_applied(tmp_path):
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, :30] = OBJ
    img[:, 30:] = BG
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = tmp_path / "r.jpg"
    Image.fromarray(img).save(path, quality=95, exif=exif.tobytes())
    m = ClassificationDatasetMapper(False, augmentations=[])
    out = m(
        {
            "file_name": str(path),
            "image_id": 0,
            "height": 60,
            "width": 40,
            "label": 0,
            "annotations": [],
        }
    )
    assert out["image"].shape == (3, 60, 40)
    top = out["image"][:, :25].float().mean(dim=(1, 2))
    assert top[0] > 150 and top[2] < 60  # the left (object) half is now on top


def test_mask_variant_paints_other_objects(tmp_path):
    colors = [(200, 30, 30), (30, 200, 30), (200, 200, 30)]
    boxes = [(10, 10, 50, 40), (60, 20, 120, 90), (100, 70, 150, 115)]  # 2 overlaps 1
    path, img = _write(tmp_path, "a.png", boxes, colors=colors)
    m = ClassificationDatasetMapper(
        True, augmentations=[], paint_color=pixel_mean_rgb(MEAN_BGR, "BGR")
    )
    ann = _dict(path, boxes)
    ann["annotations"][0]["bbox"] = [
        9.6,
        10.4,
        50.2,
        39.5,
    ]  # rounding rule: cols 10..49, rows 10..38
    out = m(dict(ann, target_object=1))
    got = out["image"].permute(1, 2, 0).numpy()
    expected = img.copy()
    expected[10:39, 10:50] = MEAN_RGB_U8
    painted3 = np.zeros(img.shape[:2], bool)
    painted3[70:115, 100:150] = True
    painted3[20:90, 60:120] = False  # the target object is kept whole
    expected[painted3] = MEAN_RGB_U8
    assert np.array_equal(got, expected)
    assert out["objectness"] == pytest.approx(60 * 70 / (120 * 160))
    assert torch.equal(out["boxes"], torch.tensor([[60.0, 20, 120, 90]]))
    assert out["context"] is False and out["label"] == 7


def test_paint_all_objects_for_context_val(tmp_path):
    boxes = [(10, 10, 50, 40), (60, 20, 120, 90)]
    path, img = _write(tmp_path, "a.png", boxes)
    m = ClassificationDatasetMapper(False, augmentations=[], paint_color=(124, 116, 104))
    out = m(_dict(path, boxes, label=3, paint_all_objects=True))
    got = out["image"].permute(1, 2, 0).numpy()
    expected = img.copy()
    for x0, y0, x1, y1 in boxes:
        expected[y0:y1, x0:x1] = MEAN_RGB_U8
    assert np.array_equal(got, expected)
    assert out["label"] == 3 and out["objectness"] == 0.0 and out["context"] is False
    assert out["boxes"].shape == (0, 4)
    # through the real test transforms: no object pixel left
    out = ClassificationDatasetMapper(_cfg(), is_train=False)(
        _dict(path, boxes, paint_all_objects=True)
    )
    assert _object_fraction(out["image"]) == 0.0


def test_context_variant_frequency_and_pixels(tmp_path):
    boxes = [(8, 8, 24, 24)]
    path, img = _write(tmp_path, "a.png", boxes, size=(32, 32))
    d = _dict(path, boxes, size=(32, 32))
    np.random.seed(0)
    m = ClassificationDatasetMapper(True, augmentations=[], variant="context", context_prob=0.3)
    outs = [m(d) for _ in range(600)]
    ctx = np.array([o["context"] for o in outs])
    assert abs(ctx.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 600)
    for o in outs[:50]:
        got = o["image"].permute(1, 2, 0).numpy()
        if o["context"]:
            assert o["objectness"] == 0.0 and o["boxes"].shape == (0, 4)
            assert (got[8:24, 8:24] == MEAN_RGB_U8).all()
        else:
            assert o["objectness"] == pytest.approx(0.25)
            assert np.array_equal(got, img)
        assert np.array_equal(got[:8], img[:8])  # outside the box: untouched
    # never at evaluation, never without the variant
    m_eval = ClassificationDatasetMapper(
        False, augmentations=[], variant="context", context_prob=0.9
    )
    m_none = ClassificationDatasetMapper(True, augmentations=[], variant="none", context_prob=0.9)
    assert not any(m_eval(d)["context"] or m_none(d)["context"] for _ in range(20))


def test_reproducible_with_seed(tmp_path):
    boxes = [(20, 30, 90, 100)]
    path, _ = _write(tmp_path, "a.jpg", boxes, quality=90)
    m = ClassificationDatasetMapper(_cfg(VARIANT="context"), is_train=True)
    d = _dict(path, boxes)

    def run(seed):
        np.random.seed(seed)
        return [m(d) for _ in range(5)]

    a, b, c = run(3), run(3), run(4)
    for x, y in zip(a, b):
        assert torch.equal(x["image"], y["image"]) and x["objectness"] == y["objectness"]
        assert x["context"] == y["context"]
    assert any(not torch.equal(x["image"], z["image"]) for x, z in zip(a, c))


def test_boxes_clipped_and_dropped(tmp_path):
    path, _ = _write(tmp_path, "a.png", [])
    boxes = [(-10, -5, 40, 30), (150, 100, 170, 130), (200, 0, 220, 10)]  # partly / fully outside
    d = _dict(path, boxes)
    d["annotations"].append(
        {"bbox": [5, 5, 10, 10], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 7}
    )
    out = ClassificationDatasetMapper(True, augmentations=[])(d)
    assert torch.allclose(
        out["boxes"], torch.tensor([[0.0, 0, 40, 30], [150, 100, 160, 120], [5, 5, 15, 15]])
    )
    assert out["objectness"] == pytest.approx((40 * 30 + 10 * 20) / (160 * 120))  # 4th inside 1st


# ---------------------------------------------------------------- detectron2 path, robustness
import logging  # noqa: E402

from detectron2.data.detection_utils import SizeMismatchError  # noqa: E402

from als_d2.data import mapper as mapper_module  # noqa: E402
from als_d2.data.image_io import ImageDecodeError  # noqa: E402
from detectron2.data.detection_utils import read_image  # noqa: E402

from als_d2.data.painting import paint_boxes  # noqa: E402
from als_d2.data.transforms import build_cls_augmentation, clip_boxes  # noqa: E402


def _photo(tmp_path, name, size, boxes, seed=0):
    """A smooth random JPEG with OBJ-coloured boxes (integer XYXY)."""
    h, w = size
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, size=(h // 24 + 2, w // 24 + 2, 3), dtype=np.uint8)
    img = np.array(Image.fromarray(low).resize((w, h), Image.BICUBIC))
    img[..., 0] = np.minimum(img[..., 0], img[..., 2])  # never red: R - max(G, B) <= 0
    for x0, y0, x1, y1 in boxes:
        img[y0:y1, x0:x1] = OBJ
    path = tmp_path / name
    Image.fromarray(img).save(path, quality=92)
    return str(path)


@pytest.mark.parametrize("mask", [False, True])
def test_mapper_equals_detectron2_pipeline_by_hand(tmp_path, mask):
    """The mapper is detectron2's read / paint / augment path: the same seeds through
    ``read_image``, ``paint_boxes``, ``AugmentationList`` and fvcore's ``apply_box`` by hand
    give the same pixels, boxes, objectness and context draws."""
    boxes = [(40, 30, 200, 180), (150, 100, 300, 230), (10, 150, 90, 240)]
    path = _photo(tmp_path, "a.jpg", (250, 320), boxes)
    cfg = _cfg(CROP_SIZE=64, VARIANT="context", CONTEXT_PROB=0.3)
    m = ClassificationDatasetMapper(cfg, is_train=True)
    augs = T.AugmentationList(build_cls_augmentation(cfg, is_train=True))
    d = _dict(path, boxes, size=(250, 320), **({"target_object": 1} if mask else {}))
    b = np.array(boxes, np.float64)
    contexts = []
    for seed in range(30):
        np.random.seed(seed)
        out = m(d)
        np.random.seed(seed)
        context = bool(np.random.rand() < 0.3)  # drawn first, before the augmentations
        image = read_image(path, format="RGB")
        kept = b[1:2] if mask else b
        if context:
            image, kept = paint_boxes(image, b, m.paint_color), b[:0]
        elif mask:
            image = paint_boxes(image, b[[0, 2]], m.paint_color)
            image[100:230, 150:300] = read_image(path, format="RGB")[100:230, 150:300]
        aug_input = T.AugInput(image, boxes=kept)
        augs(aug_input)
        ref_boxes = clip_boxes(aug_input.boxes, (64, 64))
        assert out["context"] == context
        assert np.array_equal(out["image"].permute(1, 2, 0).numpy(), aug_input.image)
        assert torch.equal(out["boxes"], torch.from_numpy(ref_boxes))
        assert out["objectness"] == (0.0 if context else objectness_fn(ref_boxes, (64, 64)))
        contexts.append(context)
    assert 0 < sum(contexts) < 30


def _bad_file(tmp_path):
    path = tmp_path / "bad.JPEG"
    data = io.BytesIO()
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(data, format="JPEG")
    path.write_bytes(data.getvalue()[:200])  # truncated
    return str(path)


def test_unreadable_image_skipped_in_training(tmp_path, caplog):
    """None and one warning naming the file and the reason per call; the mapper counts
    nothing (the training loader does: data/skipped_samples)."""
    d = _dict(_bad_file(tmp_path), [(1, 1, 20, 20)], size=(40, 50))
    m = ClassificationDatasetMapper(_cfg(), is_train=True)
    with caplog.at_level(logging.WARNING, logger="als_d2.data.mapper"):
        assert m(d) is None
        assert m(d) is None
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.name == "als_d2.data.mapper" and r.levelno >= logging.WARNING
    ]
    assert len(warned) == 2 and all("bad.JPEG" in w and "truncated" in w for w in warned)
    assert "so far" not in caplog.text
    assert not hasattr(mapper_module, "skipped_sample_count")
    assert not hasattr(mapper_module, "decode_failures")


def test_unreadable_image_in_evaluation(tmp_path):
    d = _dict(_bad_file(tmp_path), [], size=(40, 50))
    with pytest.raises(ImageDecodeError, match="bad.JPEG"):
        ClassificationDatasetMapper(_cfg(), is_train=False)(d)
    assert ClassificationDatasetMapper(_cfg(), is_train=False, skip_unreadable=True)(d) is None
    cfg = _cfg()
    cfg.INPUT.CLS.SKIP_UNREADABLE_EVAL = True
    assert ClassificationDatasetMapper(cfg, is_train=False)(d) is None
    missing = dict(d, file_name=str(tmp_path / "missing.JPEG"))
    with pytest.raises(ImageDecodeError, match="missing.JPEG"):
        ClassificationDatasetMapper(_cfg(), is_train=False)(missing)


def test_odd_files_through_the_mapper(tmp_path):
    img = np.empty((60, 80, 3), np.uint8)
    img[:] = BG
    img[10:40, 20:60] = OBJ
    Image.fromarray(img).save(tmp_path / "png.JPEG", format="PNG")
    Image.fromarray(img).convert("CMYK").save(tmp_path / "cmyk.JPEG", quality=95)
    Image.fromarray(img).convert("L").save(tmp_path / "grey.JPEG", quality=95)
    m = ClassificationDatasetMapper(_cfg(), is_train=True)
    for name in ("png.JPEG", "cmyk.JPEG", "grey.JPEG"):
        out = m(_dict(str(tmp_path / name), [(20, 10, 60, 40)], size=(60, 80)))
        assert out["image"].shape == (3, 48, 48) and 0.0 <= out["objectness"] <= 1.0


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_boxes_follow_the_pixels(tmp_path, orientation):
    """Boxes are given in the stored pixel grid (ILSVRC); the mapper orients them with
    the image, so objectness matches the object pixels of the output."""
    boxes = [(10, 8, 60, 30), (70, 40, 110, 75)]
    img = np.empty((80, 120, 3), np.uint8)
    img[:] = BG
    for x0, y0, x1, y1 in boxes:
        img[y0:y1, x0:x1] = OBJ
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "r.jpg"
    Image.fromarray(img).save(path, quality=95, exif=exif.tobytes())
    np.random.seed(0)
    m = ClassificationDatasetMapper(_cfg(CROP_SIZE=64), is_train=True)
    d = _dict(str(path), boxes, size=(80, 120))  # the stored size, as the dataset records it
    diffs = [abs(_object_fraction(o["image"]) - o["objectness"]) for o in (m(d) for _ in range(20))]
    assert np.mean(diffs) < 0.03, diffs
    full = ClassificationDatasetMapper(True, augmentations=[])(d)
    assert full["image"].shape[1:] == ((120, 80) if orientation in (6, 8) else (80, 120))
    assert full["objectness"] == pytest.approx((50 * 22 + 40 * 35) / (80 * 120))


def test_size_mismatch_names_the_file(tmp_path):
    path, _ = _write(tmp_path, "a.png", [])
    d = _dict(path, [], size=(100, 100))
    with pytest.raises(SizeMismatchError, match="a.png"):
        ClassificationDatasetMapper(_cfg(), is_train=True)(d)
    d.pop("height"), d.pop("width")
    out = ClassificationDatasetMapper(_cfg(), is_train=True)(d)
    assert (out["height"], out["width"]) == (120, 160)


def test_context_on_mask_set_paints_the_target_too(tmp_path):
    """The paper's 'context' rows train on the 'mask' set: a context sample has every object
    painted, the target object included, and a uniform target; the others are 'mask' samples."""
    colors = [(200, 30, 30), (30, 200, 30)]
    boxes = [(10, 10, 50, 40), (60, 20, 120, 90)]
    path, img = _write(tmp_path, "a.png", boxes, colors=colors)
    d = _dict(path, boxes, target_object=1)
    np.random.seed(1)
    m = ClassificationDatasetMapper(
        True,
        augmentations=[],
        variant="context",
        context_prob=0.5,
        paint_color=pixel_mean_rgb(MEAN_BGR, "BGR"),
    )
    outs = [m(d) for _ in range(200)]
    ctx = np.array([o["context"] for o in outs])
    assert abs(ctx.mean() - 0.5) < 4 * np.sqrt(0.25 / 200)
    both = np.zeros(img.shape[:2], bool)
    for x0, y0, x1, y1 in boxes:
        both[y0:y1, x0:x1] = True
    for o in outs[:40]:
        got = o["image"].permute(1, 2, 0).numpy()
        if o["context"]:  # both objects painted: the union of the two boxes
            assert o["objectness"] == 0.0 and o["boxes"].shape == (0, 4)
            assert (got[both] == MEAN_RGB_U8).all() and np.array_equal(got[~both], img[~both])
            assert o["painted_fraction"] == pytest.approx(both.mean())
        else:  # a 'mask' sample: object 0 painted, the target kept
            assert o["objectness"] == pytest.approx(60 * 70 / (120 * 160))
            assert (got[10:40, 10:50] == MEAN_RGB_U8).all() and np.array_equal(
                got[20:90, 60:120], img[20:90, 60:120]
            )
            assert o["painted_fraction"] == pytest.approx(40 * 30 / (120 * 160))


def test_painted_fraction_is_the_painted_area_of_the_output(tmp_path):
    """Through a real crop: the painted fraction equals the pixel count of the painted
    colour in the output (counted here on an unresized crop, so pixels are exact)."""
    boxes = [(10, 10, 50, 40), (40, 30, 100, 80)]  # overlapping; target = 1 kept whole
    path, _ = _write(tmp_path, "a.png", boxes, colors=[(200, 30, 30), (30, 200, 30)])
    crop = T.CropTransform(20, 15, 90, 70)  # x0, y0, w, h
    m = ClassificationDatasetMapper(True, augmentations=[crop], paint_color=(0, 0, 0))
    out = m(_dict(path, boxes, target_object=1))
    got = out["image"].permute(1, 2, 0).numpy()
    painted_pixels = (got == 0).all(axis=2).mean()
    # by hand: box 0 in the crop is x 0..30, y 0..25, minus box 1 (x 20..80, y 15..65)
    assert painted_pixels == pytest.approx((30 * 25 - 10 * 10) / (90 * 70))
    assert out["painted_fraction"] == pytest.approx(painted_pixels)
    plain = ClassificationDatasetMapper(True, augmentations=[crop])(_dict(path, boxes))
    assert plain["painted_fraction"] == 0.0


def test_no_zero_height_box_after_float32_rounding(tmp_path):
    """A crop top 128, height 198, resized to 224: the edge y = 326 maps to 223.99999999999997
    in float64 and to 224.0 in float32; the box (y 326..400) is empty and must be dropped."""
    path, _ = _write(tmp_path, "a.png", [], size=(400, 300))
    boxes = [(10, 326, 200, 400), (10, 150, 200, 250)]
    tfms = [T.CropTransform(0, 128, 300, 198), T.ResizeTransform(198, 300, 224, 224)]
    m = ClassificationDatasetMapper(True, augmentations=tfms)
    out = m(_dict(path, boxes, size=(400, 300)))
    b = out["boxes"]
    assert b.dtype == torch.float32 and b.shape[0] == 1
    assert bool(((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all())
