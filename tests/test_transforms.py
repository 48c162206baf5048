"""transforms.py: torchvision semantics of the crops, boxes through the geometry, colour ops."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

import als_d2  # noqa: F401
from detectron2.config import get_cfg
from detectron2.data import transforms as T
import torchvision.transforms as TV
import torchvision.transforms.functional as TVF

from als_d2.config import add_als_config
from als_d2.data.transforms import (
    CenterCrop,
    ColorJitter,
    ColorJitterTransform,
    Lighting,
    LightingTransform,
    RandomResizedCrop,
    ResizeShorterSide,
    TorchResizeTransform,
    build_cls_augmentation,
    clip_boxes,
)


def _cfg(**cls):
    cfg = get_cfg()
    add_als_config(cfg)
    for k, v in cls.items():
        setattr(cfg.INPUT.CLS, k, v)
    return cfg


def _rand_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_random_resized_crop_bounds():
    np.random.seed(0)
    aug = RandomResizedCrop(32)
    height, width = 300, 400
    for _ in range(2000):
        top, left, h, w = aug.get_params(height, width)
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width
        # area and ratio within the ranges, up to the rounding of w and h to integers
        assert 0.08 * height * width - (w + h + 1) <= w * h <= height * width
        assert 3 / 4 - 1.0 / h <= w / h <= 4 / 3 + 1.0 / h


def test_random_resized_crop_matches_torchvision_statistics():
    np.random.seed(1)
    torch.manual_seed(1)
    height, width, n = 240, 320, 4000
    ours = np.array([RandomResizedCrop(32).get_params(height, width) for _ in range(n)], float)
    img = torch.zeros(1, height, width)
    tv = np.array(
        [TV.RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(n)], float
    )

    def stats(p):
        top, left, h, w = p.T
        area = h * w / (height * width)
        return np.stack([area, np.log(w / h), (top + h / 2) / height, (left + w / 2) / width])

    so, st = stats(ours), stats(tv)
    se = np.sqrt(so.var(axis=1) / n + st.var(axis=1) / n)
    assert np.all(np.abs(so.mean(axis=1) - st.mean(axis=1)) < 4 * se + 1e-9)
    # distribution of the area fraction: quantiles agree
    qs = [0.1, 0.25, 0.5, 0.75, 0.9]
    assert np.allclose(np.quantile(so[0], qs), np.quantile(st[0], qs), atol=0.04)
    # log ratio is uniform on [log 3/4, log 4/3] among accepted crops (loosely: its range)
    assert so[1].min() > math.log(3 / 4) - 0.05 and so[1].max() < math.log(4 / 3) + 0.05


@pytest.mark.parametrize("hw", [(10, 1000), (1000, 10), (7, 9), (1, 1)])
def test_random_resized_crop_fallback_matches_torchvision(hw):
    # extreme images: no try can succeed, or the whole image fits the ratio range
    height, width = hw
    np.random.seed(0)
    torch.manual_seed(0)
    ours = RandomResizedCrop(16, scale=(0.9, 1.0)).get_params(height, width)
    tv = TV.RandomResizedCrop.get_params(torch.zeros(1, height, width), [0.9, 1.0], [3 / 4, 4 / 3])
    if hw in ((10, 1000), (1000, 10)):  # deterministic fallback: central crop, ratio clamped
        assert ours == tuple(tv)
    top, left, h, w = ours
    assert 0 <= top and top + h <= height and 0 <= left and left + w <= width


def test_fallback_path_is_central_crop_clamped_to_ratio():
    np.random.seed(0)
    aug = RandomResizedCrop(16)
    assert aug.get_params(10, 1000) == (0, (1000 - 13) // 2, 10, 13)  # w = round(10 * 4/3)
    assert aug.get_params(1000, 10) == ((1000 - 13) // 2, 0, 13, 10)  # h = round(10 / (3/4))


def test_random_resized_crop_ratio_is_width_over_height():
    """With an asymmetric ratio range (2, 3) every crop is 2 to 3 times wider than tall
    (up to the rounding of w and h), log(w / h) spreads over [log 2, log 3] (log-uniform:
    mean at the middle), and the crop the transform applies is that one; the symmetric
    default (3/4, 4/3) cannot tell w/h from h/w."""
    np.random.seed(3)
    aug = RandomResizedCrop(32, scale=(0.2, 0.3), ratio=(2.0, 3.0))
    height, width, n = 1000, 1000, 2000  # every try fits: no fallback
    log_ratios = []
    for _ in range(n):
        top, left, h, w = aug.get_params(height, width)
        assert (2.0 * (h - 0.5) - 0.5) / h <= w / h <= (3.0 * (h + 0.5) + 0.5) / h, (w, h)
        log_ratios.append(math.log(w / h))
    lo, hi = math.log(2.0), math.log(3.0)
    se = (hi - lo) / math.sqrt(12 * n)  # standard error of the mean of U(lo, hi)
    assert abs(np.mean(log_ratios) - (lo + hi) / 2) < 4 * se + 1e-3
    assert min(log_ratios) < lo + 0.05 and max(log_ratios) > hi - 0.05
    crop = aug.get_transform(_rand_image(200, 300)).transforms[0]
    assert 2.0 - 1.0 / crop.h <= crop.w / crop.h <= 3.0 + 1.0 / crop.h
    # the fallback (a tall image no try fits) clamps w/h to the range too: w = 10, h = 10 / 2
    assert aug.get_params(1000, 10) == ((1000 - 5) // 2, 0, 5, 10)


def test_crop_and_resize_pixels_equal_torchvision():
    """The crop of torchvision's resized_crop: with PIL's resize (detectron2's
    ResizeTransform) the pixels are torchvision's exactly; with the transform's own torch
    resize, within 2 grey levels."""
    img = _rand_image(60, 80)
    pil = Image.fromarray(img)
    tfm = RandomResizedCrop(24).get_transform(img)  # crop, resize
    crop, resize = tfm.transforms
    assert isinstance(resize, TorchResizeTransform) and (resize.new_h, resize.new_w) == (24, 24)
    tv = np.asarray(TVF.resized_crop(pil, crop.y0, crop.x0, crop.h, crop.w, [24, 24]))
    exact = T.ResizeTransform(resize.h, resize.w, 24, 24).apply_image(crop.apply_image(img))
    assert np.array_equal(exact, tv)
    ours = tfm.apply_image(img)
    assert ours.shape == (24, 24, 3) and np.abs(ours.astype(int) - tv).max() <= 2


@pytest.mark.parametrize("hw", [(60, 80), (90, 50), (64, 64)])
def test_test_transforms_equal_torchvision(hw):
    img = _rand_image(*hw, seed=2)
    augs = build_cls_augmentation(_cfg(TEST_RESIZE=40, CROP_SIZE=32), is_train=False)
    assert [type(a) for a in augs] == [ResizeShorterSide, CenterCrop]
    aug_input = T.AugInput(img)
    tfms = T.AugmentationList(augs)(aug_input)
    tv = np.asarray(TV.Compose([TV.Resize(40), TV.CenterCrop(32)])(Image.fromarray(img)))
    assert aug_input.image.shape == (32, 32, 3)
    assert np.abs(aug_input.image.astype(int) - tv).max() <= 2  # torch's resize vs PIL's
    resize, crop = tfms.transforms  # with PIL's resize: torchvision's pixels exactly
    exact = crop.apply_image(
        T.ResizeTransform(resize.h, resize.w, resize.new_h, resize.new_w).apply_image(img)
    )
    assert np.array_equal(exact, tv)


def test_evaluation_crop_size_apart_from_the_training_crop():
    """TEST_CROP_SIZE (torchvision's new recipe: train 176, evaluate Resize(232) +
    CenterCrop(224)): the evaluation pixels are torchvision's; 0 keeps CROP_SIZE."""
    from als_d2.config import ConfigError, check_als_config

    img = _rand_image(70, 90, seed=3)
    cfg = _cfg(CROP_SIZE=24, TEST_RESIZE=40, TEST_CROP_SIZE=36)
    aug_input = T.AugInput(img)
    tfms = T.AugmentationList(build_cls_augmentation(cfg, is_train=False))(aug_input)
    tv = np.asarray(TV.Compose([TV.Resize(40), TV.CenterCrop(36)])(Image.fromarray(img)))
    resize, crop = tfms.transforms
    exact = crop.apply_image(
        T.ResizeTransform(resize.h, resize.w, resize.new_h, resize.new_w).apply_image(img)
    )
    assert aug_input.image.shape == (36, 36, 3) and np.array_equal(exact, tv)
    train = T.AugInput(img)
    T.AugmentationList(build_cls_augmentation(cfg, is_train=True))(train)
    assert train.image.shape == (24, 24, 3)
    default = T.AugInput(img)
    T.AugmentationList(build_cls_augmentation(_cfg(CROP_SIZE=24, TEST_RESIZE=40), False))(default)
    assert default.image.shape == (24, 24, 3)
    cfg.MODEL.DEVICE, cfg.MODEL.RESNETS.OUT_FEATURES = "cpu", ["res5"]
    check_als_config(cfg)
    cfg.INPUT.CLS.TEST_RESIZE = 30  # below the evaluation crop, though above CROP_SIZE
    with pytest.raises(ConfigError, match="INPUT.CLS.TEST_RESIZE = 30: .*evaluation crop \\(36"):
        check_als_config(cfg)


