"""COCO transfer: a trainer with detectron2's ``DefaultTrainer`` interface (``engine/base.py``)
for Faster R-CNN started from a classifier.

What differs from detectron2's ``tools/train_net.py`` trainer:

- weights are loaded by :class:`~als_d2.checkpoint.TransferCheckpointer`: a
  ``tools/train_cls.py`` checkpoint (or a torchvision/timm/detectron2 ResNet) goes straight
  into ``MODEL.WEIGHTS``, and the log says what was transferred and what starts from scratch;
- evaluation is detectron2's ``COCOEvaluator`` (its fast C++ AP only with compiled ops)
  that also reports COCOeval's average recall (AR1/AR10/AR100, ARs/ARm/ARl), the
  figures of the paper's tables 4 and 7;
- every evaluation writes ``OUTPUT_DIR/transfer_metrics.json`` for ``tools/compare_transfer.py``,
  with the recipe the config follows (``TRANSFER.RECIPE``: :func:`add_transfer_config`);
- several CPU processes work where ``launch()`` can start them (detectron2 main, gloo);
- C4 models of any depth use ``als_d2.modeling.ResNetRes5ROIHeads`` (see there).
"""

import json
import logging
import math
import os
import weakref
from collections import OrderedDict
from typing import Dict, Optional

from detectron2.config import CfgNode as CN
from detectron2.evaluation import COCOEvaluator
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage

from .. import compat
from ..checkpoint import TransferCheckpointer
from ..config import ConfigError
from ..modeling.roi_heads import ResNetRes5ROIHeads  # noqa: F401  (re-exported)
from .base import ComposedTrainer

__all__ = [
    "COCOEvaluatorWithRecall",
    "DetectionTrainer",
    "ResNetRes5ROIHeads",
    "add_transfer_config",
    "recall_from_cocoeval",
    "transfer_recipe",
]

logger = logging.getLogger(__name__)

METRICS_FILE = "transfer_metrics.json"
UNKNOWN_RECIPE = "unknown"


def add_transfer_config(cfg: CN) -> None:
    """Add the detection-transfer keys to a detectron2 config (in place; a second call is a no-op):

    ``TRANSFER.RECIPE``: the published recipe the run follows, recorded in
    ``transfer_metrics.json`` and shown by ``tools/compare_transfer.py`` ("jwyang":
    jwyang/faster-rcnn.pytorch as the paper used it; "detectron2": detectron2's 1x; "demo").
    Every config under ``configs/COCO-Detection/`` sets it (the Base file its children share,
    or the child), so they load with ``get_cfg()`` + this function, as ``tools/train_det.py``
    does, not with detectron2's plain ``get_cfg()``. Default "": not stated, recorded as
    "unknown" (:func:`transfer_recipe`).

    ``DATASETS.COCO_FILES``: ``(name, json_file, image_root)`` triples of COCO-format data
    that ``tools/train_det.py`` registers before the run (see ``docs/transfer.md``)."""
    if "TRANSFER" not in cfg:
        cfg.TRANSFER = CN()
    if "RECIPE" not in cfg.TRANSFER:
        # The published recipe the config follows: "jwyang" (the paper's), "detectron2" (its 1x),
        # "demo"; recorded in transfer_metrics.json. "": not stated ("unknown").
        cfg.TRANSFER.RECIPE = ""
    if "COCO_FILES" not in cfg.DATASETS:
        # Your own COCO-format data: (name, json_file, image_root) triples, registered at
        # start-up under `name` (als_d2.data.datasets.register_coco_files) for DATASETS.TRAIN
        # / TEST to name, e.g. [["my_train", "ann/train.json", "images/train"]].
        cfg.DATASETS.COCO_FILES = ()


def transfer_recipe(cfg: CN) -> str:
    """``TRANSFER.RECIPE`` of ``cfg``, ``unknown`` where it is missing or empty."""
    return (cfg.get("TRANSFER") or {}).get("RECIPE") or UNKNOWN_RECIPE


