"""OpenImages V6: the published file formats, the paper's leaf 'mask' subset (counted by
hand on tests/openimages_fixtures.TINY), pixel boxes, bad rows, the prepare step
(tools/prepare_openimages.py) and its files, registration, tools/dataset_stats.py and a few
training iterations through tools/train_cls.py.

Hand counts of TINY train (8 images a-h, 25 good box rows; see the fixture):

* boxable: 13 classes, 25 boxes; leaf (no Animal, Turtle, Person box; Tank is not in the
  tree): 9 classes, 22 boxes, all 8 images;
* fully annotated (min_images 2, max_group_fraction 0.5): Harp (1 image) and Flower
  (2 of 3 boxes group-of) dropped: 7 classes, 18 boxes;
* merged (Mug -> Coffee cup): 6 classes: Tortoise 2, Sea turtle 2, Cat 3, Coffee cup 4
  (2 Coffee cup + 2 Mug), Dog 5, Human face 2 samples = 18 'mask' samples from 8 images;
* clipped (max_per_class 3): Dog 5 -> 3, Coffee cup 4 -> 3: 15 samples.

Val: Dog + Cat (image 1), Mug -> Coffee cup (image 2), nothing in image 3 (Harp): 3
samples from 2 images. Test: Tortoise, Sea turtle, Dog, Human face: 4 samples.

With the image-level labels of tests/openimages_fixtures.IMAGE_LABELS (the paper's rule)
the "fully annotated" step is instead, per leaf class, boxed / positive train images:
Dog 4/5 (a b c g of a b c d g; 0.8, kept at min_box_coverage 0.8), Cat 3/3, Tortoise 2/2
(the "ff" row has no image), Sea turtle 0/0 (no label: kept), Coffee cup 2/2, Mug 2/5
(d e of a b c d e: dropped), Flower 2/2, Harp 1/1, Human face 2/2 (Flower and Harp, which
the heuristic drops, stay): 8 classes, 20 boxes; nothing to merge (Mug is gone); 'mask':
Tortoise 2, Sea turtle 2, Cat 3, Coffee cup 2, Harp 1, Dog 5, Flower 3, Human face 2 =
20 samples from 8 images; clipped (3): Dog 5 -> 3: 18 samples. Val: Dog, Cat, Flower,
Harp (its Mug is no class): 4 samples.
"""

import gzip
import json
import logging
import os
import re

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from als_d2.data.datasets import openimages
from als_d2.data.datasets.catalog import DatasetNotPreparedError
from als_d2.data.datasets.openimages import (
    PREDEFINED_SPLITS_OPENIMAGES,
    SPLITS,
    SubsetRules,
    get_openimages_classes,
    load_openimages_dicts,
    prepare_openimages,
    prepared_path,
    read_prepared_classes,
    read_prepared_index,
    register_openimages,
)
from als_d2.data.datasets.openimages_index import build_index
from als_d2.data.datasets.openimages_files import (
    read_bbox_csv,
    read_class_descriptions,
    read_hierarchy,
)
from als_d2.data.datasets.openimages_subset import DEFAULT_MERGES, read_class_merges

from forked_tools import run_tool
import openimages_fixtures as fx
from tiny_data import load_tool, register_tiny

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAND_NAMES = ["Tortoise", "Sea turtle", "Cat", "Coffee cup", "Dog", "Human face"]  # sorted by mid
LABEL = {name: k for k, name in enumerate(HAND_NAMES)}


pytestmark = pytest.mark.usefixtures("single_index_worker")


def prepare(root: str, splits=SPLITS) -> str:
    """tools/prepare_openimages.py --root root --splits ... (one process); returns root."""
    prepare_openimages(root, splits, num_workers=1)
    return root


def prepared_index(root: str, split: str) -> dict:
    """The prepare step of ``split``, then its prepared file's content."""
    return read_prepared_index(prepare(root, [split]), split)


@pytest.fixture
def tree(tmp_path):
    """The TINY tree, prepared (every split)."""
    return prepare(fx.write_openimages_tree(str(tmp_path / "openimages")))


@pytest.fixture
def rules(tmp_path):
    merges = fx.write_merges(str(tmp_path / "merges.csv"), [("Mug", "Coffee cup")])
    return SubsetRules(min_images=2, max_group_fraction=0.5, max_per_class=3, merges=merges)


def per_class(dicts, k=6):
    return np.bincount([d["label"] for d in dicts], minlength=k).tolist()


# ----------------------------------------------------------------------------------------
# The published files


def test_descriptions_and_hierarchy(tree, tmp_path):
    desc = read_class_descriptions(os.path.join(tree, "class-descriptions-boxable.csv"))
    assert list(desc.items()) == fx.CLASSES
    with_header = tmp_path / "d.csv"
    with_header.write_text(
        'LabelName,DisplayName\n/m/011k07,Tortoise\n"/m/x","Kitchen & dining room table, big"\n'
    )
    assert read_class_descriptions(str(with_header)) == {
        "/m/011k07": "Tortoise",
        "/m/x": "Kitchen & dining room table, big",
    }

    h = read_hierarchy(os.path.join(tree, "bbox_labels_600_hierarchy.json"))
    assert h.root == "/m/0bl9f"
    assert set(h.leaves) == {
        fx.DOG,
        fx.CAT,
        fx.TORTOISE,
        fx.SEA_TURTLE,
        fx.COFFEE_CUP,
        fx.MUG,
        fx.FLOWER,
        fx.HARP,
        fx.FACE,
        fx.WOMAN,
    }  # Cat has a Part but stays a leaf
    assert {fx.ANIMAL, fx.TURTLE, fx.PERSON} == {m for m in h.classes if h.children.get(m)}
    assert h.classes.count(fx.SEA_TURTLE) == 1 and h.parents[fx.SEA_TURTLE] == {
        fx.ANIMAL,
        fx.TURTLE,
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("/m/a,Dog\n/m/a,Cat\n", r"d\.csv:2: class /m/a is listed twice"),
        ("/m/a,Dog,extra\n", r"d\.csv:1: expected 'LabelName,DisplayName'"),
        ("/m/a,\n", r"d\.csv:1: expected"),
        ("\n", r"d\.csv: no classes"),
    ],
)
def test_bad_descriptions_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_class_descriptions(str(path))


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not a JSON class hierarchy"),
        (
            json.dumps({"LabelName": "/m/0bl9f", "Subcategory": {"LabelName": "/m/a"}}),
            "'Subcategory' must be a list",
        ),
        (
            json.dumps({"LabelName": "/m/0bl9f", "Subcategory": [{"Name": "/m/a"}]}),
            r"Subcategory\[0\]: expected",
        ),
        (json.dumps([1, 2]), "root: expected"),
    ],
)
def test_bad_hierarchy_names_the_file(tmp_path, content, message):
    path = tmp_path / "h.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as e:
        read_hierarchy(str(path))
    assert str(path) in str(e.value)
    with pytest.raises(ValueError, match="byte limit"):
        read_hierarchy(str(path), max_bytes=2)


