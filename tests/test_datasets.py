"""ImageNet readers: layouts, labels, boxes, subsets, class lists, registration.

Every tree is written by tests/ilsvrc_fixtures.py into a tmp dir; expectations come from
what the fixture wrote (or from numbers worked out here), never from the code under test.
"""

import logging
import os
import uuid

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from als_d2.data.datasets import (
    get_imagenet_class_info,
    prepare_imagenet,
    register_imagenet,
)
from als_d2.data.datasets.imagenet_index import build_imagenetv2_index
from als_d2.data.datasets.loc_files import (
    parse_prediction_string,
    read_loc_solution_csv,
    read_synset_mapping,
)

import ilsvrc_fixtures as fx
from tiny_data import run_after_builtin_import


def by_id(dicts):
    out = {d["image_id"]: d for d in dicts}
    assert len(out) == len(dicts), "image_id must be unique per image"
    return out


def boxes_of(d):
    return [(a["category_id"], a["bbox"]) for a in d["annotations"]]


def check_against_fixture(dicts, tree, split):
    """Every image the fixture wrote is there, with its label, boxes, size."""
    images = tree.split_images(split)
    got = by_id(dicts)
    assert set(got) == {im.stem for im in images}
    for im in images:
        d = got[im.stem]
        assert d["file_name"] == im.path
        assert d["label"] == tree.wnids.index(im.wnid)
        objects = im.objects if im.xml_path else (im.csv_objects or [])
        expected = [(tree.wnids.index(w), list(b)) for w, b in objects]
        assert len(d["annotations"]) == len(expected)
        for a, (cat, box) in zip(d["annotations"], expected):
            assert a["bbox_mode"] == BoxMode.XYXY_ABS
            assert a["category_id"] == cat
            assert a["bbox"] == pytest.approx(box)
        if expected:
            assert (d["width"], d["height"]) == im.size
        else:
            assert "width" not in d and "height" not in d


# ---------------------------------------------------------------------------------------
# Class lists


def test_class_list_from_synset_mapping_is_sorted_with_first_synonym(tmp_path):
    tree = fx.make_imagenet_tree(
        str(tmp_path / "in"), n_classes=5, train_per_class=1, val_per_class=0
    )
    wnids, names = get_imagenet_class_info(tree.root)
    assert wnids == ["n01440764", "n01443537", "n02085620", "n02123045", "n04589890"]
    assert names == ["tench", "goldfish", "Chihuahua", "tabby", "window screen"]
    assert read_synset_mapping(tree.mapping_path)["n01440764"] == "tench"


def test_class_list_from_train_folders_without_mapping(tmp_path):
    tree = fx.make_imagenet_tree(str(tmp_path / "in"), n_classes=4, mapping=False, val_per_class=0)
    wnids, names = get_imagenet_class_info(tree.root)
    assert wnids == sorted(w for w, _ in fx.wnid_names(4)) == names


def test_missing_class_list_is_a_clear_error(tmp_path):
    root = tmp_path / "in"
    fx.write_jpeg(str(root / "val" / "ILSVRC2012_val_00000001.JPEG"), (10, 10))
    with pytest.raises(FileNotFoundError, match="LOC_synset_mapping.txt"):
        fx.prepared_dicts(str(root), "val")


# ---------------------------------------------------------------------------------------
# Standard layout


def test_standard_train_matches_fixture(tmp_path):
    tree = fx.make_imagenet_tree(str(tmp_path / "in"), n_classes=3, train_per_class=6)
    dicts = fx.prepared_dicts(tree.root, "train")
    check_against_fixture(dicts, tree, "train")
    train = tree.split_images("train")
    boxed = [im for im in train if im.objects]
    stats = fx.prepared_index(tree.root, "train")["stats"]
    assert stats["images"] == len(train) == 18
    assert stats["boxed_images"] == len(boxed) == 9
    assert stats["objects"] == sum(len(im.objects) for im in boxed)
    assert stats["classes"] == 3
    assert dicts[0]["image_id"] == "n01440764_1001"  # sorted wnid folders, sorted files


