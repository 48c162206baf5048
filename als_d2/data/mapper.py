"""``ClassificationDatasetMapper``: dataset dict -> augmented image, label and objectness.

Shaped like detectron2's ``DatasetMapper``: ``@configurable`` (``Mapper(cfg, is_train)``
or explicit arguments), and one straight ``__call__``: read the image, paint objects out
(the variants), augment image and boxes together with detectron2's ``AugInput`` /
``AugmentationList``, compute the objectness of the boxes in the output frame, return.
numpy's global RNG makes every random choice, so seeded workers reproduce their samples.

Boxes of the annotations are in the stored pixel grid (ILSVRC's convention); images
with an EXIF orientation are turned as detectron2's ``read_image`` does and their boxes
with them (``height``/``width`` of the dict may be the stored or the oriented size).

Images that cannot be decoded (see :mod:`.image_io`): in training the mapper logs one
warning naming the file and the reason and returns None, detectron2's convention for
"skip this sample" (the training loader draws another one and counts it:
``data/skipped_samples``); in evaluation it raises :class:`~.image_io.ImageDecodeError`
naming the file, unless ``skip_unreadable`` (then the same warning and None; the
evaluator reports how many were skipped). The mapper counts nothing itself.
"""

import logging
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.data import transforms as T
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.structures import BoxMode

from ..structures import pixel_mean_rgb
from .image_io import EncodedImage, ImageDecodeError, open_image
from ..objectness import objectness as compute_objectness
from .object_region import ObjectRegion
from .painting import box_pixel_ranges, paint_boxes
from .strong_augment import build_strong_augmentation
from .transforms import PhotometricTransform, build_cls_augmentation, clip_boxes

# what to do about an image evaluation cannot decode (the error names the file before it)
UNREADABLE_EVAL_HINT = (
    "evaluation stops at an unreadable image: fix or remove the file "
    "(tools/check_dataset.py lists them all), or set INPUT.CLS.SKIP_UNREADABLE_EVAL True "
    "to skip and count such images"
)

__all__ = [
    "VARIANTS",
    "ClassificationDatasetMapper",
    "pixel_mean_rgb",
]

logger = logging.getLogger(__name__)

# cfg.INPUT.CLS.VARIANT: plain samples | other objects painted ('mask' dicts carry
# target_object) | plus context-only samples in training
VARIANTS = ("none", "mask", "context")


def _annotation_boxes(annotations) -> np.ndarray:
    """Nx4 float64 XYXY_ABS boxes (pixels of the stored image) of a list of annotations."""
    boxes = [
        BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
        for a in annotations or []
    ]
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def _check_image_size(dataset_dict: dict, src: EncodedImage) -> None:
    """The dict's (height, width) must be the stored or the EXIF-oriented size; set when absent."""
    if "height" in dataset_dict or "width" in dataset_dict:
        expected = (dataset_dict.get("height"), dataset_dict.get("width"))
        if expected != src.size and expected != src.stored_size:
            raise SizeMismatchError(
                f"Mismatched image shape for image {dataset_dict['file_name']}: "
                f"got (h, w) = {src.stored_size} (stored), {src.size} (EXIF-oriented), "
                f"expected {expected}. Please check the width/height in your annotation."
            )
    dataset_dict.setdefault("height", src.size[0])
    dataset_dict.setdefault("width", src.size[1])


def _transform_boxes(
    transforms: T.Transform, boxes: np.ndarray, image_size
) -> Tuple[torch.Tensor, float]:
    """Boxes through ``transforms``, clipped to the output frame ``image_size`` (h, w),
    empty ones dropped (decided on float32 values), and the fraction of the frame their
    union covers: (Mx4 float32 tensor, objectness)."""
    out = clip_boxes(transforms.apply_box(boxes), image_size)
    return torch.from_numpy(out), compute_objectness(out, image_size)


def _moves_objects(transforms: T.Transform) -> bool:
    """Whether a transform (list) may change the object region: any transform that is
    neither photometric nor a no-op (geometric ops, erasing)."""
    ts = transforms.transforms if isinstance(transforms, T.TransformList) else [transforms]
    return any(not isinstance(t, (PhotometricTransform, T.NoOpTransform)) for t in ts)


