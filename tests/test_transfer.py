"""COCO transfer end to end on CPU: classifier -> train_det.py (C4 and FPN) -> COCOEvaluator.

A small R18 classifier is trained for a few iterations; detectors start from its
checkpoint as train_cls.py writes it, with no conversion step, and no ResNet tensor may
stay at its random init. The paper configs are checked against the settings of the code
the paper used (jwyang/faster-rcnn.pytorch), written out here, and run shrunk.
"""

import json
import math
import multiprocessing
import os
import re

import pytest
import torch
import yaml
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.engine import HookBase
from detectron2.engine.hooks import PeriodicCheckpointer
from detectron2.modeling import build_model

from als_d2.checkpoint import ClassifierCheckpointer, TransferCheckpointer
from als_d2.checkpoint.conversion import read_canonical
from als_d2.config import add_als_config
from als_d2.engine import ClassificationTrainer
from als_d2.engine.detection import (
    METRICS_FILE,
    DetectionTrainer,
    add_transfer_config,
    transfer_recipe,
)

from forked_tools import run_tool
from coco_fixtures import register_coco_split, write_builtin_coco
from tiny_data import load_tool, register_tiny, tiny_cls_cfg, tiny_det_opts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DET_CONFIGS = os.path.join(REPO, "configs", "COCO-Detection")
DEMO = {"C4": "demo/faster_rcnn_R18_C4_cpu.yaml", "FPN": "demo/faster_rcnn_R18_FPN_cpu.yaml"}
COCO_METRICS = [
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
]
RESNET_KEY = re.compile(r"(^|\.)(stem|res[2-5])\.")


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    train = register_coco_split(str(root / "train"), num_images=6, empty_images=1, seed=0)
    val = register_coco_split(str(root / "val"), num_images=3, seed=1)
    return train, val


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """(checkpoint written by ClassificationTrainer, its ResNet tensors in backbone-relative
    names)."""
    root = tmp_path_factory.mktemp("cls")
    dataset = register_tiny(str(root / "data"))
    cfg = tiny_cls_cfg(
        dataset,
        str(root / "out"),
        "DATASETS.TEST", (),
        "MODEL.ALS.METHOD", "als",
        "SOLVER.MAX_ITER", 8,
        "SOLVER.STEPS", (),
        "SOLVER.IMS_PER_BATCH", 4,
        "SOLVER.BASE_LR", 0.01,
        "SOLVER.CHECKPOINT_PERIOD", 1000,
        "SEED", 1,
    )  # fmt: skip
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
    add_transfer_config(cfg)  # TRANSFER.RECIPE, as train_det.py
    cfg.merge_from_file(os.path.join(DET_CONFIGS, DEMO[arch]))
    cfg.merge_from_list(
        [
            "MODEL.WEIGHTS",
            weights,
            "DATASETS.TRAIN",
            (train,),
            "DATASETS.TEST",
            (val,),
            "MODEL.ROI_HEADS.NUM_CLASSES",
            3,
            "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
            16,
            "SOLVER.IMS_PER_BATCH",
            2,
            "SOLVER.MAX_ITER",
            3,
            "SOLVER.STEPS",
            (),  # the config's warm-up: lr stays small
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            0.0,  # 3 iterations in, every box scores low: keep them all
            # an 8-iteration classifier's BN statistics (32 px crops) do not fit 128 px images:
            # FrozenBN passes large activations, and unclipped gradients would make the first
            # steps diverge
            "SOLVER.CLIP_GRADIENTS.ENABLED",
            True,
            "SOLVER.CLIP_GRADIENTS.CLIP_TYPE",
            "norm",
            "SOLVER.CLIP_GRADIENTS.CLIP_VALUE",
            1.0,
            "OUTPUT_DIR",
            output_dir,
            *opts,
        ]
    )
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
    # DefaultTrainer.__init__ built the hooks: its periodic (and final) saves go through ours too
    periodic = [h.checkpointer for h in trainer._hooks if isinstance(h, PeriodicCheckpointer)]
    assert periodic == [trainer.checkpointer] and isinstance(periodic[0], TransferCheckpointer)
    trainer.resume_or_load(resume=False)
    loaded = assert_resnet_transferred(trainer.model, reference)
    report = trainer.checkpointer.transfer
    assert set(report["loaded"]) == loaded and report["unused"] == ["head.bias", "head.weight"]
    res5 = [k for k in loaded if ".res5." in k]
    assert res5 and all(
        k.startswith("roi_heads.res5." if arch == "C4" else "backbone.bottom_up.res5.")
        for k in res5
    )
    assert all(
        not RESNET_KEY.search(k) for k in report["missing"]
    )  # from scratch: RPN, box head, FPN only

    trainer.train()
    with open(os.path.join(cfg.OUTPUT_DIR, METRICS_FILE)) as f:
        record = json.load(f)
    bbox = record["results"]["bbox"]
    assert (
        record["weights"] == weights and record["iteration"] == cfg.SOLVER.MAX_ITER
    )  # EventStorage.iter after training
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
    assert bbox["AR100"] == pytest.approx(ev.stats[8] * 100) and bbox["AR1"] == pytest.approx(
        ev.stats[6] * 100
    )

    train_det = load_tool("train_det")
    args = train_det.default_argument_parser().parse_args(
        [
            "--config-file",
            os.path.join(DET_CONFIGS, DEMO[arch]),
            "--eval-only",
            "MODEL.WEIGHTS",
            os.path.join(cfg.OUTPUT_DIR, "model_final.pth"),
            "DATASETS.TEST",
            f"('{val}',)",
            "MODEL.ROI_HEADS.NUM_CLASSES",
            "3",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            "0.0",
            "OUTPUT_DIR",
            str(tmp_path / "eval"),
        ]
    )
    results = train_det.main(args)
    for name in COCO_METRICS:
        a, b = results["bbox"][name], bbox[name]
        assert (b is None and math.isnan(a)) or a == pytest.approx(b), name
    # the eval-only record says how long the weights were trained (not null: "never trained")
    with open(os.path.join(tmp_path / "eval", METRICS_FILE)) as f:
        assert json.load(f)["iteration"] == cfg.SOLVER.MAX_ITER


