"""The sample format shared by the data path and the model (imports neither).

A mapped training or evaluation sample (``ClassificationDatasetMapper``'s output, what
``ImageClassifier`` reads) is a dict with the dataset dict's own keys (``file_name``,
``image_id``, ``height``, ``width``, ...) and:

* ``image``: 3 x H x W uint8 tensor, RGB whatever ``cfg.INPUT.FORMAT`` says (the model
  normalises it with ``cfg.MODEL.PIXEL_MEAN``/``PIXEL_STD`` reordered by
  :func:`pixel_mean_rgb`);
* ``label``: int, the class index;
* ``boxes``: M x 4 float32 tensor, XYXY_ABS in pixels of ``image``, clipped to it, no
  empty box: the boxes ``objectness`` is computed from;
* ``has_boxes``: bool, whether the image has annotated boxes: the one spelling of "this
  image has no boxes" (False: its objectness is unknown; the targets give it
  ``MODEL.ALS.UNBOXED_TARGET``, the evaluator leaves it out of the objectness metrics);
* ``objectness``: float in [0, 1], the fraction of ``image`` covered by ``boxes`` (0 when
  every object was painted out); 1.0 when ``has_boxes`` is False, the whole-frame object
  a hard label assumes, never read as a measurement;
* ``context``: bool, True for a context-only sample (every object painted out; its target
  is uniform whatever the method);
* ``painted_fraction``: float in [0, 1], the fraction of ``image`` painted with the mean.

A batch is a list of such dicts, as in detectron2; :class:`TargetBatch` holds what the
training targets read from it. The training loader stacks the images
of a batch in its worker processes (one shared-memory block per batch, see
``data/build.py``), and :func:`stack_images` hands that block to the model without a copy.
"""

from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch

__all__ = ["SAMPLE_KEYS", "TargetBatch", "pixel_mean_rgb", "stack_images"]

SAMPLE_KEYS = (
    "image",
    "label",
    "boxes",
    "has_boxes",
    "objectness",
    "context",
    "painted_fraction",
)


@dataclass(frozen=True)
class TargetBatch:
    """
    What the training targets of a batch are computed from (N samples, K classes).

    Attributes:
        images: N x C x H x W float (normalised), on the model's device.
        labels: LongTensor[N], CPU.
        objectness: FloatTensor[N] in [0, 1], CPU (1.0 where ``has_boxes`` is False).
        has_boxes: BoolTensor[N], CPU: False where objectness is unknown.
        context: BoolTensor[N], CPU: context-only samples.
        boxes: N FloatTensors Mi x 4, XYXY_ABS in pixels of ``images``, CPU (read only by
            box-aware CutMix, on the host).
    """

    images: torch.Tensor
    labels: torch.Tensor
    objectness: torch.Tensor
    has_boxes: torch.Tensor
    context: torch.Tensor
    boxes: List[torch.Tensor]

    @classmethod
    def from_samples(cls, samples: Sequence[Dict], images: torch.Tensor) -> "TargetBatch":
        """The batch of mapped samples (dicts of this module's format) and their stacked,
        normalised ``images``. Per-sample values stay on the CPU (no device copy)."""
        for i, x in enumerate(samples):
            missing = [k for k in ("label", "has_boxes", "objectness") if k not in x]
            if missing:
                raise KeyError(
                    f"training sample {i} ({x.get('file_name', 'no file_name')}) lacks {missing}: "
                    "training samples need the keys ClassificationDatasetMapper writes "
                    "(als_d2/structures.py)"
                )
        return cls(
            images=images,
            labels=torch.tensor([int(x["label"]) for x in samples], dtype=torch.long),
            objectness=torch.tensor([float(x["objectness"]) for x in samples]),
            has_boxes=torch.tensor([bool(x["has_boxes"]) for x in samples]),
            context=torch.tensor([bool(x.get("context", False)) for x in samples]),
            boxes=[torch.as_tensor(x.get("boxes", torch.zeros(0, 4))).cpu() for x in samples],
        )


def pixel_mean_rgb(pixel_mean: Sequence[float], image_format: str) -> List[float]:
    """cfg.MODEL.PIXEL_MEAN (or PIXEL_STD; in cfg.INPUT.FORMAT order, 0-255) reordered to RGB."""
    mean = [float(v) for v in pixel_mean]
    if image_format == "BGR":
        return mean[::-1]
    if image_format == "RGB":
        return mean
    raise ValueError(
        f"INPUT.FORMAT = {image_format!r}: the classification mapper supports RGB and BGR"
    )


def stack_images(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """
    N x C x H x W batch of ``images`` (each C x H x W, one shape and dtype).

    A view when the images are the consecutive rows of one tensor (as the training loader
    delivers them), else a copy (``torch.stack``).
    """
    first = images[0]
    block = first.untyped_storage()
    n = first.numel()
    consecutive = first.is_contiguous() and all(
        im.shape == first.shape
        and im.dtype == first.dtype
        and im.is_contiguous()
        and im.untyped_storage().data_ptr() == block.data_ptr()
        and im.storage_offset() == first.storage_offset() + i * n
        for i, im in enumerate(images)
    )
    if consecutive:
        return first.as_strided((len(images),) + tuple(first.shape), (n,) + first.stride())
    return torch.stack(list(images))