def test_boxes_follow_crop_resize_and_flip():
    boxes = np.array([[20, 10, 60, 50], [150, 80, 250, 120]], np.float32)
    tfm = T.TransformList(
        [
            T.CropTransform(10, 0, 160, 80, orig_w=200, orig_h=100),
            T.ResizeTransform(80, 160, 40, 40),
            T.HFlipTransform(40),
        ]
    )
    out = tfm.apply_box(boxes)
    # x: (x - 10) * 40/160, then 40 - x; y: y * 40/80
    assert np.allclose(out[0], [40 - 12.5, 5, 40 - 2.5, 25])
    assert np.allclose(out[1], [40 - 60, 40, 40 - 35, 60])
    clipped = clip_boxes(out, (40, 40))
    assert np.allclose(clipped, [[27.5, 5, 37.5, 25]])  # second box left the frame: dropped
    assert clip_boxes(None, (4, 4)).shape == (0, 4)


def test_train_pipeline_shapes_and_reproducibility():
    cfg = _cfg(CROP_SIZE=32)
    augs = build_cls_augmentation(cfg, is_train=True)
    assert [type(a) for a in augs] == [RandomResizedCrop, T.RandomFlip, ColorJitter, Lighting]
    img = _rand_image(50, 70)
    boxes = np.array([[5, 5, 40, 30]], np.float32)

    def run(seed):
        np.random.seed(seed)
        a = T.AugInput(img.copy(), boxes=boxes.copy())
        T.AugmentationList(augs)(a)
        return a.image, a.boxes

    (i1, b1), (i2, b2), (i3, _) = run(5), run(5), run(6)
    assert i1.shape == (32, 32, 3) and i1.dtype == np.uint8
    assert np.array_equal(i1, i2) and np.array_equal(b1, b2)
    assert not np.array_equal(i1, i3)


