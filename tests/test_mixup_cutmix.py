"""mixup_cutmix (torchvision's per-batch RandomChoice of Mixup and CutMix, of hard / LS / ALS
targets): targets against the paper's eq. 6 written out, the choice and lam distributions
against their laws, the reported partner share counted on the mixed pixels."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from als_d2.modeling.box_cutmix import box_cutmix_targets
from als_d2.modeling.losses import soft_cross_entropy
from als_d2.modeling.targets import (
    TargetBuilder,
    TargetParams,
    mix_with_op,
    sample_targets,
)

from test_targets import (
    NAN,
    _batch,
    _cfg,
    _indicator_images,
    _per_sample_target,
    _rows_sum_to_one,
    _target_batch,
)

K = 7


def _builder(**als):
    return TargetBuilder(_cfg("mixup_cutmix", **als))


def _paper_targets(labels, obj, ctx, k, beta, unboxed="hard"):
    """N x K: every sample's eq. 6 target (uniform if context-only, UNBOXED_TARGET if NaN)."""
    return np.stack(
        [
            _per_sample_target(int(y), float(o), bool(c), k, beta, unboxed)
            for y, o, c in zip(labels, obj, ctx)
        ]
    )


@pytest.mark.parametrize("target", ["hard", "ls", "als"])
def test_rows_sum_to_one_and_info(target):
    images, labels, obj, ctx, boxes = _batch()
    builder = _builder(MIX_TARGET=target, MIX_PROB=0.8, BETA=0.7, UNBOXED_TARGET="uniform")
    batch = _target_batch(images, labels, obj, ctx, boxes)
    ops = set()
    for seed in range(30):
        torch.manual_seed(seed)
        out, t, info = builder(batch)
        assert out.shape == images.shape and t.shape == (6, K) and t.dtype == torch.float32
        _rows_sum_to_one(t)
        assert set(info) == {"mix_ratio", "mix_op"}
        assert (info["mix_op"] is None) == (info["mix_ratio"] is None)
        ops.add(info["mix_op"])
    assert ops == {None, "mixup", "cutmix"}


@pytest.mark.parametrize("beta", [1.0, 0.6])
def test_mixup_als_is_the_mix_of_the_paper_targets(beta):
    """Fixed lam and perm: lam * ALS(y_a, o_a) + (1 - lam) * ALS(y_b, o_b), each from eq. 6
    written out (context-only: uniform; no boxes: UNBOXED_TARGET), images mixed alike."""
    images, labels, obj, ctx, boxes = _batch()
    params = TargetParams(K, beta=beta, unboxed_target="ls", mix_target="als")
    batch = _target_batch(images, labels, obj, ctx, boxes)
    lam, perm = 0.3, torch.tensor([3, 2, 5, 0, 1, 4])
    out, t, share = mix_with_op(batch, params, "mixup", lam, perm)
    per_sample = _paper_targets(labels, obj, ctx, K, beta, "ls")
    expected = lam * per_sample + (1 - lam) * per_sample[perm.numpy()]
    np.testing.assert_allclose(t.double().numpy(), expected, atol=1e-6)
    torch.testing.assert_close(out, lam * images + (1 - lam) * images[perm])
    assert share == pytest.approx(0.7)  # the partner's share, not lam
    _rows_sum_to_one(t)


def test_mixup_through_the_method_read_off_the_pixels():
    """The registered method with CutMix off: lam and the partner read off indicator images;
    targets = lam T_a + (1 - lam) T_b of eq. 6; mix_ratio = 1 - lam (partner's share)."""
    n = 6
    _, labels, obj, ctx, boxes = _batch()
    images = _indicator_images(n, 4, 5)
    builder = _builder(MIX_TARGET="als", CUTMIX_ALPHA=0.0, BETA=0.8)
    per_sample = _paper_targets(labels, obj, ctx, K, 0.8)
    for seed in range(4):
        torch.manual_seed(seed)
        out, t, info = builder(_target_batch(images, labels, obj, ctx, boxes))
        assert info["mix_op"] == "mixup"
        px = out[:, :, 0, 0].double()  # N x N: sample i's weight on source image j
        moved = [i for i in range(n) if px[i, i] < 1]
        assert moved
        lam = float(px[moved[0], moved[0]])
        for i in range(n):
            j = i if px[i, i] == 1 else int(torch.argmax(px[i] * (torch.arange(n) != i)))
            expected = lam * per_sample[i] + (1 - lam) * per_sample[j] if j != i else per_sample[i]
            np.testing.assert_allclose(t[i].double().numpy(), expected, atol=1e-6)
        assert info["mix_ratio"] == pytest.approx(1 - lam, abs=1e-6)


