#!/usr/bin/env python
"""Class activation maps of several checkpoints side by side (the paper's figures 6-8),
and confidence vs objectness per checkpoint.

    tools/visualize_cam.py --config-file configs/als_r50.yaml \\
        --checkpoints output/hard_r50/model_final.pth output/als_r50/model_final.pth \\
        --dataset imagenet_val --num-images 8 --output cams/ [KEY VALUE ...]

Writes to ``--output`` (``als_d2.evaluation.cam.draw_cam_figures``), at the config's test
transform (``INPUT.CLS.TEST_RESIZE`` / ``CROP_SIZE``: give the config the models were
trained and evaluated with):

* ``cam_grid.png``: one row per image (the evaluation crop of the test mapper), the
  input in the first column (label, objectness), then one column per checkpoint: the
  CAM of the predicted class (``als_d2.evaluation.cam``) over the image, captioned with
  the prediction and its confidence. A 1x1 feature map (res5 of a ResNet at a 32 px crop)
  gives flat tints: a warning and a note under the grid say so;
* ``confidence_vs_objectness.png``: per checkpoint, max probability against the
  objectness of the evaluation crop over up to ``--scatter-samples`` images (0: skip).

Columns are named by ``--names``, else by run: the folder of a ``model_final.pth``.
Runs in one process (CPU or one GPU, cfg.MODEL.DEVICE). Checkpoints load strictly
(``als_d2.checkpoint.evaluation``): a missing file stops before any model is built, and a
head whose class count is not ``MODEL.CLASSIFIER.NUM_CLASSES`` (checked against the
dataset's), or a file without head or backbone tensors, is an error naming the file.
"""

import argparse
import logging
import sys
from typing import Dict

import als_d2  # noqa: F401  (registers the datasets and the model)
from detectron2.utils.logger import setup_logger

from als_d2.checkpoint.evaluation import (  # strict; no pickled code runs
    CheckpointMismatchError,
    check_checkpoint_head,
    check_files_exist,
    checkpoint_labels,
)
from als_d2.config import check_eval_num_classes, load_als_config
from als_d2.engine.launch import short_errors
from als_d2.evaluation.cam import draw_cam_figures

logger = logging.getLogger("als_d2.visualize_cam")


def get_parser():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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


def setup(args):
    cfg = load_als_config(args.config_file, args.opts)
    setup_logger(name="als_d2")
    return cfg


def main(args) -> Dict[str, str]:
    check_files_exist(args.checkpoints, "checkpoint")
    names = checkpoint_labels(args.checkpoints, args.names)
    cfg = setup(args)
    dataset = args.dataset or cfg.DATASETS.TEST[0]
    try:
        check_eval_num_classes(cfg, dataset)
        for path in args.checkpoints:
            check_checkpoint_head(path, cfg.MODEL.CLASSIFIER.NUM_CLASSES)
        figures = draw_cam_figures(
            cfg,
            args.checkpoints,
            names,
            dataset,
            args.output,
            num_images=args.num_images,
            indices=args.indices,
            scatter_samples=args.scatter_samples,
            alpha=args.alpha,
        )
    except (CheckpointMismatchError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    return figures["files"]


if __name__ == "__main__":
    short_errors(main)(get_parser().parse_args(sys.argv[1:]))