def test_build_switches_off():
    cfg = _cfg(HFLIP_PROB=0.0, COLOR_JITTER=[], LIGHTING_STD=0.0)
    assert [type(a) for a in build_cls_augmentation(cfg, True)] == [RandomResizedCrop]
    cfg = _cfg(COLOR_JITTER=[0.0, 0.0, 0.0])
    assert ColorJitter not in [type(a) for a in build_cls_augmentation(cfg, True)]


def _tv(img):
    return torch.from_numpy(img).permute(2, 0, 1).float() / 255.0


def _np(t):
    return (t * 255.0).permute(1, 2, 0).numpy()


@pytest.mark.parametrize(
    "name,fn",
    [
        ("brightness", TVF.adjust_brightness),
        ("contrast", TVF.adjust_contrast),
        ("saturation", TVF.adjust_saturation),
    ],
)
@pytest.mark.parametrize("factor", [0.6, 1.0, 1.4])
def test_color_ops_match_torchvision(name, fn, factor):
    img = _rand_image(20, 30, seed=3)
    ours = ColorJitterTransform([(name, factor)]).apply_image(img).astype(np.float32)
    ref = _np(fn(_tv(img), factor))
    # rounding to uint8, and torchvision greys with 0.2989 R (PIL and we: 0.299 R)
    assert np.abs(ours - ref).max() <= 0.55


