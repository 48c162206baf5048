"""``ClassificationDatasetMapper``: dataset dict -> augmented image, label and objectness.

Like detectron2's ``DatasetMapper``: ``@configurable`` (``Mapper(cfg, is_train)`` or
explicit arguments), reads the image with ``read_image`` (EXIF orientation applied),
transforms image and boxes together with detectron2 augmentations and uses numpy's
global RNG for every random choice, so seeded workers reproduce their samples.
"""
import copy
import logging
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from .objectness import objectness as compute_objectness
from .painting import box_pixel_ranges, paint_boxes
from .transforms import build_cls_augmentation, clip_boxes

__all__ = ["ClassificationDatasetMapper", "pixel_mean_rgb"]

logger = logging.getLogger(__name__)


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
    return np.array(
        [BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations],
        dtype=np.float64,
    ).reshape(-1, 4)


class ClassificationDatasetMapper:
    """
    Maps a dataset dict ``{file_name, image_id, height, width, label, annotations:
    [{bbox, bbox_mode, category_id}], optional target_object: int, optional
    paint_all_objects: bool}`` to a copy of it with these keys added or replaced:

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

    Variants (painting uses the pixel mean, in RGB, before any augmentation):

    * ``target_object`` (the 'mask' dataset): every other object is painted, except
      where it overlaps the target box (the target object stays whole); objectness
      comes from the target box only.
    * ``paint_all_objects`` (context-only evaluation): every object painted; the label is
      kept, objectness 0.0, context False.
    * ``variant == "context"`` (training only, images with boxes): with probability
      ``context_prob`` every object is painted, context True, objectness 0.0.
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
    ):
        """
        Args:
            is_train: training (enables the 'context' variant) or evaluation.
            augmentations: applied in order to the RGB image and its boxes.
            paint_color: RGB colour (0-255) painted over masked objects (the pixel mean).
            variant: "none" | "mask" | "context" (cfg.INPUT.CLS.VARIANT). Only "context"
                changes what the mapper does; 'mask' samples carry ``target_object``.
            context_prob: probability of a context-only training sample ('context').
        """
        if variant not in ("none", "mask", "context"):
            raise ValueError(f"variant = {variant!r}: expected none | mask | context")
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.paint_color = tuple(float(v) for v in paint_color)
        self.variant = variant
        self.context_prob = float(context_prob)
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
        }

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.deepcopy(dataset_dict)
        image = utils.read_image(dataset_dict["file_name"], format="RGB")
        utils.check_image_size(dataset_dict, image)

        all_boxes = _annotation_boxes(dataset_dict.get("annotations"))
        has_boxes = all_boxes.shape[0] > 0
        target = dataset_dict.get("target_object")
        context = False
        if has_boxes and dataset_dict.get("paint_all_objects", False):
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
        elif (
            self.is_train
            and self.variant == "context"
            and has_boxes
            and np.random.rand() < self.context_prob
        ):
            painted, kept, context = all_boxes, None, True
        else:
            painted, kept = None, (all_boxes if has_boxes else None)

        if painted is not None and painted.shape[0] > 0:
            original = image
            image = paint_boxes(image, painted, self.paint_color)
            if kept is not None:  # 'mask': the target object stays whole where boxes overlap
                c0, r0, c1, r1 = box_pixel_ranges(kept, image.shape[:2])[0].tolist()
                image[r0:r1, c0:c1] = original[r0:r1, c0:c1]

        aug_input = T.AugInput(image, boxes=None if kept is None else kept.astype(np.float32))
        self.augmentations(aug_input)
        image = aug_input.image
        out_hw = image.shape[:2]

        if kept is None:
            boxes = np.zeros((0, 4), dtype=np.float32)
            objectness: Optional[float] = 0.0 if has_boxes else None
        else:
            boxes = clip_boxes(aug_input.boxes, out_hw)
            objectness = compute_objectness(boxes, out_hw)

        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        dataset_dict["label"] = int(dataset_dict["label"])
        dataset_dict["boxes"] = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        dataset_dict["objectness"] = objectness
        dataset_dict["context"] = context
        return dataset_dict
