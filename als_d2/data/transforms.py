"""Classification augmentations as detectron2 ``Augmentation``s, so boxes follow the image.

Geometric augmentations (RandomResizedCrop, horizontal flip, test-time resize and
centre crop) return detectron2/fvcore ``CropTransform`` / ``ResizeTransform`` /
``HFlipTransform``, whose ``apply_box`` maps XYXY_ABS boxes (pixels) into the output
frame: a pixel is the unit square [j, j+1] x [i, i+1], so the crop of columns
[x0, x0+w) resized to S columns maps x to (x - x0) * S / w. Photometric ones (colour
jitter, AlexNet PCA lighting) act on the image only and expect RGB uint8 images.

Every random draw uses numpy's global RNG, as detectron2's augmentations do, so seeded
data-loader workers reproduce the same samples.
"""
import math
import warnings
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from detectron2.data import transforms as T

__all__ = [
    "ContiguousCropTransform",
    "RandomResizedCrop",
    "ResizeShorterSide",
    "CenterCrop",
    "ColorJitter",
    "ColorJitterTransform",
    "Lighting",
    "LightingTransform",
    "PhotometricTransform",
    "clip_boxes",
    "resize_uint8",
    "apply_box",
    "axis_affine",
    "build_cls_augmentation",
]

# ITU-R 601-2 luma, as PIL's convert("L") and torchvision's rgb_to_grayscale.
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class ContiguousCropTransform(T.CropTransform):
    """``CropTransform`` returning a C-contiguous copy of the crop instead of a view: PIL
    (the resize that follows) copies a strided view element by element, ~4x slower."""

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(super().apply_image(img))


def _crop_and_resize(height, width, top, left, h, w, out_h, out_w, interp) -> T.TransformList:
    return T.TransformList(
        [
            ContiguousCropTransform(left, top, w, h, orig_w=width, orig_h=height),
            T.ResizeTransform(h, w, out_h, out_w, interp),
        ]
    )