@pytest.mark.parametrize("arch", ["C4", "FPN"])
def test_eval_only_refuses_a_classifier_checkpoint(coco, classifier, tmp_path, arch):
    """train_det.py --eval-only (evaluate_weights) with a classifier checkpoint: one line
    naming the detector modules the file lacks, no evaluation, no transfer_metrics.json
    (not AP 0 of random RPN and box heads)."""
    from als_d2.engine.launch import evaluate_weights

    train, val = coco
    weights, _ = classifier
    cfg = det_cfg(arch, weights, train, val, str(tmp_path / "det"))
    cfg.freeze()
    with pytest.raises(SystemExit) as info:
        evaluate_weights(cfg, DetectionTrainer, TransferCheckpointer)
    message = str(info.value.code)
    assert message.startswith("error: ") and "\n" not in message and weights in message
    missing = ["proposal_generator.rpn_head.*", "roi_heads.box_predictor.*"]
    missing += ["backbone.fpn_lateral2.*", "roi_heads.box_head.*"] if arch == "FPN" else []
    assert all(m in message for m in missing), message
    assert "checkpoint tensor(s) the model does not have (head.*)" in message
    assert not os.path.exists(tmp_path / "det" / METRICS_FILE)
    assert not os.path.exists(tmp_path / "det" / "inference")


