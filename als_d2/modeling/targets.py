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

Two per-sample rules, each written once (:func:`sample_targets`): a sample without boxes
(``has_boxes`` False, objectness unknown) gets ``UNBOXED_TARGET`` under ALS instead of
eq. 6, and a context-only sample (every object painted out) gets u whatever the method.
Mixup and CutMix mix the per-sample targets of their method; box-aware CutMix
(:mod:`.box_cutmix`) splits them by region.

Methods (``cfg.MODEL.ALS.METHOD``) are the functions of :data:`TARGET_REGISTRY`, plain
functions ``(batch, params) -> (images, targets, info)``; :func:`build_target_builder`
gives the model its :class:`TargetBuilder`.
"""

import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

import torch

from detectron2.config import configurable
from detectron2.utils.registry import Registry

from ..structures import TargetBatch
from .box_cutmix import box_cutmix_targets

__all__ = [
    "LS_STYLES",
    "SAMPLE_TARGETS",
    "TARGET_REGISTRY",
    "UNBOXED_TARGETS",
    "TargetBatch",
    "TargetBuilder",
    "TargetParams",
    "als_targets",
    "build_target_builder",
    "clip_patch",
    "cutmix_batch",
    "label_smoothing_targets",
    "mixup_batch",
    "one_hot_targets",
    "paste_patch",
    "patch_fraction",
    "sample_cutmix_box",
    "sample_lam",
    "sample_patch",
    "sample_targets",
    "unboxed_targets",
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


def _perm(n: int, perm: Optional[torch.Tensor]) -> torch.Tensor:
    """``perm`` (default: torch.randperm(n)) as a LongTensor, where it was given (the CPU)."""
    return (torch.randperm(n) if perm is None else perm).long()


def mixup_batch(
    images: torch.Tensor, targets: torch.Tensor, lam: float, perm: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Mixup: lam * x + (1 - lam) * x[perm], same for the targets.

    Args:
        images: NxCxHxW float. targets: NxK. lam: in [0, 1].
        perm: LongTensor[N] partner of each sample (default: torch.randperm).
    """
    p = _perm(images.shape[0], perm)
    lam = float(lam)
    mixed = images * lam + images[p.to(images.device)] * (1.0 - lam)
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


def clip_patch(box: Sequence[float], height: int, width: int) -> Box:
    """``box`` (x0, y0, x1, y1) rounded to integer pixels and clipped to the frame."""
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    x0, x1 = min(max(x0, 0), width), min(max(x1, 0), width)
    y0, y1 = min(max(y0, 0), height), min(max(y1, 0), height)
    return x0, y0, max(x0, x1), max(y0, y1)


def paste_patch(images: torch.Tensor, p: torch.Tensor, box: Box) -> torch.Tensor:
    """A copy of ``images`` (NxCxHxW) whose ``box`` (clipped) of image i is that of image
    p[i] (p: LongTensor[N], any device)."""
    x0, y0, x1, y1 = box
    mixed = images.clone()
    if x1 > x0 and y1 > y0:
        mixed[:, :, y0:y1, x0:x1] = images[p.to(images.device)][:, :, y0:y1, x0:x1]
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
    p = _perm(images.shape[0], perm)
    patch = clip_patch(sample_cutmix_box(lam, h, w) if box is None else box, h, w)
    r_b = patch_fraction(patch, h, w)
    mixed = paste_patch(images, p, patch)
    return mixed, targets * (1.0 - r_b) + targets[p.to(targets.device)] * r_b


def patch_fraction(patch: Box, height: int, width: int) -> float:
    """Area of the clipped ``patch`` over the frame's: CutMix's partner share."""
    x0, y0, x1, y1 = patch
    return (x1 - x0) * (y1 - y0) / float(height * width)


@dataclass(frozen=True)
class TargetParams:
    """``cfg.MODEL.ALS`` as the target methods read it (see :class:`TargetBuilder`)."""

    num_classes: int
    ls_alpha: float = 0.1
    ls_style: str = "paper"
    beta: float = 1.0
    unboxed_target: str = "hard"
    mix_alpha: float = 1.0
    mix_prob: float = 1.0


