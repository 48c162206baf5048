#!/usr/bin/env python
"""
Time of the ImageNet prepare step (``tools/prepare_imagenet.py``: list the tree, read the
CSV and every XML, read the header of every boxed image) on a generated ImageNet-shaped
tree, for one or more checkouts of als-d2 side by side; ``--workers 1 2`` compares 1 and 2
indexing processes where the checkout has them (the older loader's ``num_workers``; the
prepare step is one process and ignores it).

The tree (made once under ``--tree``, reused while its manifest matches): ``--images``
train images in ``--classes`` class folders, ``--boxed`` of them with an XML and a
``LOC_train_solution.csv`` row (1-3 boxes each), plus ``--val`` flat val images, all boxed
(XML and CSV), standard layout. The images are small valid JPEGs (only their headers are
read). Each (checkout, workers) case runs in a fresh process, interleaved over ``--reps``
rounds; the median is reported, and the full-size times are extrapolated linearly in
the number of images (ILSVRC2012: 1,281,167 train images, 544,546 of them boxed; 50,000
val).

A checkout is a folder holding ``als_d2/`` (e.g. ``git archive <commit> als_d2`` unpacked);
its prepare step is ``als_d2.data.datasets.imagenet.prepare_imagenet`` (index, write the
gzipped JSON) where that exists, else the older loader's first start
(``load_imagenet_index``: fingerprint the tree, index, pickle to a fresh cache folder).

After the prepare step, the same process times a later start: the dataset dicts of the
split from the prepared file (older checkouts: from the cache the first start wrote).

The last line printed is a JSON object: ``median_s[checkout][split_workers]`` (prepare),
``load_median_s`` (a later start), ``full_size_s`` / ``load_full_size_s`` (extrapolated),
``ratios`` (first checkout over each other, same workers, prepare and ``load_``; 1 worker
over 2 per checkout), ``images``, ``reps`` and ``hardware``.

    python benchmarks/prepare.py --tree /tmp/bench_imagenet --images 20000 \\
        --checkout /tmp/als_d2_before --checkout .
"""

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time

FULL_TRAIN, FULL_VAL = 1_281_167, 50_000

TIMER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
root, split, workers = sys.argv[2], sys.argv[3], int(sys.argv[4])
import als_d2  # noqa: F401
from als_d2.data.datasets import imagenet
t0 = time.perf_counter()
if hasattr(imagenet, "prepare_imagenet"):
    imagenet.prepare_imagenet(root, layout="standard", splits=[split], output_dir=sys.argv[5])
else:  # the older first start: fingerprint, index, pickle to a fresh cache folder
    import os, tempfile
    os.environ["ALS_D2_CACHE"] = tempfile.mkdtemp(dir=sys.argv[5])  # that loader's variable
    imagenet.load_imagenet_index(root, split, "standard", num_workers=workers)
t1 = time.perf_counter()
if hasattr(imagenet, "prepare_imagenet"):  # a later start: read the prepared file
    index_file = imagenet.prepared_path(root, split, sys.argv[5])
    dicts = imagenet.load_imagenet_dicts(root, split, "standard", index_file=index_file)
else:  # a later start: the cache
    dicts = imagenet.load_imagenet_dicts(root, split, "standard", num_workers=workers)
