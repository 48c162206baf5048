"""COCO transfer end to end on CPU: classifier -> train_det.py (C4 and FPN) -> COCOEvaluator.

A small R18 classifier is trained for a few iterations; detectors start from its
checkpoint as train_cls.py writes it, with no conversion step, and no ResNet tensor may
stay at its random init.
"""
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from als_d2.checkpoint import ClassifierCheckpointer
from als_d2.checkpoint.formats import read_canonical
from als_d2.config import add_als_config
from als_d2.engine import ClassificationTrainer
from als_d2.engine.detection import METRICS_FILE, DetectionTrainer
from als_d2.engine.schedule import iterations_for

from coco_fixtures import register_coco_split, write_builtin_coco
from tiny_data import load_tool, register_tiny

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DET_CONFIGS = os.path.join(REPO, "configs", "COCO-Detection")
DEMO = {"C4": "demo/faster_rcnn_R18_C4_cpu.yaml", "FPN": "demo/faster_rcnn_R18_FPN_cpu.yaml"}
COCO_METRICS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
RESNET_KEY = re.compile(r"(^|\.)(stem|res[2-5])\.")


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    train = register_coco_split(str(root / "train"), num_images=6, empty_images=1, seed=0)
    val = register_coco_split(str(root / "val"), num_images=3, seed=1)
    return train, val


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """(checkpoint written by ClassificationTrainer, its ResNet tensors in backbone-relative names)."""
    root = tmp_path_factory.mktemp("cls")
    dataset = register_tiny(str(root / "data"))
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, "configs/demo/Base-Demo-R18.yaml"))
    cfg.merge_from_list([
        "DATASETS.TRAIN", (dataset,), "DATASETS.TEST", (), "OUTPUT_DIR", str(root / "out"),
        "MODEL.CLASSIFIER.NUM_CLASSES", 4, "MODEL.ALS.METHOD", "als", "INPUT.CLS.CROP_SIZE", 32,
        "INPUT.CLS.TEST_RESIZE", 36, "SOLVER.EPOCHS", 0, "SOLVER.MAX_ITER", 8, "SOLVER.STEPS", (),
        "SOLVER.WARMUP_ITERS", 0, "SOLVER.IMS_PER_BATCH", 4, "SOLVER.BASE_LR", 0.01, "SOLVER.LR_REFERENCE_BATCH", 0,
        "SOLVER.CHECKPOINT_PERIOD", 1000, "SOLVER.CHECKPOINT_PERIOD_EPOCHS", 0.0, "TEST.EVAL_PERIOD", 0, "SEED", 1,
    ])
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    trainer = ClassificationTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    path = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    fmt, reference = read_canonical(path)
    assert fmt == "als_d2" and "head.weight" in reference
    return path, reference


def det_cfg(arch, weights, train, val, output_dir, *opts):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(DET_CONFIGS, DEMO[arch]))
    cfg.merge_from_list([
        "MODEL.WEIGHTS", weights, "DATASETS.TRAIN", (train,), "DATASETS.TEST", (val,),
        "MODEL.ROI_HEADS.NUM_CLASSES", 3, "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 16,
        "SOLVER.IMS_PER_BATCH", 2, "SOLVER.MAX_ITER", 3, "SOLVER.STEPS", (),  # the config's warm-up: lr stays small
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0,  # 3 iterations in, every box scores low: keep them all
        # an 8-iteration classifier's BN statistics (32 px crops) do not fit 128 px images: FrozenBN
        # passes large activations, and unclipped gradients would make the first steps diverge
        "SOLVER.CLIP_GRADIENTS.ENABLED", True, "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norm",
        "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", 1.0,
        "OUTPUT_DIR", output_dir, *opts,
    ])
    os.makedirs(output_dir, exist_ok=True)
    return cfg


def assert_resnet_transferred(model, reference):
    """Each classifier ResNet tensor sits, unchanged, in exactly one model tensor, and every
    ResNet tensor of the detector (stem, res2-res4, res5 wherever it is) is one of them."""
    state = model.state_dict()
    frozen_bn = not any(k.endswith("num_batches_tracked") for k in state)
    loaded = set()
    for key, value in reference.items():
        if key.startswith("head.") or (frozen_bn and key.endswith("num_batches_tracked")):
            continue
        hits = [k for k in state if k.endswith("." + key)]
        assert len(hits) == 1, (key, hits)
        torch.testing.assert_close(state[hits[0]], value, rtol=0, atol=0, msg=hits[0])
        loaded.add(hits[0])
    resnet = {k for k in state if RESNET_KEY.search(k)}
    assert resnet == loaded, f"left at random init: {sorted(resnet - loaded)[:5]}"
    assert len(loaded) > 50
    return loaded