@pytest.mark.parametrize("target", ["hard", "ls", "als"])
def test_cutmix_branch(target):
    """CutMix on: the patch and partners read off indicator images; "als": the targets are
    box_cutmix_targets of that patch; "hard"/"ls": the per-sample targets mixed by the
    pasted pixel fraction. mix_ratio = the pasted pixel fraction (partner's share)."""
    n, h, w = 6, 12, 10
    _, labels, obj, ctx, boxes = _batch()
    images = _indicator_images(n, h, w)
    builder = _builder(MIX_TARGET=target, MIXUP_ALPHA=0.0, BETA=0.75)
    params = builder.params
    for seed in range(4):
        torch.manual_seed(seed)
        batch = _target_batch(images, labels, obj, ctx, boxes)
        out, t, info = builder(batch)
        assert info["mix_op"] == "cutmix"
        src = out.argmax(dim=1)  # N x H x W: the image every pixel comes from
        pasted = src != torch.arange(n)[:, None, None]
        rows = [i for i in range(n) if pasted[i].any()]
        if not rows:
            continue  # an empty patch or no moved sample
        ys, xs = torch.nonzero(pasted[rows[0]], as_tuple=True)
        patch = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        r = pasted[rows[0]].double().mean().item()
        assert info["mix_ratio"] == pytest.approx(r)
        perm = torch.tensor([int(src[i][pasted[i]][0]) if pasted[i].any() else i for i in range(n)])
        # a sample paired with itself has no visible patch: its patch is the same patch
        mask = torch.zeros(h, w, dtype=torch.bool)
        mask[patch[1] : patch[3], patch[0] : patch[2]] = True
        assert all(torch.equal(pasted[i], mask) for i in rows)
        own = sample_targets(target, batch, params)
        if target == "als":
            expected = box_cutmix_targets(batch, own, patch, perm, 0.75)
        else:
            per_sample = (
                _paper_targets(labels, [NAN] * n, ctx, K, 1.0, target)
                if target == "ls"
                else _paper_targets(labels, [NAN] * n, ctx, K, 1.0, "hard")
            )
            expected = torch.tensor((1 - r) * per_sample + r * per_sample[perm.numpy()])
        torch.testing.assert_close(t.double(), expected.double(), atol=1e-6, rtol=0)
        _rows_sum_to_one(t)


def test_choice_is_half_and_half_and_alpha_zero_disables():
    """Over 2000 batches: mixed with MIX_PROB, Mixup / CutMix 1/2 each among the mixed (within
    4.5 binomial standard deviations); an alpha of 0 leaves that op out."""
    images, labels, obj, ctx, boxes = _batch(n=2, h=4, w=4)
    batch = _target_batch(images, labels, obj[:2], ctx[:2], boxes)
    trials = 2000

    def ops(**als):
        builder = _builder(**als)
        torch.manual_seed(11)
        return [builder(batch)[2]["mix_op"] for _ in range(trials)]

    got = ops(MIX_PROB=0.6)
    mixed = [o for o in got if o is not None]
    assert abs(len(mixed) / trials - 0.6) < 4.5 * np.sqrt(0.6 * 0.4 / trials)
    share = sum(o == "mixup" for o in mixed) / len(mixed)
    assert abs(share - 0.5) < 4.5 * np.sqrt(0.25 / len(mixed))
    assert set(ops(MIXUP_ALPHA=0.0)[:300]) == {"cutmix"}
    assert set(ops(CUTMIX_ALPHA=0.0)[:300]) == {"mixup"}


def test_lam_follows_beta():
    """Mixup's 1 - mix_ratio (= lam) over 1500 batches against Beta(MIXUP_ALPHA, MIXUP_ALPHA):
    Kolmogorov-Smirnov, and its deciles against Beta's; a wrong alpha is rejected."""
    images, labels, obj, ctx, boxes = _batch(n=2, h=4, w=4)
    batch = _target_batch(images, labels, obj[:2], ctx[:2], boxes)
    builder = _builder(MIXUP_ALPHA=0.2, CUTMIX_ALPHA=0.0)
    torch.manual_seed(4)
    lams = np.array([1.0 - builder(batch)[2]["mix_ratio"] for _ in range(1500)])
    assert stats.kstest(lams, stats.beta(0.2, 0.2).cdf).pvalue > 1e-3
    assert stats.kstest(lams, stats.beta(1.0, 1.0).cdf).pvalue < 1e-6
    q = np.linspace(0.1, 0.9, 9)
    np.testing.assert_allclose(np.quantile(lams, q), stats.beta(0.2, 0.2).ppf(q), atol=0.06)


