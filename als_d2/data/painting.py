"""Painting boxes of an image with one colour (the 'mask' and 'context' variants).

Pixel rule, consistent with the geometry of ``objectness.py`` (pixel (row i, column j)
is the unit square [j, j+1] x [i, i+1]): a pixel is painted iff its centre
(j + 0.5, i + 0.5) lies in the half-open box [x0, x1) x [y0, y1), i.e. iff more than
half of its width lies inside [x0, x1] and more than half of its height inside
[y0, y1] (exactly half: painted on the low edge, not on the high edge). Equivalently
the box edges are rounded to the nearest pixel boundary (halves rounded up): columns
ceil(x0 - 0.5) .. ceil(x1 - 0.5) - 1 are painted. For integer box coordinates (as in
ImageNet's annotations) the painted pixels are exactly the box's area; otherwise the
painted count differs from the exact area by less than half a pixel per edge.
"""

from typing import Sequence

import numpy as np

__all__ = ["box_pixel_ranges", "paint_boxes"]


def box_pixel_ranges(boxes, image_size) -> np.ndarray:
    """
    The pixel index ranges painted for each box (the rule in the module docstring).

    Args:
        boxes: Nx4 array-like, XYXY_ABS in pixels.
        image_size: (h, w) of the image.

    Returns:
        ndarray: Nx4 int64 (col0, row0, col1, row1), half-open and clipped to the image:
        the box covers ``image[row0:row1, col0:col1]`` (empty when col1 <= col0 or
        row1 <= row0).
    """
    h, w = image_size
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    r = np.ceil(b - 0.5).astype(np.int64)
    r[:, 0::2] = np.clip(r[:, 0::2], 0, w)
    r[:, 1::2] = np.clip(r[:, 1::2], 0, h)
    return r


def paint_boxes(
    image: np.ndarray, boxes, color: Sequence[float], inplace: bool = False
) -> np.ndarray:
    """
    Fill every box of ``image`` with ``color``.

    Args:
        image: HxWxC (or HxW) uint8 array.
        boxes: Nx4 array-like, XYXY_ABS in pixels of ``image``; may extend outside it.
        color: C values in the image's channel order and range (0-255); rounded to the
            nearest integer for uint8 images.
        inplace: paint ``image`` itself instead of a copy (it must be writable).

    Returns:
        ndarray: the painted image (same shape and dtype).
    """
    out = image if inplace else np.array(image, copy=True)
    value = np.asarray(color, dtype=np.float64)
    if out.dtype == np.uint8:
        value = np.clip(np.floor(value + 0.5), 0, 255).astype(np.uint8)
    else:
        value = value.astype(out.dtype)
    for c0, r0, c1, r1 in box_pixel_ranges(boxes, out.shape[:2]).tolist():
        if c1 > c0 and r1 > r0:
            out[r0:r1, c0:c1] = value
    return out
