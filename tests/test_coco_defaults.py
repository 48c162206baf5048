"""COCO-format files without ``iscrowd`` / ``area`` (as mmdetection's
tests/data/coco_sample.json): registered with ``register_coco_with_defaults`` they load
and evaluate with detectron2's COCOEvaluator (pycocotools) instead of ``KeyError: 'iscrowd'``."""

import json
import os
import uuid

import als_d2  # noqa: F401  (detectron2 bootstrap first)
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import BoxMode, Boxes, Instances

from als_d2.data.datasets import register_coco_with_defaults
from als_d2.data.datasets.builtin import register_synthetic_imagenet
from als_d2.data.datasets.coco_defaults import PREFIX, coco_json_with_defaults

# shaped like mmdetection's tests/data/coco_sample.json: no iscrowd, no area
SAMPLE = {
    "images": [
        {"file_name": "fake1.jpg", "height": 800, "width": 1024, "id": 0},
        {"file_name": "fake2.jpg", "height": 600, "width": 800, "id": 1},
    ],
    "annotations": [
        {"id": 1, "image_id": 0, "category_id": 1, "bbox": [50, 60, 200, 120]},
        {"id": 2, "image_id": 0, "category_id": 2, "bbox": [400, 300, 150, 250]},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [10, 20, 300, 200]},
        {"id": 4, "image_id": 1, "category_id": 2, "bbox": [500, 100, 120, 300]},
    ],
    "categories": [{"id": 1, "name": "bus"}, {"id": 2, "name": "car"}],
}


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "coco_sample.json"
    path.write_text(json.dumps(SAMPLE))
    return str(path)


def _evaluate(name, tmp_path):
    """Perfect predictions (the ground-truth boxes) through COCOEvaluator (pycocotools)."""
    dicts = DatasetCatalog.get(name)
    evaluator = COCOEvaluator(
        name,
        tasks=("bbox",),
        distributed=False,
        output_dir=str(tmp_path / "eval"),
        use_fast_impl=False,
    )
    evaluator.reset()
    for d in dicts:
        boxes = [
            BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in d["annotations"]
        ]
        inst = Instances((d["height"], d["width"]))
        inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
        inst.scores = torch.full((len(boxes),), 0.9)
        inst.pred_classes = torch.tensor([a["category_id"] for a in d["annotations"]])
        evaluator.process([{"image_id": d["image_id"]}], [{"instances": inst}])
    return evaluator.evaluate()


def test_coco_file_without_iscrowd_and_area_evaluates(sample, tmp_path):
    name = f"coco_sample_{uuid.uuid4().hex[:8]}"
    register_coco_with_defaults(name, {}, sample, str(tmp_path / "images"))
    meta = MetadataCatalog.get(name)
    assert meta.json_file == PREFIX + sample and meta.evaluator_type == "coco"
    dicts = DatasetCatalog.get(name)
    assert [len(d["annotations"]) for d in dicts] == [2, 2] and meta.thing_classes == ["bus", "car"]
    assert all(a["iscrowd"] == 0 for d in dicts for a in d["annotations"])
    res = _evaluate(name, tmp_path)
    assert res["bbox"]["AP"] == pytest.approx(100.0)
    # the user's file is not modified; the filled copy has COCO's defaults
    assert json.loads(open(sample).read()) == SAMPLE
    with open(coco_json_with_defaults(sample)) as f:
        filled = json.load(f)
    assert [a["iscrowd"] for a in filled["annotations"]] == [0] * 4
    assert [a["area"] for a in filled["annotations"]] == [
        200 * 120,
        150 * 250,
        300 * 200,
        120 * 300,
    ]


def test_plain_register_coco_instances_fails_at_evaluation(sample, tmp_path):
    """Why the helper exists: detectron2's own registration trains on such a file and
    then fails in pycocotools."""
    name = f"coco_sample_plain_{uuid.uuid4().hex[:8]}"
    register_coco_instances(name, {}, sample, str(tmp_path / "images"))
    with pytest.raises(KeyError, match="iscrowd|area"):
        _evaluate(name, tmp_path)


def test_complete_files_are_read_unchanged(sample, tmp_path):
    complete = dict(
        SAMPLE, annotations=[dict(a, iscrowd=0, area=1.0) for a in SAMPLE["annotations"]]
    )
    path = tmp_path / "complete.json"
    path.write_text(json.dumps(complete))
    assert coco_json_with_defaults(str(path)) == str(path)


def test_builtin_coco_sets_use_the_helper(tmp_path):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    register_synthetic_imagenet(str(tmp_path / "absent"), prefix=prefix)  # lazy: nothing is read
    json_file = MetadataCatalog.get(f"{prefix}_coco_val").json_file
    assert json_file == PREFIX + os.path.join(
        str(tmp_path / "absent"), "coco", "annotations", "instances_val.json"
    )