@pytest.mark.parametrize(
    "config",
    [
        DEMO["C4"],
        DEMO["FPN"],
        (DEMO["C4"], "MODEL.RESNETS.NORM", "SyncBN", "MODEL.BACKBONE.FREEZE_AT", 0),
        (
            DEMO["FPN"],
            "MODEL.RESNETS.NORM",
            "SyncBN",
            "MODEL.FPN.NORM",
            "SyncBN",
            "MODEL.BACKBONE.FREEZE_AT",
            0,
        ),
    ],
    ids=["C4", "FPN", "C4-SyncBN", "FPN-SyncBN"],
)
def test_stock_detection_checkpointer_loads_classifier_checkpoints(classifier, tmp_path, config):
    """detectron2's own DetectionCheckpointer, no als_d2 loader: a ClassifierCheckpointer file
    (matching_heuristics, backbone-relative keys) fills every ResNet tensor of C4 and FPN."""
    path, reference = classifier
    cfg = get_cfg()
    add_transfer_config(cfg)
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
    cmd = [
        os.path.join(REPO, "tools", "train_det.py"),
        "--config-file",
        os.path.join(DET_CONFIGS, DEMO["FPN"]),
        "MODEL.WEIGHTS",
        weights,
        "SOLVER.MAX_ITER",
        "2",
        "SOLVER.IMS_PER_BATCH",
        "2",
        "SOLVER.WARMUP_ITERS",
        "0",
        "OUTPUT_DIR",
        str(out),
    ]
    proc = run_tool(cmd, env=env, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert (
        "100 of them ResNet backbone tensors" in log
        and "res5:   25 tensors -> backbone.bottom_up.res5" in log
    )
    assert "Start from scratch" in log and "head.bias, head.weight" in log
    record = json.loads((out / METRICS_FILE).read_text())
    assert record["datasets"] == ["coco_2017_val"] and set(COCO_METRICS) <= set(
        record["results"]["bbox"]
    )
    assert record["recipe"] == "demo"  # the demo config's TRANSFER.RECIPE


def test_compare_transfer_table(tmp_path):
    compare = load_tool("compare_transfer")
    runs = (
        ("hard", 30.0, {"recipe": "jwyang", "norm": "FrozenBN"}),
        ("als", 32.1, {"recipe": "jwyang", "norm": "SyncBN"}),
        ("old", 20.0, {}),  # a transfer_metrics.json written before the recipe was recorded
    )
    for name, ap, info in runs:
        run = tmp_path / name
        run.mkdir()
        bbox = {m: ap + i for i, m in enumerate(COCO_METRICS)}
        bbox["APl"] = None
        (run / METRICS_FILE).write_text(json.dumps(dict(info, results={"bbox": bbox})))
    (tmp_path / "d2run").mkdir()  # detectron2's metrics.json: the last row with bbox/AP counts
    rows = [
        {"iteration": 9, "bbox/AP": 1.0},
        {"iteration": 19, "total_loss": 1.0},
        {"iteration": 19, "bbox/AP": 29.0, "bbox/AR1": 5.0},
    ]
    (tmp_path / "d2run" / "metrics.json").write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "table.md"
    assert (
        compare.main(
            [
                f"hard={tmp_path / 'hard'}",
                str(tmp_path / "als"),
                f"d2={tmp_path / 'd2run'}",
                str(tmp_path / "old"),
                "--table",
                "7",
                "--baseline",
                "hard",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    text = out.read_text()
    header = [line for line in text.splitlines() if line.startswith("| Method")][0]
    assert header.split(" | ")[1:5] == ["Recipe", "AP", "AP50", "AP75"] and "ARl" in header

    def row(name):
        return [line for line in text.splitlines() if line.startswith(f"| {name} ")][0].split(" | ")

    assert row("hard")[1] == "jwyang"
    als_row = row("als")
    # detectron2's 0-100 scale, one decimal, as written (the caption says so)
    assert "0-100 scale" in text.splitlines()[0]
    assert als_row[1] == "jwyang (SyncBN)" and als_row[2] == "**32.1**" and "+2.1" in als_row[-1]
    d2_row = row("d2")
    assert d2_row[1] == "unknown" and d2_row[2] == "29.0" and "5.0" in d2_row and "–" in d2_row
    assert row("old")[1] == "unknown"


def test_compare_transfer_marks_incomparable_runs(tmp_path, capsys):
    """Runs on another test set, with another schedule, stopped early or never trained
    (iteration: null) get a dagger, no AP difference and no bold, and a note saying why;
    a --baseline that was never trained is an error."""
    compare = load_tool("compare_transfer")
    base = {"datasets": ["coco_2017_val"], "max_iter": 100, "ims_per_batch": 16}
    runs = {
        "hard": (30.0, dict(base, iteration=100)),
        "als": (31.0, dict(base, iteration=100)),
        "other_set": (50.0, dict(base, iteration=100, datasets=["voc_2007_test"])),
        "short": (40.0, dict(base, iteration=10, max_iter=10)),
        "batch8": (45.0, dict(base, iteration=100, ims_per_batch=8)),
        "stopped": (35.0, dict(base, iteration=60)),
        "untrained": (0.1, dict(base, iteration=None)),
    }
    for name, (ap, record) in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / METRICS_FILE).write_text(
            json.dumps(dict(record, results={"bbox": {"AP": ap, "AP50": ap}}))
        )
    args = [f"{n}={tmp_path / n}" for n in runs] + ["--columns", "AP", "AP50"]
    assert compare.main(args + ["--baseline", "hard"]) == 0
    text = capsys.readouterr().out
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ")
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| Method")
    }
    assert rows["hard"][-1].strip(" |") == "+0.0" and rows["als"][-1].strip(" |") == "+1.0"
    assert rows["als"][2] == "**31.0**"  # the best of the comparable runs, not 50.0
    expected = {
        "other_set": "test set voc_2007_test, hard's coco_2017_val",
        "short": "10 iterations, hard's 100",
        "batch8": "8 images per batch, hard's 16",
        "stopped": "stopped at iteration 60 of 100",
        "untrained": "never trained (iteration: null",
    }
    for name, reason in expected.items():
        row = rows[f"{name} †"]
        assert row[-1].strip(" |") == "–" and "**" not in " ".join(row), row
        note = [line for line in text.splitlines() if line.startswith(f"† {name}: ")]
        assert len(note) == 1 and reason in note[0] and "not comparable with hard" in note[0]
    # the first finished run is the reference without --baseline; an untrained baseline fails
    assert compare.main(args) == 0
    assert "† untrained: not comparable with hard" in capsys.readouterr().out
    assert compare.main(args + ["--baseline", "untrained"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "never trained" in err


def test_compare_transfer_run_without_results(tmp_path, capsys):
    """A run folder without results (not finished, not evaluated, mistyped) is a one-line
    error naming it, not a traceback; so is a --baseline that names no run."""
    compare = load_tool("compare_transfer")
    good = tmp_path / "hard"
    good.mkdir()
    (good / METRICS_FILE).write_text(
        json.dumps({"recipe": "jwyang", "results": {"bbox": {"AP": 30.0}}})
    )
    empty = tmp_path / "als_unfinished"
    empty.mkdir()
    (empty / "last_checkpoint").write_text("model_0004999.pth")
    no_eval = tmp_path / "ls_noeval"
    no_eval.mkdir()
    (no_eval / "metrics.json").write_text(json.dumps({"iteration": 19, "total_loss": 1.0}) + "\n")
    for spec, named in (
        (str(empty), "als_unfinished"),
        (f"ls={no_eval}", "ls_noeval"),
        (str(tmp_path / "missing"), "missing"),
        (f"x={good}", None),
    ):
        args = [str(good), spec] + (["--baseline", "nope"] if named is None else [])
        assert compare.main(args) == 2
        out, err = capsys.readouterr()
        assert out == "" and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert err.startswith("compare_transfer.py: error: ")
        assert (named in err) if named else "'nope'" in err


# ----------------------------------------------- the paper's recipe (jwyang/faster-rcnn.pytorch)

# The paper (section 4.3): batch 16, lr 0.01 decayed after every 4 epochs, 10 epochs, with
# https://github.com/jwyang/faster-rcnn.pytorch. Its settings, from its files:
TRAIN2017_KEPT = 117_266  # train2017 images detectron2 keeps (FILTER_EMPTY_ANNOTATIONS)
EPOCH = 2 * TRAIN2017_KEPT  # roidb.py: every image and its horizontal flip (TRAIN.USE_FLIPPED)
JWYANG = {
    # paper; trainval_net.py --bs 16 --lr 0.01 --lr_decay_gamma 0.1; no warm-up
    "SOLVER.IMS_PER_BATCH": 16,
    "SOLVER.BASE_LR": 0.01,
    "SOLVER.GAMMA": 0.1,
    "SOLVER.WARMUP_ITERS": 0,
    "SOLVER.MAX_ITER": 146_583,
    "SOLVER.STEPS": (58_633, 117_266),
    # config.py, cfgs/res101.yml: SGD momentum 0.9, weight decay 1e-4, none on biases, no double
    # bias lr
    "SOLVER.MOMENTUM": 0.9,
    "SOLVER.NESTEROV": False,
    "SOLVER.WEIGHT_DECAY": 0.0001,
    "SOLVER.WEIGHT_DECAY_BIAS": 0.0,
    "SOLVER.BIAS_LR_FACTOR": 1.0,
    "SOLVER.CLIP_GRADIENTS.ENABLED": False,
    # TRAIN/TEST.SCALES (600,), MAX_SIZE 1000; TRAIN.USE_FLIPPED
    "INPUT.MIN_SIZE_TRAIN": (600,),
    "INPUT.MAX_SIZE_TRAIN": 1000,
    "INPUT.MIN_SIZE_TEST": 600,
    "INPUT.MAX_SIZE_TEST": 1000,
    "INPUT.RANDOM_FLIP": "horizontal",
    # trainval_net.py coco: ANCHOR_SCALES [4, 8, 16, 32] x FEAT_STRIDE 16, ANCHOR_RATIOS [0.5, 1, 2]
    "MODEL.ANCHOR_GENERATOR.SIZES": [[4 * 16, 8 * 16, 16 * 16, 32 * 16]],
    "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS": [[0.5, 1.0, 2.0]],
    "MODEL.ANCHOR_GENERATOR.OFFSET": 0.5,
    # rpn.py (512-channel conv, sigma 3), anchor_target_layer.py (_allowed_border 0),
    # config.py RPN_*
    "MODEL.RPN.CONV_DIMS": [512],
    "MODEL.RPN.BOUNDARY_THRESH": 0,
    "MODEL.RPN.IOU_THRESHOLDS": [0.3, 0.7],
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE": 256,
    "MODEL.RPN.POSITIVE_FRACTION": 0.5,
    "MODEL.RPN.SMOOTH_L1_BETA": 1 / 3**2,
    "MODEL.RPN.NMS_THRESH": 0.7,
    "MODEL.RPN.BBOX_REG_WEIGHTS": (1.0, 1.0, 1.0, 1.0),
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN": 12000,
    "MODEL.RPN.POST_NMS_TOPK_TRAIN": 2000,
    "MODEL.RPN.PRE_NMS_TOPK_TEST": 6000,
    "MODEL.RPN.POST_NMS_TOPK_TEST": 300,
    "MODEL.PROPOSAL_GENERATOR.MIN_SIZE": 0,
    # TRAIN.BATCH_SIZE 128, FG_FRACTION 0.25, FG_THRESH 0.5; test_net.py: thresh 0, TEST.NMS 0.3,
    # 100 per image
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": 128,
    "MODEL.ROI_HEADS.POSITIVE_FRACTION": 0.25,
    "MODEL.ROI_HEADS.IOU_THRESHOLDS": [0.5],
    "MODEL.ROI_HEADS.PROPOSAL_APPEND_GT": True,
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.0,
    "MODEL.ROI_HEADS.NMS_THRESH_TEST": 0.3,
    "TEST.DETECTIONS_PER_IMAGE": 100,
    # POOLING_SIZE 7, POOLING_MODE align (unaligned ROIAlign, sampling 0); sigma 1;
    # BBOX_NORMALIZE_STDS
    "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION": 7,
    "MODEL.ROI_BOX_HEAD.POOLER_TYPE": "ROIAlign",
    "MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO": 0,
    "MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA": 1.0,
    "MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS": tuple(1 / s for s in (0.1, 0.1, 0.2, 0.2)),
    "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG": False,
    # resnet.py: conv1 and FIXED_BLOCKS 1 fixed, every BatchNorm frozen
    "MODEL.BACKBONE.FREEZE_AT": 2,
    "MODEL.RESNETS.NORM": "FrozenBN",
}
PAPER_CONFIGS = [
    "faster_rcnn_R_50_C4_paper.yaml",
    "faster_rcnn_R_101_C4_paper.yaml",
    "faster_rcnn_R_50_C4_paper_syncbn.yaml",
]


def _key(cfg, dotted):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


def test_paper_schedule_arithmetic():
    """10 epochs of train2017 + flips at batch 16, rounded up; decays after epochs 4 and 8."""
    assert EPOCH / 16 == 14_658.25
    assert (
        JWYANG["SOLVER.MAX_ITER"] == math.ceil(10 * EPOCH / 16) == 146_583
    )  # 146,582.5 rounded up
    assert JWYANG["SOLVER.STEPS"] == (4 * EPOCH / 16, 8 * EPOCH / 16)  # exact


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_configs_are_the_authors_recipe(name):
    cfg = _cfg(name)
    syncbn = "syncbn" in name
    for key, expected in JWYANG.items():
        if syncbn and key in ("MODEL.BACKBONE.FREEZE_AT", "MODEL.RESNETS.NORM"):
            continue
        value = _key(cfg, key)
        value = [list(v) for v in value] if key.endswith(("SIZES", "ASPECT_RATIOS")) else value
        value = (
            tuple(value)
            if isinstance(expected, tuple)
            else list(value)
            if isinstance(expected, list)
            else value
        )
        assert value == (pytest.approx(expected) if isinstance(expected, float) else expected), key
    assert cfg.MODEL.RESNETS.DEPTH == (101 if "R_101" in name else 50)
    assert cfg.SOLVER.CHECKPOINT_PERIOD == int(EPOCH / 16)  # one (whole) epoch
    header = "".join(line for line in open(os.path.join(DET_CONFIGS, name)) if line.startswith("#"))
    assert "Recipe: jwyang/faster-rcnn.pytorch as used by the paper" in header
    assert (
        "146,583" in header
        and "58,633" in header
        and "117,266" in header
        and "rounded up" in header
    )
    differs = header.split("Differs from the authors' code:")[1]
    for item in (
        "lr decay",
        "flips are sampled",
        "DataParallel",
        "crowd",
        "ROIAlign",
        "RoI sampling",
        "RPN",
        "backbone",
        "SyncBN" if syncbn else "FrozenBN",
        "COCOEvaluator",
        "val2017",
        "image scale",
    ):
        assert item in differs, (name, item)
    assert cfg.TRANSFER.RECIPE == "jwyang"


def test_paper_c4_head_pools_7x7_into_res5():
    """The paper config's box head: unaligned RoIAlign to 7x7 on res4 (stride 16), res5
    (stride 2) makes each RoI 2048 x 4 x 4, averaged into the box predictor."""
    cfg = _cfg("faster_rcnn_R_50_C4_paper.yaml")
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg).eval()
    heads = model.roi_heads
    pooler = heads.pooler.level_poolers[0]
    assert (
        tuple(pooler.output_size) == (7, 7)
        and pooler.aligned is False
        and pooler.sampling_ratio == 0
    )
    assert heads.pooler.level_poolers[0].spatial_scale == 1 / 16
    from detectron2.structures import Boxes

    res4 = torch.randn(1, 1024, 38, 50)  # 600 x 800 input
    boxes = [Boxes(torch.tensor([[0.0, 0.0, 64.0, 64.0], [100.0, 50.0, 500.0, 590.0]]))]
    with torch.no_grad():
        x = heads._shared_roi_transform([res4], boxes)
    assert tuple(x.shape) == (2, 2048, 4, 4)
    assert model.proposal_generator.rpn_head.conv.out_channels == 512
    assert model.proposal_generator.anchor_generator.num_cell_anchors == [12]


@pytest.mark.parametrize("opts, recipe", [((), "jwyang"), (("TRANSFER.RECIPE", "mine"), "mine")])
def test_recipe_is_the_config_key(opts, recipe, tmp_path):
    """train_det.py's setup: TRANSFER.RECIPE as the config's _BASE_ chain sets it unless the
    command line does; the dumped config.yaml carries it, and loads back with
    add_transfer_config."""
    train_det = load_tool("train_det")
    args = train_det.default_argument_parser().parse_args(
        [
            "--config-file",
            os.path.join(DET_CONFIGS, "faster_rcnn_R_50_C4_paper.yaml"),
            "MODEL.DEVICE",
            "cpu",
            "OUTPUT_DIR",
            str(tmp_path),
            *opts,
        ]
    )
    cfg = train_det.setup(args)
    assert cfg.TRANSFER.RECIPE == recipe
    again = get_cfg()
    add_transfer_config(again)
    again.merge_from_file(str(tmp_path / "config.yaml"))
    assert again.TRANSFER.RECIPE == recipe and transfer_recipe(again) == recipe
    assert transfer_recipe(get_cfg()) == "unknown"  # no TRANSFER keys at all


def test_recipe_header_comment_is_not_read(tmp_path):
    """A config without the key is "unknown", whatever its header comment says."""
    config = tmp_path / "no_recipe.yaml"
    config.write_text(
        "# Recipe: jwyang/faster-rcnn.pytorch as used by the paper\nMODEL:\n  DEVICE: cpu\n"
    )
    train_det = load_tool("train_det")
    args = train_det.default_argument_parser().parse_args(
        ["--config-file", str(config), "OUTPUT_DIR", str(tmp_path / "run")]
    )
    cfg = train_det.setup(args)
    assert cfg.TRANSFER.RECIPE == "" and transfer_recipe(cfg) == "unknown"


def test_paper_config_shrunk_trains_and_evaluates(coco, classifier, tmp_path):
    """The paper config run for real through tools/train_det.py: 2 iterations on tiny COCO
    data, R18 from a train_cls.py checkpoint (ResNetRes5ROIHeads builds its BasicBlock res5),
    everything else the recipe's own (7x7 RoIAlign, 128 RoIs, anchors 64-512 with boundary
    pruning, RPN 512 conv, no warm-up, lr 0.01, test NMS 0.3); transfer_metrics.json says jwyang."""
    train, val = coco
    weights, _ = classifier
    out = tmp_path / "run"
    train_det = load_tool("train_det")
    args = train_det.default_argument_parser().parse_args(
        [
            "--config-file",
            os.path.join(DET_CONFIGS, "faster_rcnn_R_50_C4_paper.yaml"),
            "MODEL.WEIGHTS",
            weights,
            "MODEL.DEVICE",
            "cpu",
            "MODEL.RESNETS.DEPTH",
            "18",
            "MODEL.RESNETS.RES2_OUT_CHANNELS",
            "64",
            "MODEL.ROI_HEADS.NAME",
            "ResNetRes5ROIHeads",
            "MODEL.ROI_HEADS.NUM_CLASSES",
            "3",
            "DATASETS.TRAIN",
            f"('{train}',)",
            "DATASETS.TEST",
            f"('{val}',)",
            *tiny_det_opts(128, 213, small_heads=False),  # the paper config's own heads
            "SEED",
            "1",
            # an 8-iteration classifier's BN statistics do not fit 128 px images (see det_cfg):
            # clipped steps
            "SOLVER.CLIP_GRADIENTS.ENABLED",
            "True",
            "SOLVER.CLIP_GRADIENTS.CLIP_TYPE",
            "norm",
            "SOLVER.CLIP_GRADIENTS.CLIP_VALUE",
            "1.0",
            "OUTPUT_DIR",
            str(out),
        ]
    )
    train_det.main(args)
    record = json.loads((out / METRICS_FILE).read_text())
    assert record["recipe"] == "jwyang" and record["architecture"] == "GeneralizedRCNN R18-C4"
    assert record["iteration"] == 2 and record["weights"] == weights
    bbox = record["results"]["bbox"]
    assert (
        set(COCO_METRICS) <= set(bbox)
        and isinstance(bbox["AP"], float)
        and isinstance(bbox["AR100"], float)
    )
    logged = get_cfg()
    add_transfer_config(logged)
    logged.merge_from_file(str(out / "config.yaml"))  # what the run used
    assert (
        logged.TRANSFER.RECIPE == "jwyang"
        and logged.SOLVER.WARMUP_ITERS == 0
        and logged.SOLVER.BASE_LR == 0.01
    )
    for key in (
        "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION",
        "MODEL.ROI_BOX_HEAD.POOLER_TYPE",
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
        "MODEL.ANCHOR_GENERATOR.SIZES",
        "MODEL.RPN.BOUNDARY_THRESH",
        "MODEL.ROI_HEADS.NMS_THRESH_TEST",
    ):
        assert _key(logged, key) == JWYANG[key], key
    with open(out / "inference" / val / "coco_instances_results.json") as f:
        assert json.load(f)  # it detected something to evaluate


def _cfg(rel):
    """A detection config as tools/train_det.py loads it: get_cfg() + add_transfer_config."""
    cfg = get_cfg()
    add_transfer_config(cfg)
    cfg.merge_from_file(os.path.join(DET_CONFIGS, rel))
    return cfg


CONFIGS = sorted(
    os.path.relpath(os.path.join(d, f), DET_CONFIGS)
    for d, _, files in os.walk(DET_CONFIGS)
    for f in files
    if f.endswith(".yaml")
)


@pytest.mark.parametrize("rel", CONFIGS)
def test_detection_configs(rel):
    """Every config loads with get_cfg() + add_transfer_config (as tools/train_det.py does) and
    sets TRANSFER.RECIPE in the file that defines the recipe (a Base file for the children that
    share it, the demos their own), in the classifiers' torchvision convention, with a header
    naming what it serves."""
    with open(os.path.join(DET_CONFIGS, rel)) as f:
        assert f.readline().startswith("#")
    cfg = _cfg(rel)
    assert cfg.INPUT.FORMAT == "RGB" and not cfg.MODEL.RESNETS.STRIDE_IN_1X1
    assert list(cfg.MODEL.PIXEL_MEAN) == [123.675, 116.28, 103.53]
    assert list(cfg.MODEL.PIXEL_STD) == [58.395, 57.12, 57.375]
    assert cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN" and not cfg.MODEL.MASK_ON
    name = os.path.basename(rel)
    if "syncbn" in name:
        assert (
            cfg.MODEL.RESNETS.NORM == "SyncBN"
            and cfg.MODEL.BACKBONE.FREEZE_AT == 0
            and cfg.TEST.PRECISE_BN.ENABLED
        )
    elif not name.startswith("Base-"):
        assert cfg.MODEL.RESNETS.NORM == "FrozenBN" and cfg.MODEL.BACKBONE.FREEZE_AT == 2
    if "R_101" in name:
        assert cfg.MODEL.RESNETS.DEPTH == 101 and "r101" in cfg.MODEL.WEIGHTS
    header = "".join(line for line in open(os.path.join(DET_CONFIGS, rel)) if line.startswith("#"))
    recipe = cfg.TRANSFER.RECIPE
    assert recipe in ("jwyang", "detectron2", "demo")
    with open(os.path.join(DET_CONFIGS, rel)) as f:
        own = yaml.safe_load(f)  # the keys this file itself sets, its _BASE_ aside
    assert ("TRANSFER" in own) == (name.startswith("Base-") or "demo" in rel), rel
    if name.endswith("_1x.yaml") or name.endswith("_1x_syncbn.yaml"):
        s = cfg.SOLVER
        assert (s.IMS_PER_BATCH, s.BASE_LR, s.MAX_ITER, tuple(s.STEPS)) == (
            16,
            0.02,
            90000,
            (60000, 80000),
        )
        assert "Recipe: detectron2's 1x (not the paper's)" in header and recipe == "detectron2"
        assert "Tables 4 and 7" in header or "No paper row" in header
    if "paper" in name:
        assert recipe == "jwyang" and "Differs from the authors' code:" in header
        assert "Table 4" in header or "No paper row" in header
        assert (
            cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeads"
        )  # d2's own: ResNetRes5ROIHeads is the same at R50/R101
    if "demo" in rel:
        assert cfg.MODEL.RESNETS.DEPTH == 18 and cfg.MODEL.DEVICE == "cpu"
        assert cfg.MODEL.WEIGHTS.startswith("output/demo/") and recipe == "demo"


def test_roi_heads_num_classes_checked_at_start_up(coco, classifier, tmp_path):
    """Too few classes would die mid-training in torch (IndexError: Target 7 is out of
    bounds); the trainer stops before that, naming the key and the dataset's count."""
    from detectron2.data import MetadataCatalog

    train, val = coco
    weights, _ = classifier
    cfg = det_cfg(
        "C4", weights, train, val, str(tmp_path / "det"), "MODEL.ROI_HEADS.NUM_CLASSES", 2
    )
    with pytest.raises(
        ValueError, match=r"MODEL\.ROI_HEADS\.NUM_CLASSES = 2: dataset .* has 3 classes"
    ):
        DetectionTrainer(cfg)
    assert len(MetadataCatalog.get(train).thing_classes) == 3


class _RaiseAfterTheFirstStep(HookBase):
    def after_step(self):
        raise RuntimeError("stop here")


def test_a_step_that_raises_ends_the_loader_workers(coco, classifier, tmp_path):
    """A detection run whose step raises leaves no loader worker behind, the trainer still
    referenced (the traceback holds it): ComposedTrainer.train closes the training batches."""
    train, val = coco
    weights, _ = classifier
    out = str(tmp_path / "det")
    cfg = det_cfg("FPN", weights, train, val, out, "DATALOADER.NUM_WORKERS", 2)
    before = set(multiprocessing.active_children())
    trainer = DetectionTrainer(cfg)
    trainer.register_hooks([_RaiseAfterTheFirstStep()])
    trainer.resume_or_load(resume=False)
    with pytest.raises(RuntimeError, match="stop here"):
        trainer.train()
    assert set(multiprocessing.active_children()) <= before
