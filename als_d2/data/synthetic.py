"""The embedded default dataset: a small, context-biased "ImageNet" with boxes, plus a
COCO-format detection split drawn by the same generator.

Every class has an *object* (a shape with a class colour and texture, drawn with PIL) and a
*background* (a low-saturation tint with a class-specific texture). An image of class k
shows one or more objects of class k on the background of class k with probability
``context_prob`` and on the background of a random other class otherwise: a classifier
can score well from the background alone, and a random resized crop often misses the
object, which is the situation Adaptive Label Smoothing is about. Objects are saturated
colours (HSV saturation >= 0.8), backgrounds are nearly grey (saturation <= ~0.3 after
JPEG), so object pixels can be told from background pixels by colour.

Object sizes follow ImageNet's (classification images; the COCO split is separate):

* mean objectness 0.49 under the test transform (resize the shorter side to 256/224 of
  the crop, centre crop; objectness = area of the union of the boxes inside the crop /
  crop area): the figure the paper measures on ImageNet val ("The mean objectness of
  images in the validation set of ImageNet is 0.49", section 4.2). Generated images give
  0.494 (3,000 images), the default val set 0.485 (``tests/test_synthetic.py`` measures
  it by counting box-mask pixels in the centre crop; the summary's
  ``val_mean_test_objectness``);
* objects per image: 1.11 on average, from the paper's counts: 0.474M boxed training
  images give 0.528M 'mask' samples, one per annotated object (section 4.1, appendix
  A.2). Here 91% of the images have one object, 7% two, 2% three (``OBJECT_COUNTS``);
* the spread is **chosen**, not measured (the paper gives no distribution and we use no
  other source): a single object's box spans a fraction f of each image side, f uniform
  in ``SIDE_RANGE`` (0.17-1.0: box areas from ~3% to the full frame), each of several
  objects ``MULTI_SIDE_RANGE`` (0.2-0.5); the box aspect is that of the image, jittered
  by up to 4:3 either way. Under the test transform about 12% of the images then have
  objectness >= 0.95 (full frame), 24% below 0.2; quartiles 0.21 / 0.43 / 0.80.

A box is the object's bounding box; the shape inside it covers from about a third of it
(a star) to all of it (an unturned square), so, as on ImageNet, even a full-frame box
leaves some background visible around the object.

Layout written under ``root`` (the Kaggle "ImageNet Object Localization" release)::

    root/
      ILSVRC/Data/CLS-LOC/train/<wnid>/<wnid>_<n>.JPEG
      ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_<8 digits>.JPEG          (flat)
      ILSVRC/Annotations/CLS-LOC/train/<wnid>/<wnid>_<n>.xml           (boxed subset only)
      ILSVRC/Annotations/CLS-LOC/val/ILSVRC2012_val_<8 digits>.xml     (every val image)
      ILSVRC/ImageSets/CLS-LOC/{train_cls,train_loc,val}.txt
      LOC_synset_mapping.txt      "<wnid> <name>, <synonym>" per line, sorted by wnid
      LOC_train_solution.csv      ImageId,PredictionString for the boxed train images
      LOC_val_solution.csv        ImageId,PredictionString for every val image
      synthetic_context.csv       split,ImageId,wnid,background_wnid (not in the real release)
      coco/train/<12 digits>.jpg, coco/val/<12 digits>.jpg
      coco/annotations/instances_train.json, instances_val.json
      synthetic_manifest.json     parameters + summary; written last

Boxes: XYXY in pixel-edge coordinates, integers (``xmin <= x < xmax`` covers exactly the
object's pixel columns, so ``(xmax - xmin) * (ymax - ymin)`` is the box area in pixels) in
the XMLs and CSVs; COCO ``bbox`` is ``[x, y, w, h]`` of the same box, COCO ``area`` the
object's pixel count. Wnids are made up (``n90000000``, ``n90000001``, ...).

Output is deterministic: the same parameters and seed give the same bytes (numpy
``Generator`` per image, fixed JPEG quality and 4:4:4 chroma), given the same numpy and
Pillow / libjpeg builds.
"""

import csv
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from ..objectness import union_area

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "DEFAULT_SIZES",
    "QUICK_SIZES",
    "SyntheticClass",
    "class_specs",
    "render_image",
    "centre_crop_objectness",
    "generate_synthetic_imagenet",
]

# bump when the output for the same parameters changes (3: the tree holds its prepared index)
GENERATOR_VERSION = 3
MANIFEST_NAME = "synthetic_manifest.json"
PREPARED = ("als_d2_train.json.gz", "als_d2_val.json.gz")  # tools/prepare_imagenet.py's index
CONTEXT_CSV = "synthetic_context.csv"
JPEG_QUALITY = 90
WNID_BASE = 90000000
MAX_CLASSES = 100  # distinct (shape, colour) pairs

