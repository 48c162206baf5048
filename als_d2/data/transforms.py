"""Classification augmentations as detectron2 ``Augmentation``s, so boxes follow the image.

Geometric augmentations (RandomResizedCrop, horizontal flip, test-time resize and
centre crop) return detectron2/fvcore ``CropTransform`` / ``ResizeTransform`` /
``HFlipTransform``, whose ``apply_box`` maps XYXY_ABS boxes (pixels) into the output
frame: a pixel is the unit square [j, j+1] x [i, i+1], so the crop of columns
[x0, x0+w) resized to S columns maps x to (x - x0) * S / w. Resizes of uint8 images use
torch's antialiased filter (:class:`TorchResizeTransform`). Photometric ones (colour
jitter, AlexNet PCA lighting) act on the image only and expect RGB uint8 images.

Every random draw uses numpy's global RNG, as detectron2's augmentations do, so seeded
data-loader workers reproduce the same samples.
"""

import functools
import math
import warnings
from typing import List, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from detectron2.data import transforms as T

__all__ = [
    "TorchResizeTransform",
    "RandomResizedCrop",
    "ResizeShorterSide",
    "CenterCrop",
    "ColorJitter",
    "ColorJitterTransform",
    "Lighting",
    "LightingTransform",
    "PhotometricTransform",
    "clip_boxes",
    "eval_crop_size",
    "build_cls_augmentation",
]

# ITU-R 601-2 luma, as PIL's convert("L") and torchvision's rgb_to_grayscale.
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@functools.lru_cache(maxsize=None)
def _torch_resizes_uint8() -> bool:
    """Whether this torch resizes uint8 images with antialiasing (torch >= 2.1)."""
    try:
        x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
        torch.nn.functional.interpolate(x, size=(3, 5), mode="bilinear", antialias=True)
        return True
    except (RuntimeError, NotImplementedError):
        return False


class TorchResizeTransform(T.ResizeTransform):
    """
    detectron2's ``ResizeTransform`` (same geometry for boxes and coordinates) whose
    bilinear resize of HxWx3 uint8 images runs through torch's antialiased uint8 kernel:
    PIL's filter, within 2 grey levels of it, ~4x faster than PIL (the resize was a
    quarter of a training sample's cost). Other images and filters: PIL, as detectron2.
    """

    def apply_image(self, img: np.ndarray, interp=None) -> np.ndarray:
        interp = self.interp if interp is None else interp
        if not (
            img.dtype == np.uint8
            and img.ndim == 3
            and img.shape[2] == 3
            and interp == Image.BILINEAR
            and _torch_resizes_uint8()
        ):
            return super().apply_image(img, interp)
        assert img.shape[:2] == (self.h, self.w), f"{img.shape[:2]} != {(self.h, self.w)}"
        if (self.new_h, self.new_w) == (self.h, self.w):
            return img
        img = np.ascontiguousarray(img)  # crops are views: the channels-last kernel needs rows
        with warnings.catch_warnings():  # decoded images are read-only; torch only reads them
            warnings.simplefilter("ignore", UserWarning)
            x = torch.from_numpy(img)
        x = x.unsqueeze(0).permute(0, 3, 1, 2)  # 1x3xHxW, channels-last memory
        out = torch.nn.functional.interpolate(
            x, size=(self.new_h, self.new_w), mode="bilinear", antialias=True, align_corners=False
        )
        return out[0].permute(1, 2, 0).numpy()  # HxWx3, C-contiguous


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
        return T.TransformList(
            [
                T.CropTransform(left, top, w, h, orig_w=width, orig_h=height),
                TorchResizeTransform(h, w, self.size, self.size, self.interp),
            ]
        )


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
        return TorchResizeTransform(h, w, new_h, new_w, self.interp)


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
        return T.CropTransform(left, top, self.size, self.size, orig_w=w, orig_h=h)


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


def eval_crop_size(cfg) -> int:
    """Side of the evaluation centre crop in pixels: INPUT.CLS.TEST_CROP_SIZE, or CROP_SIZE
    where it is 0 (or absent, in configs written before the key)."""
    c = cfg.INPUT.CLS
    return int(c.get("TEST_CROP_SIZE", 0) or c.CROP_SIZE)


def build_cls_augmentation(cfg, is_train: bool) -> List[T.Augmentation]:
    """
    The augmentations of cfg.INPUT.CLS.

    Training: RandomResizedCrop(CROP_SIZE, CROP_SCALE, CROP_RATIO), horizontal flip
    (HFLIP_PROB > 0), ColorJitter(*COLOR_JITTER) (non-empty, not all 0), Lighting
    (LIGHTING_STD > 0). Test: ResizeShorterSide(TEST_RESIZE), CenterCrop of
    :func:`eval_crop_size`.
    """
    c = cfg.INPUT.CLS
    if not is_train:
        return [ResizeShorterSide(c.TEST_RESIZE), CenterCrop(eval_crop_size(cfg))]
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
