"""``ClassificationEvaluator``: a detectron2 ``DatasetEvaluator`` for image classifiers."""
import itertools
import json
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional

import numpy as np
import torch
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager

logger = logging.getLogger(__name__)


class ClassificationEvaluator(DatasetEvaluator):
    """Top-1 / top-5 accuracy (percent) of ``{"probs": K}`` outputs against ``label``.

    Keeps per sample only what the metrics need (top-5 classes, confidence, true-class
    probability, objectness), gathers it from all processes with d2's ``comm`` and
    returns ``{"classification": {...}}`` on the main process, as ``DefaultTrainer.test``
    expects. Writes ``classification.json`` to ``output_dir`` when given.
    """

    def __init__(self, dataset_name: str, distributed: bool = True, output_dir: Optional[str] = None):
        self.dataset_name = dataset_name
        self._distributed = distributed
        self._output_dir = output_dir
        self.reset()

    def reset(self):
        self._rows: List[Dict[str, np.ndarray]] = []

    def process(self, inputs, outputs):
        probs = torch.stack([o["probs"] for o in outputs]).float().cpu()
        labels = torch.as_tensor([x["label"] for x in inputs], dtype=torch.long)
        k = min(5, probs.shape[1])
        self._rows.append(
            {
                "top5": probs.topk(k, dim=1).indices.numpy(),
                "confidence": probs.max(dim=1).values.numpy(),
                "true_prob": probs.gather(1, labels[:, None])[:, 0].numpy(),
                "label": labels.numpy(),
                "objectness": np.array(
                    [np.nan if x.get("objectness") is None else x["objectness"] for x in inputs], dtype=np.float32
                ),
            }
        )

    def _collect(self) -> Dict[str, np.ndarray]:
        rows = self._rows
        if self._distributed:
            comm.synchronize()
            rows = list(itertools.chain(*comm.gather(rows, dst=0)))
        if not rows:
            return {}
        return {key: np.concatenate([r[key] for r in rows]) for key in rows[0]}

    def evaluate(self):
        data = self._collect()
        if not comm.is_main_process():
            return {}
        if not data:
            logger.warning(f"[ClassificationEvaluator] {self.dataset_name}: no predictions were collected")
            return {}
        correct_top1 = data["top5"][:, 0] == data["label"]
        correct_top5 = (data["top5"] == data["label"][:, None]).any(axis=1)
        results = OrderedDict(
            top1=100.0 * float(correct_top1.mean()),
            top5=100.0 * float(correct_top5.mean()),
            avg_conf=float(data["confidence"].mean()),
            num_samples=int(len(data["label"])),
        )
        if self._output_dir:
            PathManager.mkdirs(self._output_dir)
            path = os.path.join(self._output_dir, "classification.json")
            with PathManager.open(path, "w") as f:
                json.dump({"dataset": self.dataset_name, **results}, f, indent=2)
        return OrderedDict(classification=results)
