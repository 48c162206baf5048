#!/usr/bin/env python
"""Train (or evaluate) an image classifier with hard labels, LS, ALS, CutMix or Mixup.

Mirrors detectron2's tools/train_net.py:

    tools/train_cls.py --config-file configs/als_r50.yaml --num-gpus 4
    tools/train_cls.py --config-file configs/als_r50.yaml --num-gpus 4 --resume
    tools/train_cls.py --config-file configs/als_r50.yaml --eval-only MODEL.WEIGHTS output/als_r50/model_final.pth
    tools/train_cls.py --config-file configs/demo/als_r18_cpu.yaml SOLVER.MAX_ITER 20   # trailing KEY VALUE overrides
"""
import als_d2  # noqa: F401  (detectron2 bootstrap first)
import torch
from als_d2.checkpoint import ClassifierCheckpointer  # reads MODEL.WEIGHTS without running pickled code
from detectron2.config import get_cfg
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm

from als_d2 import compat
from als_d2.config import add_als_config, check_als_config, check_device

from als_d2.engine import ClassificationTrainer

def setup(args):
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    check_als_config(cfg)
    check_device(cfg)
    default_setup(cfg, args)
    return cfg

def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = ClassificationTrainer.build_model(cfg)
        ClassifierCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        res = ClassificationTrainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, res)
        return res
    trainer = ClassificationTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()

def check_processes(args) -> None:
    """Stop early, with what is possible, when --num-gpus cannot be honoured."""
    visible = torch.cuda.device_count()
    if args.num_gpus <= 1 or args.num_gpus <= visible:
        return
    if visible == 0 and compat.launch_supports_cpu_workers():
        return  # detectron2 main runs CPU processes over gloo
    if visible == 0:
        raise SystemExit(
            f"--num-gpus {args.num_gpus}: no CUDA device is visible and the installed detectron2's launch() "
            "cannot start CPU processes (v0.6 asserts CUDA; detectron2 main runs them over gloo). "
            "Run with --num-gpus 1 MODEL.DEVICE cpu, or install the official detectron2 main."
        )
    raise SystemExit(f"--num-gpus {args.num_gpus}: only {visible} CUDA device(s) are visible")

if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    check_processes(args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
