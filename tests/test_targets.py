"""targets.py, losses.py: targets by hand, torch label smoothing, mixing weights by pixel counts."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import als_d2  # noqa: F401
from detectron2.config import get_cfg

from als_d2.config import add_als_config
from als_d2.modeling.losses import soft_cross_entropy
from als_d2.modeling.box_cutmix import box_cutmix_targets, region_object_areas
from als_d2.modeling.targets import (
    TargetBatch,
    TargetBuilder,
    TargetParams,
    als_targets,
    clip_patch,
    cutmix_batch,
    label_smoothing_targets,
    mixup_batch,
    one_hot_targets,
    paste_patch,
    sample_cutmix_box,
    sample_targets,
    uniform_targets,
)

NAN = float("nan")  # the tests' own notation for "no boxes" (objectness unknown)


def _target_batch(images, labels, obj, ctx=None, boxes=None):
    """A TargetBatch; NaN in ``obj`` marks a sample without boxes (has_boxes False, its
    objectness 1.0 as the mapper writes it)."""
    n = labels.shape[0]
    obj = torch.as_tensor(obj, dtype=torch.float32)
    return TargetBatch(
        images=images,
        labels=labels,
        objectness=torch.nan_to_num(obj, nan=1.0),
        has_boxes=~torch.isnan(obj),
        context=torch.zeros(n, dtype=torch.bool) if ctx is None else ctx,
        boxes=[torch.zeros(0, 4)] * n if boxes is None else boxes,
    )


def _als(labels, obj, k, beta=1.0, unboxed="hard", ls_alpha=0.1, ls_style="paper", ctx=None):
    """ALS targets of a batch, special samples included (NaN objectness: no boxes)."""
    params = TargetParams(k, ls_alpha, ls_style, beta, unboxed)
    return sample_targets("als", _target_batch(None, labels, obj, ctx), params)


def _box_cutmix(x, labels, obj, boxes, k, beta, box, perm, context=None, **unboxed):
    """(mixed images, targets) of box-aware CutMix with the patch ``box`` and ``perm``."""
    batch = _target_batch(x, labels, obj, context, boxes)
    params = TargetParams(
        k,
        unboxed.get("ls_alpha", 0.1),
        unboxed.get("ls_style", "paper"),
        beta,
        unboxed.get("unboxed", "hard"),
    )
    patch = clip_patch(box, *x.shape[-2:])
    t = box_cutmix_targets(batch, sample_targets("als", batch, params), patch, perm, beta)
    return paste_patch(x, perm, patch), t


def _rows_sum_to_one(t):
    assert torch.allclose(t.sum(dim=1), torch.ones(t.shape[0]), atol=1e-6)
    assert (t >= -1e-7).all()


def test_one_hot_and_uniform():
    t = one_hot_targets(torch.tensor([2, 0]), 4)
    assert torch.equal(t, torch.tensor([[0.0, 0, 1, 0], [1, 0, 0, 0]]))
    u = uniform_targets(torch.tensor([2, 0, 1]), 4)
    assert torch.equal(u, torch.full((3, 4), 0.25))
    assert uniform_targets(2, 5).shape == (2, 5)


def test_label_smoothing_by_hand():
    labels = torch.tensor([1, 3])
    paper = label_smoothing_targets(labels, 5, 0.1, "paper")
    assert torch.allclose(paper[0], torch.tensor([0.025, 0.9, 0.025, 0.025, 0.025]))
    tch = label_smoothing_targets(labels, 5, 0.1, "torch")
    assert torch.allclose(tch[1], torch.tensor([0.02, 0.02, 0.02, 0.92, 0.02]))
    per_sample = label_smoothing_targets(labels, 5, torch.tensor([0.0, 1.0]), "paper")
    assert torch.allclose(per_sample[0], one_hot_targets(labels, 5)[0])
    assert torch.allclose(per_sample[1], torch.tensor([0.25, 0.25, 0.25, 0.0, 0.25]))
    for t in (paper, tch, per_sample):
        _rows_sum_to_one(t)
    with pytest.raises(ValueError):
        label_smoothing_targets(labels, 5, 0.1, "other")


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.3])
def test_torch_style_loss_equals_torch_label_smoothing(alpha):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 10, generator=g) * 3
    labels = torch.randint(0, 10, (16,), generator=g)
    ours = soft_cross_entropy(logits, label_smoothing_targets(labels, 10, alpha, "torch"))
    ref = F.cross_entropy(logits, labels, label_smoothing=alpha)
    assert torch.allclose(ours, ref, atol=1e-6)


def test_soft_cross_entropy_hard_and_stable():
    logits = torch.tensor([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    loss = soft_cross_entropy(logits, one_hot_targets(labels, 3))
    assert torch.isfinite(loss)
    assert torch.allclose(loss, F.cross_entropy(logits, labels))
    half = logits.half()
    assert torch.allclose(
        soft_cross_entropy(half, uniform_targets(2, 3)),
        soft_cross_entropy(half.float(), uniform_targets(2, 3)),
    )
    assert loss.dim() == 0


def test_als_by_hand():
    k = 4
    labels = torch.tensor([0, 1, 2, 3])
    obj = torch.tensor([0.3, 1.0, 0.0, 0.3])
    t1 = als_targets(labels, obj, k, beta=1.0)
    # alpha = 1 - o: (1 - alpha) = o on the label, alpha / (K - 1) elsewhere
    assert torch.allclose(t1[0], torch.tensor([0.3, 0.7 / 3, 0.7 / 3, 0.7 / 3]))
    assert torch.allclose(t1[1], torch.tensor([0.0, 1.0, 0.0, 0.0]))
    assert torch.allclose(t1[2], torch.tensor([1 / 3, 1 / 3, 0.0, 1 / 3]))
    t75 = als_targets(labels, obj, k, beta=0.75)
    # 0.75 * ALS + 0.25 * hard
    assert torch.allclose(t75[0], torch.tensor([0.75 * 0.3 + 0.25, 0.175, 0.175, 0.175]))
    assert torch.allclose(t75[2, 2], torch.tensor(0.25))  # at least 0.25 on the label
    assert torch.equal(als_targets(labels, obj, k, beta=0.0), one_hot_targets(labels, k))
    for t in (t1, t75):
        _rows_sum_to_one(t)


@pytest.mark.parametrize("unboxed", ["hard", "ls", "uniform"])
def test_als_unknown_objectness_and_context(unboxed):
    labels = torch.tensor([0, 1, 2])
    obj = torch.tensor([NAN, 0.5, 0.5])
    ctx = torch.tensor([False, False, True])
    t = _als(labels, obj, 5, beta=0.5, unboxed=unboxed, ls_alpha=0.2, ls_style="paper", ctx=ctx)
    expected0 = {
        "hard": torch.tensor([1.0, 0, 0, 0, 0]),
        "ls": torch.tensor([0.8, 0.05, 0.05, 0.05, 0.05]),
        "uniform": torch.full((5,), 0.2),
    }[unboxed]
    assert torch.allclose(t[0], expected0)
    assert torch.allclose(
        t[1], torch.tensor([0.5 * 0.125, 0.5 * 0.5 + 0.5, 0.0625, 0.0625, 0.0625])
    )
    assert torch.allclose(t[2], torch.full((5,), 0.2))  # context-only: uniform
    _rows_sum_to_one(t)


def _const_images(n, h, w):
    """Image i is filled with the value i + 1 (so the source of every pixel is countable)."""
    return torch.arange(1, n + 1, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, h, w).clone()


def test_mixup():
    x = _const_images(3, 4, 5)
    t = one_hot_targets(torch.tensor([0, 1, 2]), 3)
    perm = torch.tensor([2, 0, 1])
    mx, mt = mixup_batch(x, t, 0.7, perm=perm)
    assert torch.allclose(mx[0], torch.full((3, 4, 5), 0.7 * 1 + 0.3 * 3))
    assert torch.allclose(mt[0], torch.tensor([0.7, 0.0, 0.3]))
    _rows_sum_to_one(mt)


@pytest.mark.parametrize(
    "box", [(2, 3, 9, 7), (-4, -4, 3, 20), (10, 2, 30, 6), (0, 0, 12, 10), (5, 5, 5, 8)]
)
def test_cutmix_weight_is_pasted_area(box):
    n, h, w = 4, 10, 12
    x = _const_images(n, h, w)
    t = one_hot_targets(torch.arange(n), n)
    perm = torch.tensor([1, 2, 3, 0])
    mx, mt = cutmix_batch(x, t, lam=0.5, box=box, perm=perm)
    for i in range(n):
        from_partner = (mx[i, 0] == perm[i] + 1).float().mean()  # counted independently
        assert torch.allclose(mt[i, perm[i]], from_partner)
        assert torch.allclose(mt[i, i], 1 - from_partner)
    _rows_sum_to_one(mt)


def test_sample_cutmix_box():
    torch.manual_seed(0)
    areas = []
    for _ in range(500):
        x0, y0, x1, y1 = sample_cutmix_box(0.75, 40, 60)
        assert 0 <= x0 <= x1 <= 60 and 0 <= y0 <= y1 <= 40
        areas.append((x1 - x0) * (y1 - y0) / 2400)
        assert areas[-1] <= 0.25 + 1e-9  # sides sqrt(1 - lam) of the frame at most
    assert 0.1 < np.mean(areas) < 0.25


def _mask(boxes, h, w, sub):
    ys = (np.arange(h * sub) + 0.5) / sub
    xs = (np.arange(w * sub) + 0.5) / sub
    m = np.zeros((ys.size, xs.size), bool)
    for x0, y0, x1, y1 in np.asarray(boxes, float).reshape(-1, 4):
        m |= ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
    return m


def test_region_object_areas_vs_pixel_count():
    """a_A (A's objects outside the patch) and a_B (B's inside) vs fine-grid counts (g = 1/8 px)."""
    rng = np.random.default_rng(0)
    h, w, sub = 24, 32, 8
    for _ in range(100):
        boxes = []
        for _ in range(2):
            n = int(rng.integers(0, 5))
            xy = rng.uniform([-4, -4], [w, h], size=(n, 2))
            boxes.append(np.concatenate([xy, xy + rng.uniform(1, 20, size=(n, 2))], axis=1))
        px0, py0 = (int(v) for v in rng.integers(0, [w, h]))
        patch = (px0, py0, int(rng.integers(px0, w + 1)), int(rng.integers(py0, h + 1)))
        a_a, a_b = region_object_areas(boxes[0], boxes[1], patch, (h, w))
        in_patch = _mask([patch], h, w, sub)
        count_a = (_mask(boxes[0], h, w, sub) & ~in_patch).mean()
        count_b = (_mask(boxes[1], h, w, sub) & in_patch).mean()
        # boundary bound as in test_objectness: 2 g (w + h) + 8 g^2 per box (and the patch)
        g = 1 / sub
        for a, c, b in ((a_a, count_a, boxes[0]), (a_b, count_b, boxes[1])):
            bb = np.vstack([np.asarray(b).reshape(-1, 4), [patch]])
            bound = (2 * g * ((bb[:, 2] - bb[:, 0]) + (bb[:, 3] - bb[:, 1])) + 8 * g * g).sum() / (
                h * w
            )
            assert abs(a - c) <= bound + 1e-9


def _manual_cutmix_als(a_a, a_b, r_b, y_a, y_b, k, beta):
    """The module docstring's formula, written out for one sample."""
    r_a = 1 - r_b
    e_a, e_b = np.eye(k)[y_a], np.eye(k)[y_b]
    c_a = a_a * e_a + (r_a - a_a) / (k - 1) * (1 - e_a)
    c_b = a_b * e_b + (r_b - a_b) / (k - 1) * (1 - e_b)
    w_a = a_a / (a_a + a_b) if a_a + a_b > 0 else r_a
    return beta * (c_a + c_b) + (1 - beta) * (w_a * e_a + (1 - w_a) * e_b)


