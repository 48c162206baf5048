#!/usr/bin/env python
"""`make demo`: the paper's effect and the transfer step on the embedded default dataset.

1. Generates (cached) a small context-biased "ImageNet" in the real ILSVRC formats plus a
   COCO-format detection split (``als_d2.data.synthetic``: 50 classes, ImageNet's mean
   objectness of 0.49), and reads it through the same registration code as real ImageNet.
2. Trains hard-label, LS and ALS classifiers (``configs/demo/*_r18.yaml``: a detectron2
   ResNet-18 at 32 px, CPU) with ClassificationTrainer, once per seed (``--seeds N``:
   training seeds 1..N on the same data; default 3, 1 with ``--quick``).
3. Evaluates each on val and on context-only val (every object painted out), prints the
   paper's Table 1 (ACC, O.conf, U.conf, A.conf) and the calibration table side by side,
   as mean (min-max over seeds), with the context-only confidence ratio hard / ALS, and
   saves reliability diagrams (per method and all methods in one), and a CAM figure.
4. Fine-tunes small Faster R-CNNs from the first seed's hard and ALS backbones on the
   COCO-format split and prints their AP.

Writes ``<output>/results.json``: {"classification": {METHOD: {"val": METRICS,
"val_context": METRICS}}} (means over seeds), "classification_seeds": {METHOD: [{"seed":
S, "val": ..., "val_context": ...}]}, "spread": {METHOD: {SPLIT: {KEY: [min, max]}}},
"context_conf_ratio_hard_over_als" (of the mean confidences) and its per-seed values,
"transfer": {METHOD: {"AP": ...}} (detectron2's 0-100 scale), "figures", "scatter_acc"
(the accuracy of the confidence-vs-objectness scatter's images: the evaluated val
accuracy, as the figures are drawn at the evaluation crop), "seconds". detectron2's logs go to
``<output>/log.txt``; the console shows progress with ETA.
"""

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import time

import als_d2  # noqa: F401  (registers the datasets and the model)
import torch
from detectron2.config import get_cfg
from detectron2.engine import HookBase
from detectron2.evaluation import inference_on_dataset
from detectron2.utils.env import seed_all_rng

from als_d2.config import add_als_config
from als_d2.data import synthetic
from als_d2.data.datasets.builtin import register_synthetic_imagenet
from als_d2.engine import ClassificationTrainer
from als_d2.engine.detection import DetectionTrainer, add_transfer_config
from als_d2.evaluation import ClassificationEvaluator
from als_d2.evaluation.cam import draw_cam_figures
from als_d2.evaluation.confidence_objectness import objectness_deciles
from als_d2.evaluation.plots import save_png, threshold_curves
from als_d2.evaluation.plots_combined import combined_reliability_diagram
from als_d2.evaluation.tables import format_spread, format_value, markdown_table
from als_d2.evaluation.thresholds import pair_separation, risk_coverage_from_confidence


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="als-d2 demo on the embedded synthetic dataset")
    parser.add_argument(
        "--quick", action="store_true", help="smaller data and schedules (same outputs)"
    )
    parser.add_argument(
        "--output", default=None, help="default: output/demo (output/demo-quick with --quick)"
    )
    parser.add_argument(
        "--data-root", default=None, help="default: $DETECTRON2_DATASETS/synthetic_imagenet[_quick]"
    )
    parser.add_argument("--skip-transfer", action="store_true", help="classification only")
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="train each classifier with seeds 1..N and report mean and min-max "
        "(default 3; 1 with --quick)",
    )
    return parser


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("hard", "ls", "als")
TRANSFER_METHODS = ("hard", "als")
PREFIX = "demo"  # registered names: demo_imagenet_*, demo_coco_*
SPLITS = ("val", "val_context")

# classifiers: epochs, batch, seeds (default of --seeds), learning rate (BASE_LR 0.1 scaled
# by batch / lr_reference: 0.025 at batch 32, twice the configs' ImageNet scaling, for the
# short schedules); detectors: iterations
SCHEDULES = {
    "full": dict(epochs=10, batch=32, seeds=3, lr_reference=128, det_iters=100),
    "quick": dict(epochs=10, batch=32, seeds=1, lr_reference=128, det_iters=20),
}

