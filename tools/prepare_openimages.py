#!/usr/bin/env python
"""Read an OpenImages V6 detection tree once and write the index that registration
reads: one file per split, ROOT/als_d2_<split>.json.gz, and (with train) the train
statistics the classes are chosen from, ROOT/als_d2_classes.json.gz (or under
--output-dir).

    tools/prepare_openimages.py --root $DETECTRON2_DATASETS/openimages
    tools/prepare_openimages.py --root datasets/openimages --splits train val
    tools/prepare_openimages.py --root /ro/openimages --output-dir /data/openimages_index

The box CSVs (and the train image-level label CSV, when present) are streamed in byte
ranges and the image headers read in --workers processes. Each file (gzipped JSON) holds
the images, their boxes (packed arrays) and the problem counts, every bad row named by
file and line (docs/datasets.md). The datasets openimages_* read them; run this again
after the tree changes (the subset rules, the hierarchy and the merge file are read at
load). With --output-dir, register with register_openimages(..., index_dir=<output-dir>).
"""

import argparse
import os
import sys

import als_d2  # noqa: F401  (detectron2 bootstrap first)
from detectron2.utils.logger import setup_logger

from als_d2.data.datasets.indexing import default_num_workers
from als_d2.data.datasets.openimages import SPLITS, prepare_openimages


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", required=True, help="the OpenImages tree")
    p.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    p.add_argument("--output-dir", help="where the files go (default: --root)")
    p.add_argument(
        "--workers",
        type=int,
        default=default_num_workers(),
        help="parsing / header-reading processes (default: $ALS_D2_INDEX_WORKERS or the CPUs)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not os.path.isdir(args.root):
        print(f"--root {args.root}: not a folder", file=sys.stderr)
        return 2
    setup_logger(name="als_d2")
    try:
        written = prepare_openimages(
            args.root,
            args.splits,
            output_dir=args.output_dir,
            num_workers=max(1, args.workers),
            show_progress=not args.quiet,
        )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