@pytest.mark.parametrize("beta", [1.0, 0.75, 0.0])
def test_cutmix_als_formula_and_pixels(beta):
    h, w, k = 20, 20, 5
    x = _const_images(4, h, w)
    labels = torch.tensor([0, 1, 2, 2])
    boxes = [
        torch.tensor([[0.0, 0, 10, 20]]),  # left half
        torch.tensor([[0.0, 0, 20, 10], [5, 5, 15, 15]]),  # top half + overlapping box
        torch.tensor([[15.0, 15, 20, 20]]),  # corner outside the patch
        torch.tensor([[0.0, 0, 20, 20]]),
    ]
    obj = torch.tensor([0.5, 0.625, 0.0625, 1.0])
    perm = torch.tensor([1, 2, 3, 0])
    patch = (5, 0, 15, 10)  # r_B = 100 / 400
    mx, t = _box_cutmix(x, labels, obj, boxes, k, beta, box=patch, perm=perm)
    # pixels: the patch comes from the partner
    for i in range(4):
        assert (mx[i, :, 0:10, 5:15] == perm[i] + 1).all()
        assert ((mx[i, 0] == perm[i] + 1).float().mean() - 0.25).abs() < 1e-6
    # object areas by hand: sample 0 keeps its left half (200 px) minus the 5 x 10 px inside
    # the patch, and gets its partner's (sample 1) objects inside the patch: all 100 px
    by_hand = {
        0: ((200 - 50) / 400, 100 / 400),
        1: ((250 - 100) / 400, 0.0),  # partner 2's corner box is outside the patch
        2: (25 / 400, 100 / 400),
        3: ((400 - 100) / 400, 50 / 400),  # partner 0's left half inside the patch: 5 x 10
    }
    for i, (a_a, a_b) in by_hand.items():
        expected = _manual_cutmix_als(a_a, a_b, 0.25, int(labels[i]), int(labels[perm[i]]), k, beta)
        assert torch.allclose(t[i], torch.tensor(expected, dtype=torch.float32), atol=1e-6), i
    _rows_sum_to_one(t)


