"""Strong augmentations (TrivialAugmentWide, RandAugment, RandomErasing) as detectron2
``Augmentation``s whose transforms keep objectness exact.

torchvision's recipes apply them after the crop and flip: TrivialAugment or RandAugment on
the image, then RandomErasing. Here they act on HxWx3 uint8 RGB images (before the model's
normalisation) and draw from numpy's global RNG (seeded workers reproduce their samples).
The op lists and magnitude bins are torchvision's own (``torchvision.transforms.v2``
``TrivialAugmentWide._AUGMENTATION_SPACE`` / ``RandAugment._AUGMENTATION_SPACE``) and each op
runs through ``torchvision.transforms.v2.functional`` with the arguments of torchvision's
AutoAugment base, so images equal torchvision's for the same op and magnitude.

Every transform has ``apply_region`` (:class:`~.object_region.ObjectRegion` -> region in the
output frame), which the mapper uses for objectness:

* photometric ops (Brightness, Color, Contrast, Sharpness, Posterize, Solarize,
  AutoContrast, Equalize; :class:`PixelOpTransform`): region unchanged;
* geometric ops (ShearX/Y, TranslateX/Y, Rotate; :class:`AffineOpTransform`): the region
  mapped by the op's forward affine matrix in pixel coordinates and clipped to the frame;
* erasing (:class:`EraseTransform`): the erased rectangle subtracted.

Geometry of torchvision's affine warp (``F.affine`` / ``F.rotate``, ``expand=False``): output
pixel centre p (pixel (i, j) has centre (j + 0.5, i + 0.5)) samples the input at
q = c + B^-1 (p - c - t), i.e. the forward map is p = B (q - c) + c + t, where c is the
centre of the op (``center=[0, 0]`` for the shears: the frame's corner (0, 0); the frame's
centre (w/2, h/2) otherwise) and t the translation. With m the signed magnitude:

* ShearX: B = [[1, -m], [0, 1]] (torchvision's shear angle atan(m)), c = (0, 0);
* ShearY: B = [[1, 0], [-m, 1]], c = (0, 0);
* TranslateX / TranslateY: B = I, t = (int(m), 0) / (0, int(m)) (int: toward zero);
* Rotate by m degrees (counter-clockwise on screen, y down):
  B = [[cos m, sin m], [-sin m, cos m]], c = (w/2, h/2).
"""

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from detectron2.data import transforms as T

from .object_region import ObjectRegion
from .transforms import PhotometricTransform

__all__ = [
    "AUTO_AUGMENT_POLICIES",
    "GEOMETRIC_OPS",
    "PixelOpTransform",
    "AffineOpTransform",
    "EraseTransform",
    "TrivialAugmentWide",
    "RandAugment",
    "RandomErasing",
    "op_transform",
    "build_strong_augmentation",
]

# cfg.INPUT.CLS.AUTO_AUGMENT: none, TrivialAugmentWide, RandAugment
AUTO_AUGMENT_POLICIES = ("", "ta_wide", "ra")
# ops that move pixels (the others change colours only)
GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
INTERPOLATIONS = ("nearest", "bilinear")