TABLE1 = (("ACC", "acc"), ("O.conf", "over_conf"), ("U.conf", "under_conf"), ("A.conf", "avg_conf"))
# ECE/MCE: "pycalib" = the paper's Table 2 estimator, "Guo" = the usual one (CAL_NOTE)
TABLE_CAL = (
    ("ACC", "acc"),
    ("ECE15 pycalib", "paper_ece_15"),
    ("ECE100 pycalib", "paper_ece_100"),
    ("MCE15 pycalib", "paper_mce_15"),
    ("ECE15 Guo", "ece_15"),
    ("ECE100 Guo", "ece_100"),
    ("MCE15 Guo", "mce_15"),
    ("NLL", "nll"),
    ("A.conf", "avg_conf"),
    ("Obj.dev", "objectness_deviation"),
)
# thresholds (not paper tables; als_d2.evaluation.thresholds, docs/evaluation.md)
TABLE_SEPARATION = (
    ("AUROC msp", "ood_auroc_msp"),
    ("FPR@95 msp", "ood_fpr95_msp"),
    ("AUPR-in msp", "ood_aupr_in_msp"),
    ("AUROC ent", "ood_auroc_entropy"),
    ("FPR@95 ent", "ood_fpr95_entropy"),
)
SEPARATION_NOTE = (
    "Positives: val images; negatives: the same images with every object painted out. "
    "FPR@95: context-only images accepted at the threshold accepting 95% of val (OpenOOD)."
)
TABLE_SELECTIVE = (
    ("AURC", "aurc"),
    ("E-AURC", "eaurc"),
    ("AUGRC", "augrc"),
    ("Risk@90", "risk_at_cov_90"),
    ("Cov@Risk10%", "cov_at_risk_10"),
    ("Spearman(conf, obj)", "conf_objectness_spearman"),
)
CAL_NOTE = (
    "ECE/MCE with B bins: pycalib = Wenger et al. 2020 (the paper's Table 2), "
    "equal-width bins on [1/K, 1], "
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
        eta = (
            f"{elapsed / self.done * (self.total - self.done):5.0f}s" if self.done > 0 else "    ?"
        )
        print(f"[demo {elapsed:6.0f}s | ETA {eta}] {message}", flush=True)


class ProgressHook(HookBase):
    """Reports to ``Progress`` every ~10% of a training run."""

    def __init__(self, progress: Progress, label: str, units_per_iter: float):
        self.progress, self.label, self.units = progress, label, units_per_iter
        self._reported = 0

    def after_step(self):
        it, total = self.trainer.iter + 1, self.trainer.max_iter
        if it == total or it - self._reported >= max(1, total // 10):
            loss = self.trainer.storage.history("total_loss").latest()
            self.progress.advance(
                (it - self._reported) * self.units,
                f"{self.label}: iter {it}/{total}, loss {loss:.3f}",
            )
            self._reported = it


def quiet_detectron2_logs(path: str) -> None:
    """Send detectron2's, fvcore's and als_d2's logs, and Python warnings (torch's), to a
    file instead of the console: the console shows the demo's progress only."""
    handler = logging.FileHandler(path)
    handler.setFormatter(
        logging.Formatter("[%(asctime)s %(name)s %(levelname)s] %(message)s", "%m/%d %H:%M:%S")
    )
    logging.captureWarnings(True)  # warnings.warn -> the "py.warnings" logger
    for name in ("detectron2", "d2", "als_d2", "fvcore", "py.warnings"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)  # DefaultTrainer then skips its console setup_logger()
        for old in logger.handlers[:]:
            if type(old) is logging.StreamHandler:  # a console handler of a setup_logger()
                logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False


def run_dir(output: str, method: str, seed: int) -> str:
    """Output folder of one classifier: ``<output>/<method>_r18`` for seed 1,
    ``<output>/<method>_r18_seed<S>`` for the others."""
    return os.path.join(output, f"{method}_r18" if seed == 1 else f"{method}_r18_seed{seed}")


def classifier_cfg(method: str, output: str, schedule: dict, seed: int = 1):
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, "configs", "demo", f"{method}_r18.yaml"))
    cfg.merge_from_list(
        [
            "DATASETS.TRAIN",
            (f"{PREFIX}_imagenet_train_boxed",),
            "DATASETS.TEST",
            (),  # the demo evaluates each model itself (val and context-only val), once
            "OUTPUT_DIR",
            run_dir(output, method, seed),
            "SOLVER.EPOCHS",
            schedule["epochs"],
            "SOLVER.STEPS_EPOCHS",
            (round(schedule["epochs"] * 0.7), round(schedule["epochs"] * 0.9)),
            "SOLVER.IMS_PER_BATCH",
            schedule["batch"],
            "SOLVER.LR_REFERENCE_BATCH",
            schedule["lr_reference"],
            "SOLVER.CHECKPOINT_PERIOD_EPOCHS",
            float(schedule["epochs"]),
            "TEST.EVAL_PERIOD",
            0,
            "MODEL.CLASSIFIER.NUM_CLASSES",
            schedule["num_classes"],
            "SEED",
            seed,
        ]
    )
    return cfg