def test_draws_follow_the_documented_order():
    """The docstring's order of torch draws (u, v, lam, randperm, patch centre x then y),
    replayed here by hand from the same seed, gives the method's op, images and ratio."""
    images, labels, obj, ctx, boxes = _batch(h=12, w=10)
    batch = _target_batch(images, labels, obj, ctx, boxes)
    builder = _builder(MIX_PROB=0.9)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        out, _, info = builder(batch)
        torch.manual_seed(seed)
        if float(torch.rand(())) >= 0.9:
            assert info["mix_op"] is None and torch.equal(out, images)
            continue
        op = "mixup" if float(torch.rand(())) < 0.5 else "cutmix"
        a = 0.2 if op == "mixup" else 1.0
        lam = torch.distributions.Beta(
            torch.tensor(a, dtype=torch.float64), torch.tensor(a, dtype=torch.float64)
        ).sample()
        perm = torch.randperm(6)
        assert info["mix_op"] == op
        seen.add(op)
        if op == "mixup":
            torch.testing.assert_close(out, images * float(lam) + images[perm] * (1 - float(lam)))
            assert info["mix_ratio"] == pytest.approx(1 - float(lam))
            continue
        cut = float(np.sqrt(1 - float(lam)))
        cw, ch = int(10 * cut), int(12 * cut)
        cx, cy = int(torch.randint(10, (1,))), int(torch.randint(12, (1,)))
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, 10)
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, 12)
        expected = images.clone()
        expected[:, :, y0:y1, x0:x1] = images[perm][:, :, y0:y1, x0:x1]
        assert torch.equal(out, expected)
        assert info["mix_ratio"] == pytest.approx(max(x1 - x0, 0) * max(y1 - y0, 0) / 120)
    assert seen == {"mixup", "cutmix"}


def test_torch_style_ls_is_torchvision_label_smoothing_on_the_mixed_target():
    """MIX_TARGET ls with LS_STYLE torch: the loss equals F.cross_entropy(label_smoothing)
    of the mixed hard targets, as torchvision's recipe computes it."""
    images, labels, obj, _, boxes = _batch()
    ctx = torch.zeros(6, dtype=torch.bool)  # torchvision has no context-only samples
    batch = _target_batch(images, labels, obj, ctx, boxes)
    logits = torch.randn(6, K, generator=torch.Generator().manual_seed(3))
    ls = _builder(MIX_TARGET="ls", LS_STYLE="torch", LS_ALPHA=0.1)
    hard = _builder(MIX_TARGET="hard")
    for seed in range(6):
        torch.manual_seed(seed)
        _, t_ls, info = ls(batch)
        torch.manual_seed(seed)
        _, t_hard, _ = hard(batch)
        expected = F.cross_entropy(logits, t_hard, label_smoothing=0.1)
        torch.testing.assert_close(soft_cross_entropy(logits, t_ls), expected)


def test_classifier_logs_the_chosen_op():
    """als/mixed, als/mix_ratio and als/cutmix of the batch the backbone received."""
    from detectron2.utils.events import EventStorage

    from test_targets import _mapped_samples, _tiny_classifier

    model = _tiny_classifier("mixup_cutmix", MIX_PROB=1.0, MIXUP_ALPHA=0.0)
    samples = _mapped_samples()
    seen = []
    model.backbone.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    clean = model.preprocess_image(samples)
    torch.manual_seed(2)
    with EventStorage() as storage:
        model(samples)
        logged = {k: v[0] for k, v in storage.latest().items()}
    changed = (seen[0] != clean).any(dim=1).double().mean(dim=(1, 2))
    assert logged["als/mixed"] == 1.0 and logged["als/cutmix"] == 1.0
    assert logged["als/mix_ratio"] == pytest.approx(float(changed.max()))
    model = _tiny_classifier("mixup_cutmix", MIX_PROB=0.0)
    with EventStorage() as storage:
        model(samples)
        logged = {k: v[0] for k, v in storage.latest().items()}
    assert logged["als/mixed"] == 0.0 and logged["als/cutmix"] == 0.0


def test_config_keys_are_checked():
    from als_d2.config import check_als_config, check_training_dicts

    def cfg(**als):
        c = _cfg("mixup_cutmix", **als)
        c.MODEL.RESNETS.OUT_FEATURES = ["res5"]
        return c

    check_als_config(cfg(MIX_TARGET="als", MIXUP_ALPHA=0.0))
    with pytest.raises(ValueError, match=r"MODEL\.ALS\.MIX_TARGET"):
        check_als_config(cfg(MIX_TARGET="uniform"))
    with pytest.raises(ValueError, match=r"MODEL\.ALS\.CUTMIX_ALPHA"):
        check_als_config(cfg(CUTMIX_ALPHA=-1.0))
    with pytest.raises(ValueError, match=r"MODEL\.ALS\.MIXUP_ALPHA.*both 0"):
        check_als_config(cfg(MIXUP_ALPHA=0.0, CUTMIX_ALPHA=0.0))
    unboxed = {"x": [{"file_name": "a.jpg", "label": 0}]}
    check_training_dicts(cfg(MIX_TARGET="hard"), unboxed)
    with pytest.raises(ValueError, match=r"MODEL\.ALS\.METHOD.*bounding boxes"):
        check_training_dicts(cfg(MIX_TARGET="als"), unboxed)
