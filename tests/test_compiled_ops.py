"""detectron2's compiled ops (``detectron2._C``), checked against independent computations.

They exist only where detectron2 was built with its C++ sources (the detectron2-main stack,
``make setup VENV=.venv-d2main DETECTRON2_SRC=...``); with detectron2 v0.6 from the package
index (no compiled ops) these tests skip. The fast COCO evaluation is the one the project
uses itself (``TransferTrainer.build_evaluator``: ``use_fast_impl=HAS_COMPILED_OPS``).
"""

import math

import numpy as np
import pytest
import torch

from als_d2 import compat

pytestmark = pytest.mark.skipif(
    not compat.HAS_COMPILED_OPS,
    reason="the installed detectron2 has no compiled ops (detectron2._C); "
    "these run on a detectron2 built from source (make setup DETECTRON2_SRC=...)",
)


def random_boxes_xyxy(rng, n, size=100.0):
    """float32 (n, 4) XYXY boxes inside a size x size image, sides 5..size/2."""
    wh = rng.uniform(5, size / 2, (n, 2))
    xy = rng.uniform(0, size - wh)
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def iou_xyxy(a, b):
    """(len(a), len(b)) IoU, written out in numpy."""
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            out[i, j] = inter / union
    return out


def to_rotated(xyxy, angle=0.0):
    """(n, 5) (cx, cy, w, h, angle in degrees)."""
    cxcy = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    wh = xyxy[:, 2:] - xyxy[:, :2]
    return np.concatenate([cxcy, wh, np.full((len(xyxy), 1), angle, np.float32)], 1)


def test_rotated_iou_at_angle_zero_is_the_axis_aligned_iou():
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    rng = np.random.default_rng(0)
    a, b = random_boxes_xyxy(rng, 7), random_boxes_xyxy(rng, 5)
    got = pairwise_iou_rotated(
        torch.from_numpy(to_rotated(a)), torch.from_numpy(to_rotated(b))
    ).numpy()
    np.testing.assert_allclose(got, iou_xyxy(a, b), atol=1e-5)


def test_rotated_iou_is_invariant_to_rotating_both_boxes_together():
    """A box and itself rotated by 90 degrees about its centre: IoU = min(w,h)^2 / (2wh - min^2)."""
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    box = torch.tensor([[50.0, 40.0, 30.0, 10.0, 0.0]])
    turned = box.clone()
    turned[0, 4] = 90.0
    expected = 10.0 * 10.0 / (2 * 30.0 * 10.0 - 10.0 * 10.0)
    assert pairwise_iou_rotated(box, turned).item() == pytest.approx(expected, abs=1e-5)
    both = box.clone()
    both[0, 4], turned[0, 4] = 33.0, 123.0
    assert pairwise_iou_rotated(both, turned).item() == pytest.approx(expected, abs=1e-5)


def test_rotated_nms_at_angle_zero_keeps_what_torchvision_nms_keeps():
    from detectron2.layers import nms_rotated
    from torchvision.ops import nms

    rng = np.random.default_rng(1)
    boxes = random_boxes_xyxy(rng, 40, size=60.0)
    scores = torch.from_numpy(rng.permutation(40).astype(np.float32))
    keep = nms_rotated(torch.from_numpy(to_rotated(boxes)), scores, 0.3)
    assert keep.tolist() == nms(torch.from_numpy(boxes), scores, 0.3).tolist()


def test_deformable_conv_with_zero_offsets_is_a_plain_convolution():
    from detectron2.layers import DeformConv

    torch.manual_seed(0)
    conv = DeformConv(3, 4, kernel_size=3, padding=1, bias=False)
    x = torch.randn(2, 3, 9, 11)
    offset = torch.zeros(2, 2 * 3 * 3, 9, 11)
    expected = torch.nn.functional.conv2d(x, conv.weight, padding=1)
    torch.testing.assert_close(conv(x, offset), expected, atol=1e-4, rtol=1e-4)


def test_deformable_conv_with_a_whole_pixel_offset_reads_the_shifted_input():
    """Every sampling point moved by +1 in x: output (y, x) reads the zero-padded input at
    (y + i, x + j + 1) for kernel tap (i, j), i.e. a plain convolution of the padded input
    with its first column dropped (zero beyond the border)."""
    from detectron2.layers import DeformConv

    torch.manual_seed(1)
    conv = DeformConv(2, 3, kernel_size=3, padding=1, bias=False)
    x = torch.randn(1, 2, 8, 10)
    offset = torch.zeros(1, 2 * 9, 8, 10)
    offset[:, 1::2] = 1.0  # (dy, dx) pairs: dx = 1
    padded = torch.nn.functional.pad(x, (1, 2, 1, 1))  # left, right, top, bottom
    expected = torch.nn.functional.conv2d(padded[..., 1:], conv.weight)
    torch.testing.assert_close(conv(x, offset), expected, atol=1e-4, rtol=1e-4)


def test_fast_coco_evaluation_matches_pycocotools(tmp_path):
    """The project's evaluator (AP and AR) with detectron2's compiled COCOeval and with
    pycocotools' own, on the same noisy detections."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.structures import BoxMode, Boxes, Instances

    from als_d2.engine.detection import COCOEvaluatorWithRecall
    from coco_fixtures import register_coco_split

    name = register_coco_split(str(tmp_path / "coco"), num_images=10, seed=3)
    dicts = DatasetCatalog.get(name)  # category ids already contiguous (0..2) here
    assert len(MetadataCatalog.get(name).thing_classes) == 3
    rng = np.random.default_rng(4)
    predictions = []
    for d in dicts:
        boxes, classes = [], []
        for a in d["annotations"]:
            box = np.array(BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS), np.float32)
            boxes.append(box + rng.normal(0, 4, 4).astype(np.float32))  # localisation noise
            classes.append(a["category_id"] if rng.random() > 0.2 else int(rng.integers(0, 3)))
        for _ in range(int(rng.integers(0, 4))):  # false positives
            boxes.append(random_boxes_xyxy(rng, 1, size=90.0)[0])
            classes.append(int(rng.integers(0, 3)))
        inst = Instances((d["height"], d["width"]))
        inst.pred_boxes = Boxes(torch.tensor(np.stack(boxes)))
        inst.scores = torch.from_numpy(rng.uniform(0.05, 1.0, len(boxes)).astype(np.float32))
        inst.pred_classes = torch.tensor(classes)
        predictions.append(({"image_id": d["image_id"]}, {"instances": inst}))

    results = {}
    for fast in (True, False):
        evaluator = COCOEvaluatorWithRecall(
            name,
            tasks=("bbox",),
            distributed=False,
            output_dir=str(tmp_path / f"eval_{fast}"),
            use_fast_impl=fast,
        )
        evaluator.reset()
        for inp, out in predictions:
            evaluator.process([inp], [out])
        results[fast] = evaluator.evaluate()["bbox"]
    assert set(results[True]) == set(results[False])
    assert {"AP", "AP50", "AR100"} <= set(results[True])
    assert 0 < results[False]["AP50"] < 100  # noisy enough to be a real comparison
    for key, plain in results[False].items():
        fast = results[True][key]
        if math.isnan(plain):
            assert math.isnan(fast), key
        else:
            assert fast == pytest.approx(plain, abs=1e-6), key