def _nested(depth: int) -> str:
    return (
        '{"LabelName": "/m/0bl9f", "Subcategory": ['
        + "".join(f'{{"LabelName": "/m/n{i}", "Subcategory": [' for i in range(depth))
        + '{"LabelName": "/m/leaf"}'
        + "]}" * depth
        + "]}"
    )


def test_deep_hierarchies(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text(_nested(200))  # walked without recursion
    h = read_hierarchy(str(path))
    assert h.leaves == ["/m/leaf"] and len(h.classes) == 201
    path.write_text(_nested(100000))  # too deep for json itself: an error naming the file
    with pytest.raises(ValueError, match="deep.json: nested too deeply"):
        read_hierarchy(str(path))


def test_bad_rows_are_skipped_counted_and_named(tree, caplog):
    csv_path = os.path.join(tree, fx.CSV_NAMES["train"])
    with caplog.at_level(logging.WARNING, logger="als_d2.data.datasets.openimages"):
        index = prepared_index(tree, "train")  # the prepare step logs them, the file keeps them
    s = index["stats"]
    expected = {
        "bad_rows": 2,
        "inverted_boxes": 1,
        "unknown_labels": 1,
        "bad_image_ids": 1,
        "missing_images": 1,
    }
    assert {k: s.get(k, 0) for k in expected} == expected
    assert (
        s["clipped_boxes"] == 1 and s.get("degenerate_boxes", 0) == 0 and s.get("bad_flags", 0) == 0
    )
    assert (
        s["rows"] == 25 + len(fx.BAD_TRAIN_ROWS) and s["dropped_rows"] == 1
    )  # the row of the missing image
    assert (s["images"], s["boxes"], s["group_of_boxes"], s["depiction_boxes"]) == (8, 25, 2, 2)
    # every bad row is named by file and line: the header is line 1, the 25 good rows 2-26
    for line, (counter, _) in enumerate(fx.BAD_TRAIN_ROWS, start=27):
        if counter == "missing_images":
            continue
        assert any(e.startswith(f"{csv_path}:{line}: ") for e in index["examples"][counter]), (
            counter,
            line,
        )
    assert any("00000000000000ff.jpg" in e for e in index["examples"]["missing_images"])
    logged = caplog.text
    for counter in expected:
        assert f"{counter} = {expected[counter]}" in logged
    assert csv_path in logged


def test_other_bad_values(tmp_path):
    root = fx.write_openimages_tree(str(tmp_path / "oi"), {"train": fx.TINY["train"][:1]})
    rows = [
        f"{fx._id('a')},xclick,{fx.DOG},1,nan,0.5,0.1,0.5,0,0,0,0,0",     # non-finite
        f"{fx._id('a')},xclick,{fx.DOG},1,0.3,0.3,0.1,0.5,0,0,0,0,0",     # zero width
        # outside the image: empty after clipping
        f"{fx._id('a')},xclick,{fx.DOG},1,1.5,1.8,0.1,0.5,0,0,0,0,0",
        # two bad flags: kept, flags unknown
        f"{fx._id('a')},xclick,{fx.DOG},1,0.1,0.5,0.1,0.5,0,0,2,x,0",
        f"{fx._id('a')}/x,xclick,{fx.DOG},1,0.1,0.5,0.1,0.5,0,0,0,0,0",   # ImageID with a separator
        # a stray quote: one bad row only
        f'"{fx._id("a")},xclick,{fx.DOG},1,0.1,0.5,0.1,0.5,0,0,0,0,0',
        # quoted: fine
        f'"{fx._id("a")}","xclick","{fx.CAT}","1",'
        '"0.1","0.5","0.1","0.5","0","0","0","0","0"',
    ]  # fmt: skip
    with open(os.path.join(root, fx.CSV_NAMES["train"]), "a") as f:
        f.write("\n".join(rows) + "\n")
    index = prepared_index(root, "train")
    s = index["stats"]
    assert (s["bad_rows"], s["degenerate_boxes"], s["bad_flags"], s["bad_image_ids"]) == (
        2,
        2,
        2,
        1,
    )
    assert s["boxes"] == 6 and index["box_flags"][-2].tolist() == [0, 0, -1, -1, 0]
    assert index["box_label"][-1] == [m for m, _ in fx.CLASSES].index(fx.CAT)


def test_missing_files_and_columns_are_errors(tmp_path):
    root = fx.write_openimages_tree(str(tmp_path / "oi"), {"train": fx.TINY["train"][:2]})
    with pytest.raises(FileNotFoundError, match="validation-annotations-bbox.csv"):
        prepare(root, ["val"])
    path = os.path.join(root, fx.CSV_NAMES["train"])
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("XMax,", "XMaximum,", 1))
    with pytest.raises(
        ValueError, match=r"oidv6-train-annotations-bbox\.csv: not an OpenImages box CSV.*XMax"
    ):
        prepare(root, ["train"])


def _read_three_ways(reader, path, chunk):
    """(rows, stats, sorted examples) of ``reader`` on ``path``: one byte range, then
    ``chunk``-byte ranges in one process and in two."""
    from als_d2.data.datasets.indexing import Tally

    label_to_idx = {m: i for i, (m, _) in enumerate(fx.CLASSES)}
    runs = []
    for workers, size in ((1, 1 << 20), (1, chunk), (2, chunk)):
        tally = Tally(None)
        rows = reader(path, label_to_idx, tally, num_workers=workers, chunk_bytes=size)
        runs.append((rows, dict(tally.stats), {k: sorted(v) for k, v in tally.examples.items()}))
    return runs


