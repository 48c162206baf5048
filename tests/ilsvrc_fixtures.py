"""Writers of small ImageNet trees in the exact on-disk formats, for the tests.

Real JPEGs (PIL), real ILSVRC annotation XMLs (the layout of the official
ILSVRC2012_bbox_*.tar.gz files, tabs and all), real Kaggle ``LOC_*`` files. Every writer
records what it wrote in plain Python (``FixtureImage``) so that tests compute their
expectations from that, not from the code under test.
"""

import csv
import os
import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image

Box = Tuple[float, float, float, float]

# Real ILSVRC wnids (and the first synonym of each), deliberately not in sorted order.
WNIDS_AND_NAMES = [
    ("n02085620", "Chihuahua, Canis familiaris"),
    ("n01440764", "tench, Tinca tinca"),
    ("n04589890", "window screen"),
    ("n01443537", "goldfish, Carassius auratus"),
    ("n02123045", "tabby, tabby cat"),
    ("n03000134", "chainlink fence"),
    ("n01484850", "great white shark, white shark, man-eater"),
    ("n09999999", "made-up class"),
]


def wnid_names(n: int) -> List[Tuple[str, str]]:
    """The first n (wnid, synonyms) pairs; beyond the real ones, made-up wnids."""
    pairs = list(WNIDS_AND_NAMES[:n])
    for i in range(len(pairs), n):
        pairs.append((f"n{20000000 + 7919 * i:08d}", f"class number {i}, synthetic"))
    return pairs


def write_jpeg(path: str, size: Tuple[int, int], color=(120, 80, 40)) -> None:
    """A real JPEG of ``size`` = (width, height) pixels."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, color).save(path, "JPEG", quality=70)


def _num(v) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def ilsvrc_xml_text(folder: str, filename: str, size, objects: Sequence) -> str:
    """An annotation file exactly as in ILSVRC2012_bbox_{train,val}: ``objects`` is
    ``[(wnid, (xmin, ymin, xmax, ymax))]``; size ``(width, height)``."""
    lines = [
        "<annotation>",
        f"\t<folder>{folder}</folder>",
        f"\t<filename>{filename}</filename>",
        "\t<source>",
        "\t\t<database>ILSVRC_2012</database>",
        "\t</source>",
        "\t<size>",
        f"\t\t<width>{size[0]}</width>",
        f"\t\t<height>{size[1]}</height>",
        "\t\t<depth>3</depth>",
        "\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for wnid, box in objects:
        lines += [
            "\t<object>",
            f"\t\t<name>{wnid}</name>",
            "\t\t<pose>Unspecified</pose>",
            "\t\t<truncated>0</truncated>",
            "\t\t<difficult>0</difficult>",
            "\t\t<bndbox>",
            f"\t\t\t<xmin>{_num(box[0])}</xmin>",
            f"\t\t\t<ymin>{_num(box[1])}</ymin>",
            f"\t\t\t<xmax>{_num(box[2])}</xmax>",
            f"\t\t\t<ymax>{_num(box[3])}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def write_text(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def write_synset_mapping(path: str, pairs: Sequence[Tuple[str, str]]) -> None:
    """``LOC_synset_mapping.txt``: ``<wnid> <synonyms>`` per line, sorted by wnid."""
    write_text(path, "".join(f"{w} {names}\n" for w, names in sorted(pairs)))


def prediction_string(objects: Sequence) -> str:
    return " ".join(f"{w} {' '.join(_num(v) for v in box)}" for w, box in objects) + " "


def write_loc_solution_csv(path: str, rows: Dict[str, str]) -> None:
    """``LOC_<split>_solution.csv``: ``ImageId,PredictionString`` rows (raw strings)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ImageId", "PredictionString"])
        for image_id, text in rows.items():
            w.writerow([image_id, text])


# An annotation (template: {w}, {h}) whose class name is the entity NAME, for the attacks below.
_ENTITY_ANNOTATION = """<annotation>
\t<size><width>{w}</width><height>{h}</height><depth>3</depth></size>
\t<object><name>NAME</name>
\t\t<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>
</annotation>
"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE annotation [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
""" + _ENTITY_ANNOTATION.replace("NAME", "&lol9;")