def unboxed_targets(labels: torch.Tensor, params: TargetParams) -> torch.Tensor:
    """NxK targets ALS gives samples without boxes (``UNBOXED_TARGET``): "hard" (one-hot),
    "ls" (label smoothing with LS_ALPHA, LS_STYLE) or "uniform"; no beta blend."""
    k, unboxed = params.num_classes, params.unboxed_target
    if unboxed == "hard":
        return one_hot_targets(labels, k)
    if unboxed == "ls":
        return label_smoothing_targets(labels, k, params.ls_alpha, params.ls_style)
    if unboxed == "uniform":
        return uniform_targets(labels, k)
    raise ValueError(f"unboxed target {unboxed!r}: expected one of {UNBOXED_TARGETS}")


def als_targets(
    labels: torch.Tensor, objectness: torch.Tensor, num_classes: int, beta: float = 1.0
) -> torch.Tensor:
    """
    Adaptive label smoothing (paper eq. 6): beta * LS_paper(y, alpha = 1 - o) + (1 - beta) e_y.

    Args:
        labels: LongTensor[N]. objectness: FloatTensor[N] in [0, 1]. num_classes: K.
        beta: blend in [0, 1]; 0 gives one-hot targets.

    Returns:
        NxK float32 on the device of ``labels``.
    """
    o = objectness.to(device=labels.device, dtype=torch.float32).reshape(-1).clamp(0.0, 1.0)
    hard = one_hot_targets(labels, num_classes)
    als = label_smoothing_targets(labels, num_classes, 1.0 - o, "paper")
    return beta * als + (1.0 - beta) * hard


SAMPLE_TARGETS = ("hard", "ls", "als")


def sample_targets(kind: str, batch: TargetBatch, params: TargetParams) -> torch.Tensor:
    """
    The unmixed NxK target of every sample of ``batch``: ``kind`` "hard" (one-hot), "ls"
    (LS_ALPHA, LS_STYLE) or "als" (:func:`als_targets`, and :func:`unboxed_targets` where
    ``has_boxes`` is False); uniform for context-only samples whatever ``kind``.
    """
    labels, k = batch.labels, params.num_classes
    if kind == "hard":
        t = one_hot_targets(labels, k)
    elif kind == "ls":
        t = label_smoothing_targets(labels, k, params.ls_alpha, params.ls_style)
    elif kind == "als":
        t = als_targets(labels, batch.objectness, k, params.beta)
        unknown = ~batch.has_boxes.to(t.device).reshape(-1, 1)
        t = torch.where(unknown, unboxed_targets(labels, params), t)
    else:
        raise ValueError(f"sample target {kind!r}: expected one of {SAMPLE_TARGETS}")
    return torch.where(batch.context.to(t.device).reshape(-1, 1), 1.0 / k, t)


def sample_lam(n: int, params: TargetParams) -> Optional[float]:
    """A batch's mixing weight: lam ~ Beta(MIX_ALPHA, MIX_ALPHA) with probability MIX_PROB,
    else None (not mixed); None without a partner (n < 2). torch's RNG, on the CPU."""
    if n < 2 or params.mix_prob <= 0.0 or float(torch.rand(())) >= params.mix_prob:
        return None
    a = torch.tensor(params.mix_alpha, dtype=torch.float64)
    return float(torch.distributions.Beta(a, a).sample())


def sample_patch(lam: float, images: torch.Tensor) -> Box:
    """CutMix's patch for ``lam`` in the frame of ``images``: :func:`sample_cutmix_box`,
    clipped."""
    h, w = images.shape[-2:]
    return clip_patch(sample_cutmix_box(lam, h, w), h, w)


TARGET_REGISTRY = Registry("ALS_TARGET")
TARGET_REGISTRY.__doc__ = """
Training-target methods, registered under the names ``cfg.MODEL.ALS.METHOD`` takes.

A method is a plain function ``(batch: TargetBatch, params: TargetParams) -> (images,
targets, info)``: the (possibly mixed) NxCxHxW images, the NxK float32 targets (on the
device of ``batch.labels``, rows summing to 1) and a dict of what it mixed, for the logs:
``{"mix_ratio": the partner's share (1 - lam for Mixup, the pasted area fraction for
CutMix), None when this batch was not mixed}`` for the mixing methods, ``{}`` for the
others. All randomness comes from torch's RNG, in this order: lam, partner permutation,
patch. Two attributes say what it needs and does: ``mixes`` (it mixes pairs of images)
and ``needs_boxes`` (the targets depend on objectness: the training set must have boxes).
"""


