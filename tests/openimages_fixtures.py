"""Writers of small OpenImages V6 trees in the published formats, for the tests.

Box CSVs with the published header (the train file with V6's eight XClick columns), the
train human-verified image-level label CSV (``write_image_labels``),
``class-descriptions-boxable.csv`` without a header, ``bbox_labels_600_hierarchy.json``
nested as published, real JPEGs named ``<ImageID>.jpg``. The hand-written ``TINY`` tree
is small enough to count by hand; the expected counts are in tests/test_openimages.py.
"""

import json
import os
from typing import Dict, List, NamedTuple, Sequence, Tuple

from PIL import Image

TRAIN_HEADER = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,"
    "IsDepiction,IsInside,XClick1X,XClick2X,XClick3X,XClick4X,XClick1Y,XClick2Y,XClick3Y,XClick4Y"
)
EVAL_HEADER = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,"
    "IsDepiction,IsInside"
)
CSV_NAMES = {
    "train": "oidv6-train-annotations-bbox.csv",
    "val": "validation-annotations-bbox.csv",
    "test": "test-annotations-bbox.csv",
}
IMAGE_DIRS = {"train": "train", "val": "validation", "test": "test"}

# (mid, display name), in the order of the descriptions file
DOG, CAT, ANIMAL = "/m/0bt9lr", "/m/01yrx", "/m/0jbk"
TORTOISE, SEA_TURTLE, TURTLE = "/m/011k07", "/m/0120dh", "/m/09dzg"
COFFEE_CUP, MUG, FLOWER, HARP = "/m/02p5f1q", "/m/02jvh9", "/m/0c9ph5", "/m/03m5k"
PERSON, FACE, TANK = "/m/01g317", "/m/0dzct", "/m/07cmd"
CLASSES = [
    (DOG, "Dog"), (CAT, "Cat"), (ANIMAL, "Animal"), (TORTOISE, "Tortoise"),
    (SEA_TURTLE, "Sea turtle"), (TURTLE, "Turtle"), (COFFEE_CUP, "Coffee cup"), (MUG, "Mug"),
    (FLOWER, "Flower"), (HARP, "Harp"), (PERSON, "Person"), (FACE, "Human face"), (TANK, "Tank"),
]  # fmt: skip

# Parents: Animal, Turtle, Person (whose one Subcategory, Woman, is not boxable here).
# "Human face" is a Part of Person and of Cat: a leaf class, and Cat stays a leaf. Sea
# turtle sits under two parents. Tank is boxable but not in the tree.
WOMAN = "/m/03bt1vf"
HIERARCHY = {
    "LabelName": "/m/0bl9f",
    "Subcategory": [
        {
            "LabelName": ANIMAL,
            "Subcategory": [
                {"LabelName": DOG},
                {"LabelName": CAT, "Part": [{"LabelName": FACE}]},
                {
                    "LabelName": TURTLE,
                    "Subcategory": [{"LabelName": TORTOISE}, {"LabelName": SEA_TURTLE}],
                },
                {"LabelName": SEA_TURTLE},
            ],
        },
        {"LabelName": COFFEE_CUP},
        {"LabelName": MUG},
        {"LabelName": FLOWER},
        {"LabelName": HARP},
        {"LabelName": PERSON, "Subcategory": [{"LabelName": WOMAN}], "Part": [{"LabelName": FACE}]},
    ],
}


class Box(NamedTuple):
    label: str
    xmin: float
    xmax: float
    ymin: float
    ymax: float
    group: int = 0
    depiction: int = 0


class FixtureImage(NamedTuple):
    image_id: str
    size: Tuple[int, int]  # (width, height) pixels
    boxes: List[Box]


def _id(tag: str) -> str:
    return tag.rjust(16, "0")


