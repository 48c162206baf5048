#!/usr/bin/env python
"""Fine-tune (or evaluate) a detectron2 Faster R-CNN on COCO from an als_d2 classifier.

Mirrors detectron2's tools/train_net.py; MODEL.WEIGHTS takes a tools/train_cls.py
checkpoint as it is (stem and res2-res4 -> backbone, res5 -> roi_heads.res5 (C4) or
backbone.bottom_up.res5 (FPN), classifier head dropped), or a torchvision/timm ResNet,
or detectron2 backbone weights (.pkl):

    tools/train_det.py --num-gpus 8 \
        --config-file configs/COCO-Detection/faster_rcnn_R_50_C4_paper.yaml \
        MODEL.WEIGHTS output/als_r50/model_final.pth OUTPUT_DIR output/coco/als_r50_C4_paper
    tools/train_det.py --config-file ... --resume  # continue OUTPUT_DIR's last checkpoint
    tools/train_det.py --config-file ... --eval-only \
        MODEL.WEIGHTS output/coco/als_r50_C4_paper/model_final.pth

COCO 2017 comes from detectron2's builtin registration (coco_2017_train, coco_2017_val
under $DETECTRON2_DATASETS); your own COCO-format files from DATASETS.COCO_FILES
((name, json_file, image_root) triples, registered at start-up):

    tools/train_det.py --config-file ... MODEL.ROI_HEADS.NUM_CLASSES 3 \
        DATASETS.COCO_FILES '[["my_train", "train.json", "img"], ["my_val", "val.json", "img"]]' \
        DATASETS.TRAIN '("my_train",)' DATASETS.TEST '("my_val",)'

Each evaluation writes OUTPUT_DIR/transfer_metrics.json
(AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl) for
tools/compare_transfer.py, with the recipe the config follows: its TRANSFER.RECIPE (jwyang,
the paper's; detectron2, its 1x; demo), "unknown" where the config sets none.
"""

import als_d2  # noqa: F401  (detectron2 bootstrap first)
from detectron2.config import get_cfg

from als_d2.checkpoint import TransferCheckpointer
from als_d2.config import check_datasets_registered, check_device, merge_config
from als_d2.data.datasets import register_coco_files
from als_d2.engine.detection import DetectionTrainer, add_transfer_config
from als_d2.engine.launch import (
    als_default_setup,
    default_argument_parser,
    evaluate_weights,
    launch_from_args,
)


def setup(args):
    cfg = get_cfg()
    add_transfer_config(cfg)  # TRANSFER.RECIPE, which every configs/COCO-Detection file sets
    merge_config(cfg, args.config_file, args.opts)  # mistakes: one line naming the key
    cfg.freeze()
    check_device(cfg)  # MODEL.DEVICE cuda without CUDA: a message naming the key
    register_coco_files(cfg.DATASETS.COCO_FILES)  # your own COCO-format data, by name
    check_datasets_registered(cfg)  # DATASETS.TRAIN / TEST: before the first step
    # default_setup (detectron2, fvcore: the transfer report) + the als_d2 logger
    als_default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)

    if args.eval_only:  # MODEL.WEIGHTS (or OUTPUT_DIR's last checkpoint with --resume)
        return evaluate_weights(cfg, DetectionTrainer, TransferCheckpointer, resume=args.resume)

    trainer = DetectionTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch_from_args(main, args)
