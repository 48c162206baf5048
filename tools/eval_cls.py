#!/usr/bin/env python
"""Evaluate several checkpoints on several datasets: accuracy, calibration, context.

    tools/eval_cls.py --config-file configs/als_r50.yaml \\
        --checkpoints output/hard_r50/model_final.pth output/als_r50/model_final.pth \\
        --datasets imagenet_val imagenetv2_matched_frequency imagenet_val_context \\
        --num-gpus 4 TEST.IMS_PER_BATCH 100          # trailing KEY VALUE overrides

Every (checkpoint, dataset) pair runs through ``ClassificationTrainer.build_test_loader``
and ``build_evaluator`` (the same ``ClassificationEvaluator`` as ``train_cls.py
--eval-only``) under d2's ``inference_on_dataset``, in as many processes as ``launch``
starts. Written under ``--output`` (default ``OUTPUT_DIR/eval``), the evaluation's own
folder (its ``config.yaml`` and ``log.txt`` go there too, never over a training run's;
a folder holding a training run, ``last_checkpoint`` or ``metrics.json``, is refused):

    <name>/<dataset>/results.json      checkpoint, dataset and the flat metric dict
    <name>/<dataset>/calibration.json  the evaluator's report (bins, temperature scaling)
    <name>/<dataset>/*.png             reliability diagrams, confidence vs objectness
    tables.md                          the markdown tables printed at the end
    threshold_curves.png               risk-coverage curves of every (checkpoint, set) and
                                       ROC curves of every context pair, all checkpoints

Tables (paper section 4.2): Table 1, context-only datasets (name contains "context", or
``--context-datasets``): ACC, O.conf, U.conf, A.conf; Table 2, the other datasets: ACC,
Top-5, ECE(15), ECE(100), MCE(15) of the paper's estimator (Wenger et al. 2020, pycalib:
bins on [1/K, 1], fixed reference), O.conf, U.conf, A.conf, NLL, Brier, objectness
deviation, then ECE(15), ECE(100), MCE(15) of Guo et al. 2017 (bins on [0, 1], mean
confidence); a footnote under each table names the estimators. Then temperature scaling
on the held-out half (before -> after; not a paper table). Then (not paper tables;
``als_d2.evaluation.thresholds``, docs/evaluation.md): selective prediction of every set
(AURC, E-AURC, AUGRC, risk at 80/90/95% coverage, coverage at 5/10% risk, and the rank
correlation of confidence with objectness where boxes are known), and the separation of
each set ``X`` from its context-only twin ``X_context`` when both are evaluated (AUROC,
AUPR-in/out, FPR@95 by maximum softmax and by negative entropy; the images of ``X`` that
have a context-only version, matched by image id, against those versions).
``<name>`` is the run's name (the folder) for a ``model_final.pth``, ``<run>_<stem>`` for
a periodic ``model_0004999.pth``, the file's stem otherwise (``--names`` sets them); it
titles the figures ("<name> on <dataset>") and the table rows.

With ``--ema``, each checkpoint's moving average of the weights (``"model_ema"``, saved by
``tools/train_cls.py`` with ``MODEL_EMA.ENABLED``) is evaluated as well, as the checkpoint
``<name>_ema`` (its own rows, folders and curves, next to the raw weights'); a checkpoint
without one is an error.

Checkpoints load strictly (``als_d2.checkpoint.evaluation``): a missing file stops before
any model is built; a head with another class count than ``MODEL.CLASSIFIER.NUM_CLASSES``
(itself checked against each evaluated dataset's class count), or a file without head or
backbone tensors, is an error naming the file and the key, not a randomly initialised layer.
"""

import json
import logging
import os
import re
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple

import als_d2  # noqa: F401  (registers the datasets and the model)
import numpy as np
from detectron2.evaluation import inference_on_dataset
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager

