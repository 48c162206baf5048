"""Class activation maps on a hand-built model with a known answer; the CAM and evaluation
tools (tools/visualize_cam.py, tools/eval_cls.py) and the evaluator's reliability
diagrams on a small trained model."""

import json
import logging
import math
import os

import numpy as np
import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone
from PIL import Image
from scipy.special import xlogy
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torch.nn import functional as F

from als_d2.evaluation.cam import cam_grid, cams_from_features, class_activation_maps, overlay_cam
from als_d2.modeling.classifier import ImageClassifier
from tiny_data import load_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ hand-built model
class PoolBackbone(Backbone):
    """res5 = the image's first C channels average-pooled by 8: a patch of value v over
    one 8x8 cell of channel c is a feature map with v at that cell and 0 elsewhere."""

    def __init__(self, channels=3):
        super().__init__()
        self._c = channels

    def forward(self, x):
        return {"res5": F.avg_pool2d(x[:, : self._c], 8)}

    def output_shape(self):
        return {"res5": ShapeSpec(channels=self._c, stride=8)}


def hand_model(weight):
    model = ImageClassifier(
        backbone=PoolBackbone(),
        in_feature="res5",
        num_classes=len(weight),
        pixel_mean=[0.0, 0.0, 0.0],
        pixel_std=[1.0, 1.0, 1.0],
        target_builder=None,
    )
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        model.head.bias.zero_()
    return model


def patch_image(patches, size=32):
    """uint8 3 x size x size; patches: (channel, cell_row, cell_col, value)."""
    img = torch.zeros(3, size, size, dtype=torch.uint8)
    for c, r, q, v in patches:
        img[c, 8 * r : 8 * r + 8, 8 * q : 8 * q + 8] = v
    return {"image": img}


def test_cam_of_one_active_cell():
    model = hand_model([[1, 0, 0], [0, 1, 0], [0, -1, 0]])
    model.train()
    out = class_activation_maps(model, [patch_image([(1, 1, 2, 200)])])
    assert model.training  # mode restored
    assert out["class_ids"].tolist() == [1] and out["cams"].shape == (1, 32, 32)
    cam = out["cams"][0]
    # bilinear (align_corners=False) upsampling by 8 of a one-hot cell (1, 2): the output
    # pixel i samples the map at (i + 0.5) / 8 - 0.5, so the cell reaches rows 4..19 and
    # columns 12..27, and peaks (=1 after normalisation) on the 4 centre pixels
    support = torch.zeros(32, 32, dtype=torch.bool)
    support[4:20, 12:28] = True
    assert torch.equal(cam > 0, support)
    assert torch.allclose(cam[11:13, 19:21], torch.ones(2, 2))
    assert cam.max() == 1.0 and (cam[support] < 1).sum() == support.sum() - 4
    # a class with no evidence (0 weight on every active channel), or only negative
    # evidence (removed by the ReLU): an all-zero map
    for c in (0, 2):
        assert torch.equal(
            class_activation_maps(model, [patch_image([(1, 1, 2, 200)])], [c])["cams"][0],
            torch.zeros(32, 32),
        )


def test_cam_weights_features_per_image():
    model = hand_model([[1, 0.5, 0], [0, 0, 1]])
    batch = [patch_image([(0, 0, 0, 100), (1, 3, 3, 100)]), patch_image([(2, 2, 1, 50)])]
    out = class_activation_maps(model, batch)
    assert out["class_ids"].tolist() == [0, 1]
    a, b = out["cams"]
    # image 1: class 0 sees channel 0 at cell (0, 0) with weight 1 and channel 1 at cell
    # (3, 3) with weight 0.5; border pixels sample the cell itself
    assert a[0, 0] == pytest.approx(1.0) and a[31, 31] == pytest.approx(0.5)
    assert a[0:4, 0:4].min() == pytest.approx(1.0) and a[28:, 28:].max() == pytest.approx(0.5)
    # image 2 is normalised on its own: its single cell peaks at 1
    assert b.max() == pytest.approx(1.0)
    peak = (b == b.max()).nonzero()  # the centre pixels of cell (2, 1)
    assert peak.tolist() == [[19, 11], [19, 12], [20, 11], [20, 12]]
    # the probabilities are the model's
    model.eval()
    with torch.no_grad():
        expected = torch.stack([o["probs"] for o in model(batch)])
    torch.testing.assert_close(out["probs"], expected)


