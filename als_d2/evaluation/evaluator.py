"""``ClassificationEvaluator``: accuracy, calibration and objectness metrics of an image
classifier as a detectron2 ``DatasetEvaluator``."""

import itertools
import json
import logging
import math
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager

from ..data.build import SKIPPED_KEY
from .calibration import (
    ADAPTIVE_BINS,
    ECE_BINS,
    STAT_KEYS,
    adaptive_bin_statistics,
    bin_statistics,
    metrics_from_stats,
    paper_bin_statistics,
    sample_stats,
    sample_stats_from_logits,
)
from .confidence_objectness import objectness_deciles
from .temperature import held_out_split, temperature_scaling_report
from .thresholds import risk_coverage_from_confidence

__all__ = ["ClassificationEvaluator", "TS_KEYS"]

logger = logging.getLogger(__name__)

# metrics reported before ("ts_base_<key>") and after ("ts_<key>") temperature scaling
TS_KEYS = (
    "paper_ece_15",
    "ece_15",
    "ece_100",
    "mce_15",
    "adaptive_ece_15",
    "over_conf",
    "under_conf",
    "avg_conf",
    "nll",
    "brier",
    "aurc",
    "eaurc",
)
PLOT_BINS = 15


def _sample_key(x: dict):
    key = x.get("image_id", x.get("file_name"))
    return None if key is None else str(key)