from als_d2.checkpoint.evaluation import (
    CheckpointMismatchError,
    EvaluationCheckpointer,  # strict; reads files without running pickled code
    check_checkpoint_head,
    check_files_exist,
    checkpoint_labels,
)
from als_d2.config import check_eval_num_classes, load_als_config
from als_d2.engine import ClassificationTrainer
from als_d2.engine.ema import EMA_CHECKPOINT_KEY, load_ema_weights
from als_d2.engine.launch import als_default_setup, default_argument_parser, launch_from_args
from als_d2.evaluation import ClassificationEvaluator
from als_d2.evaluation.confidence_objectness import objectness_deciles
from als_d2.evaluation.plots import save_png, threshold_curves
from als_d2.evaluation.thresholds import (
    CONTEXT_SUFFIX,
    context_pairs,
    pair_separation,
    risk_coverage_from_confidence,
)
from als_d2.evaluation.tables import format_value, markdown_table


def get_parser():
    parser = default_argument_parser()
    parser.add_argument(
        "--checkpoints", nargs="+", required=True, help="checkpoint files (.pth/.pkl)"
    )
    parser.add_argument("--names", nargs="+", default=None, help="table labels, one per checkpoint")
    parser.add_argument(
        "--datasets", nargs="+", default=None, help="registered datasets (default: DATASETS.TEST)"
    )
    parser.add_argument(
        "--context-datasets",
        nargs="*",
        default=None,
        help="datasets of Table 1 (default: those whose name contains 'context')",
    )
    parser.add_argument("--output", default=None, help="output folder (default: OUTPUT_DIR/eval)")
    parser.add_argument(
        "--ema",
        action="store_true",
        help="also evaluate each checkpoint's moving average of the weights (model_ema), "
        "named <name>_ema",
    )
    return parser


logger = logging.getLogger("als_d2.eval_cls")

_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")

TABLE1 = [("ACC", "acc"), ("O.conf", "over_conf"), ("U.conf", "under_conf"), ("A.conf", "avg_conf")]
# "pycalib" columns: the paper's Table 2 estimator; "Guo" columns: the usual one (see ESTIMATORS)
TABLE2 = [
    ("ACC", "acc"),
    ("Top-5", "top5"),
    ("ECE(15) pycalib", "paper_ece_15"),
    ("ECE(100) pycalib", "paper_ece_100"),
    ("MCE(15) pycalib", "paper_mce_15"),
    ("O.conf", "over_conf"),
    ("U.conf", "under_conf"),
    ("A.conf", "avg_conf"),
    ("NLL", "nll"),
    ("Brier", "brier"),
    ("Obj.dev", "objectness_deviation"),
    ("ECE(15) Guo", "ece_15"),
    ("ECE(100) Guo", "ece_100"),
    ("MCE(15) Guo", "mce_15"),
]
# before/after temperature scaling (keys of als_d2.evaluation.evaluator.TS_KEYS)
TABLE_TS = [
    ("ECE(15) pycalib", "paper_ece_15"),
    ("ECE(15) Guo", "ece_15"),
    ("ECE(100) Guo", "ece_100"),
    ("MCE(15) Guo", "mce_15"),
    ("O.conf", "over_conf"),
    ("U.conf", "under_conf"),
    ("A.conf", "avg_conf"),
    ("NLL", "nll"),
    ("AURC", "aurc"),
    ("E-AURC", "eaurc"),
]
TABLE_SELECTIVE = [
    ("ACC", "acc"),
    ("AURC", "aurc"),
    ("E-AURC", "eaurc"),
    ("AUGRC", "augrc"),
    ("Risk@80", "risk_at_cov_80"),
    ("Risk@90", "risk_at_cov_90"),
    ("Risk@95", "risk_at_cov_95"),
    ("Cov@Risk5%", "cov_at_risk_05"),
    ("Cov@Risk10%", "cov_at_risk_10"),
    ("Spearman(conf, obj)", "conf_objectness_spearman"),
]
TABLE_SEPARATION = [
    ("AUROC msp", "ood_auroc_msp"),
    ("AUPR-in msp", "ood_aupr_in_msp"),
    ("AUPR-out msp", "ood_aupr_out_msp"),
    ("FPR@95 msp", "ood_fpr95_msp"),
    ("AUROC ent", "ood_auroc_entropy"),
    ("FPR@95 ent", "ood_fpr95_entropy"),
    ("pairs", "ood_pairs"),
]
ESTIMATORS = (
    "ECE/MCE with B bins: *pycalib* = Wenger et al. 2020 (pycalib "
    "`expected_calibration_error`, the estimator of the paper's Table 2): equal-width bins on "
    "[1/K, 1] (K = the model's classes), each bin's accuracy against the fixed reference "
    "linspace(1/K + 1/(2B), 1 - 1/(2B), B); *Guo* = Guo et al. 2017 (as torchmetrics, netcal): "
    "equal-width bins on [0, 1], each bin's accuracy against its mean confidence."
)