def test_standard_val_flat_labels_from_xml(tmp_path):
    tree = fx.make_imagenet_tree(str(tmp_path / "in"), n_classes=3, val_per_class=3)
    assert not os.path.exists(tree.csv_path("val"))
    dicts = fx.prepared_dicts(tree.root, "val")
    check_against_fixture(dicts, tree, "val")
    assert os.path.dirname(dicts[0]["file_name"]) == os.path.join(tree.root, "val")


def test_standard_val_labels_and_boxes_from_csv(tmp_path):
    """LOC_val_solution.csv present: labels from it; images without XML get CSV boxes."""
    tree = fx.make_imagenet_tree(str(tmp_path / "in"), n_classes=3, val_per_class=1, csv=True)
    w = tree.wnids
    csv_only = tree.add_image(
        "val",
        w[1],
        (50, 40),
        [(w[1], (1, 2, 30, 20)), (w[1], (5, 5, 40, 39))],
        xml=False,
        csv_row=True,
    )
    tree.write_csvs()
    rows = read_loc_solution_csv(tree.csv_path("val"))
    assert rows[csv_only.stem].split() == [w[1], "1", "2", "30", "20", w[1], "5", "5", "40", "39"]
    dicts = fx.prepared_dicts(tree.root, "val")
    check_against_fixture(dicts, tree, "val")
    assert boxes_of(by_id(dicts)[csv_only.stem]) == [(1, [1, 2, 30, 20]), (1, [5, 5, 40, 39])]


def test_val_in_wnid_folders_with_flat_xmls(tmp_path):
    tree = fx.make_imagenet_tree(
        str(tmp_path / "in"), n_classes=3, val_per_class=2, val_in_folders=True
    )
    assert os.path.isdir(os.path.join(tree.root, "val", tree.wnids[0]))
    dicts = fx.prepared_dicts(tree.root, "val")
    check_against_fixture(dicts, tree, "val")


def test_val_image_without_any_label_is_counted_not_lost(tmp_path, log_records):
    tree = fx.make_imagenet_tree(str(tmp_path / "in"), n_classes=2, val_per_class=1)
    lost = tree.add_image("val", tree.wnids[0], xml=False, label_known=False)
    index = fx.prepared_index(tree.root, "val")
    assert index["stats"]["unlabeled_images"] == 1
    assert lost.stem not in {d["image_id"] for d in fx.prepared_dicts(tree.root, "val")}
    assert any("unlabeled_images = 1" in r.getMessage() for r in log_records)


# ---------------------------------------------------------------------------------------
# Kaggle layout


def test_kaggle_layout_train_and_val(tmp_path):
    tree = fx.make_imagenet_tree(str(tmp_path / "kaggle"), layout="kaggle", n_classes=3)
    w = tree.wnids
    # A train image that only the CSV annotates, and one whose XML and CSV disagree.
    csv_only = tree.add_image(
        "train", w[2], (60, 50), [(w[2], (3, 4, 50, 45))], xml=False, csv_row=True
    )
    both = tree.add_image("train", w[0], (60, 50), [(w[0], (10, 10, 20, 20))], csv_row=True)
    both.csv_objects = [(w[0], (1, 1, 59, 49))]
    tree.write_csvs()
    assert os.path.isdir(os.path.join(tree.root, "ILSVRC", "Data", "CLS-LOC", "train", w[0]))

    train = fx.prepared_dicts(tree.root, "train")  # layout auto-detected
    check_against_fixture(train, tree, "train")
    assert boxes_of(by_id(train)[csv_only.stem]) == [(2, [3, 4, 50, 45])]
    assert boxes_of(by_id(train)[both.stem]) == [(0, [10, 10, 20, 20])]  # the XML wins
    assert train[0]["file_name"].startswith(
        os.path.join(tree.root, "ILSVRC", "Data", "CLS-LOC", "train")
    )

    val = fx.prepared_dicts(tree.root, "val", layout="kaggle")
    check_against_fixture(val, tree, "val")
    assert {d["label"] for d in val} == {0, 1, 2}


