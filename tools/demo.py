#!/usr/bin/env python
"""`make demo`: the paper's effect and the transfer step on the embedded default dataset.

1. Generates (cached) a small context-biased "ImageNet" in the real ILSVRC formats plus a
   COCO-format detection split (``als_d2.data.synthetic``), and reads it through the
   same registration code as real ImageNet.
2. Trains hard-label, LS and ALS classifiers (``configs/demo/*_r18.yaml``: a detectron2
   ResNet-18 at 64 px, CPU) with ClassificationTrainer.
3. Evaluates each on val and on context-only val (every object painted out), prints the
   paper's Table 1 (ACC, O.conf, U.conf, A.conf) and the calibration table side by side,
   and saves reliability diagrams and a CAM figure.
4. Fine-tunes small Faster R-CNNs from the hard and ALS backbones on the COCO-format
   split and prints their AP.

Writes ``<output>/results.json``: {"classification": {METHOD: {"val": METRICS,
"val_context": METRICS}}, "transfer": {METHOD: {"AP": ...}}}. detectron2's logs go to
``<output>/log.txt``; the console shows progress with ETA.
"""
import argparse
import contextlib
import importlib.util
import json
import logging
import math
import os
import sys
import time

import als_d2  # noqa: F401  (detectron2 bootstrap first)
import torch
from detectron2.config import get_cfg
from detectron2.engine import HookBase
from detectron2.evaluation import inference_on_dataset
from detectron2.utils.env import seed_all_rng

from als_d2.config import add_als_config
from als_d2.data.datasets.builtin import register_synthetic_imagenet
from als_d2.data.synthetic import DEFAULT_SIZES, QUICK_SIZES, generate_synthetic_imagenet
from als_d2.engine import ClassificationTrainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("hard", "ls", "als")
TRANSFER_METHODS = ("hard", "als")
PREFIX = "demo"  # registered names: demo_imagenet_*, demo_coco_*

# (epochs, batch) of the classifiers; (iterations) of the detectors
SCHEDULES = {"full": dict(epochs=20, batch=32, det_iters=150), "quick": dict(epochs=8, batch=16, det_iters=20)}

TABLE1 = (("ACC", "acc"), ("O.conf", "over_conf"), ("U.conf", "under_conf"), ("A.conf", "avg_conf"))
# ECE/MCE: "pycalib" = the paper's Table 2 estimator, "Guo" = the usual one (CAL_NOTE)
TABLE_CAL = (
    ("ACC", "acc"), ("ECE15 pycalib", "paper_ece_15"), ("ECE100 pycalib", "paper_ece_100"),
    ("MCE15 pycalib", "paper_mce_15"), ("ECE15 Guo", "ece_15"), ("ECE100 Guo", "ece_100"), ("MCE15 Guo", "mce_15"),
    ("NLL", "nll"), ("A.conf", "avg_conf"), ("Obj.dev", "objectness_deviation"),
)
CAL_NOTE = (
    "ECE/MCE with B bins: pycalib = Wenger et al. 2020 (the paper's Table 2), equal-width bins on [1/K, 1], "
    "accuracy vs the fixed reference linspace(1/K + 1/(2B), 1 - 1/(2B), B); Guo = Guo et al. 2017 "
    "(torchmetrics, netcal), equal-width bins on [0, 1], accuracy vs the bin's mean confidence."
)


class Progress:
    """Console progress with ETA for the whole demo (stages weighted by expected cost)."""

    def __init__(self, total_units: float):
        self.total, self.done, self.start = total_units, 0.0, time.perf_counter()

    def advance(self, units: float, message: str) -> None:
        self.done += units
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done > 0 else float("nan")
        print(f"[demo {elapsed:6.0f}s | ETA {eta:5.0f}s] {message}", flush=True)