def split_overrides(args) -> None:
    """Move trailing ``KEY VALUE`` pairs that a ``nargs='+'`` list swallowed into ``opts``."""
    for field in ("checkpoints", "names", "datasets", "context_datasets"):
        values = getattr(args, field)
        if not values:
            continue
        for i, v in enumerate(values):
            if _CONFIG_KEY.match(v):
                args.opts = values[i:] + list(args.opts)
                setattr(args, field, values[:i])
                break
    if args.opts and args.opts[0] == "--":
        args.opts = args.opts[1:]


def checkpoint_names(paths: Sequence[str], names: Optional[Sequence[str]] = None):
    """Short unique labels (``als_d2.checkpoint.evaluation.checkpoint_labels``): ``--names``,
    else the run folder of a ``model_final.pth``, ``<run>_<stem>`` of a periodic one, the
    stem of any other file."""
    return checkpoint_labels(paths, names)


TRAINING_RUN_FILES = ("last_checkpoint", "metrics.json")


def eval_output_dir(cfg, output: Optional[str]) -> str:
    """``--output``, default ``OUTPUT_DIR/eval``: the evaluation's own folder. A folder that
    holds a training run (``last_checkpoint``, ``metrics.json``) is refused, since the
    evaluation writes its own ``config.yaml`` and ``log.txt`` there."""
    folder = output or os.path.join(cfg.OUTPUT_DIR, "eval")
    run = [f for f in TRAINING_RUN_FILES if os.path.exists(os.path.join(folder, f))]
    if run:
        raise SystemExit(
            f"error: --output {folder} holds a training run ({', '.join(run)}); the evaluation "
            f"would overwrite its config.yaml / log.txt: choose another --output "
            f"(default OUTPUT_DIR/eval)"
        )
    return folder


def setup(args, output: Optional[str] = None):
    """The config, with ``OUTPUT_DIR`` = the evaluation folder (``--output``, default
    ``OUTPUT_DIR/eval``), so that detectron2's ``default_setup`` writes this evaluation's
    ``config.yaml`` and ``log.txt`` there and not over the training run's."""
    cfg = load_als_config(args.config_file, args.opts)
    folder = eval_output_dir(cfg, output)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = folder
    cfg.freeze()
    als_default_setup(cfg, args)  # default_setup + the als_d2 logger (console, OUTPUT_DIR/log.txt)
    return cfg