def test_kaggle_csv_ids_without_image_and_unknown_wnids_are_counted(tmp_path):
    tree = fx.make_imagenet_tree(
        str(tmp_path / "kaggle"), layout="kaggle", n_classes=2, val_per_class=1
    )
    w = tree.wnids
    im = tree.add_image(
        "val",
        w[1],
        (40, 40),
        [(w[1], (1, 1, 20, 20)), ("n00000001", (2, 2, 9, 9))],
        xml=False,
        csv_row=True,
    )
    rows = read_loc_solution_csv(tree.csv_path("val"))
    rows = {
        **rows,
        im.stem: fx.prediction_string(im.objects),
        "ILSVRC2012_val_09999999": f"{w[0]} 1 1 5 5",
    }
    fx.write_loc_solution_csv(tree.csv_path("val"), rows)
    index = fx.prepared_index(tree.root, "val")
    assert index["stats"]["unknown_wnid"] == 1
    assert index["stats"]["orphan_csv_rows"] == 1
    assert boxes_of(by_id(fx.prepared_dicts(tree.root, "val"))[im.stem]) == [(1, [1, 1, 20, 20])]


def test_prediction_string_parsing():
    objects, bad = parse_prediction_string("n01 1 2 3 4 n02 5.5 6 7 8 ")
    assert objects == [("n01", (1.0, 2.0, 3.0, 4.0)), ("n02", (5.5, 6.0, 7.0, 8.0))] and bad == []
    objects, bad = parse_prediction_string("n01 1 2 x 4 n02 1 2 3 4 n03 1 nan 3 4 n04 1 2")
    assert objects == [("n02", (1.0, 2.0, 3.0, 4.0))]
    assert len(bad) == 3


def test_csv_with_wrong_header_names_the_file(tmp_path):
    path = tmp_path / "LOC_val_solution.csv"
    path.write_text("id,boxes\nILSVRC2012_val_00000001,n01 1 1 2 2\n")
    with pytest.raises(ValueError, match="LOC_val_solution.csv.*ImageId,PredictionString"):
        read_loc_solution_csv(str(path))


# ---------------------------------------------------------------------------------------
# Boxes: clipping, degenerate boxes, <size> disagreeing with the image


def test_boxes_clipped_to_image_and_degenerate_dropped(tmp_path, log_records):
    tree = fx.FixtureTree(str(tmp_path / "in"), "standard", fx.wnid_names(2))
    w = tree.wnids[0]
    im = tree.add_image(
        "train",
        w,
        size=(50, 40),
        objects=[
            (w, (-5, -5, 20, 20)),  # -> 0 0 20 20
            (w, (30, 10, 80, 60)),  # -> 30 10 50 40
            (w, (10, 10, 10, 30)),  # zero width: dropped
            (w, (60, 5, 70, 20)),  # right of the image: zero width after clipping, dropped
            (w, (20, 20, 10, 10)),  # inverted: dropped
            (w, (0, 0, 50, 40)),  # the whole image, unchanged
        ],
    )
    d = by_id(fx.prepared_dicts(tree.root, "train"))[im.stem]
    assert boxes_of(d) == [(0, [0, 0, 20, 20]), (0, [30, 10, 50, 40]), (0, [0, 0, 50, 40])]
    stats = fx.prepared_index(tree.root, "train")["stats"]
    assert stats["degenerate_boxes"] == 3
    assert stats["clipped_boxes"] == 2
    assert any("degenerate_boxes = 3" in r.getMessage() for r in log_records)