@pytest.mark.parametrize("arch", ["C4", "FPN"])
def test_fine_tune_from_train_cls_checkpoint(coco, classifier, tmp_path, arch):
    train, val = coco
    weights, reference = classifier
    cfg = det_cfg(arch, weights, train, val, str(tmp_path / "det"))
    trainer = DetectionTrainer(cfg)
    trainer.resume_or_load(resume=False)
    loaded = assert_resnet_transferred(trainer.model, reference)
    report = trainer.checkpointer.transfer
    assert set(report["loaded"]) == loaded and report["unused"] == ["head.bias", "head.weight"]
    res5 = [k for k in loaded if ".res5." in k]
    assert res5 and all(k.startswith("roi_heads.res5." if arch == "C4" else "backbone.bottom_up.res5.") for k in res5)
    assert all(not RESNET_KEY.search(k) for k in report["missing"])  # from scratch: RPN, box head, FPN only

    trainer.train()
    with open(os.path.join(cfg.OUTPUT_DIR, METRICS_FILE)) as f:
        record = json.load(f)
    bbox = record["results"]["bbox"]
    assert record["weights"] == weights and record["iteration"] == cfg.SOLVER.MAX_ITER  # EventStorage.iter after training
    for name in COCO_METRICS:
        assert name in bbox and (bbox[name] is None or 0.0 <= bbox[name] <= 100.0), (name, bbox)
    assert isinstance(bbox["AP"], float) and isinstance(bbox["AR100"], float)

    # AR agrees with COCOeval run on the written detections; --eval-only reproduces the numbers
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from detectron2.data import MetadataCatalog

    gt = COCO(MetadataCatalog.get(val).json_file)
    with open(os.path.join(cfg.OUTPUT_DIR, "inference", val, "coco_instances_results.json")) as f:
        dets = json.load(f)
    assert dets
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert bbox["AR100"] == pytest.approx(ev.stats[8] * 100) and bbox["AR1"] == pytest.approx(ev.stats[6] * 100)

    train_det = load_tool("train_det")
    args = train_det.default_argument_parser().parse_args([
        "--config-file", os.path.join(DET_CONFIGS, DEMO[arch]), "--eval-only",
        "MODEL.WEIGHTS", os.path.join(cfg.OUTPUT_DIR, "model_final.pth"), "DATASETS.TEST", f"('{val}',)",
        "MODEL.ROI_HEADS.NUM_CLASSES", "3", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "OUTPUT_DIR", str(tmp_path / "eval"),
    ])
    results = train_det.main(args)
    for name in COCO_METRICS:
        a, b = results["bbox"][name], bbox[name]
        assert (b is None and math.isnan(a)) or a == pytest.approx(b), name