# Sizes of the default dataset and of the --quick preset (keyword arguments).
DEFAULT_SIZES = dict(
    num_classes=50, train_per_class=50, val_per_class=10, coco_train=200, coco_val=50
)
QUICK_SIZES = dict(num_classes=20, train_per_class=40, val_per_class=10, coco_train=40, coco_val=16)

# Object sizes of the classification images (module doc: which ImageNet figures they match).
OBJECT_COUNTS = ((1, 0.91), (2, 0.07), (3, 0.02))  # objects per image and their probabilities
SIDE_RANGE = (0.17, 1.0)  # one object: box side / image side, uniform
MULTI_SIDE_RANGE = (0.2, 0.5)  # each of several objects
BOX_ASPECT_JITTER = 4.0 / 3.0  # box aspect = image aspect x [1/J, J], log-uniform

# What generate_synthetic_imagenet writes at the top of root (removed on regeneration).
_OWNED = (
    "ILSVRC",
    "coco",
    "LOC_synset_mapping.txt",
    "LOC_train_solution.csv",
    "LOC_val_solution.csv",
    CONTEXT_CSV,
    *PREPARED,
)

_COLOURS = [  # saturated (HSV saturation >= 0.8) so that objects stand out from backgrounds
    ("red", (220, 40, 40)),
    ("orange", (235, 130, 20)),
    ("yellow", (230, 210, 30)),
    ("green", (40, 190, 60)),
    ("cyan", (30, 200, 215)),
    ("blue", (40, 80, 225)),
    ("purple", (140, 50, 215)),
    ("magenta", (220, 45, 180)),
    ("lime", (150, 225, 30)),
    ("mint", (20, 220, 140)),
]
_SHAPES = [
    "disc",
    "square",
    "triangle",
    "cross",
    "ring",
    "diamond",
    "star",
    "hexagon",
    "crescent",
    "bar",
]
_TEXTURES = ["solid", "striped", "checkered", "dotted", "concentric"]
_BACKGROUNDS = ["stripes", "waves", "grid", "blotches"]
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR
_SPLIT_CODES = {"train": 1, "val": 2, "coco_train": 3, "coco_val": 4}

Box = Tuple[int, int, int, int]


@dataclass(frozen=True)
class SyntheticClass:
    """One class: its object (shape, RGB colour, texture) and its context (background).

    background_rgb is the mean RGB of the background (uint8 values); background_angle in
    degrees, background_period and texture_period in pixels.
    """

    index: int
    wnid: str
    synonyms: str  # the LOC_synset_mapping.txt text, e.g. "red disc, disc"
    shape: str
    colour_name: str
    colour: Tuple[int, int, int]
    texture: str
    texture_angle: float
    texture_period: float
    background_rgb: Tuple[int, int, int]
    background_pattern: str
    background_angle: float
    background_period: float

    @property
    def name(self) -> str:
        """The readable name (first synonym), e.g. "red disc"."""
        return self.synonyms.split(",")[0]


def _hsv_to_rgb(h: float, s: float, v: float) -> Tuple[int, int, int]:
    """h in degrees, s and v in [0, 1] -> uint8 RGB."""
    c = v * s
    x = c * (1 - abs((h / 60.0) % 2 - 1))
    m = v - c
    sector = int(h // 60) % 6
    r, g, b = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][sector]
    return tuple(int(round(255 * (t + m))) for t in (r, g, b))