def _v2():
    from torchvision.transforms import v2

    return v2


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW uint8 tensor (a copy: decoded images may be read-only)."""
    return torch.from_numpy(np.ascontiguousarray(img).copy()).permute(2, 0, 1)


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.permute(1, 2, 0).numpy())


class PixelOpTransform(PhotometricTransform):
    """One photometric op of torchvision's AutoAugment family (``op``: Brightness, Color,
    Contrast, Sharpness, Posterize, Solarize, AutoContrast, Equalize) with a signed
    ``magnitude``; uint8 RGB images. Boxes, coordinates and regions are unchanged."""

    def __init__(self, op: str, magnitude: float):
        super().__init__()
        self.op, self.magnitude = str(op), float(magnitude)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        F, m, x = _v2().functional, self.magnitude, _to_tensor(img)
        if self.op == "Brightness":
            x = F.adjust_brightness(x, brightness_factor=1.0 + m)
        elif self.op == "Color":
            x = F.adjust_saturation(x, saturation_factor=1.0 + m)
        elif self.op == "Contrast":
            x = F.adjust_contrast(x, contrast_factor=1.0 + m)
        elif self.op == "Sharpness":
            x = F.adjust_sharpness(x, sharpness_factor=1.0 + m)
        elif self.op == "Posterize":
            x = F.posterize(x, bits=int(m))
        elif self.op == "Solarize":  # threshold in uint8 levels
            x = F.solarize(x, threshold=255.0 * m)
        elif self.op == "AutoContrast":
            x = F.autocontrast(x)
        elif self.op == "Equalize":
            x = F.equalize(x)
        else:
            raise ValueError(f"unknown photometric op {self.op!r}")
        return _to_numpy(x)

    def apply_region(self, region: ObjectRegion) -> ObjectRegion:
        return region

    def __repr__(self) -> str:
        return f"PixelOpTransform(op={self.op!r}, magnitude={self.magnitude:g})"


class AffineOpTransform(T.Transform):
    """
    One geometric op of torchvision's AutoAugment family (ShearX/Y, TranslateX/Y, Rotate)
    with a signed ``magnitude`` on an (h, w) image, warped by torchvision; the output has
    the input's size, uncovered pixels get ``fill`` (None: 0, torchvision's default).
    ``matrix`` is the 2x3 forward map in pixel coordinates (module docstring); boxes follow
    as the bounding boxes of their mapped corners (fvcore's ``apply_box``), regions exactly.
    """

    def __init__(
        self,
        op: str,
        magnitude: float,
        height: int,
        width: int,
        interpolation: str = "nearest",
        fill: Optional[Sequence[float]] = None,
    ):
        super().__init__()
        if op not in GEOMETRIC_OPS:
            raise ValueError(f"unknown geometric op {op!r}: expected one of {GEOMETRIC_OPS}")
        self.op, self.magnitude = str(op), float(magnitude)
        self.height, self.width = int(height), int(width)
        self.interpolation = str(interpolation)
        self.fill = None if fill is None else [float(v) for v in fill]
        self.matrix = self._forward_matrix()

    def _forward_matrix(self) -> np.ndarray:
        """2x3 [B | c + t - B c] (module docstring)."""
        m = self.magnitude
        c, t = np.zeros(2), np.zeros(2)
        if self.op == "ShearX":
            b = np.array([[1.0, -m], [0.0, 1.0]])
        elif self.op == "ShearY":
            b = np.array([[1.0, 0.0], [-m, 1.0]])
        elif self.op == "Rotate":
            a = math.radians(m)
            b = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
            c = np.array([self.width / 2.0, self.height / 2.0])
        else:
            b = np.eye(2)
            t = np.array([int(m), 0.0] if self.op == "TranslateX" else [0.0, int(m)])
        return np.concatenate([b, (c + t - b @ c)[:, None]], axis=1)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        v2 = _v2()
        F, m, x = v2.functional, self.magnitude, _to_tensor(img)
        interp = v2.InterpolationMode(self.interpolation)
        assert tuple(img.shape[:2]) == (self.height, self.width), (img.shape, self.height)
        if self.op == "Rotate":
            x = F.rotate(x, angle=m, interpolation=interp, fill=self.fill)
            return _to_numpy(x)
        shear, translate, center = [0.0, 0.0], [0, 0], None
        if self.op == "ShearX":  # about the frame's corner, as torchvision's AutoAugment
            shear, center = [math.degrees(math.atan(m)), 0.0], [0, 0]
        elif self.op == "ShearY":
            shear, center = [0.0, math.degrees(math.atan(m))], [0, 0]
        elif self.op == "TranslateX":
            translate = [int(m), 0]
        else:
            translate = [0, int(m)]
        x = F.affine(
            x,
            angle=0.0,
            translate=translate,
            scale=1.0,
            shear=shear,
            interpolation=interp,
            fill=self.fill,
            center=center,
        )
        return _to_numpy(x)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """Nx2 (x, y) pixel coordinates mapped by ``matrix``."""
        return coords @ self.matrix[:, :2].T + self.matrix[:, 2]

    def apply_region(self, region: ObjectRegion) -> ObjectRegion:
        return region.affine(self.matrix, (self.height, self.width))

    def __repr__(self) -> str:
        return f"AffineOpTransform(op={self.op!r}, magnitude={self.magnitude:g})"


class EraseTransform(T.Transform):
    """Fills rows [top, top + h) and columns [left, left + w) with the RGB ``value``;
    regions lose that rectangle, boxes and coordinates are unchanged."""

    def __init__(self, top: int, left: int, h: int, w: int, value: Sequence[int]):
        super().__init__()
        self.top, self.left, self.h, self.w = int(top), int(left), int(h), int(w)
        self.value = tuple(int(v) for v in value)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        out = np.array(img, copy=True)
        out[self.top : self.top + self.h, self.left : self.left + self.w] = self.value
        return out

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        return box

    def apply_region(self, region: ObjectRegion) -> ObjectRegion:
        return region.subtract((self.left, self.top, self.left + self.w, self.top + self.h))

    def inverse(self) -> T.Transform:
        return T.NoOpTransform()


def op_transform(
    op: str,
    magnitude: float,
    image_size: Tuple[int, int],
    interpolation: str = "nearest",
    fill: Optional[Sequence[float]] = None,
) -> T.Transform:
    """The transform of one AutoAugment-family op with a signed magnitude on an image of
    ``image_size`` (h, w): NoOp (Identity), :class:`AffineOpTransform` or
    :class:`PixelOpTransform`."""
    if op == "Identity":
        return T.NoOpTransform()
    if op in GEOMETRIC_OPS:
        return AffineOpTransform(op, magnitude, *image_size, interpolation=interpolation, fill=fill)
    return PixelOpTransform(op, magnitude)


class _AutoAugmentBase(T.Augmentation):
    """Op space of a torchvision v2 class (``_AUGMENTATION_SPACE``: name -> (magnitudes of
    (num_bins, height, width), signed)); draws ops, bins and signs from numpy."""

    _TORCHVISION_CLASS = ""

    def __init__(self, num_magnitude_bins: int, interpolation: str, fill):
        super().__init__()
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {interpolation!r}: expected one of {INTERPOLATIONS}")
        self.num_magnitude_bins = int(num_magnitude_bins)
        self.interpolation = interpolation
        self.fill = None if fill is None else tuple(float(v) for v in fill)
        self.ops = tuple(self._space)

    @property
    def _space(self) -> dict:
        """torchvision's op space, looked up on use (its lambdas do not pickle: the
        augmentation travels to spawned DataLoader workers)."""
        return getattr(_v2(), self._TORCHVISION_CLASS)._AUGMENTATION_SPACE

    def _op(self, op: str, bin_index: int, height: int, width: int) -> T.Transform:
        """op at magnitude bin ``bin_index``, negated with probability 0.5 when signed."""
        magnitudes_fn, signed = self._space[op]
        magnitudes = magnitudes_fn(self.num_magnitude_bins, height, width)
        magnitude = 0.0
        if magnitudes is not None:
            magnitude = float(magnitudes[bin_index])
            if signed and np.random.rand() <= 0.5:
                magnitude = -magnitude
        return op_transform(op, magnitude, (height, width), self.interpolation, self.fill)


class TrivialAugmentWide(_AutoAugmentBase):
    """torchvision's ``TrivialAugmentWide``: one op drawn uniformly from its 14, at a
    uniformly drawn magnitude bin of ``num_magnitude_bins``, sign drawn for signed ops."""

    _TORCHVISION_CLASS = "TrivialAugmentWide"

    def __init__(self, num_magnitude_bins: int = 31, interpolation: str = "nearest", fill=None):
        super().__init__(num_magnitude_bins, interpolation, fill)

    def get_transform(self, image):
        h, w = image.shape[:2]
        op = self.ops[np.random.randint(len(self.ops))]
        magnitudes_fn, _ = self._space[op]
        bin_index = 0
        if magnitudes_fn(self.num_magnitude_bins, h, w) is not None:
            bin_index = int(np.random.randint(self.num_magnitude_bins))
        return self._op(op, bin_index, h, w)


class RandAugment(_AutoAugmentBase):
    """torchvision's ``RandAugment``: ``num_ops`` ops, each drawn uniformly from its 14, all
    at magnitude bin ``magnitude`` of ``num_magnitude_bins``, sign drawn for signed ops."""

    _TORCHVISION_CLASS = "RandAugment"

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: int = 9,
        num_magnitude_bins: int = 31,
        interpolation: str = "nearest",
        fill=None,
    ):
        super().__init__(num_magnitude_bins, interpolation, fill)
        self.num_ops, self.magnitude = int(num_ops), int(magnitude)
        if not 0 <= self.magnitude < self.num_magnitude_bins:
            raise ValueError(f"magnitude {magnitude} not in [0, {self.num_magnitude_bins})")

    def get_transform(self, image):
        h, w = image.shape[:2]
        ops: List[T.Transform] = []
        for _ in range(self.num_ops):
            op = self.ops[np.random.randint(len(self.ops))]
            ops.append(self._op(op, self.magnitude, h, w))
        return T.TransformList(ops)


class RandomErasing(T.Augmentation):
    """
    torchvision's ``RandomErasing(p, scale, ratio, value)`` sampling with numpy: with
    probability ``p``, up to 10 tries of an area fraction U(scale) and an aspect ratio
    h / w = exp(U(log ratio)) (h / w, unlike RandomResizedCrop's w / h), h = round(sqrt(area
    * ratio)), w = round(sqrt(area / ratio)), accepted when h < H and w < W, then top and
    left uniform; no erasing when all 10 fail.

    ``value`` is an RGB colour (0-255). torchvision erases after ``Normalize`` with value 0,
    i.e. the pixel mean; the mapper works on uint8 RGB before normalisation (the model
    normalises), so the training builder passes the pixel mean in RGB, rounded (the
    mapper's ``paint_color``).
    """

    def __init__(
        self,
        p: float = 0.5,
        scale: Tuple[float, float] = (0.02, 0.33),
        ratio: Tuple[float, float] = (0.3, 3.3),
        value: Sequence[float] = (0, 0, 0),
    ):
        super().__init__()
        self.p = float(p)
        self.scale = tuple(float(v) for v in scale)
        self.ratio = tuple(float(v) for v in ratio)
        self.value = tuple(int(round(float(v))) for v in value)

    def get_params(self, height: int, width: int) -> Optional[Tuple[int, int, int, int]]:
        """(top, left, h, w) of the erased rectangle in pixels, or None (every try failed)."""
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            erase_area = area * np.random.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(np.random.uniform(log_lo, log_hi))
            h = int(round(math.sqrt(erase_area * aspect)))
            w = int(round(math.sqrt(erase_area / aspect)))
            if h < height and w < width:
                top = int(np.random.randint(0, height - h + 1))
                left = int(np.random.randint(0, width - w + 1))
                return top, left, h, w
        return None

    def get_transform(self, image):
        if not np.random.rand() < self.p:
            return T.NoOpTransform()
        params = self.get_params(*image.shape[:2])
        if params is None:
            return T.NoOpTransform()
        return EraseTransform(*params, value=self.value)


def build_strong_augmentation(
    cfg, is_train: bool, fill_rgb: Sequence[float]
) -> List[T.Augmentation]:
    """
    The strong augmentations of cfg.INPUT.CLS, applied after :func:`build_cls_augmentation`'s
    (training only; [] when none is configured): TrivialAugmentWide (AUTO_AUGMENT "ta_wide")
    or RandAugment ("ra": RA_NUM_OPS ops at RA_MAGNITUDE), both with AUTO_AUGMENT_BINS bins,
    AUTO_AUGMENT_INTERP and torchvision's fill (0); then RandomErasing(RANDOM_ERASING) filled
    with ``fill_rgb`` (the pixel mean, RGB 0-255) when RANDOM_ERASING > 0.
    """
    c = cfg.INPUT.CLS
    if not is_train:
        return []
    augs: List[T.Augmentation] = []
    policy = c.get("AUTO_AUGMENT", "")
    if policy == "ta_wide":
        augs.append(TrivialAugmentWide(c.AUTO_AUGMENT_BINS, c.AUTO_AUGMENT_INTERP))
    elif policy == "ra":
        augs.append(
            RandAugment(c.RA_NUM_OPS, c.RA_MAGNITUDE, c.AUTO_AUGMENT_BINS, c.AUTO_AUGMENT_INTERP)
        )
    elif policy:
        raise ValueError(
            f"INPUT.CLS.AUTO_AUGMENT = {policy!r}: expected one of {AUTO_AUGMENT_POLICIES}"
        )
    if c.get("RANDOM_ERASING", 0.0) > 0:
        augs.append(RandomErasing(c.RANDOM_ERASING, value=fill_rgb))
    return augs