def test_parallel_streaming_matches_serial(tree):
    # one range; ~15 ranges, serial and parallel
    runs = _read_three_ways(read_bbox_csv, os.path.join(tree, fx.CSV_NAMES["train"]), 150)
    (ref, ref_stats, ref_examples) = runs[0]
    assert len(ref.box_image) == 26 and ref.rows == 31
    for rows, stats, examples in runs[1:]:
        assert rows.image_ids == ref.image_ids and rows.rows == ref.rows
        for key in ("box_image", "box_label", "box_xyxy", "box_flags"):
            np.testing.assert_array_equal(getattr(rows, key), getattr(ref, key))
        assert stats == ref_stats and examples == ref_examples  # same line numbers


# ----------------------------------------------------------------------------------------
# The subset


def test_subset_steps_hand_counted(tree, rules, caplog):
    report = {}
    with caplog.at_level(logging.INFO, logger="als_d2.data.datasets.openimages"):
        dicts = load_openimages_dicts(tree, "train", rules, report=report)
    steps = {r["step"]: r for r in report["steps"]}
    assert [r["step"] for r in report["steps"]] == [
        "boxable",
        "leaf",
        "fully annotated",
        "merged",
        "mask",
        "clipped",
    ]
    assert (steps["boxable"]["classes"], steps["boxable"]["images"], steps["boxable"]["boxes"]) == (
        13,
        8,
        25,
    )
    assert (steps["leaf"]["classes"], steps["leaf"]["images"], steps["leaf"]["boxes"]) == (9, 8, 22)
    fa = steps["fully annotated"]
    assert (fa["classes"], fa["boxes"], fa["dropped_few_images"], fa["dropped_group_of"]) == (
        7,
        18,
        1,
        1,
    )
    assert (
        steps["merged"]["classes"],
        steps["merged"]["boxes"],
        steps["merged"]["merged_classes"],
    ) == (6, 18, 1)
    assert (steps["mask"]["samples"], steps["mask"]["images"]) == (18, 8)
    assert (steps["clipped"]["samples"], steps["clipped"]["clipped_classes"]) == (15, 2)
    assert len(dicts) == 15 and per_class(dicts) == [2, 2, 3, 3, 3, 2]
    assert steps["clipped"]["images"] == len({d["image_id"] for d in dicts})

    sel = report["selection"]
    assert sel.names == HAND_NAMES
    assert sel.members[LABEL["Coffee cup"]] == sorted([fx.COFFEE_CUP, fx.MUG])
    assert sel.merges_applied == [(fx.MUG, fx.COFFEE_CUP)]
    assert (
        sel.dropped[fx.ANIMAL] == sel.dropped[fx.TURTLE] == sel.dropped[fx.PERSON] == "parent class"
    )
    assert sel.dropped[fx.TANK] == "not in the hierarchy"
    assert "group-of" in sel.dropped[fx.FLOWER] and "min_images" in sel.dropped[fx.HARP]
    for text in ("leaf                   9", "Flower (2/3 = 0.67", "Mug -> Coffee cup", "clipped"):
        assert text in caplog.text


def test_without_merges_or_clipping(tree):
    dicts = load_openimages_dicts(
        tree, "train", SubsetRules(min_images=2, max_per_class=0, merges="")
    )
    sel = get_openimages_classes(tree, SubsetRules(min_images=2, merges=""))
    assert sel.names == ["Tortoise", "Sea turtle", "Cat", "Mug", "Coffee cup", "Dog", "Human face"]
    assert len(dicts) == 18 and per_class(dicts, 7) == [2, 2, 3, 2, 2, 5, 2]
    everything = SubsetRules(min_images=0, max_group_fraction=1.0, max_per_class=0, merges="")
    assert len(load_openimages_dicts(tree, "train", everything)) == 22  # every leaf box


def test_mask_expansion(tree, rules):
    dicts = load_openimages_dicts(
        tree, "train", SubsetRules(**{**rules.as_dict(), "max_per_class": 0})
    )
    assert len(dicts) == 18
    image_a = [d for d in dicts if d["image_id"] == fx._id("a")]
    assert [d["target_object"] for d in image_a] == [0, 1, 2]  # Dog, Dog, Cat; not the Animal box
    assert [d["label"] for d in image_a] == [LABEL["Dog"], LABEL["Dog"], LABEL["Cat"]]
    anns = image_a[0]["annotations"]
    assert [a["category_id"] for a in anns] == [LABEL["Dog"], LABEL["Dog"], LABEL["Cat"], -1]
    for d in dicts:
        image = next(im for im in fx.TINY["train"] if im.image_id == d["image_id"])
        assert len(d["annotations"]) == len(
            image.boxes
        )  # every box of the image, painted by the mapper
        assert d["annotations"][d["target_object"]]["category_id"] == d["label"]
        assert (d["width"], d["height"]) == image.size
        assert d["file_name"] == os.path.join(tree, "train", d["image_id"] + ".jpg")
    # Mug boxes are Coffee cup samples; Flower, Harp and Tank boxes are never targets
    image_e = [d for d in dicts if d["image_id"] == fx._id("e")]
    assert [d["label"] for d in image_e] == [
        LABEL["Coffee cup"],
        LABEL["Coffee cup"],
        LABEL["Tortoise"],
        LABEL["Sea turtle"],
    ]


def test_boxes_in_pixels_of_the_real_image(tree, rules):
    val = load_openimages_dicts(tree, "val", rules)
    mug = next(d for d in val if d["image_id"] == fx._id("2"))  # a 100 x 50 JPEG
    with Image.open(mug["file_name"]) as im:
        assert im.size == (mug["width"], mug["height"]) == (100, 50)
    assert mug["label"] == LABEL["Coffee cup"]
    boxes = [a["bbox"] for a in mug["annotations"]]
    np.testing.assert_allclose(boxes, [[10, 10, 50, 45], [60, 5, 90, 20]], atol=1e-6)
    assert all(a["bbox_mode"] == BoxMode.XYXY_ABS for a in mug["annotations"])
    train = load_openimages_dicts(
        tree, "train", SubsetRules(**{**rules.as_dict(), "max_per_class": 0})
    )
    dog_g = next(d for d in train if d["image_id"] == fx._id("g"))  # XMax 1.2 on a 64 x 48 image
    np.testing.assert_allclose(
        dog_g["annotations"][dog_g["target_object"]]["bbox"], [32, 14.4, 64, 43.2], atol=1e-6
    )


