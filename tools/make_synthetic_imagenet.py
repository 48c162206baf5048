#!/usr/bin/env python
"""Write the embedded default dataset: a small context-biased ImageNet (Kaggle ILSVRC
layout, with boxes) and a COCO-format detection split, under --root.

    tools/make_synthetic_imagenet.py --root datasets/synthetic            # default sizes
    tools/make_synthetic_imagenet.py --root datasets/synthetic_quick --quick
    tools/make_synthetic_imagenet.py --root /tmp/syn --num-classes 20 --context-prob 0.9 --seed 3

Where the data must live: the configs (configs/demo/*.yaml: synthetic_imagenet_*,
synthetic_coco_*) read the tree registered at import from
$DETECTRON2_DATASETS/synthetic_imagenet (DETECTRON2_DATASETS defaults to ./datasets), so
for them write it there:

    tools/make_synthetic_imagenet.py --root $DETECTRON2_DATASETS/synthetic_imagenet

(any other --root is read only by code that calls
als_d2.data.datasets.builtin.register_synthetic_imagenet(root, prefix), as tools/demo.py does).

A second run with the same parameters returns at once (synthetic_manifest.json).
See als_d2/data/synthetic.py for the layout and the image model.
"""

import argparse
import json
import sys

import als_d2  # noqa: F401  (package set-up first, as every entry point does)
from als_d2.data import synthetic

PRESET = "default: DEFAULT_SIZES (QUICK_SIZES with --quick) of als_d2/data/synthetic.py"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--root",
        required=True,
        help="output folder (created; must not hold another ILSVRC tree); "
        "$DETECTRON2_DATASETS/synthetic_imagenet for the synthetic_* names of the configs",
    )
    p.add_argument(
        "--quick", action="store_true", help="the smaller preset (the summary prints the sizes)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-classes", type=int, help=f"1..100; {PRESET}")
    p.add_argument("--train-per-class", type=int, help=PRESET)
    p.add_argument("--val-per-class", type=int, help=PRESET)
    p.add_argument(
        "--boxed-fraction", type=float, default=0.6, help="fraction of train images with boxes"
    )
    p.add_argument(
        "--context-prob",
        type=float,
        default=0.8,
        help="fraction of images on their class background",
    )
    p.add_argument(
        "--image-size", type=int, nargs=2, default=(96, 160), metavar=("MIN", "MAX"), help="pixels"
    )
    p.add_argument("--coco-train", type=int, help=f"COCO-format train images; {PRESET}")
    p.add_argument("--coco-val", type=int, help=f"COCO-format val images; {PRESET}")
    p.add_argument("--force", action="store_true", help="regenerate even when the manifest matches")
    p.add_argument("--json", action="store_true", help="print the whole summary as JSON")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    sizes = dict(synthetic.QUICK_SIZES if args.quick else synthetic.DEFAULT_SIZES)
    for key in sizes:
        value = getattr(args, key)
        if value is not None:
            sizes[key] = value
    summary = synthetic.generate_synthetic_imagenet(
        args.root,
        boxed_fraction=args.boxed_fraction,
        context_prob=args.context_prob,
        image_size=tuple(args.image_size),
        seed=args.seed,
        force=args.force,
        **sizes,
    )
    if args.json:
        print(json.dumps(summary, indent=1))
        return summary
    how = (
        "already there (manifest matches)"
        if summary["cached"]
        else f"written in {summary['seconds']:.1f} s"
    )
    print(f"synthetic ImageNet at {summary['root']}: {how}")
    print(
        f"  {len(summary['wnids'])} classes; train {summary['train_images']} images "
        f"({summary['train_boxed_images']} with boxes), val {summary['val_images']}; "
        f"own-class background: train {summary['train_own_context_fraction']:.2f}, "
        f"val {summary['val_own_context_fraction']:.2f}"
    )
    print(
        f"  COCO: {summary['coco_train_images']} train / {summary['coco_val_images']} val images, "
        f"{summary['coco_train_json']}"
    )
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
