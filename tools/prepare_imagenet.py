#!/usr/bin/env python
"""Read an ImageNet (ILSVRC2012 CLS-LOC) tree once and write the index that registration
reads: one file per split, ROOT/als_d2_<split>.json.gz (or under --output-dir).

    tools/prepare_imagenet.py --root $DETECTRON2_DATASETS/imagenet
    tools/prepare_imagenet.py --root datasets/imagenet --splits val
    tools/prepare_imagenet.py --root /ro/imagenet --output-dir /data/imagenet_index

Each file (gzipped JSON) holds the class lists, every image (path relative to root,
label, size, boxes in pixels of the real image) and the problem counts (see
als_d2/data/datasets/indexing.py KINDS; tools/check_dataset.py lists every file). The
datasets imagenet_* read it; run this again after the tree changes. ImageNetV2 trees
need no prepare step. With --output-dir, register the split with
register_imagenet(..., index_file=<output-dir>/als_d2_<split>.json.gz).
"""

import argparse
import os
import sys

import als_d2  # noqa: F401  (detectron2 bootstrap first)
from detectron2.utils.logger import setup_logger

from als_d2.data.datasets.imagenet import prepare_imagenet

LAYOUTS = ("auto", "standard", "kaggle")


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", required=True, help="the ImageNet tree (standard or Kaggle layout)")
    p.add_argument("--layout", default="auto", choices=LAYOUTS)
    p.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val"])
    p.add_argument("--class-root", help="take the class list from this ImageNet tree")
    p.add_argument("--output-dir", help="where the files go (default: --root)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not os.path.isdir(args.root):
        print(f"--root {args.root}: not a folder", file=sys.stderr)
        return 2
    setup_logger(name="als_d2")
    try:
        written = prepare_imagenet(
            args.root,
            args.layout,
            args.splits,
            class_root=args.class_root,
            output_dir=args.output_dir,
            show_progress=not args.quiet,
        )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for split, path in written.items():
        print(f"{split}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
