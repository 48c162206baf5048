"""``ClassificationDatasetMapper``: dataset dict -> augmented image, label and objectness.

Like detectron2's ``DatasetMapper``: ``@configurable`` (``Mapper(cfg, is_train)`` or
explicit arguments), detectron2 augmentations transform image and boxes together, and
numpy's global RNG makes every random choice, so seeded workers reproduce their samples.

Fast path: the leading geometric augmentations of this project (``RandomResizedCrop``;
``ResizeShorterSide`` + ``CenterCrop``) only need the image size, which the file header
gives (:mod:`.image_io`). Their crop is sampled on the original size first (the same
draws, in the same order, as on a decoded image: torchvision's distribution), then only
the crop is converted and resized, once, in uint8 (torch's antialiased bilinear: within
2 grey levels of PIL's). A JPEG is decoded at 1/2, 1/4 or 1/8 scale when the crop still
has at least the output size after that reduction (libjpeg's DCT scaling; painting of
the 'mask'/'context' variants then happens at that scale too); pixels then differ from
full decoding by ~1-2 levels on average, more on sharp edges. Boxes and objectness are
always computed from the crop parameters in original pixel coordinates: exact whatever
the decoding scale. ``reduced_decoding=False`` switches the reduction off.

Boxes of the annotations are in the stored pixel grid (ILSVRC's convention); images
with an EXIF orientation are turned as detectron2's ``read_image`` does and their boxes
with them (``height``/``width`` of the dict may be the stored or the oriented size).

Images that cannot be decoded (see :mod:`.image_io`): in training the mapper logs a
warning, counts the image (:func:`skipped_sample_count`) and returns None, detectron2's
convention for "skip this sample" (the loaders draw another one); in evaluation it
raises :class:`~.image_io.ImageDecodeError` naming the file, unless ``skip_unreadable``.
"""
import logging
import multiprocessing
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.data import transforms as T
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.structures import BoxMode

from .image_io import ImageDecodeError, open_image
from .objectness import PYTHON_SWEEP_MAX_BOXES
from .objectness import objectness as compute_objectness
from .painting import box_pixel_ranges, paint_boxes
from .transforms import (
    CenterCrop,
    RandomResizedCrop,
    ResizeShorterSide,
    apply_box,
    axis_affine,
    build_cls_augmentation,
    clip_boxes,
    resize_uint8,
)

__all__ = [
    "ClassificationDatasetMapper",
    "pixel_mean_rgb",
    "skipped_sample_count",
    "decode_failures",
    "output_boxes",
]

logger = logging.getLogger(__name__)


class _SharedCounter:
    """A process-shared integer: DataLoader workers forked after import add to the same
    value (with the 'spawn' start method each process counts its own)."""

    def __init__(self):
        try:
            self._value = multiprocessing.Value("q", 0)
        except (OSError, ImportError):  # no shared memory (sandboxes): per process
            self._value = None
            self._local = 0

    def increment(self) -> int:
        if self._value is None:
            self._local += 1
            return self._local
        with self._value.get_lock():
            self._value.value += 1
            return self._value.value

    @property
    def value(self) -> int:
        return self._local if self._value is None else int(self._value.value)


# Images skipped because they could not be decoded, over this process and its forked workers.
decode_failures = _SharedCounter()


def skipped_sample_count() -> int:
    """Number of unreadable images the mappers of this process (and of its forked
    DataLoader workers) skipped so far."""
    return decode_failures.value


def pixel_mean_rgb(pixel_mean: Sequence[float], image_format: str) -> List[float]:
    """cfg.MODEL.PIXEL_MEAN (in cfg.INPUT.FORMAT order, 0-255) reordered to RGB."""
    mean = [float(v) for v in pixel_mean]
    if image_format == "BGR":
        return mean[::-1]
    if image_format == "RGB":
        return mean
    raise ValueError(
        f"INPUT.FORMAT = {image_format!r}: the classification mapper supports RGB and BGR"
    )


def _annotation_boxes(annotations) -> np.ndarray:
    """Nx4 float64 XYXY_ABS boxes (pixels of the stored image) of a list of annotations."""
    if not annotations:
        return np.zeros((0, 4), dtype=np.float64)
    if all(a["bbox_mode"] == BoxMode.XYXY_ABS for a in annotations):
        return np.array([a["bbox"] for a in annotations], dtype=np.float64).reshape(-1, 4)
    return np.array(
        [BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations],
        dtype=np.float64,
    ).reshape(-1, 4)