def recall_from_cocoeval(coco_eval, iou_type: str = "bbox") -> Dict[str, float]:
    """COCOeval's average recall (IoU 0.5:0.95), in percent like d2's AP:
    ``AR{d}`` for the three max-detection limits (1, 10, 100 by default) and ``ARs``,
    ``ARm``, ``ARl`` by object size at the largest limit. NaN when there is nothing to
    evaluate (``coco_eval`` None) or COCOeval reports -1 (no ground truth of that size)."""
    max_dets = [1, 10, 100] if coco_eval is None else list(coco_eval.params.maxDets)
    names = [f"AR{d}" for d in max_dets[:3]] + ["ARs", "ARm", "ARl"]
    if coco_eval is None or iou_type not in ("bbox", "segm"):
        return {n: float("nan") for n in names}
    stats = coco_eval.stats[6:12]
    return {n: float(v * 100) if v >= 0 else float("nan") for n, v in zip(names, stats)}


class COCOEvaluatorWithRecall(COCOEvaluator):
    """detectron2's COCOEvaluator, plus the AR figures of :func:`recall_from_cocoeval`
    next to AP, AP50, AP75, APs, APm, APl in each bbox/segm result."""

    def _derive_coco_results(self, coco_eval, iou_type, class_names=None):
        results = super()._derive_coco_results(coco_eval, iou_type, class_names=class_names)
        if iou_type in ("bbox", "segm"):
            recall = recall_from_cocoeval(coco_eval, iou_type)
            results.update(recall)
            self._logger.info(
                f"Average recall for {iou_type}: "
                + ", ".join(f"{k} {v:.3f}" for k, v in recall.items())
            )
        return results


def write_transfer_metrics(cfg, results: Dict, path: Optional[str] = None) -> str:
    """Write the evaluation results with what produced them (weights, recipe, architecture,
    schedule) as JSON; return the path (default ``OUTPUT_DIR/transfer_metrics.json``)."""
    try:
        iteration = get_event_storage().iter
    except (AssertionError, IndexError):  # no EventStorage: --eval-only
        iteration = None
    heads = "FPN" if "fpn" in cfg.MODEL.BACKBONE.NAME else "C4"
    record = OrderedDict(
        weights=cfg.MODEL.WEIGHTS,
        recipe=transfer_recipe(cfg),
        architecture=f"{cfg.MODEL.META_ARCHITECTURE} R{cfg.MODEL.RESNETS.DEPTH}-{heads}",
        norm=cfg.MODEL.RESNETS.NORM,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
        max_iter=cfg.SOLVER.MAX_ITER,
        ims_per_batch=cfg.SOLVER.IMS_PER_BATCH,
        iteration=iteration,
        datasets=list(cfg.DATASETS.TEST),
        results=results,
    )
    path = path or os.path.join(cfg.OUTPUT_DIR, METRICS_FILE)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        # NaN is written as null: strict JSON for other readers
        json.dump(_nan_to_none(record), f, indent=2)
    logger.info(f"Wrote evaluation results to {path}")
    return path


def _nan_to_none(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return OrderedDict((k, _nan_to_none(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def check_detection_classes(cfg) -> None:
    """``MODEL.ROI_HEADS.NUM_CLASSES`` must equal the class count (``thing_classes``) of
    every training set, checked at start-up: too few would end in torch's
    ``IndexError: Target 7 is out of bounds`` mid-training, too many trains dead classes."""
    from detectron2.data import MetadataCatalog

    num = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    for name in cfg.DATASETS.TRAIN:
        classes = MetadataCatalog.get(name).get("thing_classes", None)
        if classes is not None and len(classes) != num:
            raise ConfigError(
                f"config key MODEL.ROI_HEADS.NUM_CLASSES = {num}: dataset {name!r} "
                f"(DATASETS.TRAIN) has {len(classes)} classes: set MODEL.ROI_HEADS.NUM_CLASSES "
                f"{len(classes)}"
            )


class DetectionTrainer(ComposedTrainer):
    """The trainer of COCO transfer (see the module docstring): detectron2's default hooks,
    step runner and DDP (``broadcast_buffers=False``: frozen BN), with
    :class:`~als_d2.checkpoint.TransferCheckpointer`."""

    def build_checkpointer(self, cfg, model) -> TransferCheckpointer:
        return TransferCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))

    @classmethod
    def build_train_loader(cls, cfg):
        loader = super().build_train_loader(cfg)
        check_detection_classes(cfg)  # loading DATASETS.TRAIN registered their classes
        return loader

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return COCOEvaluatorWithRecall(
            dataset_name, output_dir=output_folder, use_fast_impl=compat.HAS_COMPILED_OPS
        )

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        results = super().test(cfg, model, evaluators=evaluators)
        if comm.is_main_process() and results:
            write_transfer_metrics(cfg, results)
        return results