def markdown(rows, columns, title, note=None, digits=3) -> str:
    """rows: [(method, metrics, spread or None)]; a cell is "mean (min-max)" with a spread,
    ``digits`` decimals."""
    cells = [
        [method]
        + [format_spread(metrics.get(k), (spread or {}).get(k), digits) for _, k in columns]
        for method, metrics, spread in rows
    ]
    return markdown_table(["Method"] + [h for h, _ in columns], cells, title, note)


def no_nan(obj):
    """obj with every NaN float replaced by None (JSON null), recursively."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: no_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [no_nan(v) for v in obj]
    return obj


def summarize_seeds(per_seed):
    """per_seed: [{KEY: float}] -> ({KEY: mean}, {KEY: [min, max]}), over the keys all seeds have
    with a number (NaN where any seed has NaN)."""
    keys = [
        k for k, v in per_seed[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    mean, spread = {}, {}
    for k in keys:
        values = [float(m[k]) if m.get(k) is not None else float("nan") for m in per_seed]
        mean[k] = sum(values) / len(values)
        spread[k] = (
            [min(values), max(values)]
            if not any(math.isnan(v) for v in values)
            else [float("nan")] * 2
        )
    return mean, spread


def train_and_evaluate(method, output, schedule, progress, units_per_iter, seed=1, loaders=None):
    """Train one classifier; return its checkpoint, {"val": METRICS, "val_context": METRICS},
    its config and its threshold curves ({"roc": val vs context-only val, "risk_coverage"
    and objectness "deciles": val}). ``loaders``: {dataset: test loader}, filled on first
    use and reused by the next runs (every method has the same test transform), so each set
    loads once."""
    loaders = {} if loaders is None else loaders
    cfg = classifier_cfg(method, output, schedule, seed)
    seed_all_rng(cfg.SEED)
    trainer = ClassificationTrainer(cfg)
    label = f"train {method}" + (f" (seed {seed})" if schedule["seeds"] > 1 else "")
    trainer.register_hooks([ProgressHook(progress, label, units_per_iter)])
    trainer.resume_or_load(resume=False)
    trainer.train()
    model = trainer.model
    model.eval()
    metrics, scores = {}, {}
    for key, dataset in (
        ("val", f"{PREFIX}_imagenet_val"),
        ("val_context", f"{PREFIX}_imagenet_val_context"),
    ):
        folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset)
        evaluator = ClassificationEvaluator(
            dataset, output_dir=folder, model_name=os.path.basename(cfg.OUTPUT_DIR)
        )
        if dataset not in loaders:
            loaders[dataset] = ClassificationTrainer.build_test_loader(trainer.cfg, dataset)
        result = inference_on_dataset(model, loaders[dataset], evaluator)
        metrics[key] = dict(result["classification"])
        scores[key] = evaluator.sample_scores
        progress.advance(
            1.0,
            f"evaluated {method} on {key}: acc {metrics[key]['acc']:.3f}, "
            f"avg conf {metrics[key]['avg_conf']:.3f}",
        )
    # images with objects vs their context-only versions (als_d2.evaluation.thresholds)
    separation, roc = pair_separation(scores["val"], scores["val_context"], f"{method}: val pair")
    metrics["val_context"].update(separation)
    val = scores["val"]
    curves = {
        "roc": roc,
        "risk_coverage": risk_coverage_from_confidence(val["msp"], val["correct"], "val"),
        "deciles": objectness_deciles(val["msp"], val["correct"], val["objectness"]),
    }
    return os.path.join(cfg.OUTPUT_DIR, "model_final.pth"), metrics, trainer.cfg, curves


def combined_reliability(cfgs, output: str) -> str:
    """All methods' reliability curves (val, 15 bins) in one diagram, from each run's
    calibration.json; returns the PNG's path."""
    curves = {}
    for method in METHODS:
        path = os.path.join(
            cfgs[method].OUTPUT_DIR, "inference", f"{PREFIX}_imagenet_val", "calibration.json"
        )
        with open(path) as f:
            report = json.load(f)
        run = os.path.basename(cfgs[method].OUTPUT_DIR)
        curves[f"{METHOD_NAMES[method]} ({run})"] = (report["bins"]["15"], report["metrics"])
    path = os.path.join(output, "figures", "reliability_all_methods.png")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    title = f"{PREFIX}_imagenet_val, 15 bins, seed-1 runs"
    save_png(combined_reliability_diagram(curves, title=title), path)
    return path