class _ShapeOnly:
    """Stands for an HxWx3 uint8 image before decoding, for augmentations that only read
    its shape (RandomResizedCrop, ResizeShorterSide, CenterCrop)."""

    __slots__ = ("shape",)
    ndim = 3
    dtype = np.dtype(np.uint8)

    def __init__(self, h: int, w: int):
        self.shape = (int(h), int(w), 3)


def _flat(tfm) -> list:
    ts = tfm.transforms if isinstance(tfm, T.TransformList) else [tfm]
    return [t for t in ts if not isinstance(t, T.NoOpTransform)]


def _output_hw(ts: list, hw):
    for t in ts:
        if isinstance(t, T.CropTransform):
            hw = (t.h, t.w)
        elif isinstance(t, T.ResizeTransform):
            hw = (t.new_h, t.new_w)
        else:
            raise TypeError(f"unexpected geometric transform {t}")
    return hw


def output_boxes(boxes: np.ndarray, tfms, out_hw):
    """
    Boxes through ``tfms`` into the output frame, clipped to it, empty ones dropped, and
    the fraction of the frame their union covers.

    Args:
        boxes: Nx4 XYXY_ABS (float64), pixels of the transforms' input.
        tfms: Transform, TransformList or a sequence of them.
        out_hw: (h, w) of the output frame.

    Returns:
        (Mx4 float32 tensor, objectness computed from its float32 values).
    """
    affine = axis_affine(tfms)
    if affine is None or boxes.shape[0] > PYTHON_SWEEP_MAX_BOXES:
        out = clip_boxes(apply_box(tfms, boxes), out_hw)
        return torch.from_numpy(out), compute_objectness(out, out_hw)
    # few boxes through crop / resize / flips: plain Python (a few µs; numpy calls cost ~1 µs each)
    ax, cx, ay, cy = affine
    h, w = float(out_hw[0]), float(out_hw[1])
    rows = []
    for x0, y0, x1, y1 in boxes.tolist():
        x0, x1 = ax * x0 + cx, ax * x1 + cx
        y0, y1 = ay * y0 + cy, ay * y1 + cy
        if x0 > x1:
            x0, x1 = x1, x0
        if y0 > y1:
            y0, y1 = y1, y0
        x0, y0 = max(x0, 0.0), max(y0, 0.0)
        x1, y1 = min(x1, w), min(y1, h)
        if x1 > x0 and y1 > y0:
            rows.append((x0, y0, x1, y1))
    out = torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
    # emptiness is decided on the float32 values (an edge at 223.99999999999997 becomes 224.0)
    out = out[(out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])]
    return out, compute_objectness(out.tolist(), out_hw)


def _fusable(ts: list) -> bool:
    """[Crop] [Resize] [Crop]: realised by decode_region + one resize + a slice."""
    k = 0
    if k < len(ts) and isinstance(ts[k], T.CropTransform):
        k += 1
    if k < len(ts) and isinstance(ts[k], T.ResizeTransform):
        k += 1
    if k < len(ts) and isinstance(ts[k], T.CropTransform):
        k += 1
    return k == len(ts)


