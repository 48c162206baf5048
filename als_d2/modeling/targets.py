"""Training targets: hard, label smoothing, Adaptive Label Smoothing (ALS), Mixup, CutMix and
box-aware CutMix with ALS. Every target is an NxK float tensor whose rows sum to 1.

Notation: K classes, label y, objectness o in [0, 1] (fraction of the frame covered by
the object boxes), e_y the one-hot vector of y, u = 1/K the uniform vector.

* label smoothing, "paper" style (Szegedy et al.; the ALS paper, section 3):
  (1 - alpha) on y, alpha / (K - 1) on every other class.
* label smoothing, "torch" style (``F.cross_entropy(label_smoothing=alpha)``):
  (1 - alpha) e_y + alpha u, i.e. 1 - alpha + alpha/K on y, alpha/K elsewhere.
* ALS (paper eq. 6): alpha = 1 - o, paper-style smoothing, blended with the hard label:
  beta * LS_paper(y, 1 - o) + (1 - beta) * e_y. beta = 0 is one-hot; beta = 0.75 keeps
  at least 0.25 on y.
* context-only samples (every object painted out) get u whatever the method.

Box-aware CutMix with ALS (method ``cutmix_als``, :func:`cutmix_als_batch`), our extension.
Image A (the sample) keeps the frame outside the patch P, image B (its partner) fills P.
With frame area F:

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

Special samples: a context-only X has C_X = r_X u, h_X = u, a_X = 0; an unboxed X
(objectness unknown, NaN) has C_X = r_X t_X and h_X = t_X with t_X its UNBOXED_TARGET
target (hard / ls / uniform), and a_X = r_X (its region is assumed all object, as a
hard label assumes).

Why: every term is a sum over the two regions of the mixed image, so the target
reduces exactly to ``als_targets`` of A when P is empty and of B when P is the whole
frame, equals ALS(y, a_A + a_B) when both images have the same class, sums to 1, and
with beta = 1 the label mass of each class is exactly the object area of that class
visible in the mixed image (plus the ALS spread of the background).

Methods (``cfg.MODEL.ALS.METHOD``) are the functions of :data:`TARGET_REGISTRY`;
:func:`build_target_builder` gives the model its :class:`TargetBuilder`.
"""

import math
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.utils.registry import Registry

from ..data.objectness import union_area

__all__ = [
    "LS_STYLES",
    "TARGET_REGISTRY",
    "UNBOXED_TARGETS",
    "TargetBuilder",
    "als_targets",
    "build_target_builder",
    "cutmix_als_batch",
    "cutmix_als_weights",
    "cutmix_batch",
    "label_smoothing_targets",
    "mixup_batch",
    "one_hot_targets",
    "sample_cutmix_box",
    "uniform_targets",
]

Box = Tuple[int, int, int, int]
LS_STYLES = ("paper", "torch")  # MODEL.ALS.LS_STYLE
UNBOXED_TARGETS = ("hard", "ls", "uniform")  # MODEL.ALS.UNBOXED_TARGET


def one_hot_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """labels: LongTensor[N] in [0, K). Returns NxK float32 one-hot."""
    t = torch.zeros(labels.shape[0], num_classes, dtype=torch.float32, device=labels.device)
    return t.scatter_(1, labels.long().view(-1, 1), 1.0)


def uniform_targets(labels: Union[torch.Tensor, int], num_classes: int) -> torch.Tensor:
    """labels: LongTensor[N] (only its length and device matter) or N. Returns NxK, 1/K."""
    if isinstance(labels, torch.Tensor):
        n, device = labels.shape[0], labels.device
    else:
        n, device = int(labels), None
    return torch.full((n, num_classes), 1.0 / num_classes, dtype=torch.float32, device=device)