def test_cutmix_als_reductions_and_special_samples():
    h, w, k = 16, 16, 6
    x = torch.randn(4, 3, h, w)
    labels = torch.tensor([0, 1, 2, 3])
    boxes = [
        torch.tensor([[0.0, 0, 8, 8]]),
        torch.zeros(0, 4),
        torch.zeros(0, 4),
        torch.tensor([[4.0, 4, 12, 12]]),
    ]
    obj = torch.tensor([0.25, NAN, 0.0, 0.25])
    ctx = torch.tensor([False, False, True, False])
    perm = torch.tensor([3, 0, 1, 2])
    kw = dict(perm=perm, context=ctx, unboxed="ls", ls_alpha=0.3, ls_style="torch")
    ref = _als(labels, obj, k, 0.6, "ls", 0.3, "torch", ctx)
    # empty patch: exactly ALS of the sample; full patch: exactly ALS of the partner
    mx, t = _box_cutmix(x, labels, obj, boxes, k, 0.6, box=(3, 3, 3, 9), **kw)
    assert torch.equal(mx, x) and torch.allclose(t, ref, atol=1e-6)
    mx, t = _box_cutmix(x, labels, obj, boxes, k, 0.6, box=(0, 0, w, h), **kw)
    assert torch.equal(mx, x[perm]) and torch.allclose(t, ref[perm], atol=1e-6)
    # same class, both boxed: ALS with the summed object area
    lab2 = torch.tensor([4, 4, 4, 4])
    _, t = _box_cutmix(
        x,
        lab2,
        torch.tensor([0.25, 0.25, 0.25, 0.25]),
        [boxes[0]] * 4,
        k,
        1.0,
        box=(8, 0, 16, 8),
        perm=torch.tensor([1, 0, 3, 2]),
    )
    # A keeps its box (outside the patch) = 64 px; B's box is not in the patch: 0
    assert torch.allclose(t, als_targets(lab2, torch.full((4,), 0.25), k, 1.0), atol=1e-6)
    _, t = _box_cutmix(x, labels, obj, boxes, k, 0.6, box=(0, 0, 8, 16), **kw)
    _rows_sum_to_one(t)
    # sample 2 is context (no object, uniform) with partner 1 unboxed ('ls' target): a_A = 0,
    # a_B = r_B = 0.5, so the hard part goes to B's target
    ls1 = label_smoothing_targets(labels[1:2], k, 0.3, "torch")[0]
    expected = 0.6 * (0.5 * torch.full((k,), 1 / k) + 0.5 * ls1) + 0.4 * ls1
    assert torch.allclose(t[2], expected, atol=1e-6)


