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

``mixup_cutmix`` is torchvision's recipe (references/classification: every batch goes
through ``RandomChoice([MixUp(alpha=0.2), CutMix(alpha=1.0)])``) with the per-sample
targets of ``MODEL.ALS.MIX_TARGET`` ("hard", "ls" or "als") mixed: Mixup mixes them with
lam, CutMix with the pasted area fraction, box-aware CutMix (:mod:`.box_cutmix`) for "als".

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
    "MIX_OPS",
    "SAMPLE_TARGETS",
    "TARGET_REGISTRY",
    "UNBOXED_TARGETS",
    "TargetBatch",
    "TargetBuilder",
    "TargetParams",
    "als_targets",
    "beta_lam",
    "build_target_builder",
    "clip_patch",
    "cutmix_batch",
    "label_smoothing_targets",
    "method_needs_boxes",
    "mix_with_op",
    "mixup_batch",
    "one_hot_targets",
    "paste_patch",
    "patch_fraction",
    "sample_cutmix_box",
    "sample_lam",
    "sample_mix_op",
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
    mixup_alpha: float = 0.2
    cutmix_alpha: float = 1.0
    mix_target: str = "hard"


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
    return beta_lam(params.mix_alpha)


def beta_lam(alpha: float) -> float:
    """lam ~ Beta(alpha, alpha) (alpha > 0), torch's RNG on the CPU, in float64."""
    a = torch.tensor(alpha, dtype=torch.float64)
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
patch (``mixup_cutmix``: see its docstring). Three attributes say what it needs and does:
``mixes`` (it mixes pairs of images), ``needs_boxes`` (the targets depend on objectness:
the training set must have boxes) and ``mixes_mix_target`` (its per-sample targets are
those of ``MODEL.ALS.MIX_TARGET``: it needs boxes when that is "als";
:func:`method_needs_boxes`).
"""


def _method(*, mixes: bool = False, needs_boxes: bool = False, mixes_mix_target: bool = False):
    """Sets the ``mixes`` / ``needs_boxes`` / ``mixes_mix_target`` attributes of a method."""

    def mark(fn):
        fn.mixes, fn.needs_boxes, fn.mixes_mix_target = mixes, needs_boxes, mixes_mix_target
        return fn

    return mark


def method_needs_boxes(method: str, mix_target: str = "hard") -> bool:
    """Whether ``MODEL.ALS.METHOD`` ``method`` (with ``MODEL.ALS.MIX_TARGET`` ``mix_target``)
    reads objectness and boxes: the training set must have them."""
    fn = TARGET_REGISTRY.get(method)
    return bool(fn.needs_boxes or (fn.mixes_mix_target and mix_target == "als"))


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


MIX_OPS = ("mixup", "cutmix")  # what mixup_cutmix chose for a batch (info["mix_op"])


def sample_mix_op(n: int, params: TargetParams) -> Optional[str]:
    """``mixup_cutmix``'s choice for a batch of ``n``: None (not mixed: with probability
    1 - MIX_PROB, without a partner (n < 2), or with both alphas 0), else "mixup" or "cutmix"
    with probability 1/2 each among those whose alpha is > 0. Draws, from torch's RNG on the
    CPU: u ~ U[0, 1) (mixed iff u < MIX_PROB), then, when both alphas are > 0, v ~ U[0, 1)
    ("mixup" iff v < 1/2)."""
    ops = [op for op, a in zip(MIX_OPS, (params.mixup_alpha, params.cutmix_alpha)) if a > 0]
    if n < 2 or not ops or params.mix_prob <= 0.0 or float(torch.rand(())) >= params.mix_prob:
        return None
    if len(ops) == 1:
        return ops[0]
    return "mixup" if float(torch.rand(())) < 0.5 else "cutmix"


def mix_with_op(
    batch: TargetBatch,
    params: TargetParams,
    op: str,
    lam: float,
    perm: torch.Tensor,
    patch: Optional[Box] = None,
) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """(images, targets, partner share) of ``batch`` mixed by ``op`` with ``lam`` and the
    partners ``perm`` (LongTensor[N]); the per-sample targets are ``sample_targets(
    params.mix_target)``. "mixup": lam x_a + (1 - lam) x_b, lam t_a + (1 - lam) t_b, share
    1 - lam. "cutmix": the ``patch`` (pixels, clipped; default sampled for ``lam``) of
    x_b pasted into x_a; targets by the pasted area fraction r (plain CutMix for "hard" /
    "ls", :func:`~.box_cutmix.box_cutmix_targets` for "als"), share r."""
    targets = sample_targets(params.mix_target, batch, params)
    if op == "mixup":
        images, targets = mixup_batch(batch.images, targets, lam, perm=perm)
        return images, targets, 1.0 - float(lam)
    if op != "cutmix":
        raise ValueError(f"mix op {op!r}: expected one of {MIX_OPS}")
    if patch is None:
        patch = sample_patch(lam, batch.images)
    share = patch_fraction(patch, *batch.images.shape[-2:])
    if params.mix_target == "als":
        targets = box_cutmix_targets(batch, targets, patch, perm, params.beta)
        return paste_patch(batch.images, perm, patch), targets, share
    images, targets = cutmix_batch(batch.images, targets, lam, box=patch, perm=perm)
    return images, targets, share


@TARGET_REGISTRY.register()
@_method(mixes=True, mixes_mix_target=True)
def mixup_cutmix(batch: TargetBatch, params: TargetParams):
    """torchvision's recipe: each batch, with probability MIX_PROB, Mixup (MIXUP_ALPHA) or
    CutMix (CUTMIX_ALPHA), 1/2 each (an alpha of 0 leaves that one out), of the per-sample
    targets of MIX_TARGET (:func:`mix_with_op`); an unmixed batch keeps them.

    Draws, from torch's RNG in this order: :func:`sample_mix_op` (u, then v when both
    alphas are > 0), lam ~ Beta(alpha, alpha) of the chosen op, the partners
    torch.randperm(N), and for CutMix the patch centre (:func:`sample_cutmix_box`: x, then
    y). torchvision pairs each sample with its neighbour (``roll(1)`` of the batch) instead
    of a random permutation: the distribution of the pairs differs (ours can pair a sample
    with itself), the targets' formula does not. info: ``{"mix_ratio": partner share (1 -
    lam for Mixup, pasted area fraction for CutMix), "mix_op": "mixup" | "cutmix"}``, both
    None when not mixed."""
    n = batch.labels.shape[0]
    op = sample_mix_op(n, params)
    if op is None:
        targets = sample_targets(params.mix_target, batch, params)
        return batch.images, targets, {"mix_ratio": None, "mix_op": None}
    lam = beta_lam(params.mixup_alpha if op == "mixup" else params.cutmix_alpha)
    perm = torch.randperm(n)
    images, targets, share = mix_with_op(batch, params, op, lam, perm)
    return images, targets, {"mix_ratio": share, "mix_op": op}


class TargetBuilder:
    """
    Builds the training targets of a batch, and mixes its images for the mixing methods.

    ``images, targets, info = builder(batch)`` with ``batch`` a
    :class:`~als_d2.structures.TargetBatch`: the (possibly mixed) images, NxK float32
    targets whose rows sum to 1 (on the device of ``batch.labels``) and what was mixed
    (:data:`TARGET_REGISTRY`). The builder holds only the parameters: it keeps no state
    between batches.

    ``method`` is a name in :data:`TARGET_REGISTRY`. A mixing method mixes a batch with
    probability MIX_PROB, lam ~ Beta(MIX_ALPHA, MIX_ALPHA) (``mixup_cutmix``: Mixup or
    CutMix with their own alphas), each sample paired with a partner from torch.randperm.
    All randomness comes from torch's RNG.
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
        mixup_alpha: float = 0.2,
        cutmix_alpha: float = 1.0,
        mix_target: str = "hard",
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
            mixup_alpha=float(mixup_alpha),
            cutmix_alpha=float(cutmix_alpha),
            mix_target=mix_target,
        )

    @property
    def mixes(self) -> bool:
        """True for the methods that mix pairs of images (mixup, cutmix, cutmix_als)."""
        return self._targets.mixes

    @property
    def needs_boxes(self) -> bool:
        """True when the targets read objectness and boxes (:func:`method_needs_boxes`)."""
        return method_needs_boxes(self.method, self.params.mix_target)

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
            "mixup_alpha": als.MIXUP_ALPHA,
            "cutmix_alpha": als.CUTMIX_ALPHA,
            "mix_target": als.MIX_TARGET,
        }

    def __call__(self, batch: TargetBatch) -> Tuple[torch.Tensor, torch.Tensor, Dict]:
        return self._targets(batch, self.params)


def build_target_builder(cfg) -> TargetBuilder:
    """The :class:`TargetBuilder` of ``cfg.MODEL.ALS.METHOD``, a name in :data:`TARGET_REGISTRY`."""
    return TargetBuilder(cfg)
