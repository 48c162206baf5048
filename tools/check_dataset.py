#!/usr/bin/env python
"""Scan an ImageNet or OpenImages tree and report every problem the readers and the mapper
would meet.

    tools/check_dataset.py --root datasets/imagenet
    tools/check_dataset.py --root datasets/imagenet --layout kaggle --splits val --json report.json
    tools/check_dataset.py --root datasets/imagenet --no-decode         # annotations only (fast)
    tools/check_dataset.py --root datasets/openimages --splits train val test

Per split it runs the dataset indexer (the same code and policy as training: see
als_d2/data/datasets/imagenet_index.py; for an OpenImages tree, found by its class
descriptions file or named by --layout openimages, openimages_index.py, with the train
image-level label CSV when present) with every offending file (or CSV line) kept, then
opens and decodes every image (the mapper's reader, als_d2.data.image_io, where available; else
Pillow) and hashes its bytes. Each problem is listed by file (file:line for a CSV row)
under its kind, with a count per kind and a severity (the readers' table, KINDS in
als_d2/data/datasets/indexing.py):

  fatal    training or evaluation under the current policy stops (a reader error, an
           empty split, an undecodable image in val: evaluation never skips), or would
           run with wrong objectness (most boxes outside their images);
  skipped  the file, image, object or box is dropped and counted (in training, an
           undecodable image is skipped by the loader: data/skipped_samples);
  fixed    used after a documented correction (box clipped or rescaled, colour mode
           converted, PNG under a .JPEG name decoded by content);
  noted    kept as it is, worth knowing (byte-identical files).

Exit status: 1 when something is fatal (with --strict: also when something is skipped),
else 0. Time and memory stay bounded on hostile files: XMLs are capped (1 MiB) and
parsed without entities or DTDs, images above --max-pixels or --max-file-mb are
reported without being decoded, one image per worker at a time.
"""

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
import warnings
from collections import OrderedDict, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import als_d2  # noqa: F401  (detectron2 bootstrap first)
from PIL import Image

from als_d2.data.datasets import imagenet_index, openimages_index
from als_d2.data.datasets.indexing import (  # the problem kinds: one table
    FATAL,
    FIXED,
    IMAGE_FAILURES,
    KINDS,
    NOTED,
    SKIPPED,
)
from als_d2.data.datasets.imagenet_index import LAYOUTS

OPENIMAGES = "openimages"  # --layout of an OpenImages V6 tree


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--root",
        required=True,
        help="the ImageNet tree (standard or Kaggle ILSVRC layout, or ImageNetV2), or an "
        "OpenImages V6 tree",
    )
    p.add_argument("--layout", default="auto", choices=(*LAYOUTS, OPENIMAGES))
    p.add_argument(
        "--splits",
        nargs="+",
        default=["train", "val"],
        choices=["train", "val", "test"],
        help="test: OpenImages only",
    )
    p.add_argument("--class-root", help="take the class list from this ImageNet tree")
    p.add_argument("--no-decode", action="store_true", help="check annotations and listings only")
    p.add_argument("--workers", type=int, default=max(1, min(8, os.cpu_count() or 1)))
    p.add_argument(
        "--max-pixels",
        type=int,
        default=Image.MAX_IMAGE_PIXELS,
        help="images with more pixels are reported, not decoded (default: Pillow's limit)",
    )
    p.add_argument(
        "--max-file-mb", type=float, default=256.0, help="larger image files are reported, not read"
    )
    p.add_argument("--strict", action="store_true", help="exit 1 on skipped problems too")
    p.add_argument(
        "--list", type=int, default=0, metavar="N", help="list at most N files per kind (0: all)"
    )
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


_EXTENSION_FORMATS = {".jpeg": "JPEG", ".jpg": "JPEG", ".png": "PNG"}


# --------------------------------------------------------------------------------------
# Decoding (runs in worker processes)

_LIMITS: Dict[str, int] = {}


def _init_decoder(max_pixels: int, max_bytes: int) -> None:
    _LIMITS.update(max_pixels=max_pixels, max_bytes=max_bytes)
    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow raises above 2x, warns above 1x:
    warnings.simplefilter("error", Image.DecompressionBombWarning)  # both are bombs here