# The hand-counted tree. Train: 8 images (a-h); see tests/test_openimages.py for the counts.
TINY: Dict[str, List[FixtureImage]] = {
    "train": [
        FixtureImage(_id("a"), (64, 48), [Box(DOG, .1, .4, .1, .5), Box(DOG, .5, .9, .2, .8),
                                          Box(CAT, .0, .3, .5, 1.), Box(ANIMAL, .0, 1., .0, 1.)]),
        FixtureImage(_id("b"), (80, 60), [Box(DOG, .2, .6, .2, .9, depiction=1),
                                          Box(FACE, .3, .4, .2, .3),
                                          Box(PERSON, .25, .75, .1, 1.)]),
        FixtureImage(_id("c"), (64, 64), [Box(DOG, .1, .5, .1, .5),
                                          Box(FLOWER, .5, 1., .5, 1., group=1),
                                          Box(FLOWER, .0, .4, .6, 1., group=1)]),
        FixtureImage(_id("d"), (48, 64), [Box(CAT, .1, .9, .1, .6), Box(MUG, .2, .4, .7, .9),
                                          Box(COFFEE_CUP, .6, .8, .7, .9)]),
        FixtureImage(_id("e"), (64, 48), [Box(COFFEE_CUP, .1, .3, .1, .3), Box(MUG, .4, .6, .1, .3),
                                          Box(TORTOISE, .1, .5, .5, .9),
                                          Box(SEA_TURTLE, .5, .9, .5, .9, depiction=1)]),
        FixtureImage(_id("f"), (64, 48), [Box(TORTOISE, .0, .5, .0, .5),
                                          Box(SEA_TURTLE, .5, 1., .5, 1.),
                                          Box(HARP, .2, .4, .2, .4)]),
        FixtureImage(_id("g"), (64, 48), [Box(FLOWER, .1, .2, .1, .2),
                                          Box(DOG, .5, 1.2, .3, .9),  # XMax 1.2: clipped
                                          Box(TANK, .0, .3, .6, .9)]),
        FixtureImage(_id("h"), (64, 48), [Box(CAT, .2, .8, .2, .8), Box(FACE, .4, .5, .3, .4)]),
    ],
    "val": [
        FixtureImage(_id("1"), (64, 48), [Box(DOG, .1, .5, .1, .5), Box(CAT, .5, .9, .5, .9),
                                          Box(PERSON, .0, 1., .0, 1.)]),
        FixtureImage(_id("2"), (100, 50), [Box(MUG, .1, .5, .2, .9),
                                           Box(FLOWER, .6, .9, .1, .4, group=1)]),
        FixtureImage(_id("3"), (64, 48), [Box(HARP, .1, .9, .1, .9)]),
    ],
    "test": [
        FixtureImage(_id("t1"), (64, 48), [Box(TORTOISE, .0, .4, .0, .4),
                                           Box(SEA_TURTLE, .5, .9, .5, .9),
                                           Box(DOG, .2, .6, .4, .8)]),
        FixtureImage(_id("t2"), (48, 64), [Box(FACE, .3, .7, .3, .7)]),
    ],
}  # fmt: skip

# Raw train rows that must be skipped (counter, CSV line) or kept with a fix.
BAD_TRAIN_ROWS = [
    ("bad_rows", f"{_id('a')},xclick,{DOG},1,abc,0.5,0.1,0.5,0,0,0,0,0,-1,-1,-1,-1,-1,-1,-1,-1"),
    (
        "inverted_boxes",
        f"{_id('a')},xclick,{DOG},1,0.7,0.2,0.1,0.5,0,0,0,0,0,-1,-1,-1,-1,-1,-1,-1,-1",
    ),
    (
        "unknown_labels",
        f"{_id('b')},xclick,/m/zzzzz,1,0.1,0.5,0.1,0.5,0,0,0,0,0,-1,-1,-1,-1,-1,-1,-1,-1",
    ),
    (
        "bad_image_ids",
        f"../../etc/passwd,xclick,{DOG},1,0.1,0.5,0.1,0.5,0,0,0,0,0,-1,-1,-1,-1,-1,-1,-1,-1",
    ),
    ("bad_rows", f"{_id('c')},xclick,{DOG},1,0.1"),
    (
        "missing_images",
        f"{_id('ff')},xclick,{DOG},1,0.1,0.5,0.1,0.5,0,0,0,0,0,-1,-1,-1,-1,-1,-1,-1,-1",
    ),
]


