#!/usr/bin/env python
"""
Data-loading throughput (images/s) of training pipelines on the same generated JPEGs.

Pipelines (all: RandomResizedCrop(224) with torchvision's sampling, horizontal flip):

* ``torchvision``: torchvision's reference ImageNet training transform: PIL decode,
  ``RandomResizedCrop``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``.
* ``hard``: als-d2's ``ClassificationDatasetMapper`` on dicts without boxes (nothing to
  track: what hard labels need). uint8 out; the model normalises on its device.
* ``als``: the same mapper with the boxes: boxes through the geometry, exact objectness.
* ``als_mask``: ALS with the 'mask' variant (other objects painted, one target box).
* ``mask_raster``: the paper's approach on top of the torchvision reference: a rasterised
  object mask (uint8, HxW) cropped, resized (nearest) and flipped alongside the image,
  objectness = fraction of mask pixels in the output.
* ``strong_hard``, ``strong_als``: the strong augmentation of torchvision's new recipe
  (``configs/tvrecipe``: TrivialAugmentWide, RandomErasing 0.1) after the crop and flip, on
  dicts without boxes and with them: ``strong_als_over_strong_hard`` is the cost of keeping
  objectness exact under the warps and erasing (the object polygons of
  ``als_d2/data/object_region.py``).
* ``als_jitter`` (not in the ratios): ``als`` with the config's default colour jitter and
  PCA lighting, for reference.
* ``hard_unpacked``, ``als_unpacked`` (DataLoader only): ``hard`` / ``als`` through the
  same loader with detectron2's ``trivial_batch_collator`` instead of als-d2's
  ``collate_samples`` (which stacks the images and concatenates the boxes of a batch in
  the workers): two shared-memory tensors per sample cross from the workers.

Two settings: in this process (torch and PIL on one thread: images/s per core) and
through a DataLoader with ``--workers`` worker processes (our pipelines through
als-d2's own training loader, ``build_cls_train_loader``: per-sample seeding and
detectron2's list-of-dicts batches; the torchvision ones through a plain DataLoader with
the default collate). Repetitions are interleaved (the order of the pipelines rotates)
and each figure is the median over repetitions.

The last line printed is a JSON object: ``in_process`` and ``dataloader`` (images/s per
pipeline), the ratios ``als_over_hard``, ``hard_over_torchvision``,
``mask_raster_over_als`` (in-process, i.e. per core; the same under
``dataloader_ratios``), ``objectness_us_per_sample`` (µs of ``objectness()`` on the boxes
of the ALS samples), ``objectness_share`` (that time over the in-process time of an ALS
sample), ``objectness_us_by_boxes`` and ``objectness_us_max`` (random boxes, 1 to 50 per
frame).

Time budget (``--budget`` seconds): the first repetition of each setting is measured,
then the repetitions (at most ``--reps`` / ``--loader-reps``) are chosen to fit: about
half of what is left after generating the images for the in-process runs, the rest for
the DataLoader runs. ``reps`` in the JSON says how many were done, ``notes`` when fewer
than asked.

    python benchmarks/loader.py             # ~1-2 minutes on 2 cores
    python benchmarks/loader.py --quick     # a few seconds, for tests
"""

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import als_d2  # noqa: F401,E402  (before detectron2)
import torch  # noqa: E402
import torchvision.transforms as TV  # noqa: E402
import torchvision.transforms.functional as TVF  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.structures import BoxMode  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from als_d2.config import add_als_config  # noqa: E402
from als_d2.data.mapper import ClassificationDatasetMapper  # noqa: E402
from als_d2.objectness import objectness  # noqa: E402
from als_d2.data.painting import box_pixel_ranges  # noqa: E402

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
RATIO_PIPELINES = (
    "torchvision",
    "hard",
    "als",
    "als_mask",
    "mask_raster",
    "strong_hard",
    "strong_als",
)
ALL_PIPELINES = RATIO_PIPELINES + ("als_jitter",)
# ImageNet-typical frames (h, w): mostly 375 x 500 landscape, some portrait / 3:2
SIZES = [(375, 500)] * 6 + [(500, 375)] * 2 + [(333, 500)] * 2