class ProgressHook(HookBase):
    """Reports to ``Progress`` every ~10% of a training run."""

    def __init__(self, progress: Progress, label: str, units_per_iter: float):
        self.progress, self.label, self.units = progress, label, units_per_iter
        self._reported = 0

    def after_step(self):
        it, total = self.trainer.iter + 1, self.trainer.max_iter
        if it == total or it - self._reported >= max(1, total // 10):
            loss = self.trainer.storage.history("total_loss").latest()
            self.progress.advance((it - self._reported) * self.units, f"{self.label}: iter {it}/{total}, loss {loss:.3f}")
            self._reported = it


def quiet_detectron2_logs(path: str) -> None:
    """Send detectron2's and als_d2's INFO logs to a file instead of the console."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(name)s] %(message)s", "%m/%d %H:%M:%S"))
    for name in ("detectron2", "d2", "als_d2", "fvcore"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)  # DefaultTrainer then skips its console setup_logger()
        logger.addHandler(handler)
        logger.propagate = False


def classifier_cfg(method: str, output: str, schedule: dict):
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, "configs", "demo", f"{method}_r18.yaml"))
    num_classes = cfg.MODEL.CLASSIFIER.NUM_CLASSES  # overwritten below from the data
    cfg.merge_from_list(
        [
            "DATASETS.TRAIN", (f"{PREFIX}_imagenet_train_boxed",),
            "DATASETS.TEST", (f"{PREFIX}_imagenet_val",),
            "OUTPUT_DIR", os.path.join(output, f"{method}_r18"),
            "SOLVER.EPOCHS", schedule["epochs"],
            "SOLVER.STEPS_EPOCHS", (round(schedule["epochs"] * 0.7), round(schedule["epochs"] * 0.9)),
            "SOLVER.IMS_PER_BATCH", schedule["batch"],
            "SOLVER.CHECKPOINT_PERIOD_EPOCHS", float(schedule["epochs"]),
            "TEST.EVAL_PERIOD", 0,
            "MODEL.CLASSIFIER.NUM_CLASSES", schedule["num_classes"] or num_classes,
        ]
    )
    return cfg


def load_tool(name: str):
    """Import ``tools/<name>.py`` as a module (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"als_d2_tools_{name}", os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def markdown(rows, columns, title, note=None) -> str:
    lines = [f"**{title}**", "", "| Method | " + " | ".join(h for h, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for method, metrics in rows:
        lines.append(f"| {method} | " + " | ".join(fmt(metrics.get(k)) for _, k in columns) + " |")
    if note:
        lines += ["", note]
    return "\n".join(lines)


def train_and_evaluate(method, output, schedule, progress, units_per_iter):
    """Train one classifier; return its checkpoint and {"val": METRICS, "val_context": METRICS}."""
    cfg = classifier_cfg(method, output, schedule)
    seed_all_rng(cfg.SEED)
    trainer = ClassificationTrainer(cfg)
    trainer.register_hooks([ProgressHook(progress, f"train {method}", units_per_iter)])
    trainer.resume_or_load(resume=False)
    trainer.train()
    model = trainer.model
    model.eval()
    metrics = {}
    for key, dataset in (("val", f"{PREFIX}_imagenet_val"), ("val_context", f"{PREFIX}_imagenet_val_context")):
        folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset)
        evaluator = ClassificationTrainer.build_evaluator(trainer.cfg, dataset, output_folder=folder)
        result = inference_on_dataset(model, ClassificationTrainer.build_test_loader(trainer.cfg, dataset), evaluator)
        metrics[key] = dict(result["classification"])
        progress.advance(1.0, f"evaluated {method} on {key}: acc {metrics[key]['acc']:.3f}, avg conf {metrics[key]['avg_conf']:.3f}")
    return os.path.join(cfg.OUTPUT_DIR, "model_final.pth"), metrics, trainer.cfg


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="als-d2 demo on the embedded synthetic dataset")
    parser.add_argument("--quick", action="store_true", help="smaller data and schedules (same outputs)")
    parser.add_argument("--output", default=None, help="default: output/demo (output/demo-quick with --quick)")
    parser.add_argument("--data-root", default=None, help="default: $DETECTRON2_DATASETS/synthetic_imagenet[_quick]")
    parser.add_argument("--skip-transfer", action="store_true", help="classification only")
    args = parser.parse_args(argv)

    mode = "quick" if args.quick else "full"
    schedule = dict(SCHEDULES[mode])
    sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    schedule["num_classes"] = sizes["num_classes"]
    output = args.output or os.path.join(REPO, "output", "demo-quick" if args.quick else "demo")
    data_root = args.data_root or os.path.join(
        os.path.expanduser(os.getenv("DETECTRON2_DATASETS", os.path.join(REPO, "datasets"))),
        "synthetic_imagenet_quick" if args.quick else "synthetic_imagenet",
    )
    os.makedirs(output, exist_ok=True)
    quiet_detectron2_logs(os.path.join(output, "log.txt"))
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    summary = generate_synthetic_imagenet(data_root, **sizes)
    register_synthetic_imagenet(data_root, prefix=PREFIX)
    boxed = summary.get("train_boxed", None) or round(sizes["train_per_class"] * sizes["num_classes"] * 0.6)
    iters = max(1, round(schedule["epochs"] * boxed / schedule["batch"]))
    # progress units: 1 per classifier iteration, 1 per evaluation, 3 per detector iteration
    det_units = 0 if args.skip_transfer else 3 * schedule["det_iters"] * len(TRANSFER_METHODS)
    progress = Progress(len(METHODS) * (iters + 2) + det_units + 2)
    progress.advance(1.0, f"data: {data_root} ({'cached' if summary.get('cached') else 'generated'})")

    results = {"classification": {}, "transfer": {}, "mode": mode}
    checkpoints, cfgs = {}, {}
    for method in METHODS:
        checkpoints[method], results["classification"][method], cfgs[method] = train_and_evaluate(
            method, output, schedule, progress, 1.0
        )

    val = [(m, results["classification"][m]["val"]) for m in METHODS]
    ctx = [(m, results["classification"][m]["val_context"]) for m in METHODS]
    tables = [
        markdown(ctx, TABLE1, "Table 1: context-only val (every object painted with the pixel mean)"),
        markdown(val, TABLE_CAL, "Calibration on val", CAL_NOTE),
    ]
    hard_conf = results["classification"]["hard"]["val_context"]["avg_conf"]
    als_conf = results["classification"]["als"]["val_context"]["avg_conf"]
    results["context_conf_ratio_hard_over_als"] = hard_conf / als_conf
    tables.append(
        f"Context-only average confidence, hard / ALS = {hard_conf:.3f} / {als_conf:.3f} = "
        f"{hard_conf / als_conf:.2f}x (uniform confidence would be {1 / schedule['num_classes']:.3f})"
    )

    cam_tool = load_tool("visualize_cam")
    figures = cam_tool.main(
        cam_tool.get_parser().parse_args(
            ["--config-file", os.path.join(REPO, "configs", "demo", "hard_r18.yaml"),
             "--checkpoints", *[checkpoints[m] for m in METHODS], "--names", *METHODS,
             "--dataset", f"{PREFIX}_imagenet_val", "--num-images", "6", "--output", os.path.join(output, "figures"),
             "MODEL.CLASSIFIER.NUM_CLASSES", str(schedule["num_classes"]), "INPUT.CLS.CROP_SIZE", "128",
             "INPUT.CLS.TEST_RESIZE", "146"]
        )
    )
    results["figures"] = dict(figures)
    results["figures"].update(
        {f"reliability_{m}": os.path.join(cfgs[m].OUTPUT_DIR, "inference", f"{PREFIX}_imagenet_val", "reliability_diagram.png") for m in METHODS}
    )
    progress.advance(1.0, f"figures: {os.path.join(output, 'figures')}")

    if not args.skip_transfer:
        results["transfer"] = run_transfer(checkpoints, output, schedule, progress)
        tables.append(markdown(sorted(results["transfer"].items()), TRANSFER_COLUMNS, "COCO-format transfer (Faster R-CNN)"))

    with open(os.path.join(output, "results.json"), "w") as f:
        json.dump(results, f, indent=2, allow_nan=False, default=lambda x: None)
    print("\n" + "\n\n".join(tables) + f"\n\nresults: {os.path.join(output, 'results.json')}", flush=True)
    return results


TRANSFER_COLUMNS = (
    ("AP", "AP"), ("AP50", "AP50"), ("AP75", "AP75"), ("APs", "APs"), ("APm", "APm"), ("APl", "APl"),
    ("AR100", "AR100"),
)


def run_transfer(checkpoints, output, schedule, progress):
    """Fine-tune a small Faster R-CNN R18-FPN from each classifier; return {METHOD: bbox AP...}."""
    from als_d2.engine.detection import DetectionTrainer

    iters = schedule["det_iters"]
    transfer = {}
    for method in TRANSFER_METHODS:
        cfg = get_cfg()
        cfg.merge_from_file(os.path.join(REPO, "configs", "COCO-Detection", "demo", "faster_rcnn_R18_FPN_cpu.yaml"))
        cfg.merge_from_list(
            [
                "MODEL.WEIGHTS", checkpoints[method],
                "MODEL.ROI_HEADS.NUM_CLASSES", schedule["num_classes"],
                "DATASETS.TRAIN", (f"{PREFIX}_coco_train",),
                "DATASETS.TEST", (f"{PREFIX}_coco_val",),
                "SOLVER.MAX_ITER", iters,
                "SOLVER.STEPS", (int(iters * 0.75),),
                "SOLVER.WARMUP_ITERS", max(1, iters // 5),
                "OUTPUT_DIR", os.path.join(output, "coco", f"{method}_r18_fpn"),
            ]
        )
        seed_all_rng(cfg.SEED)
        trainer = DetectionTrainer(cfg)
        trainer.register_hooks([ProgressHook(progress, f"detector from {method}", 3.0)])
        trainer.resume_or_load(resume=False)
        with open(os.path.join(output, "log.txt"), "a") as log, contextlib.redirect_stdout(log):
            trainer.train()  # evaluates at the end (COCOEvaluator; pycocotools prints to the log)
        with open(os.path.join(cfg.OUTPUT_DIR, "transfer_metrics.json")) as f:
            transfer[method] = json.load(f)["results"]["bbox"]
        progress.advance(0.0, f"detector from {method}: AP {transfer[method]['AP']:.2f}")
    return transfer


if __name__ == "__main__":
    main(sys.argv[1:])