# Human-verified image-level labels of TINY train, (ImageID tag, mid, Confidence), in the
# order written; the hand counts are in tests/test_openimages.py. Dog is verified in one
# image without a Dog box (d), Mug in three (a, b, c); Sea turtle has no label at all;
# "ff" has no image file and "x9" no box, so their rows are outside the index.
IMAGE_LABELS = [
    ("a", DOG, 1), ("b", DOG, 1), ("c", DOG, 1), ("g", DOG, 1), ("d", DOG, 1),
    ("a", CAT, 1), ("a", CAT, 1), ("d", CAT, 1), ("h", CAT, 1), ("a", ANIMAL, 1),
    ("e", TORTOISE, 1), ("f", TORTOISE, 1), ("ff", TORTOISE, 1),
    ("d", COFFEE_CUP, 1), ("e", COFFEE_CUP, 1),
    ("a", MUG, 1), ("b", MUG, 1), ("c", MUG, 1), ("d", MUG, 1), ("e", MUG, 1),
    ("c", FLOWER, 1), ("g", FLOWER, 1), ("f", HARP, 1), ("b", PERSON, 1), ("b", FACE, 1),
    ("h", FACE, 1), ("g", TANK, 1), ("x9", CAT, 1),
    ("h", DOG, 0), ("b", CAT, 0), ("a", FACE, 0), ("f", MUG, 0),
]  # fmt: skip
IMAGE_LABELS_HEADER = "ImageID,Source,LabelName,Confidence"
IMAGE_LABELS_NAME = "oidv6-train-annotations-human-imagelabels-boxable.csv"
# Rows that must be skipped, (counter, CSV line), written after IMAGE_LABELS.
BAD_IMAGE_LABEL_ROWS = [
    ("bad_rows", f"{_id('a')},verification,{DOG}"),
    ("bad_rows", f"{_id('a')},verification,{CAT},0.5"),
    ("unknown_labels", f"{_id('b')},verification,/m/zzzzz,1"),
    ("bad_image_ids", f"../../etc/passwd,verification,{DOG},1"),
]


def write_image_labels(
    root: str, labels=None, extra_rows=None, name: str = IMAGE_LABELS_NAME
) -> str:
    """The train image-level label CSV in the published format (CRLF lines; the second of
    two rows for one image and class comes from another source). Returns its path."""
    labels = IMAGE_LABELS if labels is None else labels
    extra_rows = [line for _, line in BAD_IMAGE_LABEL_ROWS] if extra_rows is None else extra_rows
    lines, seen = [IMAGE_LABELS_HEADER], set()
    for tag, mid, conf in labels:
        source = "crowdsource-verification" if (tag, mid) in seen else "verification"
        seen.add((tag, mid))
        lines.append(f"{_id(tag)},{source},{mid},{conf}")
    path = os.path.join(root, name)
    with open(path, "w", newline="") as f:
        f.write("\r\n".join(lines + list(extra_rows)) + "\r\n")
    return path


def _num(v: float) -> str:
    return f"{v:.6f}"


def box_row(image_id: str, b: Box, train: bool) -> str:
    cells = [image_id, "xclick", b.label, "1",
             _num(b.xmin), _num(b.xmax), _num(b.ymin), _num(b.ymax),
             "0", "0", str(b.group), str(b.depiction), "0"]  # fmt: skip
    if train:
        cells += ["-1"] * 8
    return ",".join(cells)


def write_jpeg(path: str, size: Tuple[int, int], color=(120, 90, 60)) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, color).save(path, "JPEG", quality=80)


def write_openimages_tree(
    root: str,
    spec: Dict[str, List[FixtureImage]] = None,
    classes: Sequence[Tuple[str, str]] = CLASSES,
    hierarchy: dict = None,
    extra_rows: Dict[str, Sequence[str]] = None,
) -> str:
    """Write ``spec`` (default ``TINY``, plus ``BAD_TRAIN_ROWS`` in train) under ``root``:
    CSVs, descriptions, hierarchy and one JPEG per image. Returns root."""
    spec = TINY if spec is None else spec
    hierarchy = HIERARCHY if hierarchy is None else hierarchy
    if extra_rows is None:
        extra_rows = {"train": [line for _, line in BAD_TRAIN_ROWS]} if spec is TINY else {}
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "class-descriptions-boxable.csv"), "w", newline="") as f:
        f.writelines(f"{mid},{name}\n" for mid, name in classes)
    with open(os.path.join(root, "bbox_labels_600_hierarchy.json"), "w") as f:
        json.dump(hierarchy, f, indent=1)
    for split, images in spec.items():
        train = split == "train"
        lines = [TRAIN_HEADER if train else EVAL_HEADER]
        for k, im in enumerate(images):
            lines += [box_row(im.image_id, b, train) for b in im.boxes]
            write_jpeg(
                os.path.join(root, IMAGE_DIRS[split], im.image_id + ".jpg"),
                im.size,
                color=(40 + 20 * (k % 8), 90, 200 - 15 * (k % 8)),
            )
        lines += list(extra_rows.get(split, []))
        with open(os.path.join(root, CSV_NAMES[split]), "w", newline="") as f:
            f.write("\r\n".join(lines) + "\r\n")  # the published files end lines with CRLF
    return root