def test_the_mapper_paints_the_other_objects(tree, rules):
    from als_d2.data.mapper import ClassificationDatasetMapper

    mug = next(d for d in load_openimages_dicts(tree, "val", rules) if d["image_id"] == fx._id("2"))
    out = ClassificationDatasetMapper(False, augmentations=[], paint_color=(0, 255, 0))(mug)
    image = out["image"].permute(1, 2, 0).numpy()  # 50 x 100 RGB
    assert image.shape == (50, 100, 3)
    np.testing.assert_array_equal(out["boxes"].numpy(), [[10, 10, 50, 45]])  # only the target
    assert out["objectness"] == pytest.approx(40 * 35 / (100 * 50))
    assert (
        np.abs(image[12, 75].astype(int) - [0, 255, 0]).max() <= 2
    )  # inside the Flower box: painted
    assert np.abs(image[30, 30].astype(int) - [0, 255, 0]).max() > 50  # inside the target: not


def test_val_and_test_have_the_train_classes_and_no_clipping(tree, rules):
    one = SubsetRules(**{**rules.as_dict(), "max_per_class": 1})
    val = load_openimages_dicts(tree, "val", one)
    test = load_openimages_dicts(tree, "test", one)
    assert sorted(d["label"] for d in val) == sorted(
        [LABEL["Dog"], LABEL["Cat"], LABEL["Coffee cup"]]
    )
    assert sorted(d["label"] for d in test) == sorted(
        LABEL[n] for n in ("Tortoise", "Sea turtle", "Dog", "Human face")
    )
    assert len({d["image_id"] for d in val}) == 2 and len(test) == 4


def test_clipping_is_deterministic_and_stable(tmp_path, rules):
    def dog_samples(root):
        dicts = load_openimages_dicts(root, "train", rules)
        return sorted(
            (d["image_id"], d["target_object"]) for d in dicts if d["label"] == LABEL["Dog"]
        )

    a = prepare(fx.write_openimages_tree(str(tmp_path / "a")))
    first = dog_samples(a)
    assert len(first) == 3 and dog_samples(a) == first
    spec = {k: list(v) for k, v in fx.TINY.items()}  # one more image, of another class
    spec["train"].append(
        fx.FixtureImage(fx._id("i"), (64, 48), [fx.Box(fx.CAT, 0.1, 0.5, 0.1, 0.5)])
    )
    b = prepare(fx.write_openimages_tree(str(tmp_path / "b"), spec, extra_rows={}))
    assert dog_samples(b) == first
    other_seed = SubsetRules(**{**rules.as_dict(), "seed": 1})
    picks = {
        tuple(
            sorted(
                (d["image_id"], d["target_object"])
                for d in load_openimages_dicts(a, "train", r)
                if d["label"] == LABEL["Dog"]
            )
        )
        for r in (other_seed, SubsetRules(**{**rules.as_dict(), "seed": 7}))
    }
    assert all(len(p) == 3 for p in picks)


def test_merge_files(tmp_path):
    desc = dict(fx.CLASSES)
    good = fx.write_merges(
        str(tmp_path / "m.csv"),
        [("Mug", "Coffee cup"), ("/m/0120dh", "Tortoise"), ("Unicorn", "Dog"), ("Dog", "Dog")],
    )
    merges, problems = read_class_merges(good, desc)
    assert merges == {fx.MUG: fx.COFFEE_CUP, fx.SEA_TURTLE: fx.TORTOISE}
    assert (
        len(problems) == 1
        and "'Unicorn': unknown class" in problems[0]
        and "m.csv:5" in problems[0]
    )
    cycle = fx.write_merges(str(tmp_path / "c.csv"), [("Mug", "Coffee cup"), ("Coffee cup", "Mug")])
    with pytest.raises(ValueError, match=r"c\.csv: the merges form a cycle"):
        read_class_merges(cycle, desc)
    twice = fx.write_merges(str(tmp_path / "t.csv"), [("Mug", "Coffee cup"), ("Mug", "Dog")])
    with pytest.raises(ValueError, match=r"t\.csv:4: Mug is merged into two classes"):
        read_class_merges(twice, desc)
    header = fx.write_merges(str(tmp_path / "h.csv"), [("Mug", "Coffee cup")], header="From,To")
    with pytest.raises(ValueError, match=r"h\.csv: expected the header 'Source,Target"):
        read_class_merges(header, desc)


def test_shipped_merge_file_parses():
    with open(DEFAULT_MERGES) as f:
        rows = [
            line.rstrip("\n").split(",") for line in f if line.strip() and not line.startswith("#")
        ]
    assert rows[0][:2] == ["Source", "Target"] and len(rows) > 10
    names = sorted({r[0] for r in rows[1:]} | {r[1] for r in rows[1:]})
    desc = {f"/m/{i}": n for i, n in enumerate(names)}
    merges, problems = read_class_merges(DEFAULT_MERGES, desc)
    assert problems == [] and len(merges) == len(rows) - 1
    assert all(len(r) == 3 and r[2] for r in rows[1:])  # every merge says why


def test_rules_are_checked():
    with pytest.raises(ValueError, match="max_group_fraction"):
        SubsetRules(max_group_fraction=1.5)
    with pytest.raises(ValueError, match="max_per_class"):
        SubsetRules(max_per_class=-1)


def forbid_train_index(monkeypatch, message: str):
    """Make reading the train split's prepared file fail with ``message``."""
    real_read = openimages.read_prepared_index

    def no_train_index(root, split, *a, **kw):
        assert split != "train", message
        return real_read(root, split, *a, **kw)

    monkeypatch.setattr(openimages, "read_prepared_index", no_train_index)