def _mapper_reader():
    """The mapper's decoder (the other side of the training policy), or None."""
    try:
        from als_d2.data.image_io import read_image_rgb
    except ImportError:
        return None
    return read_image_rgb


def _pil_decode(path: str):
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


def _is_bomb(e: BaseException) -> bool:
    text = f"{type(e).__name__} {e}".lower()
    cause = e.__cause__
    return (
        "decompressionbomb" in text
        or "decompression bomb" in text
        or (cause is not None and _is_bomb(cause))
    )


def check_image(path: str) -> Tuple[List[Tuple[str, str]], Optional[str]]:
    """([(kind, detail)], sha1 of the bytes or None) for one image file."""
    problems: List[Tuple[str, str]] = []
    try:
        size = os.path.getsize(path)
    except OSError as e:
        return [("undecodable_images", f"cannot read the file ({e.strerror or e})")], None
    if size == 0:
        return [("empty_images", "0 bytes")], None
    max_bytes = _LIMITS.get("max_bytes", 1 << 30)
    if size > max_bytes:
        return [("decompression_bombs", f"file of {size} bytes > --max-file-mb")], None
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    try:
        with Image.open(path) as im:  # header only: format, mode, size, EXIF
            fmt, mode, (w, h) = im.format, im.mode, im.size
            orientation = 1
            if fmt != "JPEG" or "exif" in im.info:
                try:
                    orientation = int(im.getexif().get(0x0112, 1) or 1)
                except Exception:  # malformed EXIF: ignored, as the mapper does
                    orientation = 1
    except Exception as e:
        kind = "decompression_bombs" if _is_bomb(e) else "undecodable_images"
        return [(kind, f"{type(e).__name__}: {e}")], digest.hexdigest()
    expected = _EXTENSION_FORMATS.get(os.path.splitext(path)[1].lower())
    if expected and fmt != expected:
        problems.append(("format_mismatch", f"{fmt} data under a {os.path.splitext(path)[1]} name"))
    if mode != "RGB":
        problems.append(("converted_images", f"mode {mode}"))
    if orientation not in (0, 1):
        problems.append(("exif_rotated", f"EXIF orientation {orientation}"))
    reader = _mapper_reader() or _pil_decode
    try:
        reader(path)
    except Exception as e:
        kind = "decompression_bombs" if _is_bomb(e) else "undecodable_images"
        problems.append(
            (kind, f"{getattr(e, 'reason', None) or f'{type(e).__name__}: {e}'} ({w}x{h} {fmt})")
        )
    return problems, digest.hexdigest()


def _check_chunk(paths: Sequence[str]) -> List[Tuple[str, List[Tuple[str, str]], Optional[str]]]:
    return [(p, *check_image(p)) for p in paths]


def decode_all(paths: Sequence[str], workers: int, max_pixels: int, max_bytes: int, progress: bool):
    """Yield (path, problems, sha1) for every path, ``workers`` processes in parallel."""
    chunks = [paths[i : i + 64] for i in range(0, len(paths), 64)]
    from tqdm import tqdm

    bar = tqdm(
        total=len(paths), desc="Decoding images", unit="img", disable=None if progress else True
    )
    if workers <= 1 or len(chunks) <= 1:
        old_limit = Image.MAX_IMAGE_PIXELS
        with warnings.catch_warnings():  # the limits apply to this scan only
            try:
                _init_decoder(max_pixels, max_bytes)
                for chunk in chunks:
                    for r in _check_chunk(chunk):
                        bar.update(1)
                        yield r
            finally:
                Image.MAX_IMAGE_PIXELS = old_limit
                _LIMITS.clear()
    else:
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        with mp.get_context(method).Pool(workers, _init_decoder, (max_pixels, max_bytes)) as pool:
            for rows in pool.imap(_check_chunk, chunks):
                for r in rows:
                    bar.update(1)
                    yield r
    bar.close()


# --------------------------------------------------------------------------------------
# The report