METHOD_NAMES = {"hard": "hard", "ls": "LS (0.1)", "als": "ALS"}


def main(argv=None) -> dict:
    args = get_parser().parse_args(argv)
    t_start = time.perf_counter()

    mode = "quick" if args.quick else "full"
    schedule = dict(SCHEDULES[mode])
    if args.seeds is not None:
        if args.seeds < 1:
            raise SystemExit(f"--seeds must be >= 1, got {args.seeds}")
        schedule["seeds"] = args.seeds
    seeds = list(range(1, schedule["seeds"] + 1))
    sizes = synthetic.QUICK_SIZES if args.quick else synthetic.DEFAULT_SIZES
    schedule["num_classes"] = sizes["num_classes"]
    output = args.output or os.path.join(REPO, "output", "demo-quick" if args.quick else "demo")
    data_root = args.data_root or os.path.join(
        os.path.expanduser(os.getenv("DETECTRON2_DATASETS", os.path.join(REPO, "datasets"))),
        "synthetic_imagenet_quick" if args.quick else "synthetic_imagenet",
    )
    os.makedirs(output, exist_ok=True)
    quiet_detectron2_logs(os.path.join(output, "log.txt"))
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    # progress units: 1 per classifier iteration, 1 per evaluation, 3 per detector
    # iteration, 0.01 per generated image (~ a training iteration per 100 images)
    boxed = round(sizes["train_per_class"] * 0.6) * sizes["num_classes"]
    iters = max(1, round(schedule["epochs"] * boxed / schedule["batch"]))
    det_units = 0 if args.skip_transfer else 3 * schedule["det_iters"] * len(TRANSFER_METHODS)
    n_images = (
        sizes["num_classes"] * (sizes["train_per_class"] + sizes["val_per_class"])
        + sizes["coco_train"]
        + sizes["coco_val"]
    )
    progress = Progress(0.01 * n_images + len(seeds) * len(METHODS) * (iters + 2) + det_units + 2)
    progress.advance(0.0, f"data: {data_root} ({len(seeds)} seed(s), {mode} schedule)")
    summary = synthetic.generate_synthetic_imagenet(data_root, **sizes)
    register_synthetic_imagenet(data_root, prefix=PREFIX)
    progress.advance(
        0.01 * n_images,
        f"data {'cached' if summary.get('cached') else 'generated'}: "
        f"{summary['val_images']} val images, mean objectness "
        f"{summary['val_mean_test_objectness']:.3f} under the test transform (ImageNet val: 0.49)",
    )

    results = {
        "mode": mode,
        "seeds": seeds,
        "num_classes": schedule["num_classes"],
        "classification": {},
        "classification_seeds": {m: [] for m in METHODS},
        "spread": {},
        "transfer": {},
    }
    checkpoints, cfgs, loaders, thresholds = {}, {}, {}, {}
    for seed in seeds:
        for method in METHODS:
            ckpt, metrics, cfg, curves = train_and_evaluate(
                method, output, schedule, progress, 1.0, seed, loaders
            )
            results["classification_seeds"][method].append(dict(metrics, seed=seed))
            if seed == seeds[0]:
                checkpoints[method], cfgs[method], thresholds[method] = ckpt, cfg, curves
    for method in METHODS:
        runs = results["classification_seeds"][method]
        results["classification"][method], results["spread"][method] = {}, {}
        for split in SPLITS:
            mean, spread = summarize_seeds([r[split] for r in runs])
            results["classification"][method][split] = mean
            results["spread"][method][split] = spread

    def rows(split):
        return [
            (
                METHOD_NAMES[m],
                results["classification"][m][split],
                results["spread"][m][split] if len(seeds) > 1 else None,
            )
            for m in METHODS
        ]

    across = f" (mean (min-max) over {len(seeds)} seeds)" if len(seeds) > 1 else ""
    tables = [
        markdown(
            rows("val_context"),
            TABLE1,
            f"Table 1: context-only val (every object painted with the pixel mean){across}",
        ),
        markdown(rows("val"), TABLE_CAL, f"Calibration on val{across}", CAL_NOTE),
        markdown(
            rows("val_context"),
            TABLE_SEPARATION,
            f"Val images vs their context-only versions{across}",
            SEPARATION_NOTE,
        ),
        markdown(rows("val"), TABLE_SELECTIVE, f"Selective prediction on val{across}"),
    ]
    conf = {m: results["classification"][m]["val_context"]["avg_conf"] for m in ("hard", "als")}
    ratio = conf["hard"] / conf["als"]
    per_seed = [
        h["val_context"]["avg_conf"] / a["val_context"]["avg_conf"]
        for h, a in zip(
            results["classification_seeds"]["hard"], results["classification_seeds"]["als"]
        )
    ]
    acc_gap = [
        h["val"]["acc"] - a["val"]["acc"]
        for h, a in zip(
            results["classification_seeds"]["hard"], results["classification_seeds"]["als"]
        )
    ]
    results["context_conf_ratio_hard_over_als"] = ratio
    results["context_conf_ratio_per_seed"] = per_seed
    results["val_acc_gap_hard_minus_als_per_seed"] = acc_gap
    line = (
        f"Context-only average confidence, hard / ALS = {conf['hard']:.3f} / {conf['als']:.3f} "
        f"= **{ratio:.1f}x**"
    )
    if len(seeds) > 1:
        line += f" (per seed {min(per_seed):.1f}x-{max(per_seed):.1f}x)"
    line += (
        f"; uniform confidence would be {1 / schedule['num_classes']:.3f}. "
        "Val accuracy hard - ALS = "
        f"{100 * sum(acc_gap) / len(acc_gap):+.1f} points"
        + (f" ({100 * min(acc_gap):+.1f} to {100 * max(acc_gap):+.1f})" if len(seeds) > 1 else "")
        + f"; val mean objectness {summary['val_mean_test_objectness']:.2f} (ImageNet val: 0.49)."
    )
    tables.append(line)

    # the models as trained and evaluated: the seed-1 runs' config (test transform, crop)
    cams = draw_cam_figures(
        cfgs["hard"],
        [checkpoints[m] for m in METHODS],
        [f"{METHOD_NAMES[m]} ({os.path.basename(cfgs[m].OUTPUT_DIR)})" for m in METHODS],
        f"{PREFIX}_imagenet_val",
        os.path.join(output, "figures"),
        num_images=6,
    )
    results["figures"] = dict(cams["files"])
    results["objectness_deciles_val"] = {m: thresholds[m]["deciles"] for m in METHODS}
    results["figures"]["threshold_curves"] = os.path.join(output, "figures", "threshold_curves.png")
    save_png(  # seed 1: risk-coverage on val, ROC of val vs context-only val, deciles
        threshold_curves(
            {METHOD_NAMES[m]: thresholds[m]["risk_coverage"] for m in METHODS},
            {METHOD_NAMES[m]: thresholds[m]["roc"] for m in METHODS},
            {METHOD_NAMES[m]: thresholds[m]["deciles"] for m in METHODS},
        ),
        results["figures"]["threshold_curves"],
    )
    # the scatter's images are the evaluation's: its accuracy is the evaluated val accuracy
    results["scatter_acc"] = {
        m: float(panel["correct"].mean()) for m, panel in zip(METHODS, cams["scatter"])
    }
    if cams["note"]:
        results["figures_note"] = f"CAM grid: {cams['note']}"
        tables.append(f"Note on the CAM figure: {cams['note']}.")
    results["figures"].update(
        {
            f"reliability_{m}": os.path.join(
                cfgs[m].OUTPUT_DIR, "inference", f"{PREFIX}_imagenet_val", "reliability_diagram.png"
            )
            for m in METHODS
        }
    )
    results["figures"]["reliability_all_methods"] = combined_reliability(cfgs, output)
    progress.advance(1.0, f"figures: {os.path.join(output, 'figures')}")

    if not args.skip_transfer:
        results["transfer"] = run_transfer(checkpoints, output, schedule, progress)
        tables.append(
            markdown(
                [(m, v, None) for m, v in sorted(results["transfer"].items())],
                TRANSFER_COLUMNS,
                "COCO-format transfer (Faster R-CNN, from the seed-1 backbones; AP/AR on "
                "detectron2's 0-100 scale, COCO AP x 100)",
                digits=1,
            )
        )

    results["seconds"] = round(time.perf_counter() - t_start, 1)
    with open(os.path.join(output, "results.json"), "w") as f:
        json.dump(no_nan(results), f, indent=2, allow_nan=False, default=lambda x: None)
    print(
        "\n" + "\n\n".join(tables) + f"\n\nresults: {os.path.join(output, 'results.json')} "
        f"({results['seconds'] / 60:.1f} min)",
        flush=True,
    )
    return results


