#!/usr/bin/env python
"""Train (or evaluate) an image classifier with hard labels, LS, ALS, CutMix or Mixup.

Mirrors detectron2's tools/train_net.py:

    tools/train_cls.py --config-file configs/als_r50.yaml --num-gpus 4
    tools/train_cls.py --config-file configs/als_r50.yaml --num-gpus 4 --resume
    tools/train_cls.py --config-file configs/als_r50.yaml --eval-only \
        MODEL.WEIGHTS output/als_r50/model_final.pth
    tools/train_cls.py --config-file configs/demo/als_r18.yaml SOLVER.EPOCHS 2  # overrides
    tools/train_cls.py --config-file configs/demo/als_r18.yaml \
        SOLVER.EPOCHS 0 SOLVER.MAX_ITER 20 SOLVER.STEPS "(15,)"
        # an iteration schedule: SOLVER.EPOCHS 0, else MAX_ITER / STEPS next to EPOCHS is an error
    tools/train_cls.py --config-file configs/demo/als_r18.yaml SOLVER.EPOCHS 2 --resume
        # --resume / --eval-only may also follow the overrides
"""

import als_d2  # noqa: F401  (detectron2 bootstrap first)
from als_d2.checkpoint import ClassifierCheckpointer  # no pickled code runs
from als_d2.config import load_als_config
from als_d2.engine import ClassificationTrainer
from als_d2.engine.launch import (
    als_default_setup,
    default_argument_parser,
    evaluate_weights,
    launch_from_args,
)


def setup(args):
    cfg = load_als_config(args.config_file, args.opts)
    als_default_setup(cfg, args)  # default_setup + the als_d2 logger (console, OUTPUT_DIR/log.txt)
    return cfg


def main(args):
    cfg = setup(args)

    if args.eval_only:  # MODEL.WEIGHTS (or OUTPUT_DIR's last checkpoint with --resume)
        return evaluate_weights(
            cfg, ClassificationTrainer, ClassifierCheckpointer, resume=args.resume
        )

    trainer = ClassificationTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch_from_args(main, args)