def test_xml_size_mismatch_rescales_to_real_size(tmp_path, log_records):
    tree = fx.FixtureTree(str(tmp_path / "in"), "standard", fx.wnid_names(2))
    w = tree.wnids[1]
    # Real image 60x40; the XML claims 120x80 (half-size JPEG): boxes halve.
    half = tree.add_image(
        "train", w, (60, 40), [(w, (20, 10, 100, 70)), (w, (0, 0, 120, 80))], xml_size=(120, 80)
    )
    # Non-uniform: XML says 30x80 for a 90x40 image: x * 3, y / 2; then clipping at 90.
    odd = tree.add_image("train", w, (90, 40), [(w, (5, 10, 35, 30))], xml_size=(30, 80))
    same = tree.add_image("train", w, (60, 40), [(w, (1, 2, 3, 4))])
    dicts = by_id(fx.prepared_dicts(tree.root, "train"))
    assert boxes_of(dicts[half.stem]) == [
        (1, pytest.approx([10, 5, 50, 35])),
        (1, pytest.approx([0, 0, 60, 40])),
    ]
    assert boxes_of(dicts[odd.stem]) == [(1, pytest.approx([15, 5, 90, 15]))]
    assert boxes_of(dicts[same.stem]) == [(1, [1, 2, 3, 4])]
    assert (dicts[half.stem]["width"], dicts[half.stem]["height"]) == (60, 40)
    stats = fx.prepared_index(tree.root, "train")["stats"]
    assert stats["rescaled_files"] == 2
    assert any("rescaled_files = 2" in r.getMessage() for r in log_records)


def test_bad_inputs_are_skipped_and_counted(tmp_path, log_records):
    tree = fx.FixtureTree(str(tmp_path / "in"), "standard", fx.wnid_names(2))
    a, b = tree.wnids
    good = tree.add_image("train", a, (40, 30), [(a, (1, 1, 10, 10))])
    # malformed XML: image kept, without boxes
    broken = tree.add_image("train", a, (40, 30), [(a, (1, 1, 10, 10))])
    fx.write_text(broken.xml_path, "<annotation><size><width>40</width>")
    # missing <size>
    nosize = tree.add_image("train", a, (40, 30), [(a, (1, 1, 10, 10))])
    text = fx.ilsvrc_xml_text(a, nosize.stem, (40, 30), nosize.objects)
    fx.write_text(nosize.xml_path, text.replace("<width>40</width>", ""))
    # one object with a non-numeric coordinate, one without bndbox, one unknown wnid, one good
    mixed = tree.add_image(
        "train",
        b,
        (40, 30),
        [(b, (1, 1, 10, 10)), (b, (2, 2, 12, 12)), ("n00000042", (1, 1, 5, 5)), (b, (3, 3, 9, 9))],
    )
    text = fx.ilsvrc_xml_text(b, mixed.stem, (40, 30), mixed.objects)
    text = text.replace("<xmin>1</xmin>", "<xmin>one</xmin>", 1)
    text = text.replace(
        "\t\t<bndbox>\n\t\t\t<xmin>2</xmin>", "\t\t<nobox>\n\t\t\t<xmin>2</xmin>", 1
    )
    text = text.replace("<ymax>12</ymax>\n\t\t</bndbox>", "<ymax>12</ymax>\n\t\t</nobox>", 1)
    fx.write_text(mixed.xml_path, text)
    # an annotated image that is not a JPEG at all
    corrupt = tree.add_image("train", b, (40, 30), [(b, (1, 1, 10, 10))])
    with open(corrupt.path, "wb") as f:
        f.write(b"not an image")
    # an XML without image, a folder that is no class
    fx.write_text(
        os.path.join(tree.ann_dir("train"), a, f"{a}_999999.xml"),
        fx.ilsvrc_xml_text(a, "x", (9, 9), []),
    )
    fx.write_jpeg(os.path.join(tree.image_dir("train"), "n55555555", "n55555555_1.JPEG"), (9, 9))

    dicts = by_id(fx.prepared_dicts(tree.root, "train"))
    assert set(dicts) == {good.stem, broken.stem, nosize.stem, mixed.stem}
    assert dicts[broken.stem]["annotations"] == [] and dicts[nosize.stem]["annotations"] == []
    assert boxes_of(dicts[mixed.stem]) == [(1, [3, 3, 9, 9])]
    stats = fx.prepared_index(tree.root, "train")["stats"]
    expected = dict(
        bad_xml=2,
        bad_objects=2,
        unknown_wnid=1,
        unreadable_images=1,
        orphan_xml=1,
        unknown_folders=1,
    )
    assert {k: stats.get(k, 0) for k in expected} == expected
    messages = "\n".join(r.getMessage() for r in log_records if r.levelno >= logging.WARNING)
    for key, n in expected.items():
        assert f"{key} = {n}" in messages
    assert broken.xml_path in messages  # the offending file is named


