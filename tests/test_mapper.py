"""ClassificationDatasetMapper: objectness on pixels, painting variants, context frequency."""
import numpy as np
import pytest
import torch
from PIL import Image

import als_d2  # noqa: F401
from detectron2.config import get_cfg
from detectron2.structures import BoxMode

from als_d2.config import add_als_config
from als_d2.data.mapper import ClassificationDatasetMapper, pixel_mean_rgb
from als_d2.data.objectness import objectness as objectness_fn

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
    assert set(out) == set(d) | {"image", "boxes", "objectness", "context"}
    assert out["image"].dtype == torch.uint8 and out["image"].shape == (3, 48, 48)
    assert out["label"] == 7 and isinstance(out["label"], int)
    assert isinstance(out["objectness"], float) and 0.0 <= out["objectness"] <= 1.0
    assert out["boxes"].dtype == torch.float32 and out["boxes"].shape[1] == 4
    assert out["context"] is False
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
    assert out["objectness"] is None and out["boxes"].shape == (0, 4) and out["context"] is False


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