def test_color_jitter_factors_order_and_geometry():
    np.random.seed(0)
    aug = ColorJitter(0.4, 0.3, 0.2)
    orders = set()
    for _ in range(300):
        tfm = aug.get_transform(np.zeros((2, 2, 3), np.uint8))
        names = [n for n, _ in tfm.ops]
        assert sorted(names) == ["brightness", "contrast", "saturation"]
        f = dict(tfm.ops)
        assert 0.6 <= f["brightness"] <= 1.4 and 0.7 <= f["contrast"] <= 1.3
        assert 0.8 <= f["saturation"] <= 1.2
        orders.add(tuple(names))
    assert len(orders) == 6  # random order, as torchvision
    assert [n for n, _ in ColorJitter(0.4, 0.0, 0.0).get_transform(None).ops] == ["brightness"]
    coords = np.array([[1.0, 2.0]])
    assert np.array_equal(tfm.apply_coords(coords.copy()), coords)


def test_lighting():
    img = np.full((4, 5, 3), 100, np.uint8)
    out = LightingTransform([1.4, -2.6, 0.0]).apply_image(img)
    assert np.array_equal(out[0, 0], [101, 97, 100]) and (out == out[0, 0]).all()
    np.random.seed(0)
    offsets = np.array([Lighting(0.1).get_transform(img).offset for _ in range(2000)])
    # offset = 255 * V (a * lambda), a ~ N(0, 0.1): std of the R channel
    v = np.array(
        [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]
    )
    lam = np.array([0.2175, 0.0188, 0.0045])
    expected_std = 255 * 0.1 * np.sqrt((v**2 * lam**2).sum(axis=1))
    assert np.allclose(offsets.std(axis=0), expected_std, rtol=0.1)
    assert np.allclose(offsets.mean(axis=0), 0, atol=0.3)


# ------------------------------------------------- uint8 resizing through torch


def test_torch_resize_transform_matches_pil():
    img = _rand_image(90, 120, seed=4)
    img = np.asarray(Image.fromarray(img).resize((120, 90), Image.BICUBIC))  # smoother
    pil = Image.fromarray(img)
    for out_hw in [(32, 40), (90, 200), (17, 17)]:  # down, up, odd
        tfm = TorchResizeTransform(90, 120, *out_hw)
        ours = tfm.apply_image(img)
        ref = np.asarray(pil.resize(out_hw[::-1], Image.BILINEAR))
        assert ours.shape == ref.shape and np.abs(ours.astype(int) - ref).max() <= 2
        view = tfm.apply_image(np.pad(img, ((0, 0), (5, 0), (0, 0)))[:, 5:])  # a strided crop
        assert np.array_equal(view, ours)
        # boxes as detectron2's ResizeTransform; other filters and dtypes through PIL, exactly
        box = np.array([[3.5, 2.0, 100.0, 80.25]])
        assert np.array_equal(
            tfm.apply_box(box), T.ResizeTransform(90, 120, *out_hw).apply_box(box)
        )
        nearest = TorchResizeTransform(90, 120, *out_hw, Image.NEAREST).apply_image(img)
        assert np.array_equal(nearest, np.asarray(pil.resize(out_hw[::-1], Image.NEAREST)))
    assert TorchResizeTransform(90, 120, 90, 120).apply_image(img) is img  # nothing to do


def test_clip_boxes_keeps_semantics():
    b = np.array([[-5, -5, 5, 5], [2, 3, 2, 9], [1, 1, 50, 50], [30, 30, 40, 40]], np.float64)
    out = clip_boxes(b, (20, 25))
    assert out.dtype == np.float32
    assert np.array_equal(out, np.array([[0, 0, 5, 5], [1, 1, 25, 20]], np.float32))