class RandomResizedCrop(T.Augmentation):
    """
    torchvision's ``RandomResizedCrop`` (same sampling, numpy RNG): a crop of random
    area fraction in ``scale`` and aspect ratio (w/h) sampled log-uniformly in
    ``ratio``, at a uniformly random position, resized to ``size`` x ``size``. After 10
    failed tries, the central crop of the whole image with its aspect ratio clamped
    to ``ratio``.
    """

    def __init__(
        self,
        size: int,
        scale: Tuple[float, float] = (0.08, 1.0),
        ratio: Tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        interp=Image.BILINEAR,
    ):
        super().__init__()
        self.size = int(size)
        self.scale = tuple(float(v) for v in scale)
        self.ratio = tuple(float(v) for v in ratio)
        self.interp = interp

    def get_params(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """
        Returns:
            (top, left, h, w) of the crop in input pixels, as torchvision's ``get_params``.
        """
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target_area = area * np.random.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(np.random.uniform(log_lo, log_hi))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(np.random.randint(0, height - h + 1))
                left = int(np.random.randint(0, width - w + 1))
                return top, left, h, w
        # Fallback: central crop, aspect ratio clamped to the range.
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w = width
            h = int(round(w / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h = height
            w = int(round(h * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def get_transform(self, image):
        height, width = image.shape[:2]
        top, left, h, w = self.get_params(height, width)
        return _crop_and_resize(height, width, top, left, h, w, self.size, self.size, self.interp)


class ResizeShorterSide(T.Augmentation):
    """
    torchvision's ``Resize(size)`` with an int size: the shorter side becomes ``size``,
    the longer ``int(size * long / short)`` (deterministic).
    """

    def __init__(self, size: int, interp=Image.BILINEAR):
        super().__init__()
        self.size = int(size)
        self.interp = interp

    def get_transform(self, image):
        h, w = image.shape[:2]
        if w <= h:
            new_w, new_h = self.size, int(self.size * h / w)
        else:
            new_h, new_w = self.size, int(self.size * w / h)
        if (new_h, new_w) == (h, w):
            return T.NoOpTransform()
        return T.ResizeTransform(h, w, new_h, new_w, self.interp)


class CenterCrop(T.Augmentation):
    """torchvision's ``CenterCrop(size)``: the central ``size`` x ``size`` pixels."""

    def __init__(self, size: int):
        super().__init__()
        self.size = int(size)

    def get_transform(self, image):
        h, w = image.shape[:2]
        if h < self.size or w < self.size:
            raise ValueError(f"CenterCrop({self.size}) of a {h}x{w} image: resize it first")
        top = int(round((h - self.size) / 2.0))
        left = int(round((w - self.size) / 2.0))
        return ContiguousCropTransform(left, top, self.size, self.size, orig_w=w, orig_h=h)


class PhotometricTransform(T.Transform):
    """A transform of pixel values only: coordinates, boxes and segmentations pass
    through unchanged (no corner round trip), the inverse is a no-op."""

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_box(self, box: np.ndarray) -> np.ndarray:  # skip fvcore's corner round trip
        return box

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> T.Transform:
        return T.NoOpTransform()


class ColorJitterTransform(PhotometricTransform):
    """
    Brightness / contrast / saturation blends applied in a given order to an RGB image
    (float arithmetic, clipped to [0, 255] after each step, rounded once at the end).
    Boxes and coordinates are unchanged.

    Args:
        ops: sequence of (name, factor), name in {"brightness", "contrast", "saturation"};
            factor 1 is the identity (torchvision's ``adjust_*`` semantics).
    """

    def __init__(self, ops: Sequence[Tuple[str, float]]):
        super().__init__()
        self.ops = tuple((str(n), float(f)) for n, f in ops)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        assert img.ndim == 3 and img.shape[2] == 3, "ColorJitterTransform expects HxWx3 RGB"
        out = img.astype(np.float32)
        for name, f in self.ops:
            if name == "brightness":  # blend with black
                out *= f
            elif name == "contrast":  # blend with the mean grey level
                mean = float((out @ _GRAY).mean())
                out *= f
                out += (1.0 - f) * mean
            elif name == "saturation":  # blend with the grey image
                gray = out @ _GRAY
                out *= f
                out += (1.0 - f) * gray[:, :, None]
            else:
                raise ValueError(f"unknown colour op {name!r}")
            np.clip(out, 0.0, 255.0, out=out)
        if img.dtype == np.uint8:
            return np.rint(out).astype(np.uint8)
        return out.astype(img.dtype)



class ColorJitter(T.Augmentation):
    """
    torchvision's ``ColorJitter(brightness, contrast, saturation)``: each factor is
    uniform in [max(0, 1 - s), 1 + s] for a strength s > 0 (s = 0: op skipped), and the
    ops are applied in a random order. Image only; expects RGB.
    """

    _NAMES = ("brightness", "contrast", "saturation")

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4):
        super().__init__()
        self.brightness = float(brightness)
        self.contrast = float(contrast)
        self.saturation = float(saturation)

    def get_transform(self, image):
        strengths = (self.brightness, self.contrast, self.saturation)
        order = np.random.permutation(3)
        factors = [
            np.random.uniform(max(0.0, 1.0 - s), 1.0 + s) if s > 0 else None for s in strengths
        ]
        ops = [(self._NAMES[i], factors[i]) for i in order if factors[i] is not None]
        return ColorJitterTransform(ops)


# AlexNet's PCA of ImageNet RGB pixels in [0, 1]: eigenvalues and eigenvectors (columns).
_PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045])
_PCA_EIGVEC = np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]
)


class LightingTransform(PhotometricTransform):
    """Adds a constant RGB offset (0-255 units) to every pixel, clipped to [0, 255]."""

    def __init__(self, offset: Sequence[float]):
        super().__init__()
        self.offset = np.asarray(offset, dtype=np.float32).reshape(3)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        assert img.ndim == 3 and img.shape[2] == 3, "LightingTransform expects HxWx3 RGB"
        if img.dtype == np.uint8:  # per-channel lookup table: rint(clip(v + offset))
            levels = np.arange(256, dtype=np.float32)[:, None] + self.offset  # 256 x 3
            lut = np.rint(np.clip(levels, 0.0, 255.0)).astype(np.uint8)
            out = np.empty_like(img)
            for c in range(3):
                out[..., c] = lut[:, c][img[..., c]]
            return out
        return np.clip(img + self.offset, 0.0, 255.0).astype(img.dtype)