def _cfg(method, **als):
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.MODEL.CLASSIFIER.NUM_CLASSES = 7
    cfg.MODEL.ALS.METHOD = method
    for key, v in als.items():
        setattr(cfg.MODEL.ALS, key, v)
    return cfg


def _batch(n=6, h=16, w=16):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, h, w, generator=g)
    labels = torch.randint(0, 7, (n,), generator=g)
    obj = torch.tensor([0.5, NAN, 0.0, 0.25, 1.0, 0.0])[:n]
    ctx = torch.tensor([False, False, True, False, False, False])[:n]
    boxes = [
        torch.tensor([[0.0, 0, 16, 8]]),
        torch.zeros(0, 4),
        torch.zeros(0, 4),
        torch.tensor([[0.0, 0, 8, 8]]),
        torch.tensor([[0.0, 0, 16, 16]]),
        torch.tensor([[20.0, 0, 30, 5]]),
    ][:n]
    return images, labels, obj, ctx, boxes


@pytest.mark.parametrize("method", ["hard", "ls", "als", "mixup", "cutmix", "cutmix_als"])
def test_target_builder_methods(method):
    images, labels, obj, ctx, boxes = _batch()
    builder = TargetBuilder(_cfg(method, BETA=0.8, UNBOXED_TARGET="uniform"))
    torch.manual_seed(0)
    batch = _target_batch(images, labels, obj, ctx, boxes)
    out_images, t, _ = builder(batch)
    assert out_images.shape == images.shape and t.shape == (6, 7) and t.dtype == torch.float32
    _rows_sum_to_one(t)
    if method in ("hard", "ls", "als"):
        assert out_images is images
        assert torch.allclose(t[2], torch.full((7,), 1 / 7))  # context-only sample
    if method == "als":
        assert torch.allclose(t, _als(labels, obj, 7, 0.8, "uniform", 0.1, "paper", ctx))
    if method == "hard":
        assert torch.equal(t[[0, 1, 3]], one_hot_targets(labels[[0, 1, 3]], 7))
    torch.manual_seed(0)
    again = builder(batch)
    assert torch.equal(again[0], out_images) and torch.equal(again[1], t)  # torch RNG only