def write_merges(
    path: str, rows: Sequence[Tuple[str, str]], header: str = "Source,Target,Why"
) -> str:
    with open(path, "w") as f:
        f.write("# test merges\n" + header + "\n")
        f.writelines(f"{a},{b},test\n" for a, b in rows)
    return path


def trainable_spec(
    per_class: int = 20, seed_classes=(DOG, CAT, TORTOISE)
) -> Dict[str, List[FixtureImage]]:
    """``per_class`` train images per class (one box of it, one Person box to paint), and
    two val images per class: enough for the default rules (min_images 20)."""
    spec: Dict[str, List[FixtureImage]] = {"train": [], "val": [], "test": []}
    n = 0
    for c, mid in enumerate(seed_classes):
        for i in range(per_class + 4):
            n += 1
            x = 0.1 + 0.05 * (i % 5)
            boxes = [Box(mid, x, x + 0.5, 0.2, 0.8), Box(PERSON, 0.0, 0.2, 0.0, 0.3)]
            split = "train" if i < per_class else ("val" if i < per_class + 2 else "test")
            spec[split].append(FixtureImage(f"{n:016x}", (64 + 8 * c, 48), boxes))
    return spec


# Train rows of the hostile tree (write_hostile_tree), after BAD_TRAIN_ROWS: one problem
# each, (counter, CSV line).
MORE_BAD_TRAIN_ROWS = [
    ("degenerate_boxes", f"{_id('a')},xclick,{DOG},1,0.3,0.3,0.1,0.5,0,0,0,0,0" + ",-1" * 8),
    ("bad_flags", f"{_id('b')},xclick,{CAT},1,0.1,0.5,0.1,0.5,0,7,0,0,0" + ",-1" * 8),
]


def write_hostile_tree(root: str) -> Tuple[str, Dict[str, int], Dict[str, int]]:
    """TINY with BAD_TRAIN_ROWS, MORE_BAD_TRAIN_ROWS, the image-level labels with
    BAD_IMAGE_LABEL_ROWS, and in train/: a text file, a second file for ImageID a (a PNG),
    an image whose header cannot be read and one EXIF-rotated image (each with a box row),
    a symlink to an image outside the root. Returns (root, the problem counts of the train
    index, those of the image-level label CSV), counted by hand."""
    write_openimages_tree(
        root,
        extra_rows={"train": [line for _, line in BAD_TRAIN_ROWS + MORE_BAD_TRAIN_ROWS]},
    )
    write_image_labels(root)
    train = os.path.join(root, IMAGE_DIRS["train"])
    with open(os.path.join(train, "notes.txt"), "w") as f:
        f.write("not an image\n")
    Image.new("RGB", (8, 8)).save(os.path.join(train, _id("a") + ".png"))
    with open(os.path.join(train, _id("u") + ".jpg"), "wb") as f:
        f.write(b"\xff\xd8 not a JPEG header")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    Image.new("RGB", (40, 30), (1, 2, 3)).save(
        os.path.join(train, _id("r") + ".jpg"), "JPEG", exif=exif.tobytes()
    )
    outside = os.path.join(os.path.dirname(os.path.abspath(root)), "outside.jpg")
    write_jpeg(outside, (16, 16))
    os.symlink(outside, os.path.join(train, _id("s") + ".jpg"))
    with open(os.path.join(root, CSV_NAMES["train"]), "a", newline="") as f:
        for tag in ("u", "r"):
            f.write(box_row(_id(tag), Box(DOG, 0.1, 0.5, 0.1, 0.5), True) + "\r\n")
    index_counts = {
        "bad_rows": 2,
        "inverted_boxes": 1,
        "unknown_labels": 1,
        "bad_image_ids": 1,
        "missing_images": 1,  # ff
        "degenerate_boxes": 1,
        "bad_flags": 1,
        "clipped_boxes": 1,  # g's XMax 1.2
        "non_image_files": 1,
        "duplicate_images": 1,
        "unreadable_images": 1,
        "exif_rotated": 1,
        "outside_root": 1,
    }
    label_counts = {"bad_rows": 2, "unknown_labels": 1, "bad_image_ids": 1}
    return root, index_counts, label_counts