@pytest.mark.parametrize("config", [
    DEMO["C4"], DEMO["FPN"],
    (DEMO["C4"], "MODEL.RESNETS.NORM", "SyncBN", "MODEL.BACKBONE.FREEZE_AT", 0),
    (DEMO["FPN"], "MODEL.RESNETS.NORM", "SyncBN", "MODEL.FPN.NORM", "SyncBN", "MODEL.BACKBONE.FREEZE_AT", 0),
], ids=["C4", "FPN", "C4-SyncBN", "FPN-SyncBN"])
def test_stock_detection_checkpointer_loads_classifier_checkpoints(classifier, tmp_path, config):
    """detectron2's own DetectionCheckpointer, no als_d2 loader: a ClassifierCheckpointer file
    (matching_heuristics, backbone-relative keys) fills every ResNet tensor of C4 and FPN."""
    path, reference = classifier
    cfg = get_cfg()
    config = (config,) if isinstance(config, str) else config
    cfg.merge_from_file(os.path.join(DET_CONFIGS, config[0]))
    cfg.merge_from_list(list(config[1:]))
    clf_cfg = get_cfg()
    add_als_config(clf_cfg)
    clf_cfg.merge_from_file(os.path.join(REPO, "configs/demo/Base-Demo-R18.yaml"))
    clf_cfg.MODEL.CLASSIFIER.NUM_CLASSES = 4
    classifier_model = build_model(clf_cfg)
    DetectionCheckpointer(classifier_model).load(path)  # whatever format train_cls.py wrote
    ClassifierCheckpointer(classifier_model, str(tmp_path)).save("model_final")
    saved = torch.load(str(tmp_path / "model_final.pth"), weights_only=True)
    assert saved["matching_heuristics"] is True and "res5.0.conv1.weight" in saved["model"]

    detector = build_model(cfg)
    DetectionCheckpointer(detector).load(str(tmp_path / "model_final.pth"))
    loaded = assert_resnet_transferred(detector, reference)
    if "SyncBN" in config:
        assert any(k.endswith("num_batches_tracked") for k in loaded)

    # and the classifier itself still resumes exactly from the same file
    again = build_model(clf_cfg)
    DetectionCheckpointer(again).load(str(tmp_path / "model_final.pth"))
    for k, v in classifier_model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_train_det_cli_on_builtin_coco(classifier, tmp_path):
    """tools/train_det.py as a user runs it: builtin coco_2017_* under $DETECTRON2_DATASETS."""
    weights, _ = classifier
    write_builtin_coco(str(tmp_path / "datasets"))
    out = tmp_path / "run"
    env = dict(os.environ, DETECTRON2_DATASETS=str(tmp_path / "datasets"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, os.path.join(REPO, "tools", "train_det.py"), "--config-file", os.path.join(DET_CONFIGS, DEMO["FPN"]),
           "MODEL.WEIGHTS", weights, "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "0",
           "OUTPUT_DIR", str(out)]
    proc = subprocess.run(cmd, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "100 of them ResNet backbone tensors" in log and "res5:   25 tensors -> backbone.bottom_up.res5" in log
    assert "Start from scratch" in log and "head.bias, head.weight" in log
    record = json.loads((out / METRICS_FILE).read_text())
    assert record["datasets"] == ["coco_2017_val"] and set(COCO_METRICS) <= set(record["results"]["bbox"])


def test_compare_transfer_table(tmp_path):
    compare = load_tool("compare_transfer")
    for name, ap in (("hard", 30.0), ("als", 32.1)):
        run = tmp_path / name
        run.mkdir()
        bbox = {m: ap + i for i, m in enumerate(COCO_METRICS)}
        bbox["APl"] = None
        (run / METRICS_FILE).write_text(json.dumps({"results": {"bbox": bbox}}))
    (tmp_path / "d2run").mkdir()  # detectron2's metrics.json: the last row with bbox/AP counts
    rows = [{"iteration": 9, "bbox/AP": 1.0}, {"iteration": 19, "total_loss": 1.0}, {"iteration": 19, "bbox/AP": 29.0, "bbox/AR1": 5.0}]
    (tmp_path / "d2run" / "metrics.json").write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "table.md"
    assert compare.main([f"hard={tmp_path / 'hard'}", str(tmp_path / "als"), f"d2={tmp_path / 'd2run'}",
                         "--table", "7", "--baseline", "hard", "-o", str(out)]) == 0
    text = out.read_text()
    header = [line for line in text.splitlines() if line.startswith("| Method")][0]
    assert header.split(" | ")[1:4] == ["AP", "AP50", "AP75"] and "ARl" in header
    als_row = [line for line in text.splitlines() if line.startswith("| als ")][0]
    assert "**0.321**" in als_row and "+0.021" in als_row
    d2_row = [line for line in text.splitlines() if line.startswith("| d2 ")][0]
    assert "0.290" in d2_row and "0.050" in d2_row and "–" in d2_row


def _cfg(rel):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(DET_CONFIGS, rel))
    return cfg


CONFIGS = sorted(
    os.path.relpath(os.path.join(d, f), DET_CONFIGS)
    for d, _, files in os.walk(DET_CONFIGS) for f in files if f.endswith(".yaml")
)


@pytest.mark.parametrize("rel", CONFIGS)
def test_detection_configs(rel):
    """Every config loads with detectron2's plain get_cfg (any d2 tool can run it), in the
    classifiers' torchvision convention, with a header naming what it serves."""
    with open(os.path.join(DET_CONFIGS, rel)) as f:
        assert f.readline().startswith("#")
    cfg = _cfg(rel)
    assert cfg.INPUT.FORMAT == "RGB" and not cfg.MODEL.RESNETS.STRIDE_IN_1X1
    assert list(cfg.MODEL.PIXEL_MEAN) == [123.675, 116.28, 103.53]
    assert list(cfg.MODEL.PIXEL_STD) == [58.395, 57.12, 57.375]
    assert cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN" and not cfg.MODEL.MASK_ON
    name = os.path.basename(rel)
    if "syncbn" in name:
        assert cfg.MODEL.RESNETS.NORM == "SyncBN" and cfg.MODEL.BACKBONE.FREEZE_AT == 0 and cfg.TEST.PRECISE_BN.ENABLED
    elif not name.startswith("Base-"):
        assert cfg.MODEL.RESNETS.NORM == "FrozenBN" and cfg.MODEL.BACKBONE.FREEZE_AT == 2
    if "R_101" in name:
        assert cfg.MODEL.RESNETS.DEPTH == 101 and "r101" in cfg.MODEL.WEIGHTS
    if name.endswith("_1x.yaml") or name.endswith("_1x_syncbn.yaml"):
        s = cfg.SOLVER
        assert (s.IMS_PER_BATCH, s.BASE_LR, s.MAX_ITER, tuple(s.STEPS)) == (16, 0.02, 90000, (60000, 80000))
    if "paper" in name:
        s, images = cfg.SOLVER, 117266  # train2017 after detectron2 drops images without usable boxes
        assert (s.IMS_PER_BATCH, s.BASE_LR, s.GAMMA) == (16, 0.01, 0.1)
        assert s.MAX_ITER == iterations_for(10, images, 16) == 73291
        assert tuple(s.STEPS) == tuple(iterations_for(e, images, 16) for e in (4, 8)) == (29316, 58633)
        assert cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeads"
    if "demo" in rel:
        assert cfg.MODEL.RESNETS.DEPTH == 18 and cfg.MODEL.DEVICE == "cpu"
        assert cfg.MODEL.WEIGHTS.startswith("output/demo/")