def test_cams_from_features_and_overlay():
    feats = torch.zeros(1, 2, 2, 2)
    feats[0, 0, 0, 1] = 3.0
    cam = cams_from_features(feats, torch.tensor([[2.0, 0.0]]), torch.tensor([0]), (2, 2))
    assert torch.equal(
        cam[0], torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    )  # same size: no interpolation
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    assert np.array_equal(overlay_cam(image, cam[0].numpy(), alpha=0.0), image)
    over = overlay_cam(image, cam[0].numpy(), alpha=1.0)
    assert (
        over.dtype == np.uint8 and over[0, 1, 0] > over[0, 1, 2] and over[0, 0, 2] > over[0, 0, 0]
    )  # jet: red hot, blue cold
    grid = cam_grid([image, image], ["a", "b"], [("m", [over, over], ["x", "y"])])
    assert grid.ndim == 3 and grid.shape[2] == 3 and grid.dtype == np.uint8


# ------------------------------------------------------------------ small trained model
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A ResNet-18 trained 32 iterations on the tiny dataset: checkpoints at 16 and 32,
    a context-only copy of the dataset (every object painted), a config file."""
    from detectron2.data import DatasetCatalog
    from tiny_data import register_dicts, write_color_objects
    from test_train_cls import small_cfg

    from als_d2.engine import ClassificationTrainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before conftest's per-test single-thread fixture
    root = tmp_path_factory.mktemp("cam")
    dicts = write_color_objects(str(root / "data"))
    name = f"tiny_cam_{os.getpid()}"
    if name not in DatasetCatalog.list():
        register_dicts(name, dicts, 4)
        register_dicts(name + "_context", [dict(d, paint_all_objects=True) for d in dicts], 4)
    cfg = small_cfg(
        name,
        str(root / "train"),
        "SOLVER.MAX_ITER",
        32,
        "SOLVER.BASE_LR",
        0.02,
        "SOLVER.CHECKPOINT_PERIOD",
        16,
        "TEST.IMS_PER_BATCH",
        8,
    )
    trainer = ClassificationTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    torch.set_num_threads(threads)
    config_file = str(root / "config.yaml")
    with open(config_file, "w") as f:
        f.write(cfg.dump())
    checkpoints = [
        str(root / "train" / "model_0000015.pth"),
        str(root / "train" / "model_final.pth"),
    ]
    assert all(os.path.exists(p) for p in checkpoints)
    return {
        "cfg": cfg,
        "name": name,
        "config_file": config_file,
        "checkpoints": checkpoints,
        "root": root,
    }


def _png(path):
    with Image.open(path) as im:
        assert im.mode == "RGB"
        return im.size


def test_trainer_test_writes_reliability_diagrams(trained):
    from als_d2.engine import ClassificationTrainer
    from detectron2.checkpoint import DetectionCheckpointer

    cfg = trained["cfg"]
    model = ClassificationTrainer.build_model(cfg)
    DetectionCheckpointer(model).load(trained["checkpoints"][1])
    res = ClassificationTrainer.test(cfg, model)["classification"]
    folder = os.path.join(cfg.OUTPUT_DIR, "inference", trained["name"])
    for png in ("reliability_diagram", "reliability_diagram_ts", "confidence_vs_objectness"):
        w, h = _png(os.path.join(folder, f"{png}.png"))
        assert w > 300 and h > 300
    with open(os.path.join(folder, "calibration.json")) as f:
        report = json.load(f)
    assert report["metrics"]["num_samples"] == res["num_samples"] == 24
    assert 0 < res["mean_objectness"] < 1 and res["objectness_samples"] == 24
    # the figures name the run (train_cls --eval-only and end-of-training evaluations too)
    run = os.path.basename(cfg.OUTPUT_DIR)
    titles = report["figure_titles"].values()
    assert titles and all(t.startswith(f"{run} on {trained['name']}") for t in titles), titles


def test_visualize_cam_tool(trained):
    tool = load_tool("visualize_cam")
    out = str(trained["root"] / "cams")
    args = tool.get_parser().parse_args(
        [
            "--config-file",
            trained["config_file"],
            "--checkpoints",
            *trained["checkpoints"],
            "--names",
            "iter16",
            "final",
            "--dataset",
            trained["name"],
            "--num-images",
            "4",
            "--scatter-samples",
            "16",
            "--output",
            out,
            "INPUT.CLS.TEST_RESIZE",
            "128",
            "INPUT.CLS.CROP_SIZE",
            "128",
        ]  # res5 4x4 (at 32 px it is 1x1)
    )
    written = tool.main(args)
    w, h = _png(written["cam_grid"])
    assert w > h * 0.6 and w >= 3 * 150 and h >= 4 * 150  # 3 columns (input + 2 models), 4 rows
    w, h = _png(written["scatter"])
    assert w > 1.5 * h  # two panels side by side


def test_cams_of_the_trained_model_cover_the_objects(trained):
    """At 128 px (res5 4 x 4) the true class's CAM is higher on the boxes than off them."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.data import DatasetCatalog

    from als_d2.data.mapper import ClassificationDatasetMapper
    from als_d2.engine import ClassificationTrainer

    cfg = trained["cfg"].clone()
    cfg.defrost()
    cfg.INPUT.CLS.TEST_RESIZE = cfg.INPUT.CLS.CROP_SIZE = 128
    mapper = ClassificationDatasetMapper(cfg, is_train=False)
    batch = [mapper(d) for d in DatasetCatalog.get(trained["name"])]
    model = ClassificationTrainer.build_model(cfg)
    DetectionCheckpointer(model).load(trained["checkpoints"][1])
    cams = class_activation_maps(model, batch, [x["label"] for x in batch])["cams"]
    assert cams.shape == (24, 128, 128) and cams.min() >= 0 and cams.max() == 1
    on, off = [], []
    for x, cam in zip(batch, cams):
        mask = torch.zeros(128, 128, dtype=torch.bool)
        for x0, y0, x1, y1 in x["boxes"].round().long().tolist():
            mask[y0:y1, x0:x1] = True
        on.append(cam[mask].mean())
        off.append(cam[~mask].mean())
    assert torch.stack(on).mean() > torch.stack(off).mean()  # ~0.43 vs ~0.21 here


