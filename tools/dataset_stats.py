#!/usr/bin/env python
"""Samples per class of a registered classification dataset, printed and drawn: the
class-count histogram of the paper's appendix (figure of the 480 OpenImages classes,
and of the 1000 ImageNet 'mask' classes).

    tools/dataset_stats.py --dataset openimages_train_leaf_mask --output oi_train_counts.png
    tools/dataset_stats.py --dataset imagenet_train_boxed_mask --output in_mask.png --log \
        --json counts.json
    DETECTRON2_DATASETS=/data tools/dataset_stats.py --dataset openimages_val_leaf \
        --output val.png --order label

Counts are taken over the dataset dicts' ``label`` (every dict is one sample: for 'mask'
sets, one object). Classes come from ``MetadataCatalog`` (``num_classes`` or
``thing_classes``; classes without samples count 0), else from the labels seen. The bars
are sorted by count (``--order count``, the default) or by label. Printed: classes,
samples, images (distinct ``image_id``), min / median / max per class, the largest and
smallest classes by name, and the subset steps when the dataset logs them
(``subset_steps``, OpenImages, with the rule that found the classes annotated for only a
subset of their images: ``annotation_rule``). Drawn with matplotlib's Agg canvas (no
display needed).
"""

import argparse
import difflib
import json
import os
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence

import als_d2  # noqa: F401  (detectron2 bootstrap first; registers the datasets)
import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.logger import setup_logger

from als_d2.data.datasets.catalog import DatasetRootMissingError


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset", required=True, help="a registered dataset name (DatasetCatalog)"
    )
    parser.add_argument("--output", required=True, help="PNG file to write")
    parser.add_argument(
        "--order", choices=("count", "label"), default="count", help="bar order (default: count)"
    )
    parser.add_argument("--log", action="store_true", help="logarithmic y axis")
    parser.add_argument("--json", help="also write the summary and the counts as JSON here")
    return parser


def class_counts(dicts: Sequence[dict], num_classes: Optional[int] = None) -> np.ndarray:
    """int64 (K,) samples per label; K = ``num_classes`` or 1 + the largest label.

    Raises ValueError for a dict without an integer ``label`` or one outside [0, K)."""
    counts: Counter = Counter()
    for i, d in enumerate(dicts):
        label = d.get("label")
        if not isinstance(label, (int, np.integer)) or label < 0:
            raise ValueError(
                f"dict {i} ({d.get('file_name', '?')}) has no valid 'label': {label!r}"
            )
        counts[int(label)] += 1
    k = num_classes if num_classes is not None else (max(counts) + 1 if counts else 0)
    if counts and max(counts) >= k:
        raise ValueError(f"label {max(counts)} is outside the dataset's {k} classes")
    out = np.zeros(k, dtype=np.int64)
    for label, n in counts.items():
        out[label] = n
    return out


def summary(name: str, dicts: Sequence[dict], counts: np.ndarray, class_names: List[str]) -> Dict:
    """Plain-data summary of ``counts`` (what is printed and written with ``--json``)."""
    order = np.argsort(-counts, kind="stable")
    nonzero = counts[counts > 0]

    def pick(labels) -> List[Dict]:
        return [{"label": int(i), "name": class_names[i], "count": int(counts[i])} for i in labels]

    return {
        "dataset": name,
        "classes": int(len(counts)),
        "classes_with_samples": int(len(nonzero)),
        "samples": int(counts.sum()),
        "images": len({d.get("image_id", d.get("file_name")) for d in dicts}),
        "min": int(counts.min()) if len(counts) else 0,
        "median": float(np.median(counts)) if len(counts) else 0.0,
        "max": int(counts.max()) if len(counts) else 0,
        "largest": pick(order[:5]),
        "smallest": pick(order[::-1][:5]),
        "counts": [int(c) for c in counts],
    }


def draw(
    counts: np.ndarray,
    path: str,
    title: str,
    order: str = "count",
    log: bool = False,
    class_names: Optional[Sequence[str]] = None,
) -> List[str]:
    """Bar chart of ``counts`` (sorted by count, or by label) to a PNG at ``path``. With at
    most 20 classes each bar is labelled with its class (``class_names``, else the label),
    in bar order; returns those tick labels ([] when there are too many classes to label)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(counts)
    labels = np.argsort(-counts, kind="stable") if order == "count" else np.arange(len(counts))
    values = counts[labels]
    names = (
        list(class_names) if class_names is not None and len(class_names) == len(counts) else None
    )
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(
        np.arange(len(values)),
        values,
        width=1.0 if len(values) > 100 else 0.8,
        color="#3b6ea5",
        edgecolor="none",
    )
    ticks: List[str] = []
    if len(values) <= 20:
        ticks = [str(names[i]) if names else str(int(i)) for i in labels]
        ax.set_xticks(np.arange(len(values)))
        ax.set_xticklabels(
            ticks,
            rotation=45 if any(len(t) > 4 for t in ticks) else 0,
            ha="right" if any(len(t) > 4 for t in ticks) else "center",
            fontsize=8,
        )
    ax.set_xlim(-0.5, max(len(values), 1) - 0.5)
    ax.set_xlabel("class (sorted by count)" if order == "count" else "class (label)")
    ax.set_ylabel("samples")
    if log and values.max(initial=0) > 0:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    return ticks


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = get_parser().parse_args(argv)
    known = DatasetCatalog.list()
    if args.dataset not in known:
        close = difflib.get_close_matches(args.dataset, known, n=3)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else "see the README's Data"
        sys.exit(f"error: --dataset {args.dataset!r} is not registered; {hint}")
    setup_logger(name="als_d2")
    try:
        dicts = DatasetCatalog.get(args.dataset)
    except DatasetRootMissingError as e:  # where the data must be and how to get it
        sys.exit(f"error: {e}")
    meta = MetadataCatalog.get(args.dataset)
    names = meta.get("thing_classes")
    k = meta.get("num_classes") or (len(names) if names else None)
    counts = class_counts(dicts, k)
    names = (
        list(names) if names and len(names) == len(counts) else [str(i) for i in range(len(counts))]
    )
    info = summary(args.dataset, dicts, counts, names)

    print(
        f"{args.dataset}: {info['classes']} classes ({info['classes_with_samples']} with samples), "
        f"{info['samples']} samples from {info['images']} images; per class min {info['min']}, "
        f"median {info['median']:g}, max {info['max']}"
    )
    print(
        "largest:  "
        + ", ".join(f"{c['name']} ({c['label']}): {c['count']}" for c in info["largest"])
    )
    print(
        "smallest: "
        + ", ".join(f"{c['name']} ({c['label']}): {c['count']}" for c in info["smallest"])
    )
    steps = meta.get("subset_steps")
    if steps:
        info["subset_steps"] = steps
        print("subset steps:")
        for s in steps:
            n = s.get("samples", s.get("boxes", 0))
            print(
                f"  {s['step']:<16} classes {s['classes']:>6}  images {s['images']:>9}  "
                f"boxes/samples {n:>10}"
            )
    rule = meta.get("annotation_rule")
    if rule:
        info["annotation_rule"] = rule
        print(f"classes annotated for only a subset of their images: found by the {rule} rule")
    title = (
        f"{args.dataset}: {info['samples']} samples, {info['classes']} classes "
        f"(max {info['max']}, median {info['median']:g}, min {info['min']})"
    )
    draw(counts, args.output, title, args.order, args.log, class_names=names)
    print(f"wrote {args.output}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=1)
        print(f"wrote {args.json}")
    return info


if __name__ == "__main__":
    main()