@pytest.mark.parametrize("method", ["mixup", "cutmix", "cutmix_als"])
def test_target_builder_mix_prob(method):
    images, labels, obj, ctx, boxes = _batch()
    never = TargetBuilder(_cfg(method, MIX_PROB=0.0))
    batch = _target_batch(images, labels, obj, ctx, boxes)
    out, t, info = never(batch)
    assert info == {"mix_ratio": None}
    assert torch.equal(out, images)
    if method == "cutmix_als":
        assert torch.allclose(t, _als(labels, obj, 7, 1.0, "hard", 0.1, "paper", ctx))
    else:
        assert torch.equal(t[[0, 1, 3]], one_hot_targets(labels[[0, 1, 3]], 7))
    half = TargetBuilder(_cfg(method, MIX_PROB=0.5, MIX_ALPHA=0.5))
    torch.manual_seed(1)
    mixed = [not torch.equal(half(batch)[0], images) for _ in range(200)]
    assert 0.35 < np.mean(mixed) < 0.65


PAPER_METHODS = ("hard", "ls", "als", "mixup", "cutmix", "cutmix_als")
ALL_METHODS = PAPER_METHODS + ("mixup_cutmix",)  # with torchvision's recipe


def test_registry_is_the_list_of_methods():
    """MODEL.ALS.METHOD takes exactly the names of TARGET_REGISTRY: build_target_builder
    builds each, the config check accepts each and names the key for anything else."""
    from als_d2.config import check_als_config
    from als_d2.modeling.targets import TARGET_REGISTRY, build_target_builder

    def cfg(method):
        c = _cfg(method)
        c.MODEL.RESNETS.OUT_FEATURES = ["res5"]  # the classifier's IN_FEATURE
        return c

    names = sorted(name for name, _ in TARGET_REGISTRY)
    assert names == sorted(ALL_METHODS)
    for name in names:
        builder = build_target_builder(cfg(name))
        assert isinstance(builder, TargetBuilder) and builder.method == name
        check_als_config(cfg(name))
    with pytest.raises(ValueError, match=r"MODEL\.ALS\.METHOD.*cutmix_als"):
        check_als_config(cfg("focal"))
    with pytest.raises(ValueError, match="focal"):
        TargetBuilder(_cfg("focal"))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_method_attributes_match_what_the_method_does(method):
    """``mixes``: the images change (MIX_PROB 1); ``needs_boxes``: the targets depend on
    objectness and boxes. Checked on the outputs, not on the names."""
    from als_d2.modeling.targets import TARGET_REGISTRY

    fn = TARGET_REGISTRY.get(method)
    builder = TargetBuilder(_cfg(method, MIX_PROB=1.0))
    assert builder.mixes == fn.mixes
    images, labels, obj, ctx, boxes = _batch()
    other_obj, other_boxes = torch.tensor([0.1, 0.9, 0.3, 0.6, 0.2, 0.7]), [b * 0.5 for b in boxes]
    changed_images, changed_targets = False, False
    for seed in range(5):
        torch.manual_seed(seed)
        out, t, info = builder(_target_batch(images, labels, obj, ctx, boxes))
        torch.manual_seed(seed)
        _, t_other, _ = builder(_target_batch(images, labels, other_obj, ctx, other_boxes))
        changed_images |= not torch.equal(out, images)
        changed_targets |= not torch.equal(t, t_other)
        assert (info.get("mix_ratio") is not None) == fn.mixes
    assert changed_images == fn.mixes
    assert changed_targets == fn.needs_boxes == builder.needs_boxes
    if fn.mixes_mix_target:  # its targets are MIX_TARGET's: with "als" they read the boxes
        als_builder = TargetBuilder(_cfg(method, MIX_PROB=1.0, MIX_TARGET="als"))
        assert als_builder.needs_boxes
        torch.manual_seed(0)
        _, t, _ = als_builder(_target_batch(images, labels, obj, ctx, boxes))
        torch.manual_seed(0)
        _, t_other, _ = als_builder(_target_batch(images, labels, other_obj, ctx, other_boxes))
        assert not torch.equal(t, t_other)


# -- the target methods through the builder, against independent computations --------------
# Image i of these batches is the indicator of channel i (N channels), so every output pixel
# says which sample(s) it came from and in which proportion: the mix ratio and the partner
# are read off the mixed images, not from the code that drew them.


def _indicator_images(n, h, w):
    return torch.eye(n).view(n, n, 1, 1).expand(n, n, h, w).clone()


