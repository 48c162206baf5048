#!/usr/bin/env python
"""Class activation maps of several checkpoints side by side (the paper's figures 6-8),
and confidence vs objectness per checkpoint.

    tools/visualize_cam.py --config-file configs/als_r50.yaml \\
        --checkpoints output/hard_r50/model_final.pth output/als_r50/model_final.pth \\
        --dataset imagenet_val --num-images 8 --output cams/ [KEY VALUE ...]

Writes to ``--output``:

* ``cam_grid.png``: one row per image (the evaluation crop of the test mapper), the
  input in the first column (label, objectness), then one column per checkpoint: the
  CAM of the predicted class (``als_d2.evaluation.cam``) over the image, captioned with
  the prediction and its confidence;
* ``confidence_vs_objectness.png``: per checkpoint, max probability against the
  objectness of the evaluation crop over up to ``--scatter-samples`` images (0: skip).

Runs in one process (CPU or one GPU, cfg.MODEL.DEVICE). Checkpoints load strictly
(``als_d2.checkpoint.evaluation``): a missing file stops before any model is built, and a
head whose class count is not ``MODEL.CLASSIFIER.NUM_CLASSES`` (checked against the
dataset's), or a file without head or backbone tensors, is an error naming the file.
"""

import argparse
import logging
import os
from typing import Dict

from tool_args import tool_parser  # tools/tool_args: argparse only


def get_parser():
    parser = tool_parser(__doc__)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--checkpoints", nargs="+", required=True)
    parser.add_argument(
        "--names", nargs="+", default=None, help="column titles, one per checkpoint"
    )
    parser.add_argument(
        "--dataset", default=None, help="registered dataset (default: DATASETS.TEST[0])"
    )
    parser.add_argument(
        "--num-images", type=int, default=8, help="rows: images spread evenly over the dataset"
    )
    parser.add_argument(
        "--indices",
        type=int,
        nargs="+",
        default=None,
        help="dataset indices (instead of --num-images)",
    )
    parser.add_argument(
        "--scatter-samples", type=int, default=2000, help="images for the scatter plot (0: none)"
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="CAM overlay opacity")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser


if __name__ == "__main__":
    args = get_parser().parse_args()  # fast --help: before the imports below

import als_d2  # noqa: E402,F401  (detectron2 bootstrap first; registers the datasets)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.utils.file_io import PathManager  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from als_d2.checkpoint.evaluation import (  # noqa: E402  (strict; no pickled code runs)
    CheckpointMismatchError,
    EvaluationCheckpointer,
    check_checkpoint_head,
    check_files_exist,
)
from als_d2.config import check_eval_num_classes, load_als_config  # noqa: E402
from als_d2.data.build import load_dataset_dicts  # noqa: E402
from als_d2.data.mapper import ClassificationDatasetMapper  # noqa: E402
from als_d2.engine import ClassificationTrainer  # noqa: E402
from als_d2.engine.launch import short_errors  # noqa: E402
from als_d2.evaluation.cam import (  # noqa: E402
    cam_grid,
    class_activation_maps,
    overlay_cam,
)
from als_d2.evaluation.plots import objectness_scatter, save_png  # noqa: E402

logger = logging.getLogger("als_d2.visualize_cam")


def setup(args):
    cfg = load_als_config(args.config_file, args.opts)
    setup_logger(name="als_d2")
    return cfg


def _class_name(names, k: int) -> str:
    return str(names[k]) if names is not None and 0 <= k < len(names) else str(k)


def _scatter_data(cfg, model, dataset: str, max_samples: int) -> Dict[str, np.ndarray]:
    conf, obj, correct = [], [], []
    model.eval()
    with torch.no_grad():
        for batch in ClassificationTrainer.build_test_loader(cfg, dataset):
            probs = torch.stack([o["probs"] for o in model(batch)]).cpu()
            labels = torch.as_tensor([x["label"] for x in batch])
            conf.append(probs.max(dim=1).values.numpy())
            correct.append((probs.argmax(dim=1) == labels).numpy())
            obj.append(
                np.array(
                    [x["objectness"] if x.get("has_boxes") else np.nan for x in batch],
                    dtype=float,
                )
            )
            if sum(len(c) for c in conf) >= max_samples:
                break
    cat = {
        "confidence": np.concatenate(conf),
        "objectness": np.concatenate(obj),
        "correct": np.concatenate(correct),
    }
    return {k: v[:max_samples] for k, v in cat.items()}


def main(args) -> Dict[str, str]:
    check_files_exist(args.checkpoints, "checkpoint")
    cfg = setup(args)
    dataset = args.dataset or cfg.DATASETS.TEST[0]
    try:
        check_eval_num_classes(cfg, dataset)
        for path in args.checkpoints:
            check_checkpoint_head(path, cfg.MODEL.CLASSIFIER.NUM_CLASSES)
    except (CheckpointMismatchError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    names = args.names or [
        os.path.basename(os.path.dirname(os.path.abspath(p)))
        + "/"
        + os.path.splitext(os.path.basename(p))[0]
        for p in args.checkpoints
    ]
    if len(names) != len(args.checkpoints):
        raise SystemExit(
            f"--names has {len(names)} entries for {len(args.checkpoints)} checkpoints"
        )
    dicts = load_dataset_dicts([dataset])
    if args.indices:
        indices = list(args.indices)
    else:
        indices = sorted(
            set(
                np.linspace(0, len(dicts) - 1, min(args.num_images, len(dicts)))
                .round()
                .astype(int)
                .tolist()
            )
        )
    mapper = ClassificationDatasetMapper(cfg, is_train=False)
    mapped = [mapper(dicts[i]) for i in indices]
    classes = MetadataCatalog.get(dataset).get("thing_classes", None)
    images = [x["image"].permute(1, 2, 0).numpy() for x in mapped]
    row_titles = []
    for x in mapped:
        obj = f"{x['objectness']:.2f}" if x.get("has_boxes") else "?"
        row_titles.append(f"{_class_name(classes, x['label'])}, obj {obj}")

    columns, panels = [], []
    for path, name in zip(args.checkpoints, names):
        model = ClassificationTrainer.build_model(cfg)
        try:
            EvaluationCheckpointer(model).load(path)
        except CheckpointMismatchError as e:
            raise SystemExit(f"error: {e}") from None
        out = class_activation_maps(model, mapped)
        overlays = [
            overlay_cam(img, cam.numpy(), args.alpha) for img, cam in zip(images, out["cams"])
        ]
        captions = [
            f"{_class_name(classes, int(c))} ({float(p[c]):.2f})"
            for c, p in zip(out["class_ids"], out["probs"])
        ]
        columns.append((name, overlays, captions))
        if args.scatter_samples > 0:
            panels.append(_scatter_data(cfg, model, dataset, args.scatter_samples))
        del model

    PathManager.mkdirs(args.output)
    written = {"cam_grid": os.path.join(args.output, "cam_grid.png")}
    save_png(cam_grid(images, row_titles, columns), written["cam_grid"])
    if panels:
        written["scatter"] = os.path.join(args.output, "confidence_vs_objectness.png")
        save_png(objectness_scatter(panels, names), written["scatter"])
    for path in written.values():
        logger.info(f"wrote {path}")
    return written


if __name__ == "__main__":
    short_errors(main)(args)