class ClassificationDatasetMapper:
    """
    Maps a dataset dict ``{file_name, image_id, height, width, label, annotations:
    [{bbox, bbox_mode, category_id}], optional target_object: int, optional
    paint_all_objects: bool}`` to a copy of it without ``annotations`` (their boxes,
    transformed, are ``boxes``; as detectron2's DatasetMapper drops them once converted),
    with these keys added or replaced:

    * ``image``: 3xHxW uint8 tensor, RGB (whatever cfg.INPUT.FORMAT is).
    * ``label``: int.
    * ``boxes``: Mx4 float32 tensor, XYXY_ABS in output pixels, clipped to the output
      frame, empty boxes removed: exactly the boxes ``objectness`` is computed from
      (all objects; only the target object with ``target_object``; none when objects
      were painted out).
    * ``objectness``: float in [0, 1], fraction of the output frame covered by the union
      of ``boxes``; None when the image has no annotated boxes (unknown).
    * ``context``: bool, True when the 'context' variant painted every object out of
      this training sample (then objectness = 0.0 and the target is uniform).
    * ``painted_fraction``: float in [0, 1], fraction of the output frame painted with the
      pixel mean (the painted boxes through the same transforms, minus the kept target
      box); 0.0 when nothing was painted.

    Variants (painting uses the pixel mean, in RGB, before any augmentation):

    * ``target_object`` (the 'mask' dataset): every other object is painted, except
      where it overlaps the target box (the target object stays whole); objectness
      comes from the target box only.
    * ``paint_all_objects`` (context-only evaluation): every object painted; the label is
      kept, objectness 0.0, context False.
    * ``variant == "context"`` (training only, images with boxes): with probability
      ``context_prob`` every object is painted, context True, objectness 0.0. This is
      drawn first, so on the 'mask' set a context sample has its target object painted
      too (the paper's 'context' rows train on the 'mask' set); otherwise the sample is
      a plain or 'mask' sample as above.
    """

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        augmentations: List[Union[T.Augmentation, T.Transform]],
        paint_color: Sequence[float] = (123.675, 116.28, 103.53),
        variant: str = "none",
        context_prob: float = 0.15,
        skip_unreadable: bool = False,
        reduced_decoding: bool = True,
    ):
        """
        Args:
            is_train: training (enables the 'context' variant) or evaluation.
            augmentations: applied in order to the RGB image and its boxes.
            paint_color: RGB colour (0-255) painted over masked objects (the pixel mean).
            variant: "none" | "mask" | "context" (cfg.INPUT.CLS.VARIANT). Only "context"
                changes what the mapper does; 'mask' samples carry ``target_object``.
            context_prob: probability of a context-only training sample ('context').
            skip_unreadable: in evaluation, return None for an image that cannot be
                decoded instead of raising ImageDecodeError (training always skips).
            reduced_decoding: let JPEGs decode at 1/2, 1/4, 1/8 scale when the crop allows.
        """
        if variant not in ("none", "mask", "context"):
            raise ValueError(f"variant = {variant!r}: expected none | mask | context")
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.paint_color = tuple(float(v) for v in paint_color)
        self.variant = variant
        self.context_prob = float(context_prob)
        self.skip_unreadable = bool(skip_unreadable)
        self.reduced_decoding = bool(reduced_decoding)
        # leading augmentations that need only the image size: run before decoding
        augs = list(self.augmentations.augs)
        n = 0
        while n < len(augs) and type(augs[n]) in (RandomResizedCrop, ResizeShorterSide, CenterCrop):
            n += 1
        self._size_only = augs[:n]
        self._rest = T.AugmentationList(augs[n:])
        mode = "training" if is_train else "inference"
        logger.info(f"[ClassificationDatasetMapper] Augmentations used in {mode}: {augmentations}")

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        return {
            "is_train": is_train,
            "augmentations": build_cls_augmentation(cfg, is_train),
            "paint_color": pixel_mean_rgb(cfg.MODEL.PIXEL_MEAN, cfg.INPUT.FORMAT),
            "variant": cfg.INPUT.CLS.VARIANT,
            "context_prob": cfg.INPUT.CLS.CONTEXT_PROB,
            "skip_unreadable": bool(cfg.INPUT.CLS.get("SKIP_UNREADABLE_EVAL", False)),
        }

    def __call__(self, dataset_dict: dict) -> Optional[dict]:
        try:
            return self._map(dataset_dict)
        except ImageDecodeError as e:
            if not (self.is_train or self.skip_unreadable):
                raise
            n = decode_failures.increment()
            logger.warning(
                f"Skipping unreadable image {e.file_name}: {e.reason} ({n} skipped so far)"
            )
            return None

    def _check_size(self, dataset_dict: dict, src) -> None:
        """The dict's (height, width) must be the stored or the EXIF-oriented size."""
        if "height" in dataset_dict or "width" in dataset_dict:
            expected = (dataset_dict.get("height"), dataset_dict.get("width"))
            if expected != src.size and expected != src.stored_size:
                raise SizeMismatchError(
                    f"Mismatched image shape for image {dataset_dict['file_name']}: "
                    f"got (h, w) = {src.stored_size} (stored), {src.size} (EXIF-oriented), "
                    f"expected {expected}. Please check the width/height in your annotation."
                )

    def _paint(self, image: np.ndarray, painted, kept) -> np.ndarray:
        """Paint ``painted`` boxes (pixel coordinates of ``image``), keeping ``kept`` whole."""
        if painted is None or painted.shape[0] == 0:
            return image
        original = image
        image = paint_boxes(image, painted, self.paint_color)
        if kept is not None:  # 'mask': the target object stays whole where boxes overlap
            c0, r0, c1, r1 = box_pixel_ranges(kept, image.shape[:2])[0].tolist()
            image[r0:r1, c0:c1] = original[r0:r1, c0:c1]
        return image

    def _decode(self, src, painted, kept):
        """Sample the size-only augmentations, decode what they keep, paint, resize.

        Returns (HxWx3 uint8 image, the geometric transforms applied)."""
        h, w = src.size
        tfms = []
        for aug in self._size_only:
            t = aug.get_transform(_ShapeOnly(*_output_hw(_flat(T.TransformList(tfms)), (h, w))))
            tfms.append(t)
        tfm = T.TransformList(tfms)
        ts = _flat(tfm)
        if not _fusable(ts):  # not expected from the size-only augmentations: plain path
            image = self._paint(np.array(src.decode()), painted, kept)
            return tfm.apply_image(image), tfm
        box = (0, 0, w, h)
        if ts and isinstance(ts[0], T.CropTransform):
            c = ts.pop(0)
            box = (c.x0, c.y0, c.x0 + c.w, c.y0 + c.h)
        resize = ts.pop(0) if ts and isinstance(ts[0], T.ResizeTransform) else None
        scale = 1
        if resize is not None and self.reduced_decoding:
            region_hw = (box[3] - box[1], box[2] - box[0])
            scale = src.draft_scale(region_hw, (resize.new_h, resize.new_w))
        region = src.decode_region(box, scale)
        pixels = region.pixels
        if painted is not None and painted.shape[0] > 0:
            pixels = self._paint(
                pixels, region.to_pixels(painted), None if kept is None else region.to_pixels(kept)
            )
        if resize is not None:
            pixels = resize_uint8(pixels, (resize.new_h, resize.new_w), region.box, resize.interp)
        if ts:  # the centre crop after the resize
            c = ts[0]
            pixels = pixels[c.y0 : c.y0 + c.h, c.x0 : c.x0 + c.w]
        return pixels, tfm

    def _map(self, dataset_dict: dict) -> dict:
        # nested values (annotations) are read, never modified: a shallow copy is enough
        dataset_dict = dict(dataset_dict)
        src = open_image(dataset_dict["file_name"])
        self._check_size(dataset_dict, src)
        dataset_dict.setdefault("height", src.size[0])
        dataset_dict.setdefault("width", src.size[1])

        all_boxes = _annotation_boxes(dataset_dict.get("annotations"))  # stored pixels
        has_boxes = all_boxes.shape[0] > 0
        if has_boxes and src.orientation != 1:
            all_boxes = src.orient_boxes(all_boxes)
        target = dataset_dict.get("target_object")
        # 'context' (training): every object painted, the target object of a 'mask' dict too
        context = (
            self.is_train
            and self.variant == "context"
            and has_boxes
            and np.random.rand() < self.context_prob
        )
        if has_boxes and (context or dataset_dict.get("paint_all_objects", False)):
            painted, kept = all_boxes, None
        elif target is not None:
            target = int(target)
            if not 0 <= target < all_boxes.shape[0]:
                raise IndexError(
                    f"target_object={target} but {dataset_dict['file_name']} has "
                    f"{all_boxes.shape[0]} annotations"
                )
            others = np.ones(all_boxes.shape[0], dtype=bool)
            others[target] = False
            painted, kept = all_boxes[others], all_boxes[target : target + 1]
        else:
            painted, kept = None, (all_boxes if has_boxes else None)

        image, geometry = self._decode(src, painted, kept)
        aug_input = T.AugInput(image)
        rest = self._rest(aug_input)
        image = aug_input.image
        out_hw = image.shape[:2]

        if kept is None:
            boxes = torch.zeros((0, 4), dtype=torch.float32)
            objectness: Optional[float] = 0.0 if has_boxes else None
        else:
            boxes, objectness = output_boxes(kept, [geometry, rest], out_hw)
        painted_fraction = 0.0
        if painted is not None and painted.shape[0] > 0:  # painted area = |painted U kept| - |kept|
            covered = painted if kept is None else np.concatenate([painted, kept])
            _, covered_fraction = output_boxes(covered, [geometry, rest], out_hw)
            painted_fraction = max(0.0, covered_fraction - (objectness if kept is not None else 0.0))

        dataset_dict.pop("annotations", None)  # not needed downstream: less to pickle per sample
        dataset_dict["image"] = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        dataset_dict["label"] = int(dataset_dict["label"])
        dataset_dict["boxes"] = boxes
        dataset_dict["objectness"] = objectness
        dataset_dict["context"] = bool(context)
        dataset_dict["painted_fraction"] = painted_fraction
        return dataset_dict