class Report:
    """Problems by split and kind: ``problems[split][kind] = [detail, ...]``."""

    def __init__(self, root: str, layout: str):
        self.root, self.layout = root, layout
        self.problems: Dict[str, Dict[str, List[str]]] = OrderedDict()
        self.stats: Dict[str, dict] = OrderedDict()
        self.fatal_reasons: List[str] = []

    def add(self, split: str, kind: str, detail: str) -> None:
        self.problems.setdefault(split, OrderedDict()).setdefault(kind, []).append(detail)

    def as_dict(self) -> dict:
        return {
            "root": self.root,
            "layout": self.layout,
            "fails": bool(self.fatal_reasons),
            "fatal_reasons": self.fatal_reasons,
            "splits": {
                split: {
                    "stats": self.stats.get(split, {}),
                    "problems": {
                        kind: {"severity": KINDS[kind][0], "count": len(files), "files": files}
                        for kind, files in per.items()
                    },
                }
                for split, per in self.problems.items()
            },
        }

    def format(self, max_list: int = 0) -> str:
        lines = [f"Dataset {self.root} ({self.layout} layout)"]
        for split in self.stats:
            s = self.stats[split]
            lines.append(
                f"== {split}: {s.get('images', 0)} images ({s.get('boxed_images', 0)} with boxes, "
                f"{s.get('objects', 0)} objects), {s.get('classes', 0)} classes"
            )
            per = self.problems.get(split, {})
            if not per:
                lines.append("   no problems")
            for kind in KINDS:
                files = per.get(kind)
                if not files:
                    continue
                severity, meaning = KINDS[kind]
                lines.append(f"   [{severity}] {kind}: {len(files)}  ({meaning})")
                shown = files if max_list <= 0 else files[:max_list]
                lines += [f"       {f}" for f in shown]
                if len(shown) < len(files):
                    lines.append(f"       ... and {len(files) - len(shown)} more")
        totals = dict.fromkeys((SKIPPED, FIXED, NOTED), 0)
        for per in self.problems.values():
            for kind, files in per.items():
                if KINDS[kind][0] != FATAL:  # fatal: counted by reason, below
                    totals[KINDS[kind][0]] += len(files)
        lines.append(
            f"Summary: {len(self.fatal_reasons)} fatal, {totals[SKIPPED]} skipped, "
            f"{totals[FIXED]} fixed, {totals[NOTED]} noted problem(s)."
        )
        if self.fatal_reasons:
            lines.append("Training/evaluation under the current policy would FAIL:")
            lines += [f"  - {r}" for r in self.fatal_reasons]
        else:
            lines.append("Training/evaluation under the current policy would run.")
        return "\n".join(lines)


def boxes_frame_check(report: "Report", split: str, stats: dict) -> None:
    """A fatal reason when most boxes of ``split`` reach outside their images (clipped or
    emptied by clipping): the annotations are then in another frame than the images (e.g.
    a resized copy of the images with the original CSV), and objectness would be wrong
    although training runs."""
    outside = stats.get("clipped_boxes", 0) + stats.get("degenerate_boxes", 0)
    seen = stats.get("objects", 0) + stats.get("degenerate_boxes", 0)
    if seen and outside * 2 > seen:
        report.fatal_reasons.append(
            f"{split}: {outside} of {seen} boxes reach outside their images, so the boxes are "
            "not in the images' frame (resized images with the original annotations?) and "
            "objectness would be wrong; use the annotations that match these images"
        )


def _imagenet_index(root: str, layout: str, split: str, class_root, progress: bool):
    """(stats, {kind: every example}, image paths) of one ImageNet split."""
    if layout == "imagenetv2":
        index = imagenet_index.build_imagenetv2_index(root, class_root, max_examples=None)
    else:
        index = imagenet_index.build_index(
            root, split, layout, class_root, show_progress=progress, max_examples=None
        )
    paths = [os.path.join(root, p) for p in index["rel_paths"]]
    return dict(index["stats"]), index["examples"], imagenet_index.COUNTERS, paths


def _openimages_index(root: str, split: str, workers: int, progress: bool):
    """(stats, {kind: every example}, kinds, image paths) of one OpenImages split; for
    train, the image-level label CSV's problems too (when the tree has the file)."""
    index = openimages_index.build_index(
        root, split, num_workers=workers, show_progress=progress, max_examples=None
    )
    stats = dict(index["stats"])
    examples = {k: list(v) for k, v in index["examples"].items()}
    labels = openimages_index.split_paths(root, split, required=False)["image_labels"]
    if split == "train" and labels:
        coverage = openimages_index.image_label_coverage(
            index, labels, num_workers=workers, show_progress=progress, max_examples=None
        )
        for kind in openimages_index.LABEL_COUNTERS:
            stats[kind] = stats.get(kind, 0) + coverage["stats"].get(kind, 0)
            examples.setdefault(kind, []).extend(coverage["examples"].get(kind, []))
    # the report's totals: every indexed image has a box (the box CSV lists it)
    stats.update(boxed_images=len(set(index["box_image"].tolist())), objects=stats["boxes"])
    paths = [os.path.join(root, p) for p in index["file_names"]]
    return stats, examples, openimages_index.COUNTERS, paths