# ---------------------------------------------------------------------------------------
# Subsets


@pytest.fixture
def multi_object_tree(tmp_path):
    tree = fx.FixtureTree(str(tmp_path / "in"), "standard", fx.wnid_names(3))
    a, b, c = tree.wnids
    tree.add_image("train", a, (50, 50), [(a, (0, 0, 10, 10))])
    tree.add_image("train", a, (50, 50), [])  # unboxed
    three = tree.add_image(
        "train", b, (50, 50), [(b, (0, 0, 10, 10)), (c, (5, 5, 30, 30)), (b, (20, 20, 40, 40))]
    )
    tree.add_image("train", c, (50, 50), [])
    for wnid in (a, b):
        tree.add_image("val", wnid, (50, 50), [(wnid, (1, 1, 9, 9))])
    tree.add_image("val", c, (50, 50), [], xml=False, csv_row=False, in_folder=True)  # unboxed val
    return tree, three


def test_boxed_subset_keeps_only_images_with_boxes(multi_object_tree):
    tree, _ = multi_object_tree
    boxed = fx.prepared_dicts(tree.root, "train", subset="boxed")
    assert sorted(d["image_id"] for d in boxed) == sorted(
        im.stem for im in tree.split_images("train") if im.objects
    )
    assert all(d["annotations"] for d in boxed)
    assert len(fx.prepared_dicts(tree.root, "train")) == 4


def test_mask_subset_one_dict_per_object_of_the_label_class(multi_object_tree):
    tree, three = multi_object_tree
    mask = fx.prepared_dicts(tree.root, "train", subset="mask")
    # a: 1 object -> 1 sample; three: 2 objects of its class b, the c object is no target
    assert len(mask) == 3
    samples = [d for d in mask if d["image_id"] == three.stem]
    assert sorted(d["target_object"] for d in samples) == [0, 2]
    for d in samples:
        assert len(d["annotations"]) == 3  # all annotations kept, for painting
        assert d["annotations"][d["target_object"]]["category_id"] == d["label"] == 1
        assert (d["width"], d["height"]) == (50, 50)
    samples[0]["annotations"][0]["bbox"][0] = 99.0  # samples do not share mutable state
    assert samples[1]["annotations"][0]["bbox"][0] == 0.0


def test_context_subset_flags_every_boxed_image(multi_object_tree):
    tree, _ = multi_object_tree
    ctx = fx.prepared_dicts(tree.root, "val", subset="context")
    assert len(ctx) == 2 and all(d["paint_all_objects"] is True and d["annotations"] for d in ctx)
    assert len(fx.prepared_dicts(tree.root, "val")) == 3
    assert all("paint_all_objects" not in d for d in fx.prepared_dicts(tree.root, "val"))


def test_unknown_subset_layout_split_rejected_at_registration():
    for kwargs in (dict(subset="boxes"), dict(layout="voc"), dict(split="test")):
        args = {"name": f"t_{uuid.uuid4().hex}", "root": "/nonexistent", "split": "train", **kwargs}
        with pytest.raises(ValueError):
            register_imagenet(**args)
        assert args["name"] not in DatasetCatalog.list()


# ---------------------------------------------------------------------------------------
# ImageNetV2