def _json_ready(obj):
    """numpy -> python, NaN/inf -> None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class ClassificationEvaluator(DatasetEvaluator):
    """Accuracy and calibration of ``{"logits": K, "probs": K}`` outputs against ``label``.

    Per sample it keeps only what the metrics need: confidence, right/wrong, top-5 hit,
    NLL and Brier score (``calibration.sample_stats``), the ``objectness`` of the input
    dict (the evaluation crop's, from the test mapper; None -> unknown), the sample's
    ``image_id`` (or ``file_name``), and the logits row when temperature scaling is on
    (the one metric that needs whole rows). When outputs carry ``logits`` every
    statistic is computed from their float64 log-softmax, else from ``probs``.

    ``evaluate()`` gathers all processes' samples on the main process with d2's ``comm``
    and returns ``{"classification": {...}}``, a flat dict of numbers:

    * the keys of ``calibration.calibration_metrics`` (``acc``, ``top5`` fractions; ECE,
      MCE of Guo et al. and, as ``paper_*``, of Wenger et al./pycalib with K = the logits'
      (or probs') width; over/under/avg confidence, NLL, Brier, ``num_samples``; the
      selective-prediction keys ``aurc``, ``eaurc``, ``augrc``, ``risk_at_cov_*``,
      ``cov_at_risk_*``), plus ``mean_objectness``, ``objectness_deviation``,
      ``objectness_samples``, ``conf_objectness_spearman`` when some sample has a known
      objectness;
    * ``top1``: ``acc`` in percent (the key of d2-style accuracy reports);
    * ``num_skipped``: samples the test loader skipped (unreadable images with
      ``INPUT.CLS.SKIP_UNREADABLE_EVAL``; the ``data.build.SKIPPED_KEY`` counts of the
      inputs), summed over the processes; the metrics are over the ``num_samples`` others.
      When it is not 0, ``evaluate()`` says so in one warning;
    * with logits and ``temperature_scaling``: ``ts_temperature`` (T fitted by NLL on one
      half of the samples, ``temperature.held_out_split``) and, on the other half,
      ``ts_base_<m>`` (before) and ``ts_<m>`` (after) for m in ``TS_KEYS``.

    NaN marks an undefined metric (see ``calibration``). With ``output_dir`` it writes
    ``calibration.json`` (metrics, bin statistics: ``bins`` Guo et al., ``paper_bins``
    Wenger et al.; the temperature-scaling block; ``objectness_deciles``; the
    ``risk_coverage`` curve; NaN written as null),
    ``reliability_diagram.png`` (15 bins), ``reliability_diagram_ts.png``
    (held-out half after scaling) and ``confidence_vs_objectness.png``; when an
    ``EventStorage`` is active the diagrams also go to it (``put_image``) for TensorBoard.
    After ``evaluate()`` the main process keeps ``sample_scores`` (``key``, ``msp``,
    ``entropy``, ``correct``, ``objectness``: per sample) for pairing a set with its
    context-only twin (``thresholds.pair_separation``) and the tools' figures.
    """

    def __init__(
        self,
        dataset_name: str,
        distributed: bool = True,
        output_dir: Optional[str] = None,
        *,
        temperature_scaling: bool = True,
        plots: bool = True,
        model_name: Optional[str] = None,
    ):
        """
        Args:
            dataset_name: used in logs, file contents and image names.
            distributed: gather samples from all processes (d2's ``comm.gather``).
            output_dir: folder for ``calibration.json`` and the PNGs (None: nothing written).
            temperature_scaling: keep logits rows and fit/report temperature scaling.
            plots: draw reliability diagrams (files and TensorBoard).
            model_name: the evaluated model (run or checkpoint name) for the figure titles,
                which then read "<model> on <dataset>".
        """
        self.dataset_name = dataset_name
        self._distributed = distributed
        self._output_dir = output_dir
        self._temperature_scaling = temperature_scaling
        self._plots = plots
        self._model_name = model_name
        self.reset()

    def reset(self):
        self._rows: List[Dict] = []
        self._skipped = 0
        self.sample_scores: Optional[Dict] = None

    def process(self, inputs, outputs):
        self._skipped += sum(int(x.get(SKIPPED_KEY, 0)) for x in inputs)
        labels = np.array([int(x["label"]) for x in inputs], dtype=np.int64)
        if "logits" in outputs[0]:
            logits = torch.stack([o["logits"] for o in outputs]).detach().float().cpu().numpy()
            stats = sample_stats_from_logits(logits, labels)
            num_classes = logits.shape[1]
        else:
            logits = None
            probs = torch.stack([o["probs"] for o in outputs]).detach().float().cpu().numpy()
            stats = sample_stats(probs, labels)
            num_classes = probs.shape[1]
        row = dict(stats)
        row["num_classes"] = int(num_classes)
        row["label"] = labels
        row["objectness"] = np.array(
            [float(x["objectness"]) if x.get("has_boxes") else np.nan for x in inputs],
            dtype=np.float64,
        )
        row["key"] = [_sample_key(x) for x in inputs]
        if logits is not None and self._temperature_scaling:
            row["logits"] = logits
        self._rows.append(row)

    def _collect(self) -> Tuple[Optional[Dict], int]:
        """(the samples' statistics of all processes or None when there are none, the
        number of samples skipped by all processes)."""
        rows, skipped = self._rows, self._skipped
        if self._distributed:
            comm.synchronize()
            parts = comm.gather((rows, skipped), dst=0)
            rows = list(itertools.chain(*(r for r, _ in parts)))
            skipped = sum(n for _, n in parts)
        if not rows:
            return None, skipped
        data = {
            key: np.concatenate([r[key] for r in rows])
            for key in (*STAT_KEYS, "label", "objectness")
        }
        data["key"] = [k for r in rows for k in r["key"]]
        widths = {r["num_classes"] for r in rows}
        if len(widths) != 1:
            raise ValueError(f"outputs have different class counts: {sorted(widths)}")
        data["num_classes"] = widths.pop()
        if all("logits" in r for r in rows):
            data["logits"] = np.concatenate([r["logits"] for r in rows])
        return data, skipped

    def evaluate(self):
        data, skipped = self._collect()
        if not comm.is_main_process():
            return {}
        if skipped:
            logger.warning(
                f"[ClassificationEvaluator] {self.dataset_name}: skipped {skipped} unreadable "
                f"samples (INPUT.CLS.SKIP_UNREADABLE_EVAL); the metrics are over the "
                f"{0 if data is None else len(data['label'])} others"
            )
        if data is None:
            logger.warning(
                f"[ClassificationEvaluator] {self.dataset_name}: no predictions were collected"
            )
            return {}
        objectness = data["objectness"] if (~np.isnan(data["objectness"])).any() else None
        k = data["num_classes"]
        results = OrderedDict(metrics_from_stats(data, objectness, num_classes=k))
        results["top1"] = 100.0 * results["acc"]
        results["num_skipped"] = int(skipped)

        ts = None
        if "logits" in data:
            ts = temperature_scaling_report(data["logits"], data["label"], objectness, data["key"])
            results["ts_temperature"] = ts["temperature"]
            if "warning" in ts:
                logger.warning(f"[ClassificationEvaluator] {self.dataset_name}: {ts['warning']}")
            for key in TS_KEYS:
                results[f"ts_base_{key}"] = ts["before"].get(key, float("nan"))
            for key in TS_KEYS:
                results[f"ts_{key}"] = ts["after"].get(key, float("nan"))
            if ts["after"]:
                _, held = held_out_split(len(data["label"]), data["key"])
                scaled = sample_stats_from_logits(
                    data["logits"][held], data["label"][held], ts["temperature"]
                )
                ts["bins_after"] = bin_statistics(
                    scaled["confidence"], scaled["correct"], PLOT_BINS
                )

        report = {
            "dataset": self.dataset_name,
            "metrics": dict(results),
            "bins": {
                str(b): bin_statistics(data["confidence"], data["correct"], b) for b in ECE_BINS
            },
            f"adaptive_bins_{ADAPTIVE_BINS}": adaptive_bin_statistics(
                data["confidence"], data["correct"], ADAPTIVE_BINS
            ),
        }
        if k >= 2:
            report["paper_bins"] = {
                str(b): paper_bin_statistics(data["confidence"], data["correct"], b, k)
                for b in ECE_BINS
            }
        if ts is not None:
            report["temperature_scaling"] = ts
        if objectness is not None:
            report["objectness_deciles"] = objectness_deciles(
                data["confidence"], data["correct"], data["objectness"]
            )
        report["risk_coverage"] = risk_coverage_from_confidence(
            data["confidence"], data["correct"], self.dataset_name
        )
        # per-sample scores of the last evaluation (main process), for the context-only pair
        self.sample_scores = {
            "key": data["key"],
            "msp": data["confidence"],
            "entropy": data["neg_entropy"],
            "correct": data["correct"],
            "objectness": data["objectness"],
        }
        if self._plots:
            report["figure_titles"] = self._titles(ts, "mean_objectness" in results)
        self._write(report, data, ts)
        logger.info(
            f"[ClassificationEvaluator] {self.dataset_name}: acc {results['acc']:.4f}, "
            f"ECE(15) {results['paper_ece_15']:.4f} (pycalib), {results['ece_15']:.4f} (Guo), "
            f"avg conf {results['avg_conf']:.4f} on {results['num_samples']} samples"
        )
        return OrderedDict(classification=results)

    def _write(self, report: Dict, data: Dict, ts: Optional[Dict]) -> None:
        images = {}
        if self._plots:
            images = self._draw(report, data, ts)
        if self._output_dir:
            from .plots import save_png

            PathManager.mkdirs(self._output_dir)
            with PathManager.open(os.path.join(self._output_dir, "calibration.json"), "w") as f:
                json.dump(_json_ready(report), f, indent=2)
            for name, image in images.items():
                save_png(image, os.path.join(self._output_dir, f"{name}.png"))
        self._to_event_storage(images)

    def _titles(self, ts: Optional[Dict], objectness: bool) -> Dict[str, str]:
        """The figures' titles: "<model> on <dataset>" (the dataset alone without a model
        name), what each shows."""
        name = self.dataset_name
        if self._model_name:
            name = f"{self._model_name} on {self.dataset_name}"
        titles = {"reliability_diagram": f"{name} ({PLOT_BINS} bins)"}
        if ts is not None and "bins_after" in ts:
            titles["reliability_diagram_ts"] = f"{name}: held-out half, T = {ts['temperature']:.3f}"
        if objectness:
            titles["confidence_vs_objectness"] = name
        return titles

    def _draw(self, report: Dict, data: Dict, ts: Optional[Dict]) -> Dict[str, np.ndarray]:
        from .plots import objectness_scatter, reliability_diagram

        metrics = report["metrics"]
        titles = report["figure_titles"]
        images = {
            "reliability_diagram": reliability_diagram(
                report["bins"][str(PLOT_BINS)], metrics, title=titles["reliability_diagram"]
            )
        }
        if "reliability_diagram_ts" in titles:
            images["reliability_diagram_ts"] = reliability_diagram(
                ts["bins_after"], ts["after"], title=titles["reliability_diagram_ts"]
            )
        if "confidence_vs_objectness" in titles:
            images["confidence_vs_objectness"] = objectness_scatter(
                [{k: data[k] for k in ("confidence", "objectness", "correct")}],
                [titles["confidence_vs_objectness"]],
            )
        return images

    def _to_event_storage(self, images: Dict[str, np.ndarray]) -> None:
        from detectron2.utils.events import get_event_storage

        try:
            storage = get_event_storage()
        except (AssertionError, IndexError):  # no EventStorage active (e.g. --eval-only)
            return
        from .plots import to_chw_float

        for name, image in images.items():
            storage.put_image(f"{self.dataset_name}/{name}", to_chw_float(image))