def _method(*, mixes: bool = False, needs_boxes: bool = False):
    """Sets the ``mixes`` / ``needs_boxes`` attributes of a target method."""

    def mark(fn):
        fn.mixes, fn.needs_boxes = mixes, needs_boxes
        return fn

    return mark


@TARGET_REGISTRY.register()
@_method()
def hard(batch: TargetBatch, params: TargetParams):
    """One-hot targets."""
    return batch.images, sample_targets("hard", batch, params), {}


@TARGET_REGISTRY.register()
@_method()
def ls(batch: TargetBatch, params: TargetParams):
    """Label smoothing with LS_ALPHA in the LS_STYLE convention."""
    return batch.images, sample_targets("ls", batch, params), {}


@TARGET_REGISTRY.register()
@_method(needs_boxes=True)
def als(batch: TargetBatch, params: TargetParams):
    """Adaptive label smoothing, alpha = 1 - objectness, blended with BETA (paper eq. 6)."""
    return batch.images, sample_targets("als", batch, params), {}


def _mix_draw(batch: TargetBatch, params: TargetParams):
    """(lam, partner permutation), or (None, None) when this batch is not mixed."""
    n = batch.labels.shape[0]
    lam = sample_lam(n, params)
    return (None, None) if lam is None else (lam, torch.randperm(n))


@TARGET_REGISTRY.register()
@_method(mixes=True)
def mixup(batch: TargetBatch, params: TargetParams):
    """Mixup of images and hard targets; an unmixed batch keeps its hard targets."""
    targets = sample_targets("hard", batch, params)
    lam, perm = _mix_draw(batch, params)
    if lam is None:
        return batch.images, targets, {"mix_ratio": None}
    images, targets = mixup_batch(batch.images, targets, lam, perm=perm)
    return images, targets, {"mix_ratio": 1.0 - lam}


@TARGET_REGISTRY.register()
@_method(mixes=True)
def cutmix(batch: TargetBatch, params: TargetParams):
    """CutMix of images and hard targets; an unmixed batch keeps its hard targets."""
    targets = sample_targets("hard", batch, params)
    lam, perm = _mix_draw(batch, params)
    if lam is None:
        return batch.images, targets, {"mix_ratio": None}
    patch = sample_patch(lam, batch.images)
    images, targets = cutmix_batch(batch.images, targets, lam, box=patch, perm=perm)
    return images, targets, {"mix_ratio": patch_fraction(patch, *batch.images.shape[-2:])}


@TARGET_REGISTRY.register()
@_method(mixes=True, needs_boxes=True)
def cutmix_als(batch: TargetBatch, params: TargetParams):
    """Box-aware CutMix with ALS (:mod:`.box_cutmix`); an unmixed batch gets ALS targets."""
    lam, perm = _mix_draw(batch, params)
    if lam is None:
        return batch.images, sample_targets("als", batch, params), {"mix_ratio": None}
    patch = sample_patch(lam, batch.images)
    targets = box_cutmix_targets(
        batch, sample_targets("als", batch, params), patch, perm, params.beta
    )
    images = paste_patch(batch.images, perm, patch)
    return images, targets, {"mix_ratio": patch_fraction(patch, *batch.images.shape[-2:])}


class TargetBuilder:
    """
    Builds the training targets of a batch, and mixes its images for the mixing methods.

    ``images, targets, info = builder(batch)`` with ``batch`` a
    :class:`~als_d2.structures.TargetBatch`: the (possibly mixed) images, NxK float32
    targets whose rows sum to 1 (on the device of ``batch.labels``) and what was mixed
    (:data:`TARGET_REGISTRY`). The builder holds only the parameters: it keeps no state
    between batches.

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
        self.method = method
        self._targets = TARGET_REGISTRY.get(method)
        self.params = TargetParams(
            num_classes=int(num_classes),
            ls_alpha=float(ls_alpha),
            ls_style=ls_style,
            beta=float(beta),
            unboxed_target=unboxed_target,
            mix_alpha=float(mix_alpha),
            mix_prob=float(mix_prob),
        )

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

    def __call__(self, batch: TargetBatch) -> Tuple[torch.Tensor, torch.Tensor, Dict]:
        return self._targets(batch, self.params)


def build_target_builder(cfg) -> TargetBuilder:
    """The :class:`TargetBuilder` of ``cfg.MODEL.ALS.METHOD``, a name in :data:`TARGET_REGISTRY`."""
    return TargetBuilder(cfg)