def forbid_reading_the_tree(monkeypatch):
    """Make every reader of the raw files (box CSVs, image folders, image-level labels)
    fail: loading must read the prepared files only."""

    def boom(*a, **k):
        raise AssertionError("a loader read the raw tree instead of the prepared files")

    monkeypatch.setattr(openimages, "build_index", boom)
    monkeypatch.setattr(openimages, "image_label_coverage", boom)


# ----------------------------------------------------------------------------------------
# Classes annotated for a subset: the paper's rule (image-level labels) and the fallback

IMAGE_LABEL_NAMES = [
    "Tortoise",
    "Sea turtle",
    "Cat",
    "Coffee cup",
    "Harp",
    "Dog",
    "Flower",
    "Human face",
]  # by mid


@pytest.fixture
def labelled_tree(tree):
    fx.write_image_labels(tree)
    return prepare(tree, ["train"])  # the image-level labels are counted at the prepare step


def test_image_label_reader_counts_and_names_bad_rows(labelled_tree):
    from als_d2.data.datasets.openimages_files import read_image_labels_csv

    # one range; ~8 ranges, serial and parallel
    path = os.path.join(labelled_tree, fx.IMAGE_LABELS_NAME)
    label_to_idx = {m: i for i, (m, _) in enumerate(fx.CLASSES)}
    runs = _read_three_ways(read_image_labels_csv, path, 200)
    rows, stats, examples = runs[0]
    # 32 good rows (28 positive, 4 verified absent) + 4 bad
    assert (rows.rows, len(rows.image), rows.negatives) == (36, 28, 4)
    assert stats == {"bad_rows": 2, "unknown_labels": 1, "bad_image_ids": 1}
    # the header is line 1, the 32 good rows 2-33, the bad rows 34-37
    for line, (counter, _) in enumerate(fx.BAD_IMAGE_LABEL_ROWS, start=34):
        assert any(e.startswith(f"{path}:{line}: ") for e in examples[counter]), (counter, line)
    assert "Confidence '0.5'" in " ".join(examples["bad_rows"])
    assert rows.image_ids[:3] == [fx._id("a"), fx._id("b"), fx._id("c")]
    assert rows.label[:5].tolist() == [0] * 5  # five Dog rows first
    for other, other_stats, other_examples in runs[1:]:
        assert other.image_ids == rows.image_ids and (other.rows, other.negatives) == (
            rows.rows,
            rows.negatives,
        )
        np.testing.assert_array_equal(other.image, rows.image)
        np.testing.assert_array_equal(other.label, rows.label)
        assert other_stats == stats and other_examples == examples  # same line numbers

    empty = os.path.join(labelled_tree, "e.csv")
    with open(empty, "w") as f:
        f.write(fx.IMAGE_LABELS_HEADER + "\r\n")
    rows = read_image_labels_csv(empty, label_to_idx)
    assert (rows.image_ids, len(rows.image), rows.rows, rows.negatives) == ([], 0, 0, 0)
    bad_header = os.path.join(labelled_tree, "h.csv")
    with open(bad_header, "w") as f:
        f.write("ImageID,Source,LabelName\n")
    with pytest.raises(
        ValueError, match=r"h\.csv: not an OpenImages image-level label CSV.*Confidence"
    ):
        read_image_labels_csv(bad_header, label_to_idx)


def test_image_label_coverage_hand_counted(labelled_tree):
    from als_d2.data.datasets.openimages_index import image_label_coverage

    index = build_index(labelled_tree, "train", num_workers=1, show_progress=False)
    cov = image_label_coverage(
        index, os.path.join(labelled_tree, fx.IMAGE_LABELS_NAME), num_workers=1
    )
    prepared = read_prepared_classes(labelled_tree)["coverage"]  # what the prepare step wrote
    for key in ("positive_images", "boxed_positive_images", "stats", "examples", "path"):
        assert (
            np.array_equal(prepared[key], cov[key])
            if "images" in key
            else prepared[key] == cov[key]
        )
    # fx.CLASSES order: Dog Cat Animal Tortoise Sea-turtle Turtle Coffee-cup Mug Flower Harp Person
    # Face Tank
    assert cov["positive_images"].tolist() == [5, 3, 1, 2, 0, 0, 2, 5, 2, 1, 1, 2, 1]
    assert cov["boxed_positive_images"].tolist() == [4, 3, 1, 2, 0, 0, 2, 2, 2, 1, 1, 2, 1]
    s = cov["stats"]
    assert (s["rows"], s["positive_rows"], s["negative_rows"], s["positives_outside_index"]) == (
        36,
        28,
        4,
        2,
    )
    assert (s["bad_rows"], s["unknown_labels"], s["bad_image_ids"]) == (2, 1, 1)


def test_subset_by_image_level_labels_hand_counted(labelled_tree, rules, caplog):
    report = {}
    with caplog.at_level(logging.INFO, logger="als_d2.data.datasets.openimages"):
        dicts = load_openimages_dicts(labelled_tree, "train", rules, report=report)
    steps = {r["step"]: r for r in report["steps"]}
    fa = steps["fully annotated"]
    assert fa["rule"] == "image-level labels" and fa["min_box_coverage"] == 0.8
    assert (fa["classes"], fa["images"], fa["boxes"]) == (8, 8, 20)
    assert (
        fa["dropped_partly_boxed"],
        fa["dropped_no_boxes"],
        fa["kept_without_image_labels"],
    ) == (1, 0, 1)
    assert "dropped_group_of" not in fa  # the heuristic did not run
    assert (steps["merged"]["classes"], steps["merged"]["merged_classes"]) == (8, 0)
    assert (steps["mask"]["samples"], steps["mask"]["images"]) == (20, 8)
    assert (steps["clipped"]["samples"], steps["clipped"]["clipped_classes"]) == (18, 1)
    assert per_class(dicts, 8) == [2, 2, 3, 2, 1, 3, 3, 2]

    sel = report["selection"]
    assert sel.names == IMAGE_LABEL_NAMES and sel.annotation_rule == "image-level labels"
    assert sel.dropped[fx.MUG].startswith(
        "boxes on 2/5 = 0.40 of its positive training images < min_box_coverage 0.8"
    )
    assert sel.merges_applied == []
    assert "rule=image-level labels" in caplog.text  # in the logged step table
    assert "dropped by the image-level labels rule: Mug (boxes on 2/5" in caplog.text
    assert "28 positive, 4 verified absent; 2 positive rows" in caplog.text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{fx.IMAGE_LABELS_NAME}: bad_rows = 2" in w for w in warnings)
    assert not any("heuristic" in w for w in warnings)

    # val, with the same classes (from the classes file): Dog, Cat (image 1), Flower (image 2;
    # its Mug is no class now), Harp (image 3)
    val = load_openimages_dicts(labelled_tree, "val", rules)
    assert sorted(d["label"] for d in val) == sorted(
        IMAGE_LABEL_NAMES.index(n) for n in ("Dog", "Cat", "Flower", "Harp")
    )