def _run(builder, images, labels, obj, ctx, boxes):
    """(images, targets, reported mix ratio) of one builder call."""
    out, t, info = builder(_target_batch(images, labels, obj, ctx, boxes))
    return out, t, info.get("mix_ratio")


def _per_sample_target(y, o, ctx, k, beta=1.0, unboxed="hard", ls_alpha=0.1, ls_style="paper"):
    """The paper's target of one sample, written out: context-only: uniform; unknown
    objectness (NaN): the UNBOXED_TARGET; else beta * LS_paper(y, 1 - o) + (1 - beta) e_y."""
    if ctx:
        return np.full(k, 1.0 / k)
    e = np.eye(k)[y]
    if np.isnan(o):
        if unboxed == "hard":
            return e
        if unboxed == "uniform":
            return np.full(k, 1.0 / k)
        if ls_style == "paper":
            return (1 - ls_alpha) * e + ls_alpha / (k - 1) * (1 - e)
        return (1 - ls_alpha) * e + ls_alpha / k
    alpha = 1.0 - o
    return beta * ((1 - alpha) * e + alpha / (k - 1) * (1 - e)) + (1 - beta) * e


def _hard_target(i, labels, ctx, k):
    """What Mixup and CutMix mix: one-hot, uniform for a context-only sample."""
    return _per_sample_target(int(labels[i]), NAN, bool(ctx[i]), k, unboxed="hard")


@pytest.mark.parametrize("seed", range(4))
def test_mixup_targets_and_reported_ratio(seed):
    """Row i = lam T(y_i) + (1 - lam) T(y_perm(i)), with lam and perm read off the mixed
    pixels; the reported mix ratio is the partner's share 1 - lam."""
    n, k = 6, 7
    _, labels, obj, ctx, boxes = _batch()
    images = _indicator_images(n, 4, 5)
    builder = TargetBuilder(_cfg("mixup", MIX_PROB=1.0))
    torch.manual_seed(seed)
    out, t, ratio = _run(builder, images, labels, obj, ctx, boxes)
    px = out[:, :, 0, 0]  # N x N: sample i's weight on source image j (same at every pixel)
    assert torch.equal(out, px[:, :, None, None].expand_as(out))
    moved = [i for i in range(n) if px[i, i] < 1]
    assert moved  # randperm of 6 has a moved sample with probability 1 - 1/720
    lam = float(px[moved[0], moved[0]])
    for i in range(n):
        j = i if px[i, i] == 1 else int(torch.argmax(px[i] * (torch.arange(n) != i)))
        expected = (
            _hard_target(i, labels, ctx, k)
            if j == i
            else lam * _hard_target(i, labels, ctx, k) + (1 - lam) * _hard_target(j, labels, ctx, k)
        )
        assert torch.allclose(t[i].double(), torch.tensor(expected), atol=1e-6), i
        if j != i:
            assert px[i, i] == pytest.approx(lam, abs=1e-6)
    _rows_sum_to_one(t)
    assert ratio == pytest.approx(1 - lam, abs=1e-6)  # the partner's share


@pytest.mark.parametrize("seed", range(4))
def test_cutmix_targets_are_pasted_pixel_counts(seed):
    """CutMix: row i = (1 - r) T(y_i) + r T(y_perm(i)), r = pasted pixels / frame counted on
    the mixed images; the reported mix ratio is r."""
    n, k, h, w = 6, 7, 12, 10
    _, labels, obj, ctx, boxes = _batch()
    images = _indicator_images(n, h, w)
    builder = TargetBuilder(_cfg("cutmix", MIX_PROB=1.0))
    torch.manual_seed(seed)
    out, t, ratio = _run(builder, images, labels, obj, ctx, boxes)
    src = out.argmax(dim=1)  # N x H x W: the sample every pixel comes from
    ratios = set()
    for i in range(n):
        pasted = src[i] != i
        r = pasted.double().mean().item()
        j = int(src[i][pasted][0]) if pasted.any() else i
        assert (src[i][pasted] == j).all()
        ti, tj = _hard_target(i, labels, ctx, k), _hard_target(j, labels, ctx, k)
        assert torch.allclose(t[i].double(), torch.tensor((1 - r) * ti + r * tj), atol=1e-6), i
        if j != i:
            ratios.add(round(r, 9))
    _rows_sum_to_one(t)
    assert len(ratios) <= 1 and ratio == pytest.approx(ratios.pop() if ratios else ratio)