def class_specs(num_classes: int) -> List[SyntheticClass]:
    """The classes of a dataset with ``num_classes`` classes (1..100); class k does not
    depend on ``num_classes``. Classes 0-9 all differ in shape, colour and background."""
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in [1, {MAX_CLASSES}], got {num_classes}")
    specs = []
    for k in range(num_classes):
        shape = _SHAPES[k % 10]
        colour_name, colour = _COLOURS[(k % 10 + k // 10) % 10]
        # classes 0-11: 3 brightness levels x 4 hues 90 degrees apart; later ones: golden angle
        hue = (k // 3) * 90.0 + (k % 3) * 30.0 if k < 12 else (k * 137.508) % 360.0
        specs.append(
            SyntheticClass(
                index=k,
                wnid=f"n{WNID_BASE + k:08d}",
                synonyms=f"{colour_name} {shape}, {shape}",
                shape=shape,
                colour_name=colour_name,
                colour=colour,
                texture=_TEXTURES[(k + k // 10) % len(_TEXTURES)],
                texture_angle=float((k * 53) % 180),
                texture_period=float(5 + (k % 3)),
                background_rgb=_hsv_to_rgb(hue, 0.2, (0.56, 0.67, 0.78)[k % 3]),
                background_pattern=_BACKGROUNDS[k % len(_BACKGROUNDS)],
                background_angle=float((k * 41) % 180),
                background_period=float((12, 18, 26)[(k // 2) % 3]),
            )
        )
    return specs


# ----------------------------------------------------------------------------- drawing


def _rotated_coords(h: int, w: int, angle_deg: float):
    """(u, v) float32 (h, w): pixel coordinates (x, y) rotated by angle_deg."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = math.radians(angle_deg)
    return xx * math.cos(t) + yy * math.sin(t), -xx * math.sin(t) + yy * math.cos(t)


def _background(
    spec: SyntheticClass, width: int, height: int, rng: np.random.Generator
) -> np.ndarray:
    """float32 (height, width, 3): the class tint plus a grey class texture and noise."""
    period = spec.background_period * rng.uniform(0.9, 1.1)
    u, v = _rotated_coords(height, width, spec.background_angle + rng.uniform(-8, 8))
    phase = rng.uniform(0, 2 * math.pi)
    if spec.background_pattern == "stripes":
        p = np.sin(2 * math.pi * u / period + phase)
    elif spec.background_pattern == "waves":
        p = np.sin(2 * math.pi * u / period + phase + 2.0 * np.sin(2 * math.pi * v / (3 * period)))
    elif spec.background_pattern == "grid":
        p = 1.6 * np.sin(2 * math.pi * u / period + phase) * np.sin(2 * math.pi * v / period)
    else:  # blotches: smooth random field, upsampled from a coarse grid
        coarse = rng.standard_normal((height // int(period) + 2, width // int(period) + 2)).astype(
            np.float32
        )
        field = Image.fromarray(coarse).resize((width, height), _BILINEAR)
        p = np.asarray(field, dtype=np.float32)
        p = 1.4 * (p - p.mean()) / (p.std() + 1e-6)
    tint = np.asarray(spec.background_rgb, np.float32)
    grey = 20.0 * p + rng.normal(0.0, 4.0, (height, width)).astype(np.float32) + rng.uniform(-4, 4)
    # brightness scaled multiplicatively, so that the saturation stays that of the tint
    gain = np.clip(1.0 + grey / tint.max(), 0.7, 1.4)
    return np.minimum(tint[None, None, :] * gain[:, :, None], 255.0)


def _object_shading(spec: SyntheticClass, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (h, w, 3): the class colour (jittered) and a darker shade in the class texture."""
    c1 = np.clip(np.asarray(spec.colour, np.float32) + rng.uniform(-10, 10, 3), 0, 255)
    c2 = 0.6 * c1  # same hue and saturation, darker
    period = spec.texture_period
    u, v = _rotated_coords(h, w, spec.texture_angle + rng.uniform(-10, 10))
    off = rng.uniform(0, period, 2).astype(np.float32)
    u, v = u + off[0], v + off[1]
    if spec.texture == "solid":
        light = np.ones((h, w), bool)
    elif spec.texture == "striped":
        light = (u / period) % 1.0 < 0.5
    elif spec.texture == "checkered":
        light = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    elif spec.texture == "dotted":
        du = (u % (1.5 * period)) - 0.75 * period
        dv = (v % (1.5 * period)) - 0.75 * period
        light = du * du + dv * dv > (0.4 * period) ** 2
    else:  # concentric
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        light = (np.hypot(xx - (w - 1) / 2, yy - (h - 1) / 2) / period) % 1.0 < 0.55
    return np.where(light[:, :, None], c1[None, None, :], c2[None, None, :])


def _circle(n: int = 40, r: float = 1.0, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)


def _regular(n: int, start_deg: float = -90.0) -> np.ndarray:
    t = np.radians(start_deg + 360.0 * np.arange(n) / n)
    return np.stack([np.cos(t), np.sin(t)], 1)


def _shape_polygons(shape: str) -> List[Tuple[np.ndarray, int]]:
    """Unit-size outline of a shape: [(vertices (n, 2), fill 255 or 0)], drawn in order."""
    if shape == "disc":
        return [(_circle(), 255)]
    if shape == "ring":
        return [(_circle(), 255), (_circle(r=0.6), 0)]
    if shape == "crescent":
        return [(_circle(), 255), (_circle(r=0.8, cx=0.5), 0)]
    if shape == "square":
        return [(np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float), 255)]
    if shape == "triangle":
        return [(_regular(3), 255)]
    if shape == "diamond":
        return [(np.array([[0, -1], [0.6, 0], [0, 1], [-0.6, 0]], float), 255)]
    if shape == "hexagon":
        return [(_regular(6, 0.0), 255)]
    if shape == "star":
        pts = _regular(10)
        pts[1::2] *= 0.42
        return [(pts, 255)]
    if shape == "cross":
        a = 0.34
        pts = [[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a]]
        pts += [[-x, -y] for x, y in pts]  # point symmetric
        return [(np.array(pts, float), 255)]
    if shape == "bar":
        return [(np.array([[-1, -0.3], [1, -0.3], [1, 0.3], [-1, 0.3]], float), 255)]
    raise ValueError(f"unknown shape {shape!r}")


def _oriented_polygons(shape: str, rng: np.random.Generator):
    """The shape's polygons, randomly stretched (aspect 0.75-1.33) and rotated, and the
    (lo, extent) of the outer one: [(vertices (n, 2), fill)], lo (2,), ext (2,)."""
    polys = _shape_polygons(shape)
    stretch = math.exp(rng.uniform(math.log(0.75), math.log(1.33)))
    t = math.radians(rng.uniform(0, 360))
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    polys = [((p * [stretch, 1.0 / stretch]) @ rot.T, fill) for p, fill in polys]
    outer = polys[0][0]
    lo, hi = outer.min(0), outer.max(0)
    return polys, lo, hi - lo


def _fill_box(polys, lo: np.ndarray, ext: np.ndarray, w: int, h: int) -> np.ndarray:
    """bool (h, w): the polygons scaled so that the outer one spans exactly w x h pixels."""
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    size = np.array([w - 1, h - 1], float)
    for p, fill in polys:
        q = (p - lo) / ext * size
        draw.polygon([tuple(xy) for xy in q.round(3).tolist()], fill=fill)
    return np.asarray(canvas) > 0


def _shape_mask(shape: str, box_area: float, rng: np.random.Generator) -> np.ndarray:
    """bool (h, w): the shape, randomly stretched (aspect 0.75-1.33) and rotated, scaled so
    that its bounding box covers about ``box_area`` pixels."""
    polys, lo, ext = _oriented_polygons(shape, rng)
    scale = math.sqrt(box_area / float(ext[0] * ext[1]))
    w, h = max(int(math.ceil(ext[0] * scale)), 6), max(int(math.ceil(ext[1] * scale)), 6)
    return _fill_box(polys, lo, ext, w, h)


def _shape_mask_in_box(shape: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """bool (h, w): the shape, randomly stretched and rotated, then scaled (unevenly) so
    that its bounding box is exactly w x h pixels."""
    polys, lo, ext = _oriented_polygons(shape, rng)
    return _fill_box(polys, lo, ext, max(int(w), 6), max(int(h), 6))


def _overlaps(box: Box, others: Sequence[Box], gap: int) -> bool:
    x0, y0, x1, y1 = box
    return any(
        x0 < b[2] + gap and b[0] < x1 + gap and y0 < b[3] + gap and b[1] < y1 + gap for b in others
    )


def render_image(
    classes: Sequence[SyntheticClass],
    width: int,
    height: int,
    background: int,
    object_classes: Sequence[int],
    area_range: Optional[Tuple[float, float]],
    rng: np.random.Generator,
    side_fractions: Optional[Sequence[float]] = None,
) -> Tuple[np.ndarray, List[Tuple[int, Box, int]]]:
    """Draw one image.

    Args:
        background: class index whose background is drawn.
        object_classes: class index of each object to place; the first is always placed
            (shrunk if needed), a later one is dropped when it finds no free spot.
        area_range: (lo, hi) fraction of the image area covered by each object's box,
            sampled log-uniformly (box aspect from the shape's random stretch and turn).
        side_fractions: instead of ``area_range``, one value per object: its box spans
            this fraction of the image width and of the height, the aspect jittered by up
            to ``BOX_ASPECT_JITTER`` either way (1.0: a full-frame object).

    Returns:
        image: uint8 (height, width, 3) RGB.
        objects: [(class index, (xmin, ymin, xmax, ymax) pixel-edge ints, pixel count)].
        Objects do not overlap (3 px apart at least).
    """
    if side_fractions is not None and len(side_fractions) != len(object_classes):
        raise ValueError(f"{len(side_fractions)} side_fractions for {len(object_classes)} objects")
    img = _background(classes[background], width, height, rng)
    placed: List[Box] = []
    objects = []
    jitter = math.log(BOX_ASPECT_JITTER)
    for n, k in enumerate(object_classes):
        if side_fractions is None:
            size = (
                math.exp(rng.uniform(math.log(area_range[0]), math.log(area_range[1])))
                * width
                * height
            )
        else:
            size = float(side_fractions[n])
            aspect = math.exp(rng.uniform(-jitter, jitter))
        for _attempt in range(40):
            if side_fractions is None:
                mask = _shape_mask(classes[k].shape, size, rng)
            else:
                bw = min(int(round(size * width * math.sqrt(aspect))), width)
                bh = min(int(round(size * height / math.sqrt(aspect))), height)
                mask = _shape_mask_in_box(classes[k].shape, bw, bh, rng)
            h, w = mask.shape
            if side_fractions is None and (w > width - 2 or h > height - 2):
                size *= 0.8
                continue
            if not mask.any():  # a very small crescent can vanish
                size *= 1.25
                continue
            if side_fractions is None:
                x0, y0 = int(rng.integers(1, width - w)), int(rng.integers(1, height - h))
            else:
                x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            ys, xs = np.nonzero(mask)
            box = (
                x0 + int(xs.min()),
                y0 + int(ys.min()),
                x0 + int(xs.max()) + 1,
                y0 + int(ys.max()) + 1,
            )
            if not _overlaps(box, placed, gap=3):
                break
            size *= 0.9
        else:
            if n == 0:
                raise RuntimeError(f"no room for a {classes[k].shape} in a {width}x{height} image")
            continue  # no free spot for a later object: leave it out
        shading = _object_shading(classes[k], h, w, rng)
        region = img[y0 : y0 + h, x0 : x0 + w]
        region[mask] = shading[mask]
        placed.append(box)
        objects.append((k, box, int(mask.sum())))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), objects


def centre_crop_objectness(
    boxes: Sequence[Box], width: int, height: int, crop_ratio: float = 224.0 / 256.0
) -> float:
    """Objectness of a ``width`` x ``height`` image under the test transform "resize the
    shorter side to S, centre crop crop_ratio * S": the fraction of the central square of
    side crop_ratio x min(width, height) covered by the union of ``boxes`` (XYXY pixel
    edges), exact (``als_d2.objectness.union_area``)."""
    side = crop_ratio * min(width, height)
    x0, y0 = (width - side) / 2.0, (height - side) / 2.0
    return union_area(boxes, (x0, y0, x0 + side, y0 + side)) / (side * side) if boxes else 0.0


# ----------------------------------------------------------------------------- writers


def _save_jpeg(path: str, image: np.ndarray) -> None:
    Image.fromarray(image).save(path, "JPEG", quality=JPEG_QUALITY, subsampling=0)


def _xml_text(
    folder: str, filename: str, width: int, height: int, objects: Sequence[Tuple[str, Box]]
) -> str:
    """An annotation file laid out as in ILSVRC2012_bbox_{train,val} (tabs, no header)."""
    lines = [
        "<annotation>",
        f"\t<folder>{folder}</folder>",
        f"\t<filename>{filename}</filename>",
        "\t<source>",
        "\t\t<database>ILSVRC_2012</database>",
        "\t</source>",
        "\t<size>",
        f"\t\t<width>{width}</width>",
        f"\t\t<height>{height}</height>",
        "\t\t<depth>3</depth>",
        "\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for wnid, (x0, y0, x1, y1) in objects:
        lines += [
            "\t<object>",
            f"\t\t<name>{wnid}</name>",
            "\t\t<pose>Unspecified</pose>",
            "\t\t<truncated>0</truncated>",
            "\t\t<difficult>0</difficult>",
            "\t\t<bndbox>",
            f"\t\t\t<xmin>{x0}</xmin>",
            f"\t\t\t<ymin>{y0}</ymin>",
            f"\t\t\t<xmax>{x1}</xmax>",
            f"\t\t\t<ymax>{y1}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def _prediction_string(objects: Sequence[Tuple[str, Box]]) -> str:
    """``wnid xmin ymin xmax ymax`` repeated, space-separated, with the release's trailing space."""
    return "".join(f"{w} {b[0]} {b[1]} {b[2]} {b[3]} " for w, b in objects)


def _write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def _write_csv(path: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _objects_per_image(rng: np.random.Generator) -> int:
    """1, 2 or 3 objects of the class (``OBJECT_COUNTS``: 0.91, 0.07, 0.02; mean 1.11)."""
    counts, probs = zip(*OBJECT_COUNTS)
    return int(rng.choice(counts, p=probs))


def _classification_image(classes, label: int, background: int, p: dict, split: str, index: int):
    """Image ``index`` of ``split`` in ImageNet's style (module doc): 1-3 objects of ``label``,
    a single one with a box side of ``SIDE_RANGE`` x the image side, each of several
    ``MULTI_SIDE_RANGE``; sizes from ``p["image_size"]``, drawn from its own generator."""
    rng = _image_rng(p["seed"], split, index)
    size_range = p["image_size"]
    width, height = (int(rng.integers(size_range[0], size_range[1] + 1)) for _ in range(2))
    n = _objects_per_image(rng)
    lo, hi = SIDE_RANGE if n == 1 else MULTI_SIDE_RANGE
    sides = rng.uniform(lo, hi, n).tolist()
    return render_image(
        classes, width, height, background, [label] * n, None, rng, side_fractions=sides
    )


def _context_backgrounds(
    labels: np.ndarray, num_classes: int, context_prob: float, rng
) -> np.ndarray:
    """int (N,): background class of each image. In each class exactly
    round(context_prob * count) images get their own class background, the others the
    background of a uniformly drawn other class."""
    backgrounds = labels.copy()
    if num_classes < 2:
        return backgrounds
    for k in range(num_classes):
        idx = np.flatnonzero(labels == k)
        foreign = rng.permutation(idx)[int(round(context_prob * len(idx))) :]
        other = rng.integers(0, num_classes - 1, len(foreign))
        backgrounds[foreign] = other + (other >= k)
    return backgrounds


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_CODES[split], index])


def _write_imagenet(root: str, classes, p: dict) -> dict:
    """The ILSVRC part; returns counts and statistics."""
    K = len(classes)
    wnids = [c.wnid for c in classes]
    data = os.path.join(root, "ILSVRC", "Data", "CLS-LOC")
    ann = os.path.join(root, "ILSVRC", "Annotations", "CLS-LOC")
    sets = os.path.join(root, "ILSVRC", "ImageSets", "CLS-LOC")
    for d in (os.path.join(data, "val"), os.path.join(ann, "val"), sets):
        os.makedirs(d, exist_ok=True)
    _write_text(
        os.path.join(root, "LOC_synset_mapping.txt"),
        "".join(f"{c.wnid} {c.synonyms}\n" for c in classes),
    )
    context_rows, fractions = [], []
    own_context = {"train": 0, "val": 0}

    # train: per class, sparse ImageNet-like file numbers; a boxed_fraction subset has XMLs
    rng = np.random.default_rng([p["seed"], 0, _SPLIT_CODES["train"]])
    n = p["train_per_class"]
    labels = np.repeat(np.arange(K), n)
    backgrounds = _context_backgrounds(labels, K, p["context_prob"], rng)
    numbers = [np.sort(rng.choice(np.arange(1, 20 * n + 100), n, replace=False)) for _ in range(K)]
    boxed = [
        set(rng.permutation(n)[: int(round(p["boxed_fraction"] * n))].tolist()) for _ in range(K)
    ]
    train_rows, cls_lines, loc_lines = [], [], []
    for k, c in enumerate(classes):
        os.makedirs(os.path.join(data, "train", c.wnid), exist_ok=True)
        for i in range(n):
            index = k * n + i
            image_id = f"{c.wnid}_{numbers[k][i]}"
            image, objects = _classification_image(
                classes, k, int(backgrounds[index]), p, "train", index
            )
            _save_jpeg(os.path.join(data, "train", c.wnid, image_id + ".JPEG"), image)
            cls_lines.append(f"{c.wnid}/{image_id} {index + 1}")
            bg = wnids[backgrounds[index]]
            context_rows.append(["train", image_id, c.wnid, bg])
            own_context["train"] += bg == c.wnid
            if i in boxed[k]:
                h, w = image.shape[:2]
                named = [(wnids[o[0]], o[1]) for o in objects]
                _write_text(
                    os.path.join(ann, "train", c.wnid, image_id + ".xml"),
                    _xml_text(c.wnid, image_id, w, h, named),
                )
                train_rows.append([image_id, _prediction_string(named)])
                loc_lines.append(f"{c.wnid}/{image_id} {len(loc_lines) + 1}")
                fractions += [_box_area(o[1]) / float(w * h) for o in objects]

    # val: flat, classes in random order, every image boxed
    rng = np.random.default_rng([p["seed"], 0, _SPLIT_CODES["val"]])
    labels = rng.permutation(np.repeat(np.arange(K), p["val_per_class"]))
    backgrounds = _context_backgrounds(labels, K, p["context_prob"], rng)
    val_rows, val_lines, val_fractions, val_objectness, val_counts = [], [], [], [], []
    for index, k in enumerate(labels.tolist()):
        image_id = f"ILSVRC2012_val_{index + 1:08d}"
        image, objects = _classification_image(classes, k, int(backgrounds[index]), p, "val", index)
        _save_jpeg(os.path.join(data, "val", image_id + ".JPEG"), image)
        h, w = image.shape[:2]
        named = [(wnids[o[0]], o[1]) for o in objects]
        _write_text(
            os.path.join(ann, "val", image_id + ".xml"), _xml_text("val", image_id, w, h, named)
        )
        val_rows.append([image_id, _prediction_string(named)])
        val_lines.append(f"{image_id} {index + 1}")
        bg = wnids[backgrounds[index]]
        context_rows.append(["val", image_id, wnids[k], bg])
        own_context["val"] += bg == wnids[k]
        val_fractions += [_box_area(o[1]) / float(w * h) for o in objects]
        val_objectness.append(centre_crop_objectness([o[1] for o in objects], w, h))
        val_counts.append(len(objects))

    _write_csv(
        os.path.join(root, "LOC_train_solution.csv"), ["ImageId", "PredictionString"], train_rows
    )
    _write_csv(
        os.path.join(root, "LOC_val_solution.csv"), ["ImageId", "PredictionString"], val_rows
    )
    _write_csv(
        os.path.join(root, CONTEXT_CSV),
        ["split", "ImageId", "wnid", "background_wnid"],
        context_rows,
    )
    _write_text(os.path.join(sets, "train_cls.txt"), "".join(s + "\n" for s in cls_lines))
    _write_text(os.path.join(sets, "train_loc.txt"), "".join(s + "\n" for s in loc_lines))
    _write_text(os.path.join(sets, "val.txt"), "".join(s + "\n" for s in val_lines))
    n_train, n_val = K * n, len(labels)
    return {
        "train_images": n_train,
        "train_boxed_images": len(train_rows),
        "val_images": n_val,
        "train_own_context_fraction": own_context["train"] / max(n_train, 1),
        "val_own_context_fraction": own_context["val"] / max(n_val, 1),
        "train_mean_box_fraction": float(np.mean(fractions)) if fractions else 0.0,
        "val_mean_box_fraction": float(np.mean(val_fractions)) if val_fractions else 0.0,
        # under the ImageNet test transform (resize 256, centre crop 224); ImageNet val: 0.49
        "val_mean_test_objectness": float(np.mean(val_objectness)),
        "val_objectness_quartiles": [float(q) for q in np.percentile(val_objectness, [25, 50, 75])],
        "val_mean_objects_per_image": float(np.mean(val_counts)),
    }


def _box_area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _write_coco(root: str, classes, split: str, num_images: int, p: dict) -> dict:
    """``coco/<split>/*.jpg`` and ``coco/annotations/instances_<split>.json``: 2-5 objects
    of random classes per image (each box 2-12% of the image), background of a random class."""
    image_dir = os.path.join(root, "coco", split)
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(os.path.join(root, "coco", "annotations"), exist_ok=True)
    K = len(classes)
    images, annotations = [], []
    for index in range(num_images):
        rng = _image_rng(p["seed"], "coco_" + split, index)
        width, height = (
            int(rng.integers(p["image_size"][0], p["image_size"][1] + 1)) for _ in range(2)
        )
        object_classes = rng.integers(0, K, int(rng.integers(2, 6))).tolist()
        image, objects = render_image(
            classes, width, height, int(rng.integers(0, K)), object_classes, (0.02, 0.12), rng
        )
        image_id = index + 1
        file_name = f"{image_id:012d}.jpg"
        _save_jpeg(os.path.join(image_dir, file_name), image)
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for k, (x0, y0, x1, y1), pixels in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": k + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": float(pixels),
                    "iscrowd": 0,
                }
            )
    doc = {
        "info": {
            "description": "als-d2 synthetic detection split",
            "version": str(GENERATOR_VERSION),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": c.index + 1, "name": c.name, "supercategory": "shape"} for c in classes
        ],
    }
    path = os.path.join(root, "coco", "annotations", f"instances_{split}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
    return {f"coco_{split}_images": len(images), f"coco_{split}_annotations": len(annotations)}


# ----------------------------------------------------------------------------- entry point


def _read_manifest(root: str) -> Optional[dict]:
    try:
        with open(os.path.join(root, MANIFEST_NAME), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_manifest(root: str, doc: dict) -> None:
    tmp = os.path.join(root, MANIFEST_NAME + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    os.replace(tmp, os.path.join(root, MANIFEST_NAME))


def generate_synthetic_imagenet(
    root: str,
    *,
    num_classes: int = DEFAULT_SIZES["num_classes"],
    train_per_class: int = DEFAULT_SIZES["train_per_class"],
    val_per_class: int = DEFAULT_SIZES["val_per_class"],
    boxed_fraction: float = 0.6,
    context_prob: float = 0.8,
    image_size: Tuple[int, int] = (96, 160),
    seed: int = 0,
    coco_train: int = DEFAULT_SIZES["coco_train"],
    coco_val: int = DEFAULT_SIZES["coco_val"],
    force: bool = False,
) -> dict:
    """Write the synthetic ILSVRC tree and COCO split under ``root`` (see the module doc).

    Args:
        num_classes: K in [1, 100].
        train_per_class, val_per_class: images per class.
        boxed_fraction: fraction of the train images of each class with an XML and a
            LOC_train_solution.csv row (val images all have boxes, as in ILSVRC2012).
        context_prob: fraction of the images of each class drawn on their own class
            background (exactly round(p * count) per class); the others get the background
            of a random other class.
        image_size: (min, max) pixels; width and height are drawn independently.
        seed: same seed and parameters -> same bytes.
        coco_train, coco_val: images in the COCO-format detection split.
        force: regenerate even when the manifest matches.

    Returns a summary dict: ``root``, ``coco_root``, ``coco_train_json`` / ``coco_val_json``
    (paths), ``wnids``, ``class_names``, image counts, statistics, ``params``, ``seconds``
    (of the generation that wrote the tree) and ``cached`` (True when nothing was written).

    When ``root/synthetic_manifest.json`` records the same parameters (and generator
    version), nothing is written. When it records other parameters, everything this
    function writes is removed first. A root that holds ILSVRC/coco/LOC_* files but no
    manifest is refused (FileExistsError): those files are not ours to delete.
    Not safe against two processes generating the same root at once.
    """
    if not 0.0 <= boxed_fraction <= 1.0:
        raise ValueError(f"boxed_fraction must be in [0, 1], got {boxed_fraction}")
    if not 0.0 <= context_prob <= 1.0:
        raise ValueError(f"context_prob must be in [0, 1], got {context_prob}")
    lo, hi = int(image_size[0]), int(image_size[1])
    if not 48 <= lo <= hi:
        raise ValueError(f"image_size must be (min, max) with 48 <= min <= max, got {image_size}")
    for name, value in (("train_per_class", train_per_class), ("val_per_class", val_per_class)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if int(coco_train) < 0 or int(coco_val) < 0:
        raise ValueError("coco_train and coco_val must be >= 0")
    classes = class_specs(num_classes)
    params = {
        "num_classes": int(num_classes),
        "train_per_class": int(train_per_class),
        "val_per_class": int(val_per_class),
        "boxed_fraction": float(boxed_fraction),
        "context_prob": float(context_prob),
        "image_size": [lo, hi],
        "seed": int(seed),
        "coco_train": int(coco_train),
        "coco_val": int(coco_val),
    }
    root = os.path.abspath(os.path.expanduser(root))
    manifest = _read_manifest(root)
    if (
        not force
        and manifest is not None
        and manifest.get("complete")
        and manifest.get("version") == GENERATOR_VERSION
        and manifest.get("params") == params
        and all(os.path.exists(os.path.join(root, f)) for f in PREPARED)
    ):
        return dict(manifest["summary"], cached=True)
    present = [e for e in _OWNED if os.path.lexists(os.path.join(root, e))]
    if present and manifest is None:
        raise FileExistsError(
            f"{root} already holds {present} but no {MANIFEST_NAME}: not a synthetic dataset "
            "written by als_d2; choose an empty folder"
        )
    t0 = time.perf_counter()
    os.makedirs(root, exist_ok=True)
    if manifest is not None:  # ours, with other parameters or unfinished: start afresh
        os.remove(os.path.join(root, MANIFEST_NAME))
    for entry in present:
        path = os.path.join(root, entry)
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
    _write_manifest(root, {"version": GENERATOR_VERSION, "params": params, "complete": False})

    summary = {
        "root": root,
        "wnids": [c.wnid for c in classes],
        "class_names": [c.name for c in classes],
    }
    summary.update(_write_imagenet(root, classes, params))
    from .datasets.imagenet import prepare_imagenet  # here: it imports detectron2

    prepare_imagenet(root, "kaggle")  # what tools/prepare_imagenet.py does
    coco_root = os.path.join(root, "coco")
    for split, count in (("train", params["coco_train"]), ("val", params["coco_val"])):
        summary.update(_write_coco(root, classes, split, count, params))
        summary[f"coco_{split}_json"] = os.path.join(
            coco_root, "annotations", f"instances_{split}.json"
        )
        summary[f"coco_{split}_images_dir"] = os.path.join(coco_root, split)
    summary.update(
        coco_root=coco_root,
        params=params,
        classes=[asdict(c) for c in classes],
        seconds=round(time.perf_counter() - t0, 3),
    )
    summary = json.loads(json.dumps(summary))  # the same types as a cached summary
    _write_manifest(
        root, {"version": GENERATOR_VERSION, "params": params, "complete": True, "summary": summary}
    )
    return dict(summary, cached=False)