def label_smoothing_targets(
    labels: torch.Tensor,
    num_classes: int,
    alpha: Union[float, torch.Tensor],
    style: str = "paper",
) -> torch.Tensor:
    """
    Label smoothing targets.

    Args:
        labels: LongTensor[N].
        num_classes: K >= 2.
        alpha: smoothing in [0, 1]; a float or a float tensor[N] (per sample).
        style: "paper": 1 - alpha on the label, alpha / (K - 1) elsewhere;
            "torch": 1 - alpha + alpha / K on the label, alpha / K elsewhere.

    Returns:
        NxK float32.
    """
    hard = one_hot_targets(labels, num_classes)
    a = torch.as_tensor(alpha, dtype=torch.float32, device=hard.device)
    a = a.reshape(-1, 1) if a.dim() > 0 else a
    if style == "paper":
        return hard * (1.0 - a) + (1.0 - hard) * (a / (num_classes - 1))
    if style == "torch":
        return hard * (1.0 - a) + a / num_classes
    raise ValueError(f"label smoothing style {style!r}: expected one of {LS_STYLES}")


def _unboxed_targets(labels, num_classes, unboxed, ls_alpha, ls_style) -> torch.Tensor:
    if unboxed == "hard":
        return one_hot_targets(labels, num_classes)
    if unboxed == "ls":
        return label_smoothing_targets(labels, num_classes, ls_alpha, ls_style)
    if unboxed == "uniform":
        return uniform_targets(labels, num_classes)
    raise ValueError(f"unboxed target {unboxed!r}: expected one of {UNBOXED_TARGETS}")