def resolve_tree_layout(root: str, layout: str = "auto") -> str:
    """``openimages`` for an OpenImages tree (named, or found by its class descriptions
    file), else the ImageNet layout (:func:`imagenet_index.resolve_layout`)."""
    if layout == OPENIMAGES or (layout == "auto" and openimages_index.is_openimages_tree(root)):
        return OPENIMAGES
    return imagenet_index.resolve_layout(root, layout)


def check_tree(
    root: str,
    layout: str = "auto",
    splits: Sequence[str] = ("train", "val"),
    class_root: Optional[str] = None,
    *,
    decode: bool = True,
    workers: int = 1,
    max_pixels: int = Image.MAX_IMAGE_PIXELS,
    max_bytes: int = 256 << 20,
    progress: bool = False,
) -> Report:
    """Scan ``root`` and return the :class:`Report` (see the module docstring)."""
    layout = resolve_tree_layout(root, layout)
    report = Report(root, layout)
    hashes: Dict[str, List[Tuple[str, str]]] = defaultdict(list)  # sha1 -> [(split, path)]
    for split in ["val"] if layout == "imagenetv2" else list(splits):
        try:
            if layout == OPENIMAGES:
                stats, examples, kinds, paths = _openimages_index(root, split, workers, progress)
            elif split == "test":
                raise ValueError(f"{root}: an ImageNet tree has no split 'test' here")
            else:
                stats, examples, kinds, paths = _imagenet_index(
                    root, layout, split, class_root, progress
                )
        except (OSError, ValueError) as e:
            report.stats[split] = {}
            report.add(split, "index_error", str(e))
            report.fatal_reasons.append(f"{split}: {e}")
            continue
        report.stats[split] = stats
        boxes_frame_check(report, split, stats)
        for kind in kinds:
            if decode and kind == "exif_rotated":  # the image checks report it, per file
                continue
            for detail in examples.get(kind, []):
                report.add(split, kind, detail)
        failed = 0
        if decode:
            for path, problems, digest in decode_all(
                paths, workers, max_pixels, max_bytes, progress
            ):
                for kind, detail in problems:
                    report.add(split, kind, f"{path}: {detail}")
                failed += any(kind in IMAGE_FAILURES for kind, _ in problems)
                if digest is not None:
                    hashes[digest].append((split, path))
        usable = len(paths) - failed
        if usable == 0:
            report.add(
                split,
                "empty_split",
                f"{root} ({split}): {len(paths)} images indexed, {usable} usable",
            )
            report.fatal_reasons.append(f"{split}: no usable image")
        elif failed and split != "train":
            report.fatal_reasons.append(
                f"{split}: {failed} image(s) cannot be decoded, and evaluation stops on the "
                "first one (fix or remove them)"
            )
        elif failed and failed * 2 > len(paths):
            report.fatal_reasons.append(
                f"{split}: {failed} of {len(paths)} images cannot be decoded"
            )
    for where in hashes.values():
        for split, path in where[1:]:
            first_split, first = where[0]
            report.add(split, "duplicate_content", f"{path} (same bytes as {first}, {first_split})")
    return report


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not os.path.isdir(args.root):
        print(f"--root {args.root}: not a folder", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    report = check_tree(
        args.root,
        args.layout,
        args.splits,
        args.class_root,
        decode=not args.no_decode,
        workers=args.workers,
        max_pixels=args.max_pixels,
        max_bytes=int(args.max_file_mb * (1 << 20)),
        progress=not args.quiet,
    )
    print(report.format(args.list))
    print(f"({time.perf_counter() - t0:.1f}s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.as_dict(), f, indent=1)
    skipped = any(KINDS[k][0] == SKIPPED for per in report.problems.values() for k in per)
    return 1 if report.fatal_reasons or (args.strict and skipped) else 0


if __name__ == "__main__":
    sys.exit(main())