XXE = """<?xml version="1.0"?>
<!DOCTYPE annotation [ <!ENTITY xxe SYSTEM "file://{target}"> ]>
""" + _ENTITY_ANNOTATION.replace("NAME", "&xxe;")

XXE_PARAMETER = """<?xml version="1.0"?>
<!DOCTYPE annotation [ <!ENTITY % ext SYSTEM "file://{target}"> %ext; ]>
<annotation>
\t<size><width>{w}</width><height>{h}</height><depth>3</depth></size>
</annotation>
"""


@dataclass
class FixtureImage:
    """What was written for one image. ``objects`` in the XML/CSV frame, as written."""

    split: str
    path: str
    stem: str
    wnid: Optional[str]  # the true label (None: unknowable for the loader)
    size: Tuple[int, int]  # real (width, height)
    objects: List[Tuple[str, Box]] = field(default_factory=list)
    xml_path: Optional[str] = None
    xml_size: Optional[Tuple[int, int]] = None  # what <size> says
    csv_objects: Optional[List[Tuple[str, Box]]] = None  # the CSV row, if any


class FixtureTree:
    """An ImageNet tree under ``root`` in the 'standard' or 'kaggle' layout."""

    def __init__(self, root: str, layout: str, pairs: Sequence[Tuple[str, str]], mapping=True):
        self.root, self.layout = root, layout
        self.pairs = list(pairs)
        self.wnids = sorted(w for w, _ in pairs)
        self.names = {w: n.split(",")[0].strip() for w, n in pairs}
        self.images: List[FixtureImage] = []
        self.counters: Dict[str, int] = {}
        os.makedirs(root, exist_ok=True)
        if mapping:
            write_synset_mapping(self.mapping_path, pairs)

    # paths -------------------------------------------------------------------------------
    @property
    def mapping_path(self) -> str:
        return os.path.join(self.root, "LOC_synset_mapping.txt")

    def image_dir(self, split: str) -> str:
        if self.layout == "kaggle":
            return os.path.join(self.root, "ILSVRC", "Data", "CLS-LOC", split)
        return os.path.join(self.root, split)

    def ann_dir(self, split: str) -> str:
        if self.layout == "kaggle":
            return os.path.join(self.root, "ILSVRC", "Annotations", "CLS-LOC", split)
        return os.path.join(self.root, "bbox", split)

    def csv_path(self, split: str) -> str:
        return os.path.join(self.root, f"LOC_{split}_solution.csv")

    def split_images(self, split: str) -> List[FixtureImage]:
        return [im for im in self.images if im.split == split]

    # writers -----------------------------------------------------------------------------
    def add_image(
        self,
        split: str,
        wnid: Optional[str],
        size=(64, 48),
        objects: Sequence = (),
        xml: bool = True,
        csv_row: bool = False,
        xml_size=None,
        in_folder: Optional[bool] = None,
        stem: Optional[str] = None,
        label_known: bool = True,
    ) -> FixtureImage:
        """Write one JPEG (+ its XML when ``xml`` and there are objects, + a CSV row when
        ``csv_row``; call :meth:`write_csvs` after the last image). Train images go in
        their class folder; val images flat unless ``in_folder``."""
        n = self.counters[split] = self.counters.get(split, 0) + 1
        if stem is None:
            stem = f"{wnid}_{1000 + n}" if split == "train" else f"ILSVRC2012_val_{n:08d}"
        in_folder = (split == "train") if in_folder is None else in_folder
        folder = os.path.join(self.image_dir(split), wnid) if in_folder else self.image_dir(split)
        path = os.path.join(folder, stem + ".JPEG")
        write_jpeg(path, size, color=(n * 37 % 255, 90, 160))
        im = FixtureImage(
            split, path, stem, wnid if label_known else None, tuple(size), list(objects)
        )
        if xml and objects:
            xml_size = tuple(xml_size or size)
            sub = wnid if split == "train" else ""
            im.xml_path = os.path.join(self.ann_dir(split), sub, stem + ".xml")
            im.xml_size = xml_size
            folder_tag = wnid if split == "train" else "val"
            write_text(im.xml_path, ilsvrc_xml_text(folder_tag, stem, xml_size, objects))
        if csv_row:
            im.csv_objects = list(objects)
        self.images.append(im)
        return im

    def write_csvs(self) -> None:
        for split in ("train", "val"):
            rows = {
                im.stem: prediction_string(im.csv_objects)
                for im in self.split_images(split)
                if im.csv_objects is not None
            }
            if rows:
                write_loc_solution_csv(self.csv_path(split), rows)