print(t1 - t0, time.perf_counter() - t1)
"""


def _jpeg_bytes(size):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (120, 80, 40)).save(buf, "JPEG", quality=50)
    return buf.getvalue()


def _xml(size, boxes) -> str:
    objects = "".join(
        f"<object><name>{w}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for w, b in boxes
    )
    return (
        f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height>"
        f"<depth>3</depth></size>{objects}</annotation>"
    )


def make_tree(root: str, images: int, classes: int, boxed: float, val: int, seed: int = 0):
    """Write the tree (see the module docstring) unless its manifest says it is there."""
    params = dict(images=images, classes=classes, boxed=boxed, val=val, seed=seed)
    manifest = os.path.join(root, "bench_manifest.json")
    if os.path.isfile(manifest):
        with open(manifest) as f:
            if json.load(f) == params:
                return
    rng = random.Random(seed)
    sizes = [(64, 48), (80, 60), (96, 72)]
    jpegs = {s: _jpeg_bytes(s) for s in sizes}
    wnids = [f"n{10000000 + i:08d}" for i in range(classes)]
    with open(os.path.join(_mkdir(root), "LOC_synset_mapping.txt"), "w") as f:
        f.writelines(f"{w} class {i}\n" for i, w in enumerate(wnids))

    def write(image_path, xml_path, wnid, stem, rows):
        size = rng.choice(sizes)
        with open(image_path, "wb") as f:
            f.write(jpegs[size])
        if xml_path is None:
            return
        boxes = []
        for _ in range(rng.randint(1, 3)):
            x0, y0 = rng.randint(0, size[0] // 2), rng.randint(0, size[1] // 2)
            boxes.append(
                (wnid, (x0, y0, rng.randint(x0 + 2, size[0]), rng.randint(y0 + 2, size[1])))
            )
        with open(xml_path, "w") as f:
            f.write(_xml(size, boxes))
        rows.append(f"{stem}," + " ".join(f"{w} {' '.join(map(str, b))}" for w, b in boxes))

    rows = []
    for c, wnid in enumerate(wnids):
        img_dir = _mkdir(os.path.join(root, "train", wnid))
        xml_dir = _mkdir(os.path.join(root, "bbox", "train", wnid))
        n = images // classes + (c < images % classes)
        for i in range(n):
            stem = f"{wnid}_{i}"
            xml = os.path.join(xml_dir, stem + ".xml") if rng.random() < boxed else None
            write(os.path.join(img_dir, stem + ".JPEG"), xml, wnid, stem, rows)
    _write_csv(os.path.join(root, "LOC_train_solution.csv"), rows)
    rows = []
    img_dir, xml_dir = _mkdir(os.path.join(root, "val")), _mkdir(os.path.join(root, "bbox", "val"))
    for i in range(val):
        stem = f"ILSVRC2012_val_{i + 1:08d}"
        write(
            os.path.join(img_dir, stem + ".JPEG"),
            os.path.join(xml_dir, stem + ".xml"),
            wnids[i % classes],
            stem,
            rows,
        )
    _write_csv(os.path.join(root, "LOC_val_solution.csv"), rows)
    with open(manifest, "w") as f:
        json.dump(params, f)


def _mkdir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def _write_csv(path: str, rows) -> None:
    with open(path, "w") as f:
        f.write("ImageId,PredictionString\n")
        f.writelines(r + "\n" for r in rows)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} x{os.cpu_count()}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tree", required=True, help="where the generated tree is (made once)")
    p.add_argument("--images", type=int, default=20000, help="train images")
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--boxed", type=float, default=0.4, help="fraction of train images with boxes")
    p.add_argument("--val", type=int, default=2000, help="val images (all boxed)")
    p.add_argument("--checkout", action="append", required=True, help="a folder with als_d2/")
    p.add_argument("--workers", type=int, nargs="+", default=[1])
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()

    t0 = time.perf_counter()
    make_tree(args.tree, args.images, args.classes, args.boxed, args.val)
    print(f"tree ready in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    out_dir = _mkdir(os.path.join(args.tree + "_prepared"))
    checkouts = [os.path.abspath(c) for c in args.checkout]
    times = {(c, s, w): [] for c in checkouts for s in ("train", "val") for w in args.workers}
    loads = {k: [] for k in times}
    env = dict(os.environ, PYTHONPATH="")
    for _ in range(args.reps):
        for c, s, w in times:
            cmd = [sys.executable, "-c", TIMER, c, args.tree, s, str(w), out_dir]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=c)
            if res.returncode != 0:
                sys.exit(f"{c} {s} workers={w} failed:\n{res.stderr[-2000:]}")
            prepare_s, load_s = map(float, res.stdout.strip().splitlines()[-1].split())
            times[(c, s, w)].append(prepare_s)
            loads[(c, s, w)].append(load_s)
            print(
                f"{c} {s} workers={w}: prepare {prepare_s:.2f}s, load {load_s:.2f}s",
                file=sys.stderr,
            )
    med = {k: statistics.median(v) for k, v in times.items()}
    load_med = {k: statistics.median(v) for k, v in loads.items()}
    names = {c: os.path.basename(c.rstrip("/")) or c for c in checkouts}
    scale = {"train": FULL_TRAIN / args.images, "val": FULL_VAL / args.val}
    result = {
        "benchmark": "prepare_imagenet",
        "median_s": {
            names[c]: {f"{s}_w{w}": round(med[(c, s, w)], 2) for _, s, w in times if _ == c}
            for c in checkouts
        },
        "full_size_s": {
            names[c]: {f"{s}_w{w}": round(med[(c, s, w)] * scale[s]) for _, s, w in times if _ == c}
            for c in checkouts
        },
        "load_median_s": {  # a later start: dicts from the prepared file (older: the cache)
            names[c]: {f"{s}_w{w}": round(load_med[(c, s, w)], 2) for _, s, w in times if _ == c}
            for c in checkouts
        },
        "load_full_size_s": {
            names[c]: {
                f"{s}_w{w}": round(load_med[(c, s, w)] * scale[s], 1) for _, s, w in times if _ == c
            }
            for c in checkouts
        },
        "ratios": {},
        "images": {"train": args.images, "boxed": args.boxed, "val": args.val},
        "reps": args.reps,
        "hardware": _cpu(),
    }
    first = checkouts[0]
    for c in checkouts[1:]:
        for s in ("train", "val"):
            for w in args.workers:
                key = f"{names[first]}_over_{names[c]}_{s}_w{w}"
                result["ratios"][key] = round(med[(first, s, w)] / med[(c, s, w)], 2)
                key = f"load_{names[first]}_over_{names[c]}_{s}_w{w}"
                result["ratios"][key] = round(load_med[(first, s, w)] / load_med[(c, s, w)], 2)
    for c in checkouts:
        if len(args.workers) > 1:
            w0, w1 = args.workers[0], args.workers[-1]
            for s in ("train", "val"):
                key = f"{names[c]}_{s}_w{w0}_over_w{w1}"
                result["ratios"][key] = round(med[(c, s, w0)] / med[(c, s, w1)], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