def preflight(cfg, checkpoints: Sequence[str], datasets: Sequence[str]) -> None:
    """Before any model is built: ``MODEL.CLASSIFIER.NUM_CLASSES`` fits every evaluated
    dataset and every checkpoint's head; ``SystemExit`` with a one-line error otherwise."""
    try:
        for dataset in datasets:
            check_eval_num_classes(cfg, dataset)
        for path in checkpoints:
            check_checkpoint_head(path, cfg.MODEL.CLASSIFIER.NUM_CLASSES)
    except (CheckpointMismatchError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None


def _checkpoint_table(
    rows: Sequence[Tuple[str, str, Dict]], columns, title: str, note: Optional[str] = None
) -> str:
    """``rows``: (checkpoint, dataset, metric dict); ``columns``: (header, key or callable);
    ``note``: a footnote paragraph under the table."""
    header = ["Checkpoint", "Val"] + [c[0] for c in columns]
    cells = [
        [name, dataset]
        + [c[1](m) if callable(c[1]) else format_value(m.get(c[1])) for c in columns]
        for name, dataset, m in rows
    ]
    return markdown_table(header, cells, title, note)


def format_tables(results: Dict[Tuple[str, str], Dict], context_datasets: Sequence[str]) -> str:
    """The paper's table layouts (section 4.2) for ``{(checkpoint, dataset): metrics}``."""
    rows = [(n, d, m) for (n, d), m in results.items()]
    context = [r for r in rows if r[1] in context_datasets]
    other = [r for r in rows if r[1] not in context_datasets]
    parts = []
    if context:
        parts.append(
            _checkpoint_table(context, TABLE1, "Table 1: context-only images (objects painted out)")
        )
    if other:
        parts.append(
            _checkpoint_table(other, TABLE2, "Table 2: classification and calibration", ESTIMATORS)
        )
    ts_rows = [r for r in rows if "ts_temperature" in r[2]]
    if ts_rows:
        columns = [("T", "ts_temperature")] + [
            (
                h,
                lambda m, k=k: (
                    f"{format_value(m.get('ts_base_' + k))} -> {format_value(m.get('ts_' + k))}"
                ),
            )
            for h, k in TABLE_TS
        ]
        title = "Temperature scaling (not a paper table): held-out half, before -> after"
        note = "ECE/MCE estimators: see the note under Table 2." if other else ESTIMATORS
        parts.append(_checkpoint_table(ts_rows, columns, title, note))
    for key, columns, title, note in (
        (
            "aurc",
            TABLE_SELECTIVE,
            "Selective prediction by max softmax (not a paper table)",
            "Risk = errors / accepted, coverage = accepted / all; ties accepted together "
            "(docs/evaluation.md).",
        ),
        (
            "ood_auroc_msp",
            TABLE_SEPARATION,
            "Images with objects vs their context-only versions (not a paper table)",
            "Positives: the images of X that have a context-only version; negatives: "
            "those versions (X_context). FPR@95: context-only images accepted at the "
            "threshold accepting 95% of the positives (OpenOOD's convention).",
        ),
    ):
        chosen = [r for r in rows if key in r[2]]
        if chosen:
            parts.append(_checkpoint_table(chosen, columns, title, note))
    deciles = [
        [name, dataset, str(i + 1), f"{d['objectness_min']:.2f}-{d['objectness_max']:.2f}"]
        + [format_value(d[k]) for k in ("mean_objectness", "mean_confidence", "accuracy")]
        + [str(d["count"])]
        for name, dataset, m in rows
        for i, d in enumerate(m.get("objectness_deciles") or ())
    ]
    if deciles:
        header = ["Checkpoint", "Val", "Decile", "Objectness", "Mean obj.", "Mean conf.", "ACC"]
        parts.append(
            markdown_table(
                header + ["Images"],
                deciles,
                "Confidence by objectness decile (not a paper table)",
                "Images with known objectness sorted by it, in ten groups of equal size; "
                "the paper's 'peaks proportional to the object' is mean confidence following "
                "mean objectness.",
            )
        )
    return "\n\n".join(parts)


def load_models(cfg, path: str, name: str, output: str, ema: bool = False):
    """[(name, model in eval mode)] of the checkpoint ``path``, strictly loaded; with ``ema``
    also (``<name>_ema``, its ``model_ema`` weights). ``SystemExit`` with one line when the
    file does not fit, or has no ``model_ema`` with ``ema``."""
    model = ClassificationTrainer.build_model(cfg)
    try:
        extra = EvaluationCheckpointer(model, save_dir=output).load(path)
    except CheckpointMismatchError as e:
        raise SystemExit(f"error: {e}") from None
    models = [(name, model)]
    if ema:
        state = extra.get(EMA_CHECKPOINT_KEY) if isinstance(extra, dict) else None
        if state is None:
            raise SystemExit(
                f"error: --ema: {path} has no {EMA_CHECKPOINT_KEY} (trained without "
                "MODEL_EMA.ENABLED?)"
            )
        averaged = ClassificationTrainer.build_model(cfg)
        try:
            load_ema_weights(averaged, state, path)
        except CheckpointMismatchError as e:
            raise SystemExit(f"error: {e}") from None
        models.append((f"{name}_ema", averaged))
    for _, m in models:
        m.eval()
    return models


def evaluate_checkpoints(
    cfg,
    checkpoints: Sequence[str],
    names: Sequence[str],
    datasets: Sequence[str],
    output: str,
    ema: bool = False,
):
    """Run every (checkpoint, dataset) (with ``ema``, also every checkpoint's moving average
    as ``<name>_ema``); returns ``{(name, dataset): metrics}`` on the main process. Each
    dataset is loaded once (one test loader for every checkpoint): its index messages
    appear once per run, not once per checkpoint."""
    results: Dict[Tuple[str, str], Dict] = OrderedDict()
    scores: Dict[Tuple[str, str], Dict] = {}
    curves = {"risk_coverage": {}, "roc": {}, "deciles": {}}
    loaders = {d: ClassificationTrainer.build_test_loader(cfg, d) for d in datasets}
    runs = (  # lazily: one checkpoint's models in memory at a time
        (path, name, model)
        for path, checkpoint_name in zip(checkpoints, names)
        for name, model in load_models(cfg, path, checkpoint_name, output, ema)
    )
    for path, name, model in runs:
        for dataset in datasets:
            folder = os.path.join(output, name, dataset)
            evaluator = ClassificationEvaluator(dataset, output_dir=folder, model_name=name)
            logger.info(f"Evaluating {name} ({path}) on {dataset}")
            res = inference_on_dataset(model, loaders[dataset], evaluator)
            if comm.is_main_process():
                metrics = dict(res["classification"])
                results[(name, dataset)] = metrics
                scores[(name, dataset)] = evaluator.sample_scores
                sample = evaluator.sample_scores
                if not dataset.endswith(CONTEXT_SUFFIX):
                    curves["risk_coverage"][f"{name} on {dataset}"] = risk_coverage_from_confidence(
                        sample["msp"], sample["correct"], dataset
                    )
                    if not np.isnan(sample["objectness"]).all():
                        deciles = objectness_deciles(
                            sample["msp"], sample["correct"], sample["objectness"]
                        )
                        curves["deciles"][f"{name} on {dataset}"] = deciles
                        metrics["objectness_deciles"] = deciles
                PathManager.mkdirs(folder)
                with PathManager.open(os.path.join(folder, "results.json"), "w") as f:
                    json.dump(
                        {"checkpoint": path, "name": name, "dataset": dataset, "metrics": metrics},
                        f,
                        indent=2,
                    )
        if comm.is_main_process():
            for x, x_context in context_pairs(datasets):
                label = f"{name}: {x} vs {x_context}"
                try:
                    separation, roc = pair_separation(
                        scores[(name, x)], scores[(name, x_context)], label
                    )
                except ValueError as e:
                    raise SystemExit(f"error: {e}") from None
                results[(name, x_context)].update(separation)
                curves["roc"][label] = roc
    if comm.is_main_process():
        save_png(
            threshold_curves(curves["risk_coverage"], curves["roc"], curves["deciles"]),
            os.path.join(output, "threshold_curves.png"),
        )
    return results


def main(args):
    split_overrides(args)
    check_files_exist(args.checkpoints, "checkpoint")  # before the config's datasets are read
    names = checkpoint_names(args.checkpoints, args.names)
    cfg = setup(args, args.output)
    output = cfg.OUTPUT_DIR
    datasets = list(args.datasets or cfg.DATASETS.TEST)
    context = (
        args.context_datasets
        if args.context_datasets is not None
        else [d for d in datasets if "context" in d]
    )
    preflight(cfg, args.checkpoints, datasets)
    results = evaluate_checkpoints(cfg, args.checkpoints, names, datasets, output, args.ema)
    if comm.is_main_process():
        tables = format_tables(results, context)
        print(tables)
        with PathManager.open(os.path.join(output, "tables.md"), "w") as f:
            f.write(tables + "\n")
    return results


if __name__ == "__main__":
    args = get_parser().parse_args()
    print("Command Line Args:", args)
    launch_from_args(main, args)