def random_box(rng: random.Random, size) -> Box:
    w, h = size
    x0, y0 = rng.randint(0, w // 2), rng.randint(0, h // 2)
    return (float(x0), float(y0), float(rng.randint(x0 + 2, w)), float(rng.randint(y0 + 2, h)))


def make_imagenet_tree(
    root: str,
    layout: str = "standard",
    n_classes: int = 3,
    train_per_class: int = 4,
    val_per_class: int = 2,
    boxed_every: int = 2,
    val_in_folders: bool = False,
    mapping: bool = True,
    csv: bool = False,
    seed: int = 0,
) -> FixtureTree:
    """A tree with every ``boxed_every``-th train image annotated (1-3 objects of its class,
    inside the image), every val image annotated (its label from the XML, and from the
    CSV when ``csv``). Kaggle trees get the CSVs and the mapping, as the real one does."""
    rng = random.Random(seed)
    if layout == "kaggle":
        csv = mapping = True
    tree = FixtureTree(root, layout, wnid_names(n_classes), mapping=mapping)
    for wnid in tree.wnids:
        for i in range(train_per_class):
            size = (rng.randint(40, 90), rng.randint(30, 70))
            objects = []
            if i % boxed_every == 0:
                objects = [(wnid, random_box(rng, size)) for _ in range(rng.randint(1, 3))]
            tree.add_image("train", wnid, size, objects, csv_row=csv and bool(objects))
    for _ in range(val_per_class):
        for wnid in tree.wnids:
            size = (rng.randint(40, 90), rng.randint(30, 70))
            objects = [(wnid, random_box(rng, size)) for _ in range(rng.randint(1, 2))]
            tree.add_image("val", wnid, size, objects, csv_row=csv, in_folder=val_in_folders)
    tree.write_csvs()
    return tree


def make_imagenetv2_tree(root: str, n_classes: int = 4, per_class: int = 3) -> Dict[str, int]:
    """``root/<class index>/<hex>.jpeg``; returns {relative path: class index}."""
    out = {}
    for c in range(n_classes):
        for k in range(per_class):
            name = f"{(c * 131 + k * 7919) * 2654435761 % (1 << 40):010x}.jpeg"
            write_jpeg(os.path.join(root, str(c), name), (32, 24))
            out[f"{c}/{name}"] = c
    return out


def prepared_dicts(root: str, split: str, layout: str = "auto", subset: str = "all", **kwargs):
    """What a user gets: ``tools/prepare_imagenet.py`` (:func:`prepare_imagenet`, one
    process) then the loader. ImageNetV2 trees are not prepared (listed at load)."""
    from als_d2.data.datasets.imagenet import load_imagenet_dicts, prepare_imagenet
    from als_d2.data.datasets.imagenet_index import resolve_layout

    if resolve_layout(root, layout) != "imagenetv2":
        prepare_imagenet(root, layout, [split])
    return load_imagenet_dicts(root, split, layout, subset, **kwargs)


def prepared_index(root: str, split: str, layout: str = "auto") -> dict:
    """:func:`prepare_imagenet` of ``split``, then the prepared file's content (``stats``,
    ``images``, ``wnids``, ...)."""
    from als_d2.data.datasets.imagenet import prepare_imagenet, read_prepared

    prepare_imagenet(root, layout, [split])
    return read_prepared(root, split)
