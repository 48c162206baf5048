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

``--openimages-rows N`` times the OpenImages prepare step instead
(``tools/prepare_openimages.py --splits train``: stream the box CSV and the image-level
label CSV, read the image headers, write the files) on a generated OpenImages-shaped
tree: a train box CSV of N rows in the official column layout (V6's 21 columns, ~8.4
boxes per image as in V6), 600 classes, one small JPEG per image, an image-level label
CSV of 0.6 N rows; older checkouts: the loader's first start (index, image-level counts,
pickled to a fresh cache). A later start is the train dicts from the files. Full size:
linear in the rows (V6 train: 14,610,229 box rows). With pyarrow importable (it is not a
dependency: ``PYTHONPATH=<a folder with pyarrow>``), it also times the CSV parse alone,
the box reader of each checkout (``read_bbox_csv``) against ``pyarrow.csv.read_csv``
(multithreaded) plus what it takes to reach the same arrays (ImageID and LabelName to
indices, float32 boxes, int8 flags); ``parse_s`` in the JSON.

    python benchmarks/prepare.py --tree /tmp/bench_oi --openimages-rows 200000 \\
        --checkout /tmp/als_d2_before --checkout . --workers 1 2
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


FULL_OI_TRAIN_ROWS = 14_610_229
OI_BOXES_PER_IMAGE = 8.4  # V6 train: 14.6M boxes on 1.74M images

TIMER_OI = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
root, out, workers = sys.argv[2], sys.argv[3], int(sys.argv[4])
import als_d2  # noqa: F401
from als_d2.data.datasets import openimages
rules = openimages.SubsetRules(min_box_coverage=0.0, merges="")  # every class: 1 dict a box
t0 = time.perf_counter()
if hasattr(openimages, "prepare_openimages"):
    openimages.prepare_openimages(root, ["train"], output_dir=out, num_workers=workers)
    t1 = time.perf_counter()
    dicts = openimages.load_openimages_dicts(root, "train", rules, index_dir=out)
else:  # the older first start: index, count the image-level labels, pickle to a fresh cache
    import os, tempfile
    os.environ["ALS_D2_CACHE"] = tempfile.mkdtemp(dir=out)
    index = openimages.load_openimages_index(root, "train", num_workers=workers)
    openimages._image_label_coverage(root, True, workers, index)
    t1 = time.perf_counter()
    dicts = openimages.load_openimages_dicts(root, "train", rules, num_workers=workers)
print(t1 - t0, time.perf_counter() - t1)
"""

PARSE_OI = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
path, desc, workers, engine = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
import numpy as np
from als_d2.data.datasets.openimages_files import (
    FLAG_COLUMNS, read_bbox_csv, read_class_descriptions,
)
mids = list(read_class_descriptions(desc))
if engine == "pyarrow":
    import pyarrow as pa, pyarrow.compute as pc, pyarrow.csv as pv
t0 = time.perf_counter()
if engine == "als_d2":
    rows = read_bbox_csv(path, {m: i for i, m in enumerate(mids)}, num_workers=workers)
    n = len(rows.box_image)
else:  # pyarrow's multithreaded reader, then the same arrays
    coords = ("XMin", "XMax", "YMin", "YMax")
    types = {**{c: pa.float32() for c in coords}, **{c: pa.int8() for c in FLAG_COLUMNS}}
    table = pv.read_csv(
        path,
        read_options=pv.ReadOptions(use_threads=workers > 1),
        convert_options=pv.ConvertOptions(
            include_columns=["ImageID", "LabelName", *coords, *FLAG_COLUMNS],
            column_types=types,
        ),
    )
    image = table["ImageID"].combine_chunks().dictionary_encode()
    label = pc.index_in(table["LabelName"], value_set=pa.array(mids)).to_numpy(zero_copy_only=False)
    xyxy = np.stack([table[c].to_numpy() for c in ("XMin", "YMin", "XMax", "YMax")], 1)
    flags = np.stack([table[c].to_numpy() for c in FLAG_COLUMNS], 1)
    box_image, image_ids = image.indices.to_numpy(), image.dictionary.to_pylist()
    n = len(box_image)
print(time.perf_counter() - t0, n)
"""