@pytest.mark.parametrize(
    "min_box_coverage, dropped",
    [
        (0.81, {"Mug", "Dog"}),
        (0.8, {"Mug"}),
        (0.4, set()),
        (0.0, set()),
    ],  # Dog 4/5 = 0.8, Mug 2/5 = 0.4
)
def test_min_box_coverage_threshold(labelled_tree, min_box_coverage, dropped):
    rules = SubsetRules(min_box_coverage=min_box_coverage, merges="")
    sel = get_openimages_classes(labelled_tree, rules)
    by_rule = {dict(fx.CLASSES)[m] for m, why in sel.dropped.items() if "min_box_coverage" in why}
    assert by_rule == dropped
    assert len(sel.mids) == 9 - len(dropped)  # the 9 leaf classes less those


def test_heuristic_fallback_without_image_level_labels(tree, rules, caplog):
    with caplog.at_level(logging.INFO, logger="als_d2.data.datasets.openimages"):
        report = {}
        load_openimages_dicts(tree, "train", rules, report=report)
        for split in ("val", "test", "train"):  # each load chooses the classes again
            load_openimages_dicts(tree, split, rules)
    fa = next(r for r in report["steps"] if r["step"] == "fully annotated")
    assert fa["rule"] == "heuristic" and report["selection"].annotation_rule == "heuristic"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    fallback = [w for w in warnings if "no human-verified image-level label file" in w]
    # said once per process, not once per split load
    assert (
        len(fallback) == 1
        and "heuristic rule" in fallback[0]
        and fx.IMAGE_LABELS_NAME in fallback[0]
        and f"run again: python tools/prepare_openimages.py --root {tree} --splits train"
        in fallback[0]
    )
    assert (
        caplog.text.count("rule=heuristic") == 4
    )  # while every load's step table still shows the rule
    assert "rule=heuristic" in caplog.text
    # the V5 name and annotations/ are found too (by the prepare step: until it runs again,
    # the prepared statistics have no image-level counts)
    os.makedirs(os.path.join(tree, "annotations"))
    fx.write_image_labels(
        os.path.join(tree, "annotations"), name="train-annotations-human-imagelabels-boxable.csv"
    )
    assert get_openimages_classes(tree, rules).annotation_rule == "heuristic"
    prepare(tree, ["train"])
    assert get_openimages_classes(tree, rules).annotation_rule == "image-level labels"


def test_loading_reads_only_the_prepared_files(labelled_tree, rules, monkeypatch):
    first = load_openimages_dicts(labelled_tree, "train", rules)
    forbid_reading_the_tree(monkeypatch)
    assert load_openimages_dicts(labelled_tree, "train", rules) == first
    with monkeypatch.context() as m:
        forbid_train_index(m, "val read the train split's file instead of the classes file")
        assert len(load_openimages_dicts(labelled_tree, "val", rules)) == 4
        assert len(load_openimages_dicts(labelled_tree, "test", rules)) == 4
    # a changed tree changes nothing until the prepare step runs again: Mug verified only
    # where it is boxed (kept, merged), one more Dog box in image h
    fx.write_image_labels(
        labelled_tree, [row for row in fx.IMAGE_LABELS if row[1] != fx.MUG or row[0] in "de"]
    )
    with open(os.path.join(labelled_tree, fx.CSV_NAMES["train"]), "a") as f:
        f.write(fx.box_row(fx._id("h"), fx.Box(fx.DOG, 0.1, 0.2, 0.1, 0.2), True) + "\n")
    unclipped = SubsetRules(**{**rules.as_dict(), "max_per_class": 0})
    assert fx.MUG in get_openimages_classes(labelled_tree, rules).dropped
    assert len(load_openimages_dicts(labelled_tree, "train", unclipped)) == 20
    monkeypatch.undo()
    prepare(labelled_tree, ["train"])
    sel = get_openimages_classes(labelled_tree, rules)
    assert fx.MUG not in sel.dropped and sel.merges_applied == [(fx.MUG, fx.COFFEE_CUP)]
    # 20 + the new Dog box + Mug's 2 boxes, now a class (merged into Coffee cup)
    assert len(load_openimages_dicts(labelled_tree, "train", unclipped)) == 23


# ----------------------------------------------------------------------------------------
# The prepare step and registration