def _cutmix_als_by_pixels(i, j, patch_mask, box_masks, labels, obj, ctx, k, beta, unboxed):
    """Box-aware CutMix target of sample i with partner j (module docstring), with the
    object areas counted on pixel masks: a_A = |A's objects outside P|, a_B = |B's inside P|."""
    frame = patch_mask.size
    r_b = patch_mask.sum() / frame
    r_a = 1 - r_b
    regions = []
    for x, r, inside in ((i, r_a, ~patch_mask), (j, r_b, patch_mask)):
        e = np.eye(k)[int(labels[x])]
        if bool(ctx[x]):
            a, c, hx = 0.0, r * np.full(k, 1 / k), np.full(k, 1 / k)
        elif np.isnan(float(obj[x])):
            tx = _per_sample_target(int(labels[x]), np.nan, False, k, unboxed=unboxed)
            a, c, hx = r, r * tx, tx
        else:
            a = (box_masks[x] & inside).sum() / frame
            c, hx = a * e + (r - a) / (k - 1) * (1 - e), e
        regions.append((a, c, hx))
    (a_a, c_a, h_a), (a_b, c_b, h_b) = regions
    w_a = a_a / (a_a + a_b) if a_a + a_b > 0 else r_a
    return beta * (c_a + c_b) + (1 - beta) * (w_a * h_a + (1 - w_a) * h_b)


@pytest.mark.parametrize("seed", range(4))
def test_cutmix_als_targets_are_pixel_counts(seed):
    """Box-aware CutMix through the builder: target mass sums to 1, the region shares are the
    pasted pixel fraction and the object shares the pixel counts of each image's visible box
    union in its region (integer boxes: counts are exact)."""
    n, k, h, w = 6, 7, 16, 16
    _, labels, obj, ctx, boxes = _batch()
    images = _indicator_images(n, h, w)
    box_masks = []
    for b in boxes:
        m = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in b.long().tolist():
            m[max(y0, 0) : y1, max(x0, 0) : x1] = True
        box_masks.append(m)
    beta, unboxed = 0.75, "ls"
    builder = TargetBuilder(_cfg("cutmix_als", MIX_PROB=1.0, BETA=beta, UNBOXED_TARGET=unboxed))
    torch.manual_seed(seed)
    out, t, ratio = _run(builder, images, labels, obj, ctx, boxes)
    src = out.argmax(dim=1).numpy()
    _rows_sum_to_one(t)
    for i in range(n):
        pasted = src[i] != i
        j = int(src[i][pasted][0]) if pasted.any() else i
        if j == i:  # partner itself: the patch is invisible, the target is ALS of i
            continue
        assert ratio == pytest.approx(pasted.mean())
        expected = _cutmix_als_by_pixels(
            i, j, pasted, box_masks, labels, obj, ctx, k, beta, unboxed
        )
        assert torch.allclose(t[i].double(), torch.tensor(expected), atol=1e-6), i


@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0])
@pytest.mark.parametrize("unboxed", ["hard", "ls", "uniform"])
def test_hard_ls_als_match_the_paper(beta, unboxed):
    """hard, LS (both styles) and ALS through the builder vs the paper's formulas on random
    objectness, samples without boxes and context-only samples included."""
    g = torch.Generator().manual_seed(3)
    n, k = 12, 7
    labels = torch.randint(0, k, (n,), generator=g)
    obj = torch.rand(n, generator=g)
    obj[[1, 5]] = NAN  # no boxes
    ctx = torch.zeros(n, dtype=torch.bool)
    ctx[[2, 7]] = True
    obj[[2, 7]] = 0.0
    images = torch.randn(n, 3, 4, 4, generator=g)
    boxes = [torch.zeros(0, 4)] * n
    for method, style in (("hard", "paper"), ("ls", "paper"), ("ls", "torch"), ("als", "paper")):
        b = TargetBuilder(
            _cfg(method, BETA=beta, UNBOXED_TARGET=unboxed, LS_ALPHA=0.2, LS_STYLE=style)
        )
        out, t, ratio = _run(b, images, labels, obj, ctx, boxes)
        assert out is images and ratio is None
        for i in range(n):
            y, o, c = int(labels[i]), float(obj[i]), bool(ctx[i])
            if method == "hard":
                expected = _per_sample_target(y, NAN, c, k, unboxed="hard")
            elif method == "ls":
                expected = _per_sample_target(
                    y, NAN, c, k, unboxed="ls", ls_alpha=0.2, ls_style=style
                )
            else:
                expected = _per_sample_target(y, o, c, k, beta, unboxed, 0.2, "paper")
            assert torch.allclose(t[i].double(), torch.tensor(expected), atol=1e-6), (method, i)
        _rows_sum_to_one(t)


# -- one "no boxes" flag, stateless methods, the model reading what the methods return ------