def make_openimages_tree(root: str, rows: int, seed: int = 0) -> None:
    """Write the OpenImages-shaped train tree (see the module docstring) unless its manifest
    says it is there."""
    params = dict(rows=rows, seed=seed)
    manifest = os.path.join(root, "bench_manifest.json")
    if os.path.isfile(manifest):
        with open(manifest) as f:
            if json.load(f) == params:
                return
    rng = random.Random(seed)
    mids = [f"/m/0b{i:05x}" for i in range(600)]
    with open(os.path.join(_mkdir(root), "oidv6-class-descriptions-boxable.csv"), "w") as f:
        f.writelines(f"{m},class {i}\n" for i, m in enumerate(mids))
    with open(os.path.join(root, "bbox_labels_600_hierarchy.json"), "w") as f:
        json.dump({"LabelName": "/m/0bl9f", "Subcategory": [{"LabelName": m} for m in mids]}, f)
    n_images = max(1, round(rows / OI_BOXES_PER_IMAGE))
    ids = [f"{rng.getrandbits(64):016x}" for _ in range(n_images)]
    jpeg = _jpeg_bytes((64, 48))
    image_dir = _mkdir(os.path.join(root, "train"))
    for image_id in ids:
        with open(os.path.join(image_dir, image_id + ".jpg"), "wb") as f:
            f.write(jpeg)
    header = (
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,"
        "IsGroupOf,IsDepiction,IsInside,XClick1X,XClick2X,XClick3X,XClick4X,XClick1Y,"
        "XClick2Y,XClick3Y,XClick4Y"
    )
    with open(os.path.join(root, "oidv6-train-annotations-bbox.csv"), "w") as f:
        f.write(header + "\n")
        for i in range(rows):
            x0, y0 = rng.random() * 0.5, rng.random() * 0.5
            x1, y1 = x0 + 0.01 + rng.random() * 0.49, y0 + 0.01 + rng.random() * 0.49
            clicks = ",".join(f"{rng.random():.6f}" for _ in range(8))
            flags = ",".join(rng.choice("0001") for _ in range(5))
            f.write(
                f"{ids[i * n_images // rows]},xclick,{rng.choice(mids)},1,"
                f"{x0:.6f},{x1:.6f},{y0:.6f},{y1:.6f},{flags},{clicks}\n"
            )
    with open(
        os.path.join(root, "oidv6-train-annotations-human-imagelabels-boxable.csv"), "w"
    ) as f:
        f.write("ImageID,Source,LabelName,Confidence\n")
        for i in range(int(rows * 0.6)):
            image_id = ids[i * n_images // int(rows * 0.6)]
            f.write(f"{image_id},verification,{rng.choice(mids)},{rng.choice('011')}\n")
    with open(manifest, "w") as f:
        json.dump(params, f)


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
    p.add_argument(
        "--openimages-rows", type=int, default=0, help="time OpenImages on this many box rows"
    )
    args = p.parse_args()
    if args.openimages_rows:
        return main_openimages(args)

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


def _run(code: str, *argv) -> str:
    """The last line a fresh process running ``code`` prints (exits on failure)."""
    cmd = [sys.executable, "-c", code, *map(str, argv)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), cwd=argv[0])
    if res.returncode != 0:
        sys.exit(f"{argv} failed:\n{res.stderr[-2000:]}")
    return res.stdout.strip().splitlines()[-1]


def main_openimages(args) -> None:
    """The OpenImages case (see the module docstring)."""
    t0 = time.perf_counter()
    make_openimages_tree(args.tree, args.openimages_rows)
    print(f"tree ready in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    out_dir = _mkdir(args.tree + "_prepared")
    checkouts = [os.path.abspath(c) for c in args.checkout]
    names = {c: os.path.basename(c.rstrip("/")) or c for c in checkouts}
    try:
        import pyarrow  # noqa: F401

        engines = ["als_d2", "pyarrow"]
    except ImportError:
        engines = ["als_d2"]
    csv_path = os.path.join(args.tree, "oidv6-train-annotations-bbox.csv")
    desc = os.path.join(args.tree, "oidv6-class-descriptions-boxable.csv")
    prep = {(c, w): [] for c in checkouts for w in args.workers}
    load = {k: [] for k in prep}
    parse = {(c, e, w): [] for c in checkouts for e in engines for w in args.workers}
    if len(engines) > 1:  # pyarrow's reader does not depend on the checkout: time it once
        parse = {k: v for k, v in parse.items() if k[1] == "als_d2" or k[0] == checkouts[-1]}
    for _ in range(args.reps):
        for c, w in prep:
            line = _run(TIMER_OI, c, args.tree, out_dir, w)
            prepare_s, load_s = map(float, line.split())
            prep[(c, w)].append(prepare_s)
            load[(c, w)].append(load_s)
            print(f"{c} workers={w}: prepare {prepare_s:.2f}s, load {load_s:.2f}s", file=sys.stderr)
        for c, e, w in parse:
            seconds, n = _run(PARSE_OI, c, csv_path, desc, w, e).split()
            parse[(c, e, w)].append(float(seconds))
            print(f"{c} {e} workers={w}: parse {float(seconds):.2f}s ({n} rows)", file=sys.stderr)
    scale = FULL_OI_TRAIN_ROWS / args.openimages_rows
    med = {k: statistics.median(v) for k, v in prep.items()}
    load_med = {k: statistics.median(v) for k, v in load.items()}
    parse_med = {k: statistics.median(v) for k, v in parse.items()}
    result = {"benchmark": "prepare_openimages"}
    for key, src, factor in (
        ("median_s", med, 1),
        ("full_size_s", med, scale),
        ("load_median_s", load_med, 1),
        ("load_full_size_s", load_med, scale),
    ):
        result[key] = {}
        for (c, w), v in src.items():
            result[key].setdefault(names[c], {})[f"train_w{w}"] = round(v * factor, 2)
    result["parse_s"] = {f"{names[c]}_{e}_w{w}": round(v, 2) for (c, e, w), v in parse_med.items()}
    result["parse_full_size_s"] = {
        f"{names[c]}_{e}_w{w}": round(v * scale) for (c, e, w), v in parse_med.items()
    }
    result.update(rows=args.openimages_rows, reps=args.reps, hardware=_cpu())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