# --------------------------------------------------------------------------- data
def _natural_image(rng: np.random.Generator, h: int, w: int):
    """A photo-like HxWx3 uint8 image (smooth shading, textured objects, sensor noise) and
    1-3 integer XYXY object boxes. JPEG q90 of it is ~100 kB at 500 x 375, like ImageNet's."""
    low = rng.integers(40, 220, size=(h // 40 + 2, w // 40 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        bw = int(rng.integers(w // 6, int(w * 0.8)))
        bh = int(rng.integers(h // 6, int(h * 0.8)))
        x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + bw - 1, y0 + bh - 1], fill=color)
        else:
            draw.rectangle([x0, y0, x0 + bw - 1, y0 + bh - 1], fill=color)
        boxes.append([x0, y0, x0 + bw, y0 + bh])
    arr = np.asarray(img, dtype=np.float32)
    # texture and luma/chroma noise: the entropy of a real photo (decode time, file size)
    tex = rng.normal(0, 1, size=(h // 3 + 1, w // 3 + 1)).astype(np.float32)
    tex = np.asarray(Image.fromarray(tex, mode="F").resize((w, h), Image.BILINEAR))
    luma = 25.0 * tex + rng.normal(0, 16.0, size=(h, w)).astype(np.float32)
    arr += luma[:, :, None] + rng.normal(0, 5.0, size=arr.shape).astype(np.float32)
    return np.clip(arr, 0, 255).astype(np.uint8), boxes


def make_dataset(root: str, n: int, seed: int = 0, quality: int = 90) -> List[dict]:
    """Write ``n`` JPEGs (quality ``quality``) under ``root``; return detectron2 dicts with
    ``file_name, image_id, height, width, label, annotations`` (XYXY_ABS boxes)."""
    rng = np.random.default_rng(seed)
    dicts = []
    for i in range(n):
        h, w = SIZES[int(rng.integers(len(SIZES)))]
        img, boxes = _natural_image(rng, h, w)
        path = os.path.join(root, f"img_{i:05d}.JPEG")
        Image.fromarray(img).save(path, quality=quality)
        label = int(rng.integers(1000))
        anns = [{"bbox": b, "bbox_mode": BoxMode.XYXY_ABS, "category_id": label} for b in boxes]
        dicts.append(
            {
                "file_name": path,
                "image_id": i,
                "height": h,
                "width": w,
                "label": label,
                "annotations": anns,
            }
        )
    return dicts


def mask_dicts(dicts: Sequence[dict], seed: int = 0) -> List[dict]:
    """The 'mask' dataset: one dict per image keeping a random target object."""
    rng = np.random.default_rng(seed)
    return [dict(d, target_object=int(rng.integers(len(d["annotations"])))) for d in dicts]


def no_box_dicts(dicts: Sequence[dict]) -> List[dict]:
    return [dict(d, annotations=[]) for d in dicts]


# --------------------------------------------------------------------------- pipelines
class TorchvisionReference:
    """torchvision's ImageNet training transform (PIL loader as ``ImageFolder``'s)."""

    def __init__(self, size: int = 224):
        self.transform = TV.Compose(
            [
                TV.RandomResizedCrop(size),
                TV.RandomHorizontalFlip(),
                TV.ToTensor(),
                TV.Normalize(MEAN, STD),
            ]
        )

    def __call__(self, d: dict):
        with open(d["file_name"], "rb") as f:
            img = Image.open(f).convert("RGB")
        return self.transform(img), d["label"]


class MaskRasterBaseline:
    """
    The paper's bookkeeping: the boxes rasterised into an HxW uint8 mask that is cropped,
    resized (nearest) and flipped with the image by torchvision; objectness = fraction of
    mask pixels in the SxS output. Returns (normalised 3xSxS float image, label, objectness).
    """

    def __init__(self, size: int = 224):
        self.size = size
        self.tail = TV.Compose([TV.ToTensor(), TV.Normalize(MEAN, STD)])

    def __call__(self, d: dict):
        with open(d["file_name"], "rb") as f:
            img = Image.open(f).convert("RGB")
        w, h = img.size
        mask = np.zeros((h, w), np.uint8)
        boxes = [a["bbox"] for a in d["annotations"]]
        for c0, r0, c1, r1 in box_pixel_ranges(np.asarray(boxes, np.float64), (h, w)).tolist():
            mask[r0:r1, c0:c1] = 1
        mask = Image.fromarray(mask)
        top, left, ch, cw = TV.RandomResizedCrop.get_params(
            img, [0.08, 1.0], [3.0 / 4.0, 4.0 / 3.0]
        )
        size = [self.size, self.size]
        img = TVF.resized_crop(img, top, left, ch, cw, size, TV.InterpolationMode.BILINEAR)
        mask = TVF.resized_crop(mask, top, left, ch, cw, size, TV.InterpolationMode.NEAREST)
        if torch.rand(1) < 0.5:
            img, mask = TVF.hflip(img), TVF.hflip(mask)
        obj = float(np.asarray(mask).mean())  # pixel count / pixels
        return self.tail(img), d["label"], obj


def _mapper_cfg(jitter: bool, size: int, strong: bool = False):
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.INPUT.FORMAT = "RGB"
    cfg.MODEL.PIXEL_MEAN = [123.675, 116.28, 103.53]
    cfg.INPUT.CLS.CROP_SIZE = size
    if not jitter:  # the torchvision reference: crop and flip only
        cfg.INPUT.CLS.COLOR_JITTER = []
        cfg.INPUT.CLS.LIGHTING_STD = 0.0
    if strong:  # configs/tvrecipe's strong augmentation
        cfg.INPUT.CLS.AUTO_AUGMENT = "ta_wide"
        cfg.INPUT.CLS.RANDOM_ERASING = 0.1
    return cfg


def build_pipelines(dicts: Sequence[dict], names: Sequence[str], size: int = 224):
    """name -> (callable on a dict, the dicts it maps, 'd2' | 'torchvision' collation)."""
    import logging

    logging.getLogger("als_d2.data.mapper").setLevel(logging.WARNING)
    plain = _mapper_cfg(False, size)
    strong = _mapper_cfg(False, size, strong=True)
    table = {
        "torchvision": lambda: (TorchvisionReference(size), list(dicts), "torchvision"),
        "hard": lambda: (ClassificationDatasetMapper(plain, True), no_box_dicts(dicts), "d2"),
        "als": lambda: (ClassificationDatasetMapper(plain, True), list(dicts), "d2"),
        "als_mask": lambda: (ClassificationDatasetMapper(plain, True), mask_dicts(dicts), "d2"),
        "mask_raster": lambda: (MaskRasterBaseline(size), list(dicts), "torchvision"),
        "strong_hard": lambda: (
            ClassificationDatasetMapper(strong, True),
            no_box_dicts(dicts),
            "d2",
        ),
        "strong_als": lambda: (ClassificationDatasetMapper(strong, True), list(dicts), "d2"),
        "als_jitter": lambda: (
            ClassificationDatasetMapper(_mapper_cfg(True, size), True),
            list(dicts),
            "d2",
        ),
    }
    return {name: table[name]() for name in names}


# --------------------------------------------------------------------------- timing
def _rounds(names: Sequence[str], reps: int, deadline: float):
    """``(r, order)`` for up to ``reps`` interleaved rounds, each in a rotated order; after
    the first round, only as many as fit before ``deadline`` (``time.perf_counter()``)."""
    names = list(names)
    t_first = time.perf_counter()
    for r in range(reps):
        if r == 1:
            reps = _fit_reps(reps, time.perf_counter() - t_first, deadline - time.perf_counter())
        if r >= reps:
            return
        k = r % len(names)
        yield r, names[k:] + names[:k]


def _fit_reps(reps: int, rep_s: float, left_s: float) -> int:
    """Repetitions (at most ``reps``, at least the one done) that fit in ``left_s``
    seconds after the first, which took ``rep_s``."""
    return max(1, min(reps, 1 + int(max(0.0, left_s) // max(rep_s, 1e-9))))


def time_in_process(
    pipelines, reps: int, samples: int, budget_s: float = math.inf
) -> Dict[str, List[float]]:
    """images/s of each pipeline in ``reps`` interleaved runs of ``samples`` maps. Every
    pipeline's run ``r`` starts from the same seeds (python, numpy, torch): pipelines
    that draw their crops alike (``hard``, ``als``, ``als_mask``) time the same crops of
    the same images, so their ratio compares the work, not the luck of the draw.
    Repetitions after the first: as many as fit in ``budget_s`` seconds (warm-up included)."""
    deadline = time.perf_counter() + budget_s
    rates = {name: [] for name in pipelines}
    for fn, ds, _ in pipelines.values():  # warm-up: page cache, lazy imports
        for d in ds[: min(len(ds), 4)]:
            fn(d)
    for r, order in _rounds(pipelines, reps, deadline):
        for name in order:
            fn, ds, _ = pipelines[name]
            n = len(ds)
            random.seed(r)
            np.random.seed(r)
            torch.manual_seed(r)
            t0 = time.perf_counter()
            for i in range(samples):
                fn(ds[i % n])
            rates[name].append(samples / (time.perf_counter() - t0))
    return rates


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, dicts, fn):
        self.dicts, self.fn = dicts, fn

    def __len__(self):
        return len(self.dicts)

    def __getitem__(self, i):
        return self.fn(self.dicts[i])


def _loader(fn, ds, kind: str, batch: int, workers: int, seed: int):
    if kind == "d2_unpacked":  # als-d2's training loader, one storage per sample
        from detectron2.data.build import trivial_batch_collator

        from als_d2.data.build import build_cls_train_loader

        return build_cls_train_loader(
            ds,
            fn,
            total_batch_size=batch,
            seed=seed,
            num_workers=workers,
            collate_fn=trivial_batch_collator,
        )
    if kind == "d2":  # als-d2's own training loader (collate_samples)
        from als_d2.data.build import build_cls_train_loader

        return build_cls_train_loader(
            ds, fn, total_batch_size=batch, seed=seed, num_workers=workers
        )
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=10**8)
    return torch.utils.data.DataLoader(
        _ListDataset(ds, fn), batch_size=batch, sampler=sampler, num_workers=workers, drop_last=True
    )


def time_dataloader(
    pipelines, reps: int, batches: int, batch: int, workers: int, budget_s: float = math.inf
) -> Dict[str, List[float]]:
    """images/s through a DataLoader in ``reps`` interleaved runs: ``batches`` batches timed
    after one batch per worker (their start-up and first samples excluded: each worker
    produces its first batch before the clock starts), a fresh loader per run (no
    prefetching between runs). Repetitions after the first: as many as fit in ``budget_s``."""
    deadline = time.perf_counter() + budget_s
    pipelines = dict(pipelines)
    for name in ("hard", "als"):  # the same mappings, one storage per sample
        if name in pipelines:
            pipelines[name + "_unpacked"] = pipelines[name][:2] + ("d2_unpacked",)
    rates = {name: [] for name in pipelines}
    for r, order in _rounds(pipelines, reps, deadline):
        for name in order:
            fn, ds, kind = pipelines[name]
            it = iter(_loader(fn, ds, kind, batch, workers, seed=r))
            for _ in range(max(1, workers)):
                next(it)
            t0 = time.perf_counter()
            for _ in range(batches):
                next(it)
            rates[name].append(batches * batch / (time.perf_counter() - t0))
            del it
    return rates


def _random_boxes(rng, n: int, h: int, w: int) -> np.ndarray:
    xy0 = rng.uniform([-0.2 * w, -0.2 * h], [w, h], size=(n, 2))
    wh = rng.uniform(0.5, 0.7 * max(h, w), size=(n, 2))
    return np.concatenate([xy0, xy0 + wh], axis=1).astype(np.float32)


def _time_objectness(cases, reps: int = 7) -> float:
    """Median over ``reps`` of the mean µs of ``objectness(boxes, hw)`` over ``cases``."""
    per = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for boxes, hw in cases:
            objectness(boxes, hw)
        per.append((time.perf_counter() - t0) / len(cases) * 1e6)
    return statistics.median(per)


def time_objectness(als_pipeline, size: int, quick: bool) -> Dict:
    """µs per call of ``objectness`` on the ALS samples' output boxes and on 1-50 random boxes."""
    fn, ds, _ = als_pipeline
    np.random.seed(0)
    samples = [fn(d) for d in ds[: 8 if quick else 64]]
    cases = [(s["boxes"].numpy(), tuple(s["image"].shape[1:])) for s in samples]
    rng = np.random.default_rng(0)
    by_boxes = {}
    for n in (1, 2, 3, 5, 10, 20, 50):
        rand = [
            (_random_boxes(rng, n, size, size), (size, size)) for _ in range(20 if quick else 200)
        ]
        by_boxes[str(n)] = round(_time_objectness(rand, 3 if quick else 7), 2)
    return {
        "objectness_us_per_sample": round(_time_objectness(cases * (1 if quick else 8)), 2),
        "objectness_us_by_boxes": by_boxes,
        "objectness_us_max": max(by_boxes.values()),
        "objectness_boxes_per_sample": round(
            float(np.mean([len(d["annotations"]) for d in ds])), 2
        ),
    }


RATIOS = {  # name: (numerator, denominator) pipelines
    "als_over_hard": ("als", "hard"),
    "hard_over_torchvision": ("hard", "torchvision"),
    "als_over_torchvision": ("als", "torchvision"),
    "mask_raster_over_als": ("mask_raster", "als"),
    "mask_raster_over_torchvision": ("mask_raster", "torchvision"),
    "als_mask_over_als": ("als_mask", "als"),
    "strong_als_over_strong_hard": ("strong_als", "strong_hard"),
    "strong_hard_over_hard": ("strong_hard", "hard"),
    # DataLoader only
    "als_over_als_unpacked": ("als", "als_unpacked"),
    "hard_over_hard_unpacked": ("hard", "hard_unpacked"),
    "als_unpacked_over_hard_unpacked": ("als_unpacked", "hard_unpacked"),
}


def _ratios(rates: Dict[str, List[float]]) -> Dict[str, float]:
    """Throughput ratios: median over repetitions of the ratio within each repetition
    (the pipelines of one repetition run seconds apart: the load of the machine,
    shared with other jobs, cancels better than in a ratio of medians)."""
    out = {}
    for key, (a, b) in RATIOS.items():
        if a in rates and b in rates:
            out[key] = round(statistics.median(x / y for x, y in zip(rates[a], rates[b])), 3)
    return out


def _medians(rates: Dict[str, List[float]]) -> Dict[str, float]:
    return {k: round(statistics.median(v), 1) for k, v in rates.items()}


def _reps_done(rates: Dict[str, List[float]]) -> int:
    return min((len(v) for v in rates.values()), default=0)


def machine() -> Dict[str, str]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            model = (line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
            cpu = next(model, cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pillow": Image.__version__,
        "numpy": np.__version__,
    }


def run(args) -> Dict:
    torch.set_num_threads(1)  # per-core figures; DataLoader workers use one thread too
    names = [n for n in args.pipelines.split(",") if n]
    unknown = set(names) - set(ALL_PIPELINES)
    if unknown:
        raise SystemExit(f"unknown pipelines {sorted(unknown)}; choose from {ALL_PIPELINES}")
    deadline = time.perf_counter() + args.budget
    with tempfile.TemporaryDirectory(prefix="als_bench_") as root:
        t0 = time.perf_counter()
        dicts = make_dataset(root, args.images, seed=args.seed)
        kb = np.mean([os.path.getsize(d["file_name"]) for d in dicts]) / 1024
        pipelines = build_pipelines(dicts, names, args.size)
        gen_s = time.perf_counter() - t0
        torch.manual_seed(args.seed)
        np.random.seed(args.seed)
        left = deadline - time.perf_counter()
        in_proc = time_in_process(pipelines, args.reps, args.samples, budget_s=0.45 * left)
        loader = {}
        if args.workers > 0 and args.batches > 0:
            loader = time_dataloader(
                pipelines,
                args.loader_reps,
                args.batches,
                args.batch,
                args.workers,
                budget_s=0.85 * (deadline - time.perf_counter()),
            )
        obj = time_objectness(
            build_pipelines(dicts, ["als"], args.size)["als"], args.size, args.quick
        )
    result = {
        "benchmark": "loader",
        "quick": bool(args.quick),
        "images": args.images,
        "mean_jpeg_kb": round(float(kb), 1),
        "crop_size": args.size,
        "in_process": _medians(in_proc),
        "dataloader": _medians(loader),
        "dataloader_workers": args.workers if loader else 0,
        "units": "images/s, median of the repetitions (in_process: one core)",
        "reps": {"in_process": _reps_done(in_proc), "dataloader": _reps_done(loader)},
        "budget_s": args.budget,
        "notes": [],
    }
    for what, done, asked in (
        ("in-process", _reps_done(in_proc), args.reps),
        ("DataLoader", _reps_done(loader), args.loader_reps if loader else 0),
    ):
        if done < asked:
            result["notes"].append(
                f"{what}: {done} of {asked} repetitions, to fit the {args.budget:.0f} s budget"
            )
    result.update(_ratios(in_proc))
    result["dataloader_ratios"] = _ratios(loader)
    result.update(obj)
    if in_proc.get("als"):
        ms_per_sample = 1e3 / statistics.median(in_proc["als"])
        result["objectness_share"] = round(obj["objectness_us_per_sample"] / 1e3 / ms_per_sample, 5)
    result["machine"] = machine()
    result["setup_s"] = round(gen_s, 2)
    return result


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="The last line printed is the JSON result.",
    )
    p.add_argument("--quick", action="store_true", help="tiny run for tests (a few seconds)")
    p.add_argument("--images", type=int, default=48, help="number of generated JPEGs")
    p.add_argument("--samples", type=int, default=48, help="maps per in-process run")
    p.add_argument("--reps", type=int, default=21, help="interleaved in-process runs")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (0: skip)")
    p.add_argument("--batch", type=int, default=32, help="DataLoader batch size")
    p.add_argument("--batches", type=int, default=8, help="timed batches per DataLoader run")
    p.add_argument("--loader-reps", type=int, default=9, help="interleaved DataLoader runs")
    p.add_argument("--size", type=int, default=224, help="output crop size (pixels)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--budget",
        type=float,
        default=150.0,
        help="seconds for the whole run: the repetitions adapt to fit (at least one each)",
    )
    p.add_argument(
        "--pipelines",
        default=",".join(ALL_PIPELINES),
        help=f"comma-separated subset of {ALL_PIPELINES}",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.samples, args.reps = 6, 12, 2
        args.batch, args.batches, args.loader_reps = 4, 2, 1
    return args


def main(argv=None) -> Dict:
    result = run(parse_args(argv))
    print(json.dumps(result, sort_keys=False))
    return result


if __name__ == "__main__":
    main()