def _region_through(
    transforms: T.Transform, strong: T.Transform, boxes: np.ndarray, image_size
) -> Tuple[ObjectRegion, torch.Tensor]:
    """Boxes through ``transforms`` (boxes stay boxes), then as an exact region through the
    strong transforms (their ``apply_region``): (region, Mx4 float32 bounding boxes of its
    polygons clipped to the frame)."""
    region = ObjectRegion.from_boxes(
        clip_boxes(transforms.apply_box(boxes), image_size), image_size
    )
    region = strong.apply_region(region)
    return region, torch.from_numpy(clip_boxes(region.boxes(), image_size))


class ClassificationDatasetMapper:
    """
    Maps a dataset dict ``{file_name, image_id, height, width, label, annotations:
    [{bbox, bbox_mode, category_id}], optional target_object: int, optional
    paint_all_objects: bool}`` to a copy of it without ``annotations`` (their boxes,
    transformed, are ``boxes``; as detectron2's DatasetMapper drops them once converted),
    with the keys of :mod:`als_d2.structures` added: ``image`` (3xHxW uint8 RGB),
    ``label``, ``boxes`` (the boxes ``objectness`` is computed from: all objects; only the
    target object with ``target_object``; none when objects were painted out),
    ``has_boxes`` (False when the image has no annotated boxes: objectness unknown),
    ``objectness`` (a float in [0, 1] always; 1.0 without boxes), ``context``,
    ``painted_fraction`` (the painted boxes through the same transforms, minus the kept
    target box).

    Strong augmentations (``strong_augmentations``, e.g. TrivialAugmentWide and
    RandomErasing) run after ``augmentations``; when one of them moves or erases pixels,
    the kept (and painted) boxes become an exact region of disjoint convex polygons
    (:mod:`.object_region`): objectness and ``painted_fraction`` are its area fractions and
    ``boxes`` the bounding boxes of its polygons clipped to the frame (exact pieces after
    translations and erasing, a superset of the object after rotations and shears).

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
        strong_augmentations: Sequence[Union[T.Augmentation, T.Transform]] = (),
        paint_color: Sequence[float] = (123.675, 116.28, 103.53),
        variant: str = "none",
        context_prob: float = 0.15,
        skip_unreadable: bool = False,
    ):
        """
        Args:
            is_train: training (enables the 'context' variant) or evaluation.
            augmentations: applied in order to the RGB image and its boxes.
            strong_augmentations: applied after them (TrivialAugment / RandAugment,
                RandomErasing: :mod:`.strong_augment`); their transforms need
                ``apply_region``, through which objectness, ``boxes`` and
                ``painted_fraction`` are computed exactly when one of them moves or erases
                pixels. Empty: the samples are those without this argument.
            paint_color: RGB colour (0-255) painted over masked objects (the pixel mean).
            variant: one of :data:`VARIANTS` (cfg.INPUT.CLS.VARIANT). Only "context"
                changes what the mapper does; 'mask' samples carry ``target_object``.
            context_prob: probability of a context-only training sample ('context').
            skip_unreadable: in evaluation, return None for an image that cannot be
                decoded instead of raising ImageDecodeError (training always skips).
        """
        if variant not in VARIANTS:
            raise ValueError(f"variant = {variant!r}: expected one of {VARIANTS}")
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.strong_augmentations = (
            T.AugmentationList(list(strong_augmentations)) if strong_augmentations else None
        )
        self.paint_color = tuple(float(v) for v in paint_color)
        self.variant = variant
        self.context_prob = float(context_prob)
        self.skip_unreadable = bool(skip_unreadable)
        mode = "training" if is_train else "inference"
        logger.info(f"[ClassificationDatasetMapper] Augmentations used in {mode}: {augmentations}")
        if strong_augmentations:
            logger.info(f"[ClassificationDatasetMapper] then strong: {list(strong_augmentations)}")

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        paint_color = pixel_mean_rgb(cfg.MODEL.PIXEL_MEAN, cfg.INPUT.FORMAT)
        return {
            "is_train": is_train,
            "augmentations": build_cls_augmentation(cfg, is_train),
            "strong_augmentations": build_strong_augmentation(cfg, is_train, paint_color),
            "paint_color": paint_color,
            "variant": cfg.INPUT.CLS.VARIANT,
            "context_prob": cfg.INPUT.CLS.CONTEXT_PROB,
            "skip_unreadable": bool(cfg.INPUT.CLS.get("SKIP_UNREADABLE_EVAL", False)),
        }

    def __call__(self, dataset_dict: dict) -> Optional[dict]:
        """
        Args:
            dataset_dict: one dataset dict (see the class docstring); not modified.

        Returns:
            the mapped sample, or None for an unreadable image that is to be skipped.
        """
        dataset_dict = dict(dataset_dict)  # annotations are read, never modified: shallow copy
        # USER: Write your own image loading if it's not from a file
        try:
            src = open_image(dataset_dict["file_name"])
            image = src.decode()
        except ImageDecodeError as e:
            if not (self.is_train or self.skip_unreadable):
                raise ImageDecodeError(e.file_name, f"{e.reason}; {UNREADABLE_EVAL_HINT}") from e
            logger.warning(f"Skipping unreadable image {e.file_name}: {e.reason}")
            return None
        _check_image_size(dataset_dict, src)
        boxes = src.orient_boxes(_annotation_boxes(dataset_dict.pop("annotations", None)))

        # USER: Modify this if you want to keep, paint or count other objects
        context = self._draw_context(boxes)
        painted, kept = self._painted_and_kept_boxes(dataset_dict, boxes, context)
        image = self._paint(image, painted, kept)

        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        strong = None if self.strong_augmentations is None else self.strong_augmentations(aug_input)
        image = aug_input.image
        image_size = image.shape[:2]  # h, w

        # objectness of the kept boxes in the output frame: 0 when all were painted out;
        # an image without boxes has has_boxes False (objectness unknown, 1.0 as a hard
        # label assumes: see als_d2/structures.py)
        has_boxes = len(boxes) > 0
        out_boxes, objectness = torch.zeros((0, 4)), (0.0 if has_boxes else 1.0)
        exact = strong is not None and _moves_objects(strong)  # boxes may stop being boxes
        if kept is not None:
            if exact:
                region, out_boxes = _region_through(transforms, strong, kept, image_size)
                objectness = region.fraction()
            else:
                out_boxes, objectness = _transform_boxes(transforms, kept, image_size)
        painted_fraction = 0.0
        if painted is not None:  # painted area = |painted U kept| - |kept|
            covered = painted if kept is None else np.concatenate([painted, kept])
            if exact:
                region = _region_through(transforms, strong, covered, image_size)[0]
                covered_fraction = region.fraction()
            else:
                _, covered_fraction = _transform_boxes(transforms, covered, image_size)
            painted_fraction = max(0.0, covered_fraction - objectness)

        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        dataset_dict["label"] = int(dataset_dict["label"])
        dataset_dict["boxes"] = out_boxes
        dataset_dict["has_boxes"] = has_boxes
        dataset_dict["objectness"] = objectness
        dataset_dict["context"] = context
        dataset_dict["painted_fraction"] = painted_fraction
        return dataset_dict

    def _draw_context(self, boxes: np.ndarray) -> bool:
        """'context' (training, images with boxes): a context-only sample with probability
        ``context_prob``, drawn before any augmentation."""
        return bool(
            self.is_train
            and self.variant == "context"
            and len(boxes)
            and np.random.rand() < self.context_prob
        )

    @staticmethod
    def _painted_and_kept_boxes(dataset_dict: dict, boxes: np.ndarray, context: bool):
        """(boxes painted out or None, boxes kept and counted or None); Nx4 in image pixels."""
        target = dataset_dict.get("target_object")
        if len(boxes) and (context or dataset_dict.get("paint_all_objects", False)):
            return boxes, None
        if target is None:
            return None, (boxes if len(boxes) else None)
        target = int(target)
        if not 0 <= target < len(boxes):
            raise IndexError(
                f"target_object={target} but {dataset_dict['file_name']} has "
                f"{len(boxes)} annotations"
            )
        others = np.arange(len(boxes)) != target
        return (boxes[others] if others.any() else None), boxes[target : target + 1]

    def _paint(self, image: np.ndarray, painted, kept) -> np.ndarray:
        """``image`` with the ``painted`` boxes filled with the pixel mean, the ``kept``
        box (the target object, when any) left whole where they overlap."""
        if painted is None:
            return image
        out = paint_boxes(image, painted, self.paint_color)
        if kept is not None:
            c0, r0, c1, r1 = box_pixel_ranges(kept, image.shape[:2])[0].tolist()
            out[r0:r1, c0:c1] = image[r0:r1, c0:c1]
        return out