class Lighting(T.Augmentation):
    """
    AlexNet PCA lighting noise: offset = 255 * eigvec @ (a * eigval), a ~ N(0, std^2)
    per component. The ImageNet PCA is of RGB values in [0, 1], hence the factor 255 for
    0-255 images. Image only; expects RGB.
    """

    def __init__(self, std: float = 0.1):
        super().__init__()
        self.std = float(std)

    def get_transform(self, image):
        a = np.random.normal(0.0, self.std, size=3)
        return LightingTransform(255.0 * (_PCA_EIGVEC @ (a * _PCA_EIGVAL)))


def clip_boxes(boxes, image_size: Tuple[int, int]) -> np.ndarray:
    """
    Clip XYXY_ABS boxes (pixels) to the frame [0, w] x [0, h] and drop the empty ones.

    Args:
        boxes: Nx4 array-like (or None).
        image_size: (h, w).

    Returns:
        ndarray: Mx4 float32, M <= N, every box with x1 > x0 and y1 > y0.
    """
    h, w = image_size
    if boxes is None:
        return np.zeros((0, 4), dtype=np.float32)
    b = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    np.maximum(b, 0.0, out=b)  # np.clip is ~10x slower on small arrays (numpy 1.23)
    np.minimum(b, np.array([w, h, w, h], dtype=np.float32), out=b)
    return b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]


def _torch_resize_ok() -> bool:
    """Whether torch resizes uint8 images with antialiasing (torch >= 2.1) like PIL does."""
    try:
        x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
        torch.nn.functional.interpolate(
            x, size=(3, 5), mode="bilinear", antialias=True, align_corners=False
        )
        return True
    except (RuntimeError, TypeError, NotImplementedError):
        return False


_TORCH_RESIZE = _torch_resize_ok()


_READONLY_WARNED = False


def _torch_view(img: np.ndarray) -> torch.Tensor:
    """1x3xHxW channels-last uint8 tensor sharing the memory of a C-contiguous HxWx3 array."""
    global _READONLY_WARNED
    if img.flags.writeable or _READONLY_WARNED:
        t = torch.from_numpy(img)
    else:  # Pillow's arrays are read-only (torch only reads them): torch warns once per process
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(img)
        _READONLY_WARNED = True
    return t.unsqueeze(0).permute(0, 3, 1, 2)