def test_unknown_objectness_is_the_has_boxes_flag():
    """ALS reads has_boxes, never the objectness value, to find samples without boxes: a
    boxless sample gets UNBOXED_TARGET whatever its objectness field holds, and a boxed
    sample with objectness 1.0 is one-hot (ALS at o = 1), not the unboxed target."""
    k = 5
    labels = torch.tensor([1, 1, 1])
    params = TargetParams(k, ls_alpha=0.2, ls_style="paper", beta=1.0, unboxed_target="uniform")
    for o_unknown in (0.0, 0.3, 1.0):
        batch = TargetBatch(
            images=None,
            labels=labels,
            objectness=torch.tensor([o_unknown, 1.0, 0.25]),
            has_boxes=torch.tensor([False, True, True]),
            context=torch.zeros(3, dtype=torch.bool),
            boxes=[torch.zeros(0, 4)] * 3,
        )
        t = sample_targets("als", batch, params)
        assert torch.equal(t[0], torch.full((k,), 1 / k))  # UNBOXED_TARGET uniform
        assert torch.equal(t[1], torch.tensor([0.0, 1, 0, 0, 0]))
        assert torch.allclose(t[2], torch.tensor([0.1875, 0.25, 0.1875, 0.1875, 0.1875]))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_methods_are_stateless(method):
    """A method's output depends on the batch and torch's RNG only: the builder is not
    changed by a call, and a batch gives the same result whatever batch came before."""
    images, labels, obj, ctx, boxes = _batch()
    builder = TargetBuilder(_cfg(method, MIX_PROB=0.5))
    before = dict(vars(builder))
    batch = _target_batch(images, labels, obj, ctx, boxes)
    torch.manual_seed(5)
    first = builder(batch)
    other = _target_batch(images.flip(0), labels.flip(0), obj.flip(0), ctx.flip(0), boxes[::-1])
    for seed in range(6):
        torch.manual_seed(seed)
        builder(other)
    assert dict(vars(builder)) == before
    torch.manual_seed(5)
    again = builder(batch)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert first[2] == again[2]


def _tiny_classifier(method, **als):
    from detectron2.modeling import build_model
    from tiny_data import DEMO_R18, als_cfg

    opts = ["MODEL.DEVICE", "cpu", "MODEL.CLASSIFIER.NUM_CLASSES", 7]
    opts += ["MODEL.RESNETS.OUT_FEATURES", ["res2"], "MODEL.CLASSIFIER.IN_FEATURE", "res2"]
    opts += ["MODEL.ALS.METHOD", method]
    for key, v in als.items():
        opts += [f"MODEL.ALS.{key}", v]
    model = build_model(als_cfg(DEMO_R18, *opts))
    model.train()
    return model


def _mapped_samples(n=6, size=16):
    """Samples in the mapper's format (als_d2/structures.py): samples 1 and 4 have no boxes,
    sample 2 is context-only."""
    g = torch.Generator().manual_seed(0)
    has = [True, False, True, True, False, True]
    ctx = [False, False, True, False, False, False]
    obj = [0.5, 1.0, 0.0, 0.25, 1.0, 0.75]
    return [
        {
            "image": torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g),
            "label": i % 7,
            "boxes": torch.tensor([[0.0, 0, 8, 8]]) if has[i] and not ctx[i] else torch.zeros(0, 4),
            "has_boxes": has[i],
            "objectness": obj[i],
            "context": ctx[i],
            "painted_fraction": 0.0,
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("method", ["cutmix", "cutmix_als"])
def test_classifier_logs_what_the_batch_trained_on(method):
    """The training forward logs the mix ratio the method returned (the pasted pixel
    fraction, counted on the images the backbone received) and the boxed fraction and mean
    objectness from the has_boxes flag (counted here from the samples)."""
    from detectron2.utils.events import EventStorage

    model = _tiny_classifier(method, MIX_PROB=1.0)
    samples = _mapped_samples()
    seen = []
    model.backbone.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    clean = model.preprocess_image(samples)
    torch.manual_seed(2)
    with EventStorage() as storage:
        loss = model(samples)["loss_cls"]
        logged = {k: v[0] for k, v in storage.latest().items()}
    assert torch.isfinite(loss)
    changed = (seen[0] != clean).any(dim=1)  # N x H x W: pixels from the partner
    fractions = {round(f, 9) for f in changed.double().mean(dim=(1, 2)).tolist() if f > 0}
    assert len(fractions) == 1  # one patch for the batch (random images: every pixel differs)
    assert logged["als/mixed"] == 1.0
    assert logged["als/mix_ratio"] == pytest.approx(fractions.pop())
    assert logged["als/boxed_fraction"] == pytest.approx(4 / 6)
    assert logged["als/context_fraction"] == pytest.approx(1 / 6)
    assert logged["als/mean_objectness"] == pytest.approx((0.5 + 0.25 + 0.75) / 3)
