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
* ``objectness``: float in [0, 1], the fraction of ``image`` covered by ``boxes``; None
  when the image has no annotated boxes (unknown);
* ``context``: bool, True for a context-only sample (every object painted out);
* ``painted_fraction``: float in [0, 1], the fraction of ``image`` painted with the mean.

A batch is a list of such dicts, as in detectron2. The training loader stacks the images
of a batch in its worker processes (one shared-memory block per batch, see
``data/build.py``), and :func:`stack_images` hands that block to the model without a copy.
"""

from typing import List, Sequence

import torch

__all__ = ["SAMPLE_KEYS", "pixel_mean_rgb", "stack_images"]

SAMPLE_KEYS = ("image", "label", "boxes", "objectness", "context", "painted_fraction")


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