def test_prepare_tool_end_to_end(tmp_path, rules, capsys):
    root = fx.write_openimages_tree(str(tmp_path / "openimages"))
    fx.write_image_labels(root)
    out = str(tmp_path / "prepared")
    tool = load_tool("prepare_openimages")
    assert tool.main(["--root", root, "--output-dir", out, "--workers", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    names = ("train", "val", "test", "classes")
    for name in names:
        assert f"{name}: {os.path.join(out, f'als_d2_{name}.json.gz')}" in printed
    assert sorted(os.listdir(out)) == sorted(f"als_d2_{n}.json.gz" for n in names)
    assert not [n for n in os.listdir(root) if n.startswith("als_d2_")]  # the tree is untouched
    with gzip.open(os.path.join(out, "als_d2_val.json.gz"), "rt") as f:
        val = json.load(f)  # plain JSON
    assert val["image_ids"] == [im.image_id for im in fx.TINY["val"]]
    assert val["file_names"] == [f"validation/{im.image_id}.jpg" for im in fx.TINY["val"]]
    assert val["stats"]["boxes"] == sum(len(im.boxes) for im in fx.TINY["val"])
    # the loader reads them (index_dir): hand counts of the module docstring
    report = {}
    dicts = load_openimages_dicts(root, "train", rules, index_dir=out, report=report)
    assert len(dicts) == 18 and report["selection"].annotation_rule == "image-level labels"
    assert len(load_openimages_dicts(root, "val", rules, index_dir=out)) == 4
    val_box = read_prepared_index(root, "val", out)["box_xyxy"][0].tolist()
    assert val_box == pytest.approx([0.1, 0.1, 0.5, 0.5])  # XMin, YMin, XMax, YMax of Dog
    name = "openimages_test_prepared_elsewhere"
    register_openimages(name, root, "test", rules, index_dir=out)
    try:
        assert len(DatasetCatalog.get(name)) == 4
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    # a missing --root and a tree without its box CSV: one line each
    assert tool.main(["--root", str(tmp_path / "absent"), "--quiet"]) == 2
    os.unlink(os.path.join(root, fx.CSV_NAMES["test"]))
    assert tool.main(["--root", root, "--splits", "test", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and fx.CSV_NAMES["test"] in err[-1]


def test_prepare_is_deterministic(tmp_path):
    """The same tree gives the same bytes (in another process, at another time)."""
    root = fx.write_openimages_tree(str(tmp_path / "openimages"))
    fx.write_image_labels(root)
    first = prepare_openimages(root, num_workers=1)
    blobs = {k: open(p, "rb").read() for k, p in first.items()}
    for path in first.values():
        os.utime(path, (0, 0))
    cmd = [os.path.join(REPO, "tools", "prepare_openimages.py"), "--root", root]
    proc = run_tool(cmd + ["--workers", "2", "--quiet"], env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {k: open(p, "rb").read() for k, p in first.items()} == blobs
    assert all(os.stat(p).st_mtime > 0 for p in first.values())  # written again


def test_missing_prepared_file_names_the_command(tmp_path, rules):
    root = fx.write_openimages_tree(str(tmp_path / "openimages"))
    name = "openimages_test_unprepared"
    register_openimages(name, root, "val", rules)
    command = f"python tools/prepare_openimages.py --root {root} --splits val"
    try:
        with pytest.raises(DatasetNotPreparedError, match=re.escape(command)) as e:
            DatasetCatalog.get(name)
        assert "\n" not in str(e.value) and prepared_path(root, "val") in str(e.value)
        prepare(root, ["val"])  # val alone: the classes are chosen on train
        train = f"python tools/prepare_openimages.py --root {root} --splits train"
        with pytest.raises(DatasetNotPreparedError, match=re.escape(train)):
            DatasetCatalog.get(name)
        prepare(root, ["train"])
        assert len(DatasetCatalog.get(name)) == 3
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    with open(prepared_path(root, "val"), "r+b") as f:
        f.truncate(40)
    with pytest.raises(ValueError, match=re.escape(prepared_path(root, "val")) + ".*run again"):
        load_openimages_dicts(root, "val", rules)


def test_registration_and_metadata(tree, rules):
    name = "openimages_test_registration_train"
    register_openimages(name, tree, "train", rules)
    meta = MetadataCatalog.get(name)
    assert meta.evaluator_type == "classification" and meta.subset == "leaf_mask"
    assert meta.get("thing_classes") is None  # lazily: nothing read yet
    dicts = DatasetCatalog.get(name)
    assert len(dicts) == 15
    assert meta.thing_classes == HAND_NAMES and meta.num_classes == 6
    assert meta.label_names[LABEL["Dog"]] == fx.DOG and meta.class_members[
        LABEL["Coffee cup"]
    ] == sorted([fx.COFFEE_CUP, fx.MUG])
    assert [s["step"] for s in meta.subset_steps][-1] == "clipped"
    assert meta.annotation_rule == "heuristic"  # the tree has no image-level labels
    fx.write_image_labels(
        tree
    )  # now the paper's rule picks other classes (Flower, Harp in; Mug out)
    prepare(tree, ["train"])
    with pytest.raises(
        RuntimeError,
        match=f"dataset '{name}' .* changed since they were first loaded.*thing_classes",
    ):
        DatasetCatalog.get(name)
    with pytest.raises(ValueError, match="unknown OpenImages split"):
        register_openimages("openimages_test_bad_split", tree, "training")


def test_builtin_names_are_registered():
    for name, (_, split) in PREDEFINED_SPLITS_OPENIMAGES.items():
        assert name in DatasetCatalog.list()
        meta = MetadataCatalog.get(name)
        assert meta.evaluator_type == "classification" and meta.split == split
        assert meta.subset_rules["max_per_class"] == 50000
    assert set(PREDEFINED_SPLITS_OPENIMAGES) == {
        "openimages_train_leaf_mask",
        "openimages_val_leaf",
        "openimages_test_leaf",
    }


# ----------------------------------------------------------------------------------------
# Configs, tools/dataset_stats.py, tools/train_cls.py


@pytest.mark.parametrize("method", ["hard", "ls", "als", "cutmix", "als_context"])
def test_configs_have_the_paper_schedule(method):
    """The paper matched the iterations of its ImageNet 'mask' runs (300 epochs x 528,000 /
    256): fixed in iterations, whatever the subset's size; NUM_CLASSES from the data."""
    from detectron2.config import get_cfg

    from als_d2.config import add_als_config, check_als_config

    path = os.path.join(REPO, "configs", "openimages", f"{method}_r50.yaml")
    with open(path) as f:
        assert "Table 6" in f.readline()
    cfg = get_cfg()
    add_als_config(cfg)
    cfg.merge_from_file(path)
    check_als_config(cfg)
    assert cfg.MODEL.CLASSIFIER.NUM_CLASSES == 0
    assert cfg.SOLVER.EPOCHS == 0 and cfg.SOLVER.MAX_ITER == round(300 * 528_000 / 256) == 618_750
    assert tuple(cfg.SOLVER.STEPS) == tuple(round(e * 528_000 / 256) for e in (75, 150, 225))
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.IMS_PER_BATCH, cfg.INPUT.CLS.VARIANT[:4]) in (
        (0.1, 256, "mask"),
        (0.1, 256, "cont"),
    )
    assert cfg.DATASETS.TRAIN == ("openimages_train_leaf_mask",) and cfg.DATASETS.TEST == (
        "openimages_val_leaf",
    )


def test_dataset_stats_tool(tree, rules, tmp_path, capsys):
    tool = load_tool("dataset_stats")
    name = "openimages_test_stats_train"
    register_openimages(name, tree, "train", SubsetRules(**{**rules.as_dict(), "max_per_class": 0}))
    png, js = str(tmp_path / "counts.png"), str(tmp_path / "counts.json")
    info = tool.main(["--dataset", name, "--output", png, "--json", js])
    assert info["counts"] == [2, 2, 3, 4, 5, 2] and info["samples"] == 18 and info["images"] == 8
    assert [c["name"] for c in info["largest"][:2]] == ["Dog", "Coffee cup"]
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 200
    with open(js) as f:
        assert json.load(f)["classes"] == 6
    out = capsys.readouterr().out
    assert "6 classes" in out and "merged" in out  # the subset steps are printed
    assert "found by the heuristic rule" in out and info["annotation_rule"] == "heuristic"
    other = register_tiny(str(tmp_path / "tiny"), per_class=2)  # any classification dataset
    assert (
        tool.main(
            ["--dataset", other, "--output", str(tmp_path / "t.png"), "--order", "label", "--log"]
        )["counts"]
        == [2] * 4
    )


def test_a_few_training_iterations_through_train_cls(tmp_path):
    root = prepare(
        fx.write_openimages_tree(
            str(tmp_path / "datasets" / "openimages"), fx.trainable_spec(per_class=20)
        )
    )
    env = dict(
        os.environ,
        DETECTRON2_DATASETS=str(tmp_path / "datasets"),
        ALS_D2_INDEX_WORKERS="1",
        OMP_NUM_THREADS="1",
    )
    out = tmp_path / "out"
    cmd = [
        os.path.join(REPO, "tools", "train_cls.py"),
        "--config-file", os.path.join(REPO, "configs", "openimages", "als_r50.yaml"),
        "MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
        "INPUT.CLS.CROP_SIZE", "32", "INPUT.CLS.TEST_RESIZE", "36",
        "SOLVER.IMS_PER_BATCH", "4", "SOLVER.EPOCHS", "0", "SOLVER.MAX_ITER", "3",
        "SOLVER.STEPS", "()", "SOLVER.LR_REFERENCE_BATCH", "0",
        "SOLVER.CHECKPOINT_PERIOD_EPOCHS", "0.0", "TEST.EVAL_PERIOD_EPOCHS", "0.0",
        "TEST.EVAL_PERIOD", "0", "TEST.IMS_PER_BATCH", "8", "MODEL.DEVICE", "cpu",
        "DATALOADER.NUM_WORKERS", "0", "MODEL.CLASSIFIER.NUM_CLASSES", "3", "OUTPUT_DIR", str(out),
    ]  # fmt: skip
    proc = run_tool(cmd, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (out / "model_final.pth").exists()
    with open(out / "metrics.json") as f:
        rows = [json.loads(line) for line in f]
    assert any(np.isfinite(r.get("total_loss", np.nan)) for r in rows)
    assert (
        rows[-1]["classification/num_samples"] == 6
    )  # the final evaluation on openimages_val_leaf
    assert (
        "OpenImages merges" in proc.stdout
    )  # the shipped merge file names classes this tree lacks: warned
    # the als_d2 logger reaches OUTPUT_DIR/log.txt: the subset tables of train and val, the rule
    # used.
    # Train: 3 classes x 20 images, one target box each (Person is a parent class): 60 samples;
    # val: 2 images per class: 6 samples.
    with open(out / "log.txt") as f:
        log = f.read()
    assert (
        f"OpenImages train subset at {root}:" in log and f"OpenImages val subset at {root}:" in log
    )
    assert "rule=heuristic" in log and "no human-verified image-level label file" in log
    train_table = log.split(f"OpenImages train subset at {root}:", 1)[1]
    assert [line.split()[:4] for line in train_table.splitlines()[2:8]] == [
        ["boxable", "13", "60", "120"],
        ["leaf", "9", "60", "60"],
        ["fully", "annotated", "3", "60"],
        ["merged", "3", "60", "60"],
        ["mask", "3", "60", "60"],
        ["clipped", "3", "60", "60"],
    ]


def test_every_kind_counted_is_in_the_policy_table(tmp_path, caplog):
    """On a tree with one of each problem (hand-counted in the fixture), the reader counts
    exactly those kinds, every one a row of indexing.KINDS and of the reader's COUNTERS,
    and the prepare step logs each with its severity and meaning from KINDS."""
    from als_d2.data.datasets import openimages_index as oi
    from als_d2.data.datasets.indexing import FIXED, KINDS

    root, index_counts, label_counts = fx.write_hostile_tree(str(tmp_path / "oi"))
    index = build_index(root, "train", num_workers=1, show_progress=False)
    assert {k: n for k, n in index["stats"].items() if k not in oi.TOTALS} == index_counts
    assert set(index["examples"]) == set(index_counts)
    assert (index["stats"]["images"], index["stats"]["boxes"]) == (9, 27)  # TINY + r; a, b rows
    labels = oi.split_paths(root, "train")["image_labels"]
    coverage = oi.image_label_coverage(index, labels, num_workers=1, show_progress=False)
    assert {k: n for k, n in coverage["stats"].items() if k not in oi.LABEL_TOTALS} == label_counts
    assert set(index_counts) <= set(oi.COUNTERS) and set(label_counts) <= set(oi.LABEL_COUNTERS)
    assert set(oi.COUNTERS) <= set(KINDS) and set(oi.LABEL_COUNTERS) <= set(KINDS)

    with caplog.at_level(logging.INFO, logger="als_d2.data.datasets.openimages"):
        prepare(root, ["train"])
    for kind, n in index_counts.items():
        severity, meaning = KINDS[kind]
        level = logging.INFO if severity == FIXED else logging.WARNING
        assert any(
            r.levelno == level and f"{kind} = {n} [{severity}: {meaning}] (e.g. " in r.getMessage()
            for r in caplog.records
        ), kind
    for kind, n in label_counts.items():
        assert f"image-level labels {labels}: {kind} = {n} [{KINDS[kind][0]}: " in caplog.text