def als_targets(
    labels: torch.Tensor,
    objectness: torch.Tensor,
    num_classes: int,
    beta: float = 1.0,
    unboxed: str = "hard",
    ls_alpha: float = 0.1,
    ls_style: str = "paper",
    context: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """
    Adaptive label smoothing (paper eq. 6): beta * LS_paper(y, alpha = 1 - o) + (1 - beta) e_y.

    Args:
        labels: LongTensor[N].
        objectness: FloatTensor[N] in [0, 1]; NaN = unknown (image without boxes).
        num_classes: K.
        beta: blend in [0, 1]; 0 gives one-hot targets.
        unboxed: target of unknown-objectness samples, used as is (no beta blend):
            "hard" (one-hot), "ls" (label smoothing with ls_alpha, ls_style), "uniform".
        context: optional BoolTensor[N]; True rows (context-only samples) are uniform.

    Returns:
        NxK float32.
    """
    o = objectness.to(device=labels.device, dtype=torch.float32).reshape(-1)
    unknown = torch.isnan(o)
    o = torch.nan_to_num(o, nan=1.0).clamp(0.0, 1.0)
    hard = one_hot_targets(labels, num_classes)
    als = label_smoothing_targets(labels, num_classes, 1.0 - o, "paper")
    t = beta * als + (1.0 - beta) * hard
    if bool(unknown.any()):
        u = _unboxed_targets(labels, num_classes, unboxed, ls_alpha, ls_style)
        t = torch.where(unknown[:, None], u, t)
    if context is not None:
        t = torch.where(context.to(t.device).reshape(-1, 1), 1.0 / num_classes, t)
    return t


def _with_context(targets: torch.Tensor, context: Optional[torch.Tensor]) -> torch.Tensor:
    if context is None:
        return targets
    return torch.where(context.to(targets.device).reshape(-1, 1), 1.0 / targets.shape[1], targets)


def _perm(n: int, perm: Optional[torch.Tensor], device) -> torch.Tensor:
    if perm is None:
        perm = torch.randperm(n)
    return perm.to(device=device, dtype=torch.long)


def mixup_batch(
    images: torch.Tensor, targets: torch.Tensor, lam: float, perm: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Mixup: lam * x + (1 - lam) * x[perm], same for the targets.

    Args:
        images: NxCxHxW float. targets: NxK. lam: in [0, 1].
        perm: LongTensor[N] partner of each sample (default: torch.randperm).
    """
    p = _perm(images.shape[0], perm, images.device)
    lam = float(lam)
    mixed = images * lam + images[p] * (1.0 - lam)
    return mixed, targets * lam + targets[p.to(targets.device)] * (1.0 - lam)


def sample_cutmix_box(lam: float, height: int, width: int) -> Box:
    """
    CutMix's patch (Yun et al. 2019) for ratio ``lam``: sides sqrt(1 - lam) * (H, W)
    (floored), centre uniform over the pixels (torch RNG), clipped to the frame.

    Returns:
        (x0, y0, x1, y1) ints in pixels, 0 <= x0 <= x1 <= W, 0 <= y0 <= y1 <= H.
    """
    cut = math.sqrt(max(0.0, 1.0 - float(lam)))
    cut_w, cut_h = int(width * cut), int(height * cut)
    cx = int(torch.randint(width, (1,)).item())
    cy = int(torch.randint(height, (1,)).item())
    x0, x1 = min(max(cx - cut_w // 2, 0), width), min(max(cx + cut_w // 2, 0), width)
    y0, y1 = min(max(cy - cut_h // 2, 0), height), min(max(cy + cut_h // 2, 0), height)
    return x0, y0, x1, y1


def _clip_patch(box: Sequence[float], height: int, width: int) -> Box:
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    x0, x1 = min(max(x0, 0), width), min(max(x1, 0), width)
    y0, y1 = min(max(y0, 0), height), min(max(y1, 0), height)
    return x0, y0, max(x0, x1), max(y0, y1)


def _paste(images: torch.Tensor, p: torch.Tensor, box: Box) -> torch.Tensor:
    x0, y0, x1, y1 = box
    mixed = images.clone()
    if x1 > x0 and y1 > y0:
        mixed[:, :, y0:y1, x0:x1] = images[p][:, :, y0:y1, x0:x1]
    return mixed


def cutmix_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    lam: float,
    box: Optional[Sequence[float]] = None,
    perm: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    CutMix: the patch ``box`` of every image is replaced by that of its partner
    x[perm]; targets are mixed with the pasted area fraction after clipping the patch
    to the frame: (1 - |P|/F) t + |P|/F t[perm].

    Args:
        images: NxCxHxW. targets: NxK. lam: CutMix ratio, used to sample the patch when
            ``box`` is None.
        box: (x0, y0, x1, y1) in pixels (rounded to integers, clipped to the frame).
        perm: LongTensor[N] (default: torch.randperm).
    """
    h, w = images.shape[-2:]
    p = _perm(images.shape[0], perm, images.device)
    patch = _clip_patch(sample_cutmix_box(lam, h, w) if box is None else box, h, w)
    x0, y0, x1, y1 = patch
    r_b = (x1 - x0) * (y1 - y0) / float(h * w)
    mixed = _paste(images, p, patch)
    return mixed, targets * (1.0 - r_b) + targets[p.to(targets.device)] * r_b


def cutmix_als_weights(
    boxes_a, boxes_b, patch: Sequence[float], image_size: Tuple[int, int]
) -> Tuple[float, float]:
    """
    Object areas (fractions of the frame) that image A (outside the patch) and image B
    (inside the patch) contribute to the CutMix sample, computed exactly.

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


def cutmix_als_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    objectness: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    lam: float,
    num_classes: int,
    beta: float = 1.0,
    box: Optional[Sequence[float]] = None,
    perm: Optional[torch.Tensor] = None,
    context: Optional[torch.Tensor] = None,
    unboxed: str = "hard",
    ls_alpha: float = 0.1,
    ls_style: str = "paper",
) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Box-aware CutMix combined with ALS (formula in the module docstring).

    Args:
        images: NxCxHxW. labels: LongTensor[N]. objectness: FloatTensor[N], NaN = unknown.
        boxes: N tensors (or arrays) Mi x 4, XYXY_ABS in pixels of ``images``.
        lam: CutMix ratio, used to sample the patch when ``box`` is None.
        num_classes: K. beta: ALS blend. box: patch (x0, y0, x1, y1) in pixels.
        perm: LongTensor[N] partner of each sample (default: torch.randperm).
        context: optional BoolTensor[N] of context-only samples.
        unboxed, ls_alpha, ls_style: target of unknown-objectness samples.

    Returns:
        (mixed images NxCxHxW, targets NxK float32).
    """
    n, (h, w) = images.shape[0], images.shape[-2:]
    if len(boxes) != n:
        raise ValueError(f"cutmix_als_batch: {len(boxes)} box tensors for {n} images")
    dev = labels.device
    p = _perm(n, perm, images.device)
    patch = _clip_patch(sample_cutmix_box(lam, h, w) if box is None else box, h, w)
    x0, y0, x1, y1 = patch
    r_b = (x1 - x0) * (y1 - y0) / float(h * w)
    r_a = 1.0 - r_b

    o = objectness.detach().to("cpu", torch.float32).reshape(-1)
    unknown = torch.isnan(o)
    ctx = (
        torch.zeros(n, dtype=torch.bool)
        if context is None
        else context.detach().to("cpu", torch.bool).reshape(-1)
    )
    # one device-to-host copy for all boxes
    counts = [int(b.shape[0]) for b in boxes]
    flat = torch.cat([torch.as_tensor(b).reshape(-1, 4).to(torch.float64) for b in boxes]).cpu()
    np_boxes = np.split(flat.numpy(), np.cumsum(counts)[:-1])
    pc = p.cpu()
    # Object areas: a_A of every sample (outside P), a_B of its partner (inside P).
    areas = [
        cutmix_als_weights(np_boxes[i], np_boxes[j], patch, (h, w))
        for i, j in enumerate(pc.tolist())
    ]
    a_a = torch.tensor([a for a, _ in areas], dtype=torch.float32)
    a_b = torch.tensor([b for _, b in areas], dtype=torch.float32)
    for a, r, idx in ((a_a, r_a, torch.arange(n)), (a_b, r_b, pc)):
        a[unknown[idx]] = r  # unboxed: the region is assumed all object
        a[ctx[idx]] = 0.0  # context-only: no object
    a_a, a_b = a_a.to(dev), a_b.to(dev)
    unknown, ctx, pd = unknown.to(dev), ctx.to(dev), pc.to(dev)

    k = num_classes
    hard = one_hot_targets(labels, k)
    uni = uniform_targets(labels, k)
    special = _unboxed_targets(labels, k, unboxed, ls_alpha, ls_style)
    special = torch.where(ctx[:, None], uni, special)  # t_X of unboxed / context samples
    is_special = (unknown | ctx)[:, None]

    def region(a: torch.Tensor, r: float, idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(C_X, h_X) of the region contributed by samples ``idx``."""
        e = hard[idx]
        c = a[:, None] * e + ((r - a) / (k - 1))[:, None] * (1.0 - e)
        c = torch.where(is_special[idx], r * special[idx], c)
        hx = torch.where(is_special[idx], special[idx], e)
        return c, hx

    c_a, h_a = region(a_a, r_a, torch.arange(n, device=dev))
    c_b, h_b = region(a_b, r_b, pd)
    total = a_a + a_b
    w_a = torch.where(total > 0, a_a / total.clamp_min(1e-12), torch.full_like(total, r_a))
    w_b = 1.0 - w_a
    targets = beta * (c_a + c_b) + (1.0 - beta) * (w_a[:, None] * h_a + w_b[:, None] * h_b)
    return _paste(images, p, patch), targets


TARGET_REGISTRY = Registry("ALS_TARGET")
TARGET_REGISTRY.__doc__ = """
Training-target methods, registered under the names ``cfg.MODEL.ALS.METHOD`` takes.

A method is a function ``(builder, images, labels, objectness, context, boxes) -> (images,
targets)``: the arguments of :meth:`TargetBuilder.__call__`, with ``builder`` giving the
parameters (``cfg.MODEL.ALS``) and the batch-level draws. Two attributes say what it needs
and does: ``mixes`` (it mixes pairs of images) and ``needs_boxes`` (the targets depend on
objectness: the training set must have boxes).
"""


def _method(*, mixes: bool = False, needs_boxes: bool = False):
    """Sets the ``mixes`` / ``needs_boxes`` attributes of a target method."""

    def mark(fn):
        fn.mixes, fn.needs_boxes = mixes, needs_boxes
        return fn

    return mark


@TARGET_REGISTRY.register()
@_method()
def hard(b: "TargetBuilder", images, labels, objectness, context, boxes):
    """One-hot targets."""
    return images, _with_context(one_hot_targets(labels, b.num_classes), context)


@TARGET_REGISTRY.register()
@_method()
def ls(b: "TargetBuilder", images, labels, objectness, context, boxes):
    """Label smoothing with LS_ALPHA in the LS_STYLE convention."""
    t = label_smoothing_targets(labels, b.num_classes, b.ls_alpha, b.ls_style)
    return images, _with_context(t, context)


@TARGET_REGISTRY.register()
@_method(needs_boxes=True)
def als(b: "TargetBuilder", images, labels, objectness, context, boxes):
    """Adaptive label smoothing, alpha = 1 - objectness, blended with BETA (paper eq. 6)."""
    return images, b.als(labels, objectness, context)


def _hard_targets_and_mix_draw(b: "TargetBuilder", labels, context):
    """Hard targets (N x K), the mixing weight (None: this batch is not mixed) and, when
    mixed, the partner permutation (drawn after the weight, from torch's RNG)."""
    targets = _with_context(one_hot_targets(labels, b.num_classes), context)
    lam = b.sample_lam(labels.shape[0])
    perm = None if lam is None else torch.randperm(labels.shape[0])
    return targets, lam, perm


@TARGET_REGISTRY.register()
@_method(mixes=True)
def mixup(b: "TargetBuilder", images, labels, objectness, context, boxes):
    """Mixup of images and hard targets; an unmixed batch keeps its hard targets."""
    targets, lam, perm = _hard_targets_and_mix_draw(b, labels, context)
    if lam is not None:
        b.last_mix_ratio = 1.0 - lam
        images, targets = mixup_batch(images, targets, lam, perm=perm)
    return images, targets


@TARGET_REGISTRY.register()
@_method(mixes=True)
def cutmix(b: "TargetBuilder", images, labels, objectness, context, boxes):
    """CutMix of images and hard targets; an unmixed batch keeps its hard targets."""
    targets, lam, perm = _hard_targets_and_mix_draw(b, labels, context)
    if lam is None:
        return images, targets
    return cutmix_batch(images, targets, lam, box=b.sample_patch(lam, images), perm=perm)


@TARGET_REGISTRY.register()
@_method(mixes=True, needs_boxes=True)
def cutmix_als(b: "TargetBuilder", images, labels, objectness, context, boxes):
    """Box-aware CutMix with ALS (module docstring); an unmixed batch gets ALS targets."""
    n = labels.shape[0]
    lam = b.sample_lam(n)
    if lam is None:
        return als(b, images, labels, objectness, context, boxes)
    perm = torch.randperm(n)
    patch = b.sample_patch(lam, images)
    if boxes is None:
        boxes = [torch.zeros(0, 4) for _ in range(n)]
    return cutmix_als_batch(
        images,
        labels,
        objectness,
        boxes,
        lam,
        b.num_classes,
        b.beta,
        box=patch,
        perm=perm,
        context=context,
        unboxed=b.unboxed_target,
        ls_alpha=b.ls_alpha,
        ls_style=b.ls_style,
    )


class TargetBuilder:
    """
    Builds the training targets of a batch, and mixes its images for the mixing methods.

    ``images, targets = builder(images, labels, objectness, context, boxes)``:

    * images: NxCxHxW float (normalised); labels: LongTensor[N]; objectness:
      FloatTensor[N] in [0, 1], NaN = unknown; context: BoolTensor[N] (context-only
      samples, uniform target); boxes: N tensors Mi x 4, XYXY_ABS in output pixels.
    * returns the (possibly mixed) images and NxK float32 targets whose rows sum to 1.

    ``method`` is a name in :data:`TARGET_REGISTRY`. A mixing method mixes a batch with
    probability MIX_PROB, lam ~ Beta(MIX_ALPHA, MIX_ALPHA), each sample paired with a
    partner from torch.randperm. All randomness comes from torch's RNG.
    """

    @configurable
    def __init__(
        self,
        *,
        num_classes: int,
        method: str = "hard",
        ls_alpha: float = 0.1,
        ls_style: str = "paper",
        beta: float = 1.0,
        unboxed_target: str = "hard",
        mix_alpha: float = 1.0,
        mix_prob: float = 1.0,
    ):
        if method not in TARGET_REGISTRY:
            names = tuple(name for name, _ in TARGET_REGISTRY)
            raise ValueError(f"TargetBuilder: unknown method {method!r}; expected one of {names}")
        self.num_classes = int(num_classes)
        self.method = method
        self._targets = TARGET_REGISTRY.get(method)
        self.ls_alpha = float(ls_alpha)
        self.ls_style = ls_style
        self.beta = float(beta)
        self.unboxed_target = unboxed_target
        self.mix_alpha = float(mix_alpha)
        self.mix_prob = float(mix_prob)
        # partner's share of the last batch (1 - lam for Mixup, the pasted area fraction for
        # CutMix), None when it was not mixed: what the model logs as als/mix_ratio
        self.last_mix_ratio: Optional[float] = None

    @property
    def mixes(self) -> bool:
        """True for the methods that mix pairs of images (mixup, cutmix, cutmix_als)."""
        return self._targets.mixes

    @classmethod
    def from_config(cls, cfg):
        als = cfg.MODEL.ALS
        return {
            "num_classes": cfg.MODEL.CLASSIFIER.NUM_CLASSES,
            "method": als.METHOD,
            "ls_alpha": als.LS_ALPHA,
            "ls_style": als.LS_STYLE,
            "beta": als.BETA,
            "unboxed_target": als.UNBOXED_TARGET,
            "mix_alpha": als.MIX_ALPHA,
            "mix_prob": als.MIX_PROB,
        }

    def als(self, labels, objectness, context) -> torch.Tensor:
        """ALS targets (:func:`als_targets`) with this builder's parameters."""
        return als_targets(
            labels,
            objectness,
            self.num_classes,
            self.beta,
            self.unboxed_target,
            self.ls_alpha,
            self.ls_style,
            context,
        )

    def sample_lam(self, n: int) -> Optional[float]:
        """lam ~ Beta(a, a) with probability mix_prob, else None; None without a partner (n < 2)."""
        if n < 2 or self.mix_prob <= 0.0 or float(torch.rand(())) >= self.mix_prob:
            return None
        a = torch.tensor(self.mix_alpha, dtype=torch.float64)
        return float(torch.distributions.Beta(a, a).sample())

    def sample_patch(self, lam: float, images: torch.Tensor) -> Box:
        """CutMix's patch for ``lam`` in the frame of ``images`` (:func:`sample_cutmix_box`,
        clipped); sets ``last_mix_ratio`` to its area fraction."""
        h, w = images.shape[-2:]
        patch = _clip_patch(sample_cutmix_box(lam, h, w), h, w)
        self.last_mix_ratio = (patch[2] - patch[0]) * (patch[3] - patch[1]) / float(h * w)
        return patch

    def __call__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        objectness: Optional[torch.Tensor] = None,
        context: Optional[torch.Tensor] = None,
        boxes: Optional[List[torch.Tensor]] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        self.last_mix_ratio = None
        if objectness is None:
            objectness = torch.full((labels.shape[0],), float("nan"), device=labels.device)
        return self._targets(self, images, labels, objectness, context, boxes)


def build_target_builder(cfg) -> TargetBuilder:
    """The :class:`TargetBuilder` of ``cfg.MODEL.ALS.METHOD``, a name in :data:`TARGET_REGISTRY`."""
    return TargetBuilder(cfg)