def test_eval_cls_tool(trained, capsys):
    tool = load_tool("eval_cls")
    out = str(trained["root"] / "eval")
    name, ctx = trained["name"], trained["name"] + "_context"
    args = tool.get_parser().parse_args(
        [
            "--config-file",
            trained["config_file"],
            "--checkpoints",
            *trained["checkpoints"],
            "--datasets",
            name,
            ctx,
            "--output",
            out,
            "TEST.IMS_PER_BATCH",
            "5",
        ]
    )
    results = tool.main(args)
    # labelled by run (the folder): model_final.pth is the run's, a periodic file <run>_<stem>
    stems = ["train_model_0000015", "train"]
    assert sorted(results) == sorted((s, d) for s in stems for d in (name, ctx))
    for (stem, dataset), metrics in results.items():
        folder = os.path.join(out, stem, dataset)
        with open(os.path.join(folder, "results.json")) as f:
            saved = json.load(f)
        assert saved["dataset"] == dataset and saved["metrics"]["acc"] == metrics["acc"]
        with open(os.path.join(folder, "calibration.json")) as f:
            titles = json.load(f)["figure_titles"]
        # every figure names the model and the set
        assert titles and all(t.startswith(f"{stem} on {dataset}") for t in titles.values())
        _png(os.path.join(folder, "reliability_diagram.png"))
    # context-only images: every object painted out, objectness 0 for every sample
    assert results[("train", ctx)]["mean_objectness"] == 0.0
    assert results[("train", ctx)]["objectness_deviation"] == pytest.approx(
        results[("train", ctx)]["avg_conf"]
    )
    printed = capsys.readouterr().out
    assert (
        "Table 1" in printed
        and "Table 2" in printed
        and "Temperature scaling (not a paper table)" in printed
    )
    assert "Table 3" not in printed  # the paper's Table 3 is the ResNet-101 one
    assert (
        "| ECE(15) pycalib | ECE(100) pycalib | MCE(15) pycalib |" in printed
        and "| ECE(15) Guo |" in printed
    )
    assert "Wenger et al. 2020" in printed and "Guo et al. 2017" in printed
    table1 = printed.split("Table 1")[1].split("Table 2")[0]
    assert ctx in table1 and f"| {name} |" not in table1
    with open(os.path.join(out, "tables.md")) as f:
        md = f.read()
    assert "| Checkpoint | Val | ACC | O.conf | U.conf | A.conf |" in md
    # the paper's estimator is computed (K from the logits) and printed in Table 2
    assert all(math.isfinite(m["paper_ece_15"]) for (_, d), m in results.items() if d == name)
    # threshold metrics (issue 25) against scikit-learn on the model's own outputs
    assert "Selective prediction by max softmax" in printed and "context-only versions" in md
    _png(os.path.join(out, "threshold_curves.png"))
    outputs = _probabilities_by_image(trained, trained["checkpoints"][1], (name, ctx))
    common = sorted(set(outputs[name]) & set(outputs[ctx]))
    p_in = np.stack([outputs[name][k][0] for k in common])
    p_out = np.stack([outputs[ctx][k][0] for k in common])
    y = np.r_[np.ones(len(common)), np.zeros(len(common))]
    msp = np.r_[p_in.max(1), p_out.max(1)]
    got = results[("train", ctx)]
    assert got["ood_pairs"] == len(common) > 0
    assert got["ood_auroc_msp"] == pytest.approx(roc_auc_score(y, msp), abs=1e-5)
    assert got["ood_aupr_in_msp"] == pytest.approx(average_precision_score(y, msp), abs=1e-5)
    fpr, tpr, _ = roc_curve(y, msp)
    assert got["ood_fpr95_msp"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-5)
    ent = np.r_[xlogy(p_in, p_in).sum(1), xlogy(p_out, p_out).sum(1)]  # 0 ln 0 = 0
    assert got["ood_auroc_entropy"] == pytest.approx(roc_auc_score(y, ent), abs=1e-5)
    # selective prediction of the val set: risk at every confidence threshold (equal
    # confidences accepted together), integrated step-wise over coverage
    probs = np.stack([v[0] for v in outputs[name].values()])
    labels = np.array([v[1] for v in outputs[name].values()])
    conf, wrong = probs.max(1), probs.argmax(1) != labels
    aurc, covered = 0.0, 0.0
    for t in sorted(set(conf), reverse=True):
        accepted = conf >= t
        aurc += (accepted.mean() - covered) * wrong[accepted].mean()
        covered = accepted.mean()
    assert results[("train", name)]["aurc"] == pytest.approx(aurc, abs=1e-4)
    # confidence by objectness decile: the first group is the 10% least covered images
    objectness = np.array([v[2] for v in outputs[name].values()])
    first = np.argsort(objectness, kind="stable")[: -(-len(objectness) // 10)]
    decile = results[("train", name)]["objectness_deciles"][0]
    assert decile["count"] == len(first)
    assert decile["mean_confidence"] == pytest.approx(conf[first].mean(), abs=1e-6)
    assert decile["mean_objectness"] == pytest.approx(objectness[first].mean(), abs=1e-6)
    assert "Confidence by objectness decile" in md


def _probabilities_by_image(trained, checkpoint, datasets):
    """{dataset: {image_id: (softmax row, label, objectness)}} of ``checkpoint``, computed
    here (every image of the tiny set has boxes)."""
    from als_d2.checkpoint.evaluation import EvaluationCheckpointer
    from als_d2.engine import ClassificationTrainer

    cfg = trained["cfg"].clone()
    cfg.defrost()
    cfg.TEST.IMS_PER_BATCH = 5  # eval_cls's batches: the same floats (tied confidences stay tied)
    model = ClassificationTrainer.build_model(cfg)
    EvaluationCheckpointer(model).load(checkpoint)
    model.eval()
    out = {}
    with torch.no_grad():
        for dataset in datasets:
            rows = out[dataset] = {}
            for batch in ClassificationTrainer.build_test_loader(cfg, dataset):
                for x, o in zip(batch, model(batch)):
                    logits = o["logits"].double()
                    probs = torch.softmax(logits, 0).numpy()
                    rows[str(x["image_id"])] = (probs, x["label"], x["objectness"])
    return out


# ------------------------------------------------------------------ strict checkpoint loading
def _edited_checkpoint(trained, tmp_path, edit, name="edited.pth"):
    """model_final.pth with its model dict changed by ``edit(state)``."""
    data = torch.load(trained["checkpoints"][1], map_location="cpu", weights_only=True)
    edit(data["model"])
    path = str(tmp_path / name)
    torch.save(data, path)
    return path


def _set_head(classes):
    def edit(state):
        state["head.weight"] = torch.zeros(classes, state["head.weight"].shape[1])
        state["head.bias"] = torch.zeros(classes)

    return edit


def _drop(prefix):
    def edit(state):
        for k in [k for k in state if k.startswith(prefix)]:
            del state[k]

    return edit


def _eval_args(tool, trained, checkpoint, out, *opts):
    return tool.get_parser().parse_args(
        [
            "--config-file",
            trained["config_file"],
            "--checkpoints",
            checkpoint,
            "--datasets",
            trained["name"],
            "--output",
            str(out),
            "TEST.IMS_PER_BATCH",
            "8",
            *opts,
        ]
    )


@pytest.mark.parametrize(
    "edit,expected",
    [
        (_set_head(3), r"head\.weight has 3 classes .*the config MODEL\.CLASSIFIER\.NUM_CLASSES 4"),
        (_drop("head."), r"no head\.weight / head\.bias .*MODEL\.CLASSIFIER\.NUM_CLASSES 4"),
        (_drop("res5.1."), r"model tensor\(s\) missing \(backbone\.res5\.1\.\*"),
    ],
)
def test_eval_cls_loads_checkpoints_strictly(trained, tmp_path, edit, expected):
    """A checkpoint whose head has another class count, or that lacks head or backbone
    tensors, stops eval_cls with an error naming the file (not a random layer)."""
    import re

    tool = load_tool("eval_cls")
    bad = _edited_checkpoint(trained, tmp_path, edit)
    with pytest.raises(SystemExit) as info:
        tool.main(_eval_args(tool, trained, bad, tmp_path / "eval"))
    message = str(info.value.code)
    assert message.startswith("error: ") and bad in message and "\n" not in message
    assert re.search(expected, message), message


def test_visualize_cam_loads_checkpoints_strictly(trained, tmp_path):
    tool = load_tool("visualize_cam")
    bad = _edited_checkpoint(trained, tmp_path, _set_head(3))
    args = tool.get_parser().parse_args(
        [
            "--config-file",
            trained["config_file"],
            "--checkpoints",
            trained["checkpoints"][1],
            bad,
            "--dataset",
            trained["name"],
            "--num-images",
            "2",
            "--scatter-samples",
            "0",
            "--output",
            str(tmp_path / "cams"),
        ]
    )
    with pytest.raises(
        SystemExit, match=r"head\.weight has 3 classes.*MODEL\.CLASSIFIER\.NUM_CLASSES 4"
    ):
        tool.main(args)
    assert not os.path.exists(tmp_path / "cams")
    # the checkpointer itself (also when the model is built with the file's wrong count)
    from als_d2.checkpoint import CheckpointMismatchError, EvaluationCheckpointer
    from als_d2.engine import ClassificationTrainer

    model = ClassificationTrainer.build_model(trained["cfg"])
    with pytest.raises(CheckpointMismatchError, match=r"edited\.pth: head\.weight has 3 classes"):
        EvaluationCheckpointer(model).load(bad)


def test_eval_cls_checks_dataset_classes_and_missing_files(trained, tmp_path):
    tool = load_tool("eval_cls")
    # the config's class count against the evaluated dataset's (4 classes in its metadata)
    with pytest.raises(SystemExit, match=r"MODEL\.CLASSIFIER\.NUM_CLASSES = 5.*has 4 classes"):
        tool.main(
            _eval_args(
                tool,
                trained,
                trained["checkpoints"][1],
                tmp_path / "eval",
                "MODEL.CLASSIFIER.NUM_CLASSES",
                "5",
            )
        )
    # a checkpoint that does not exist: one line, before the config is read or a model built
    missing = str(tmp_path / "no_such_run" / "model_final.pth")
    with pytest.raises(SystemExit) as info:
        tool.main(_eval_args(tool, trained, missing, tmp_path / "eval2"))
    assert str(info.value.code) == f"error: checkpoint not found: {missing}"
    assert not os.path.exists(tmp_path / "eval2")
    cam = load_tool("visualize_cam")
    with pytest.raises(SystemExit, match="checkpoint not found"):
        cam.main(
            cam.get_parser().parse_args(
                [
                    "--config-file",
                    trained["config_file"],
                    "--checkpoints",
                    missing,
                    "--output",
                    str(tmp_path / "cams"),
                ]
            )
        )


def test_eval_cls_leaves_the_training_run_files_alone(trained, tmp_path):
    """eval_cls writes its config.yaml / log.txt into its own folder (OUTPUT_DIR/eval by
    default), never over the training run's."""
    tool = load_tool("eval_cls")
    run = tmp_path / "run"
    run.mkdir()
    sentinels = {
        "config.yaml": "# the training run's config\n",
        "log.txt": "the training run's log\n",
    }
    for f, text in sentinels.items():
        (run / f).write_text(text)
    config_file = tmp_path / "config.yaml"
    cfg = trained["cfg"].clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = str(run)
    config_file.write_text(cfg.dump())

    def eval_args(*more):
        """eval_cls's arguments: that config, the trained model_final, the tiny dataset."""
        return tool.get_parser().parse_args(
            ["--config-file", str(config_file), "--checkpoints", trained["checkpoints"][1]]
            + ["--datasets", trained["name"], *more]
        )

    results = tool.main(eval_args("TEST.IMS_PER_BATCH", "8"))
    assert ("train", trained["name"]) in results  # the run's name, not "model_final"
    for f, text in sentinels.items():
        assert (run / f).read_text() == text
    assert (run / "eval" / "config.yaml").exists() and (run / "eval" / "tables.md").exists()
    # an --output that holds a training run is refused
    (run / "last_checkpoint").write_text("model_final.pth")
    with pytest.raises(SystemExit, match="holds a training run"):
        tool.main(eval_args("--output", str(run)))
    for f, text in sentinels.items():
        assert (run / f).read_text() == text


@pytest.mark.parametrize("tool_name", ["train_cls", "train_det"])
def test_eval_only_with_missing_model_weights_is_one_line(tmp_path, monkeypatch, tool_name):
    """train_cls/train_det --eval-only: a MODEL.WEIGHTS that does not exist is reported
    before any model is built."""
    from detectron2.config import get_cfg

    tool = load_tool(tool_name)
    trainer_cls = getattr(tool, "ClassificationTrainer", None) or tool.DetectionTrainer

    def no_build(cfg):
        raise AssertionError("a model was built")

    monkeypatch.setattr(trainer_cls, "build_model", staticmethod(no_build))
    cfg = get_cfg()
    cfg.MODEL.WEIGHTS = str(tmp_path / "missing.pth")
    monkeypatch.setattr(tool, "setup", lambda args: cfg)
    args = tool.default_argument_parser().parse_args(["--eval-only"])
    with pytest.raises(SystemExit) as info:
        tool.main(args)
    assert str(info.value.code) == f"error: MODEL.WEIGHTS not found: {cfg.MODEL.WEIGHTS}"


def test_eval_only_loads_as_strictly_as_eval_cls(trained, tmp_path):
    """train_cls.py --eval-only (evaluate_weights) with R18 weights and MODEL.RESNETS.DEPTH 34:
    one line naming the blocks R18 lacks, nothing evaluated (not R34 with random blocks)."""
    from als_d2.checkpoint import ClassifierCheckpointer
    from als_d2.engine import ClassificationTrainer
    from als_d2.engine.launch import evaluate_weights

    weights = trained["checkpoints"][1]
    cfg = trained["cfg"].clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = weights
    cfg.OUTPUT_DIR = str(tmp_path / "eval34")
    cfg.MODEL.RESNETS.DEPTH = 34
    cfg.freeze()
    with pytest.raises(SystemExit) as info:
        evaluate_weights(cfg, ClassificationTrainer, ClassifierCheckpointer)
    message = str(info.value.code)
    assert message.startswith("error: ") and "\n" not in message and weights in message
    # blocks per stage: R18 (2, 2, 2, 2), R34 (3, 4, 6, 3): the R34 blocks beyond R18's
    blocks = [(2, 2), (3, 2), (3, 3), (4, 2), (4, 3), (4, 4), (4, 5), (5, 2)]
    groups = ", ".join(f"backbone.res{s}.{b}.*" for s, b in blocks)
    assert f"model tensor(s) missing ({groups})" in message, message
    assert not os.path.exists(tmp_path / "eval34" / "inference")
    # the same file at its own depth evaluates (the evaluator's accuracy of 24 images)
    cfg.defrost()
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.freeze()
    res = evaluate_weights(cfg, ClassificationTrainer, ClassifierCheckpointer)
    assert res["classification"]["num_samples"] == 24


def test_cam_figures_use_the_evaluation_crop_and_say_when_the_map_is_1x1(trained, tmp_path):
    """draw_cam_figures (visualize_cam.py, the demo) at the config's own 32 px crop: the
    scatter's accuracy is the evaluator's on the same images, and the 1x1 res5 map (stride
    32) is a warning and a note; at 128 px (res5 4x4) there is none."""
    from detectron2.checkpoint import DetectionCheckpointer

    from als_d2.engine import ClassificationTrainer
    from als_d2.evaluation.cam import draw_cam_figures

    cfg = trained["cfg"]
    assert cfg.INPUT.CLS.CROP_SIZE == 32
    model = ClassificationTrainer.build_model(cfg)
    DetectionCheckpointer(model).load(trained["checkpoints"][1])
    evaluated = ClassificationTrainer.test(cfg, model)["classification"]
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Collect(logging.WARNING)
    cam_logger = logging.getLogger("als_d2.evaluation.cam")
    cam_logger.addHandler(handler)
    try:
        figures = draw_cam_figures(
            cfg, trained["checkpoints"][1:], ["final"], trained["name"], str(tmp_path / "a"),
            num_images=2, scatter_samples=1000,
        )  # fmt: skip
    finally:
        cam_logger.removeHandler(handler)
    correct = figures["scatter"][0]["correct"]
    assert len(correct) == evaluated["num_samples"] == 24
    assert correct.mean() == pytest.approx(evaluated["acc"], abs=1e-12)
    assert figures["feature_size"] == (1, 1) and "1x1 at a 32 px evaluation crop" in figures["note"]
    assert [r.getMessage() for r in records] == [f"CAMs on {trained['name']}: {figures['note']}"]
    big = cfg.clone()
    big.defrost()
    big.INPUT.CLS.CROP_SIZE = big.INPUT.CLS.TEST_RESIZE = 128
    figures = draw_cam_figures(
        big, trained["checkpoints"][1:], ["final"], trained["name"], str(tmp_path / "b"),
        num_images=2, scatter_samples=0,
    )  # fmt: skip
    assert figures["feature_size"] == (4, 4) and figures["note"] is None


def test_each_evaluated_set_loads_once(trained, tmp_path):
    """eval_cls.py with two checkpoints and draw_cam_figures with two: the dataset is
    loaded (its index messages logged) once per tool run, not once per checkpoint."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from als_d2.evaluation.cam import draw_cam_figures

    loads = []
    dicts = DatasetCatalog.get(trained["name"])
    name = f"counted_{os.getpid()}_{len(os.listdir(tmp_path))}"

    def load():
        loads.append(1)
        return [dict(d) for d in dicts]

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(thing_classes=[f"class{i}" for i in range(4)])
    tool = load_tool("eval_cls")
    args = _eval_args(tool, trained, trained["checkpoints"][0], tmp_path / "eval")
    args.checkpoints, args.datasets = list(trained["checkpoints"]), [name]
    results = tool.main(args)
    assert len(results) == 2 and len(loads) == 1
    loads.clear()
    draw_cam_figures(
        trained["cfg"], trained["checkpoints"], ["a", "b"], name, str(tmp_path / "cams"),
        num_images=2, scatter_samples=8,
    )  # fmt: skip
    assert len(loads) == 1