def resize_uint8(
    img: np.ndarray,
    out_hw: Tuple[int, int],
    box: Optional[Sequence[float]] = None,
    interp=Image.BILINEAR,
) -> np.ndarray:
    """
    Resize the region ``box`` of an HxWx3 uint8 image to ``out_hw`` = (h, w), with PIL's
    antialiased filters: output pixel j samples x = x0 + (j + 0.5) (x1 - x0) / w, the
    filter taps clamped to the image (pixels around a fractional box count).

    The whole image (``box`` None or (0, 0, W, H)) with bilinear goes through torch's
    uint8 antialiased resize (~5x faster than PIL, equal to it within 2 levels); anything
    else through PIL's ``Image.resize(box=...)``.

    Returns:
        out_h x out_w x 3 uint8 array (C-contiguous).
    """
    h, w = img.shape[:2]
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    whole = box is None or tuple(float(v) for v in box) == (0.0, 0.0, float(w), float(h))
    if whole and (out_h, out_w) == (h, w):
        return img
    img = np.ascontiguousarray(img)
    if whole and interp == Image.BILINEAR and _TORCH_RESIZE and img.ndim == 3 and img.shape[2] == 3:
        out = torch.nn.functional.interpolate(
            _torch_view(img),
            size=(out_h, out_w),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        return out[0].permute(1, 2, 0).numpy()  # channels-last output: HWC C-contiguous
    pil = Image.fromarray(img)
    return np.asarray(pil.resize((out_w, out_h), interp, box=None if whole else tuple(box)))


def _flatten(tfms) -> list:
    if isinstance(tfms, T.TransformList):
        return list(tfms.transforms)
    if isinstance(tfms, (list, tuple)):
        return [t for x in tfms for t in _flatten(x)]
    return [tfms]


def axis_affine(tfms) -> Optional[Tuple[float, float, float, float]]:
    """
    (ax, cx, ay, cy) with x' = ax x + cx, y' = ay y + cy: the map of a chain of
    axis-aligned transforms (crop, resize, flips, any PhotometricTransform);
    None when the chain has any other transform.

    Args:
        tfms: a Transform, a TransformList, or a sequence of them (applied in order).
    """
    ax, cx, ay, cy = 1.0, 0.0, 1.0, 0.0
    for t in _flatten(tfms):
        if isinstance(t, (T.NoOpTransform, PhotometricTransform)):
            continue
        if isinstance(t, T.CropTransform):
            cx, cy = cx - t.x0, cy - t.y0
        elif isinstance(t, T.ResizeTransform):
            fx, fy = t.new_w * 1.0 / t.w, t.new_h * 1.0 / t.h
            ax, cx, ay, cy = ax * fx, cx * fx, ay * fy, cy * fy
        elif isinstance(t, T.HFlipTransform):
            ax, cx = -ax, t.width - cx
        elif isinstance(t, T.VFlipTransform):
            ay, cy = -ay, t.height - cy
        else:
            return None
    return ax, cx, ay, cy


def apply_box(tfms, boxes) -> np.ndarray:
    """
    ``tfm.apply_box(boxes)`` for XYXY_ABS boxes, in float64. Chains of axis-aligned
    transforms (crop, resize, flips, the photometric ones of this module) are composed
    into one affine map per axis and applied at once, without fvcore's corner round trip
    (same boxes, up to float64 rounding); others go through their ``apply_box``.

    Args:
        tfms: a Transform, a TransformList, or a sequence of them (applied in order).
        boxes: Nx4.

    Returns:
        Nx4 float64.
    """
    b = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    affine = axis_affine(tfms)
    if affine is None:
        for t in _flatten(tfms):
            b = np.asarray(t.apply_box(b), dtype=np.float64).reshape(-1, 4)
        return b
    ax, cx, ay, cy = affine
    if (ax, cx, ay, cy) != (1.0, 0.0, 1.0, 0.0):
        b *= (ax, ay, ax, ay)
        b += (cx, cy, cx, cy)
    if ax < 0 and ay < 0:
        b = b[:, [2, 3, 0, 1]]
    elif ax < 0:
        b = b[:, [2, 1, 0, 3]]
    elif ay < 0:
        b = b[:, [0, 3, 2, 1]]
    return b


def build_cls_augmentation(cfg, is_train: bool) -> List[T.Augmentation]:
    """
    The augmentations of cfg.INPUT.CLS.

    Training: RandomResizedCrop(CROP_SIZE, CROP_SCALE, CROP_RATIO), horizontal flip
    (HFLIP_PROB > 0), ColorJitter(*COLOR_JITTER) (non-empty, not all 0), Lighting
    (LIGHTING_STD > 0). Test: ResizeShorterSide(TEST_RESIZE), CenterCrop(CROP_SIZE).
    """
    c = cfg.INPUT.CLS
    if not is_train:
        return [ResizeShorterSide(c.TEST_RESIZE), CenterCrop(c.CROP_SIZE)]
    augs: List[T.Augmentation] = [
        RandomResizedCrop(c.CROP_SIZE, scale=tuple(c.CROP_SCALE), ratio=tuple(c.CROP_RATIO))
    ]
    if c.HFLIP_PROB > 0:
        augs.append(T.RandomFlip(prob=c.HFLIP_PROB, horizontal=True, vertical=False))
    if len(c.COLOR_JITTER) == 3 and any(v > 0 for v in c.COLOR_JITTER):
        augs.append(ColorJitter(*c.COLOR_JITTER))
    if c.LIGHTING_STD > 0:
        augs.append(Lighting(c.LIGHTING_STD))
    return augs