def test_imagenetv2_layout_and_class_names(tmp_path):
    imagenet = fx.make_imagenet_tree(
        str(tmp_path / "imagenet"), n_classes=4, train_per_class=1, val_per_class=0
    )
    v2_root = str(tmp_path / "imagenetv2-matched-frequency-format-val")
    written = fx.make_imagenetv2_tree(v2_root, n_classes=4, per_class=3)
    dicts = fx.prepared_dicts(v2_root, "val")  # layout auto-detected
    assert {os.path.relpath(d["file_name"], v2_root): d["label"] for d in dicts} == written
    assert all(d["annotations"] == [] and "width" not in d for d in dicts)
    by_id(dicts)

    index = build_imagenetv2_index(v2_root, class_root=imagenet.root)
    assert index["wnids"] == imagenet.wnids
    assert index["names"] == [imagenet.names[w] for w in imagenet.wnids]
    plain = build_imagenetv2_index(v2_root, class_root=str(tmp_path / "missing"))
    assert plain["names"] == ["class_0", "class_1", "class_2", "class_3"]


# ---------------------------------------------------------------------------------------
# Registration


def test_register_imagenet_catalog_and_metadata(tmp_path, monkeypatch, registered):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "d2"))
    root = os.path.join(os.environ["DETECTRON2_DATASETS"], "imagenet")
    tree = fx.make_imagenet_tree(root, layout="kaggle", n_classes=3)
    prepare_imagenet(root, splits=["val"])
    name = f"test_imagenet_val_{uuid.uuid4().hex[:8]}"
    register_imagenet(name, root, "val", subset="context")
    registered.append(name)
    meta = MetadataCatalog.get(name)
    assert meta.evaluator_type == "classification"
    assert meta.get("thing_classes") is None  # lazily: nothing read at registration

    dicts = DatasetCatalog.get(name)
    assert len(dicts) == len(tree.split_images("val")) and all(
        d["paint_all_objects"] for d in dicts
    )
    assert meta.wnids == tree.wnids
    assert meta.thing_classes == [tree.names[w] for w in tree.wnids]
    assert meta.num_classes == 3
    assert DatasetCatalog.get(name) == dicts  # a second get (from the cache) agrees


def test_builtin_names_under_detectron2_datasets(tmp_path):
    """A fresh interpreter: the builtin names appear at import, read nothing then, and
    resolve under $DETECTRON2_DATASETS when loaded."""
    built = tmp_path / "built"
    imagenet = fx.make_imagenet_tree(
        str(built / "imagenet"), n_classes=3, train_per_class=4, val_per_class=2
    )
    prepare_imagenet(imagenet.root)  # tools/prepare_imagenet.py --root ...
    fx.make_imagenetv2_tree(
        str(built / "imagenetv2-matched-frequency-format-val"), n_classes=3, per_class=2
    )
    d2 = tmp_path / "d2"  # does not exist at import: registration must not need it
    body = """
names = ["imagenet_train", "imagenet_train_boxed", "imagenet_train_boxed_mask",
         "imagenet_val", "imagenet_val_context", "imagenetv2_matched_frequency"]
out = {n: len(DatasetCatalog.get(n)) for n in names}
out["v2_classes"] = MetadataCatalog.get("imagenetv2_matched_frequency").thing_classes
out["root"] = MetadataCatalog.get("imagenet_val").image_root
"""
    out = run_after_builtin_import(str(built), str(d2), body)
    train = imagenet.split_images("train")
    boxed = [im for im in train if im.objects]
    assert out["imagenet_train"] == len(train) == 12
    assert out["imagenet_train_boxed"] == len(boxed)
    assert out["imagenet_train_boxed_mask"] == sum(len(im.objects) for im in boxed)
    assert out["imagenet_val"] == out["imagenet_val_context"] == 6
    assert out["imagenetv2_matched_frequency"] == 6
    assert out["v2_classes"] == [imagenet.names[w] for w in imagenet.wnids]
    assert out["root"] == os.path.join(str(d2), "imagenet")


def test_missing_root_or_split_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fx.prepared_dicts(str(tmp_path / "nowhere"), "train")
    tree = fx.make_imagenet_tree(str(tmp_path / "in"), n_classes=2, val_per_class=0)
    with pytest.raises(FileNotFoundError, match=os.path.join(tree.root, "val")):
        fx.prepared_dicts(tree.root, "val")
