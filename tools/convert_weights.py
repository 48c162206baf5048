#!/usr/bin/env python
"""Convert ResNet weights between torchvision, als_d2 and detectron2.

    tools/convert_weights.py INPUT OUTPUT --to {torchvision,als_d2,detectron2}

The input format is recognised from its keys (als_d2/checkpoint/conversion.py):
torchvision or timm ResNet state dicts (.pth; also under "state_dict"/"model", with
"module." prefixes), als_d2 classifier checkpoints (tools/train_cls.py), and detectron2
backbone weights (.pkl: {"model": {name: ndarray}, "__author__": ..., "matching_heuristics":
True}, e.g. MoCo's converted files). Tensors are never changed, only renamed:

    --to torchvision  a torchvision ResNet state dict (.pth), as
                      torchvision.models.resnet50().load_state_dict(...) takes it
    --to als_d2       {"model": backbone-relative keys + head, "__author__": "als_d2",
                      "matching_heuristics": True} (.pth): loads into ImageClassifier
                      (MODEL.WEIGHTS of tools/train_cls.py) and into C4/FPN detectors
    --to detectron2   the same without the classifier head, as detectron2's .pkl

Reading never executes pickled code: torch.load(weights_only=True) for .pth, a
restricted unpickler (numpy arrays and plain containers only) for .pkl.

Examples:
    tools/convert_weights.py resnet50-11ad3fa6.pth output/tv_r50.pth --to als_d2
    tools/convert_weights.py output/als_r50/model_final.pth output/als_r50.pkl --to detectron2
    tools/convert_weights.py output/als_r50/model_final.pth output/als_r50_tv.pth --to torchvision
"""

import argparse
import logging
import pickle
import sys

import als_d2  # noqa: F401  (detectron2 bootstrap first)
from detectron2.utils.logger import setup_logger

from als_d2.checkpoint.conversion import FORMATS, convert


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help="weight file (.pth/.pt/.pth.tar/.bin, or .pkl)")
    parser.add_argument("output", help="output file (.pkl for --to detectron2, .pth otherwise)")
    parser.add_argument("--to", required=True, choices=FORMATS)
    return parser


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logger(name="als_d2", abbrev_name="als_d2")
    try:
        fmt, _ = convert(args.input, args.output, args.to)
    except (ValueError, KeyError, OSError, pickle.UnpicklingError) as e:
        logging.getLogger("als_d2").error(f"cannot convert {args.input}: {e}")
        return 1
    print(f"{args.input} ({fmt}) -> {args.output} ({args.to})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