TRANSFER_COLUMNS = (
    ("AP", "AP"),
    ("AP50", "AP50"),
    ("AP75", "AP75"),
    ("APs", "APs"),
    ("APm", "APm"),
    ("APl", "APl"),
    ("AR100", "AR100"),
)


def run_transfer(checkpoints, output, schedule, progress):
    """Fine-tune a small Faster R-CNN R18-FPN from each classifier; return {METHOD: bbox AP...}."""
    iters = schedule["det_iters"]
    transfer = {}
    for method in TRANSFER_METHODS:
        cfg = get_cfg()
        add_transfer_config(cfg)  # TRANSFER.RECIPE "demo"
        cfg.merge_from_file(
            os.path.join(REPO, "configs", "COCO-Detection", "demo", "faster_rcnn_R18_FPN_cpu.yaml")
        )
        cfg.merge_from_list(
            [
                "MODEL.WEIGHTS",
                checkpoints[method],
                "MODEL.ROI_HEADS.NUM_CLASSES",
                schedule["num_classes"],
                "DATASETS.TRAIN",
                (f"{PREFIX}_coco_train",),
                "DATASETS.TEST",
                (f"{PREFIX}_coco_val",),
                "SOLVER.MAX_ITER",
                iters,
                "SOLVER.STEPS",
                (int(iters * 0.75),),
                "SOLVER.WARMUP_ITERS",
                max(1, iters // 5),
                # keep low scores: after a few iterations on 20-50 classes no class reaches
                # d2's 0.05, and COCO AP of no detections is undefined (NaN)
                "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
                0.001,
                "OUTPUT_DIR",
                os.path.join(output, "coco", f"{method}_r18_fpn"),
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
        ap = format_value(transfer[method]["AP"], 1)
        progress.advance(0.0, f"detector from {method}: AP {ap} (COCO AP x 100)")
    return transfer


if __name__ == "__main__":
    main(sys.argv[1:])
