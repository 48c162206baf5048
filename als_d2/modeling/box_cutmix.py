"""Box-aware CutMix with ALS (method ``cutmix_als``), our extension of the paper.

Image A (the sample) keeps the frame outside the patch P, image B (its partner) fills P.
K classes, frame area F, e_y the one-hot vector of y, u = 1/K the uniform vector:

  r_A = 1 - |P|/F,  r_B = |P|/F                  (region shares, CutMix's weights)
  a_A = |union(A's boxes) minus P| / F           (object area A contributes)
  a_B = |union(B's boxes) within P| / F          (object area B contributes)

  target = beta * (C_A + C_B) + (1 - beta) * (w_A h_A + w_B h_B)

  C_X = a_X e_yX + (r_X - a_X)/(K - 1) (1 - e_yX): paper-style ALS of region X (the
        region's objectness is a_X / r_X), weighted by its share r_X. So the mass on
        y_X is the object area X contributes and the remaining, non-object area is
        spread over the other classes as ALS does.
  w_X = a_X / (a_A + a_B): hard-label weights from the object areas (not the patch
        area); when a_A + a_B = 0 (no object visible) they fall back to CutMix's
        r_A, r_B, so that (1 - beta) keeps its paper meaning of a guaranteed share of
        the label(s) "regardless of whether an object is present".
  h_X = e_yX.

Special samples: their own target t_X (the ALS target of the sample: uniform for a
context-only X, ``MODEL.ALS.UNBOXED_TARGET`` for an X without boxes) fills their region:
C_X = r_X t_X, h_X = t_X; a context-only X has a_X = 0 (no object), an X without boxes
a_X = r_X (its region is assumed all object, as a hard label assumes).

Why: every term is a sum over the two regions of the mixed image, so the target
reduces exactly to the ALS target of A when P is empty and of B when P is the whole
frame, equals ALS(y, a_A + a_B) when both images have the same class, sums to 1, and
with beta = 1 the label mass of each class is exactly the object area of that class
visible in the mixed image (plus the ALS spread of the background).
"""

from typing import Sequence, Tuple

import numpy as np
import torch

from ..objectness import union_area
from ..structures import TargetBatch

__all__ = ["box_cutmix_targets", "region_object_areas"]

Box = Tuple[int, int, int, int]


def region_object_areas(
    boxes_a, boxes_b, patch: Sequence[float], image_size: Tuple[int, int]
) -> Tuple[float, float]:
    """
    (a_A, a_B) of the module docstring, computed exactly: the object areas (fractions of
    the frame) that image A (outside the patch) and image B (inside it) contribute.

    Args:
        boxes_a, boxes_b: Mx4 XYXY_ABS boxes (pixels) of the two images (same frame).
        patch: (x0, y0, x1, y1) of the pasted region, already clipped to the frame.
        image_size: (h, w).

    Returns:
        (a_A, a_B), each in [0, 1].
    """
    h, w = image_size
    area = float(h * w)
    frame = (0.0, 0.0, float(w), float(h))
    a_a = union_area(boxes_a, frame) - union_area(boxes_a, patch)
    a_b = union_area(boxes_b, patch)
    return max(a_a, 0.0) / area, max(a_b, 0.0) / area


def box_cutmix_targets(
    batch: TargetBatch, sample_targets: torch.Tensor, patch: Box, perm: torch.Tensor, beta: float
) -> torch.Tensor:
    """
    Targets of the CutMix batch whose sample i has the patch of sample ``perm[i]`` pasted
    (the formula of the module docstring).

    Args:
        batch: the unmixed batch (its labels, has_boxes, context, boxes; images only for
            the frame size).
        sample_targets: NxK ALS targets of the unmixed samples (t_X of special samples).
        patch: (x0, y0, x1, y1) in pixels, clipped to the frame.
        perm: LongTensor[N], the partner of each sample.
        beta: the ALS blend.

    Returns:
        NxK float32 targets on the device of ``batch.labels``.
    """
    labels = batch.labels
    n, k = sample_targets.shape
    h, w = batch.images.shape[-2:]
    if len(batch.boxes) != n:
        raise ValueError(f"box_cutmix_targets: {len(batch.boxes)} box tensors for {n} images")
    x0, y0, x1, y1 = patch
    r_b = (x1 - x0) * (y1 - y0) / float(h * w)
    r_a = 1.0 - r_b

    unknown = ~batch.has_boxes.cpu()
    ctx = batch.context.cpu()
    counts = [int(b.shape[0]) for b in batch.boxes]
    flat = torch.cat([torch.as_tensor(b).reshape(-1, 4).to(torch.float64) for b in batch.boxes])
    np_boxes = np.split(flat.cpu().numpy(), np.cumsum(counts)[:-1])
    pc = perm.cpu()
    # Object areas: a_A of every sample (outside P), a_B of its partner (inside P).
    areas = [
        region_object_areas(np_boxes[i], np_boxes[j], patch, (h, w))
        for i, j in enumerate(pc.tolist())
    ]
    a_a = torch.tensor([a for a, _ in areas], dtype=torch.float32)
    a_b = torch.tensor([b for _, b in areas], dtype=torch.float32)
    for a, r, idx in ((a_a, r_a, torch.arange(n)), (a_b, r_b, pc)):
        a[unknown[idx]] = r  # without boxes: the region is assumed all object
        a[ctx[idx]] = 0.0  # context-only: no object
    dev = labels.device
    a_a, a_b, pd = a_a.to(dev), a_b.to(dev), pc.to(dev)
    is_special = (unknown | ctx).to(dev)[:, None]

    hard = torch.zeros(n, k, dtype=torch.float32, device=dev).scatter_(1, labels.view(-1, 1), 1.0)

    def region(a: torch.Tensor, r: float, idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(C_X, h_X) of the region contributed by samples ``idx``."""
        e = hard[idx]
        c = a[:, None] * e + ((r - a) / (k - 1))[:, None] * (1.0 - e)
        c = torch.where(is_special[idx], r * sample_targets[idx], c)
        hx = torch.where(is_special[idx], sample_targets[idx], e)
        return c, hx

    c_a, h_a = region(a_a, r_a, torch.arange(n, device=dev))
    c_b, h_b = region(a_b, r_b, pd)
    total = a_a + a_b
    w_a = torch.where(total > 0, a_a / total.clamp_min(1e-12), torch.full_like(total, r_a))
    w_b = 1.0 - w_a
    return beta * (c_a + c_b) + (1.0 - beta) * (w_a[:, None] * h_a + w_b[:, None] * h_b)
