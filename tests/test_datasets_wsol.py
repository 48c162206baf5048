"""Choe et al. (2020) WSOL metadata reader (clovaai/wsolevaluation, metadata/ILSVRC/<split>/).

Every tree is written here into a tmp dir in the release's exact format (four text files,
no header, ``<path>,...`` lines, several localization lines for an image with several
boxes); expectations come from what was written, never from the code under test.
"""

import logging
import os
import uuid

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from als_d2.data.datasets import load_wsol_metadata, read_wsol_metadata, register_wsol
from als_d2.data.mapper import ClassificationDatasetMapper

import ilsvrc_fixtures as fx
from tiny_data import run_after_builtin_import


# (path relative to the image root, (width, height), label, [boxes x0, y0, x1, y1], colour)
TEST_SPLIT = [  # Choe's "test" = ImageNet val
    ("val/ILSVRC2012_val_00000001.JPEG", (60, 40), 2, [(5, 6, 30, 20)], (120, 80, 40)),
    (
        "val/ILSVRC2012_val_00000002.JPEG",
        (50, 70),
        0,
        [(1, 2, 20, 30), (10, 40, 45, 65)],
        (30, 90, 160),
    ),
    ("val/ILSVRC2012_val_00000003.JPEG", (40, 40), 1, [(0, 0, 39, 39)], (200, 200, 60)),
    ("val/ILSVRC2012_val_00000004.JPEG", (30, 20), 1, [], (90, 90, 90)),  # no box
]
V2_SPLIT = [  # Choe's "val" = ImageNetV2 Threshold0.7 with boxes (PNG here: exact pixels)
    (
        "val2/0/a31041fd31109279f69ba5827fe508eee00abd75.png",
        (48, 32),
        0,
        [(4, 4, 20, 28)],
        (20, 160, 220),
    ),
    (
        "val2/2/bcf8a5326180b5e9320642f5024096fbc8a5d454.png",
        (36, 52),
        2,
        [(2, 10, 30, 40), (20, 0, 36, 12)],
        (230, 40, 40),
    ),
]
CLASS_NAMES = ["tench", "Chihuahua", "window screen"]  # sorted wnids of fx.wnid_names(3)


def write_image(path, size, colour):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = Image.new("RGB", size, colour)
    if path.lower().endswith(".png"):
        img.save(path, "PNG")
    else:
        img.save(path, "JPEG", quality=95)


def write_split(metadata_dir, image_root, images, write_images=True):
    """The four files of one split exactly as in clovaai/wsolevaluation, plus the images."""
    os.makedirs(metadata_dir, exist_ok=True)
    files = {
        "image_ids.txt": [p for p, *_ in images],
        "class_labels.txt": [f"{p},{label}" for p, _, label, _, _ in images],
        "image_sizes.txt": [f"{p},{w},{h}" for p, (w, h), _, _, _ in images],
        "localization.txt": [
            f"{p},{x0},{y0},{x1},{y1}" for p, _, _, boxes, _ in images for x0, y0, x1, y1 in boxes
        ],
    }
    for name, lines in files.items():
        with open(os.path.join(metadata_dir, name), "w") as f:
            f.write("".join(line + "\n" for line in lines))
    if write_images:
        for p, size, _, _, colour in images:
            write_image(os.path.join(image_root, p), size, colour)


def expected_dicts(image_root, images, subset="all"):
    out = []
    for p, (w, h), label, boxes, _ in images:
        if subset == "context" and not boxes:
            continue
        d = {
            "file_name": os.path.join(image_root, p),
            "image_id": os.path.splitext(os.path.basename(p))[0],
            "label": label,
            "width": w,
            "height": h,
            "annotations": [
                {"bbox": [float(v) for v in b], "bbox_mode": BoxMode.XYXY_ABS, "category_id": label}
                for b in boxes
            ],
        }
        if subset == "context":
            d["paint_all_objects"] = True
        out.append(d)
    return out


@pytest.fixture
def tree(tmp_path):
    """$DETECTRON2_DATASETS-like tree: imagenet (class names) + wsolevaluation (both splits)."""
    fx.make_imagenet_tree(
        str(tmp_path / "imagenet"), n_classes=3, train_per_class=1, val_per_class=0
    )
    wsol = tmp_path / "wsolevaluation"
    image_root = str(wsol / "dataset" / "ILSVRC")
    write_split(str(wsol / "metadata" / "ILSVRC" / "test"), image_root, TEST_SPLIT)
    write_split(str(wsol / "metadata" / "ILSVRC" / "val"), image_root, V2_SPLIT)
    return {
        "root": str(tmp_path),
        "imagenet": str(tmp_path / "imagenet"),
        "image_root": image_root,
        "test": str(wsol / "metadata" / "ILSVRC" / "test"),
        "val": str(wsol / "metadata" / "ILSVRC" / "val"),
    }


def _register(registered, tree, split, subset, **kwargs):
    name = f"test_wsol_{split}_{subset}_{uuid.uuid4().hex[:8]}"
    register_wsol(
        name,
        tree[split],
        tree["image_root"],
        subset,
        class_root=tree["imagenet"],
        split=split,
        **kwargs,
    )
    registered.append(name)
    return name


# ---------------------------------------------------------------------------------------
# Reading and registration


def test_registered_test_split_matches_what_was_written(tree, registered):
    name = _register(registered, tree, "test", "all")
    meta = MetadataCatalog.get(name)
    assert meta.evaluator_type == "classification" and meta.split == "test" and meta.subset == "all"
    assert meta.get("thing_classes") is None  # lazily: nothing read at registration

    dicts = DatasetCatalog.get(name)
    assert dicts == expected_dicts(tree["image_root"], TEST_SPLIT)
    # the image with two boxes (two localization lines), spelled out
    two = dicts[1]
    assert two["file_name"] == os.path.join(
        tree["image_root"], "val", "ILSVRC2012_val_00000002.JPEG"
    )
    assert (two["image_id"], two["label"]) == ("ILSVRC2012_val_00000002", 0)
    assert (two["width"], two["height"]) == (50, 70)
    assert [a["bbox"] for a in two["annotations"]] == [
        [1.0, 2.0, 20.0, 30.0],
        [10.0, 40.0, 45.0, 65.0],
    ]
    assert all(
        a["bbox_mode"] == BoxMode.XYXY_ABS and a["category_id"] == 0 for a in two["annotations"]
    )
    assert dicts[3]["annotations"] == [] and "paint_all_objects" not in dicts[0]

    assert meta.thing_classes == CLASS_NAMES
    assert meta.num_classes == 3 and len(meta.wnids) == 3
    assert DatasetCatalog.get(name) == dicts  # a second load agrees


def test_registered_v2_split_and_context_subsets(tree, registered):
    v2 = DatasetCatalog.get(_register(registered, tree, "val", "all"))
    assert v2 == expected_dicts(tree["image_root"], V2_SPLIT)
    assert [d["image_id"] for d in v2] == [
        "a31041fd31109279f69ba5827fe508eee00abd75",
        "bcf8a5326180b5e9320642f5024096fbc8a5d454",
    ]
    v2_ctx = DatasetCatalog.get(_register(registered, tree, "val", "context"))
    assert v2_ctx == expected_dicts(tree["image_root"], V2_SPLIT, "context")
    ctx = DatasetCatalog.get(_register(registered, tree, "test", "context"))
    assert ctx == expected_dicts(tree["image_root"], TEST_SPLIT, "context")
    assert len(ctx) == 3 and all(d["paint_all_objects"] is True and d["annotations"] for d in ctx)


def test_unboxed_image_counted_kept_in_all_dropped_in_context(tree, log_records):
    assert len(load_wsol_metadata(tree["test"], tree["image_root"])) == 4
    assert len(load_wsol_metadata(tree["test"], tree["image_root"], "context")) == 3
    warnings = [r.getMessage() for r in log_records if r.levelno == logging.WARNING]
    assert any("unboxed_images = 1" in m and "ILSVRC2012_val_00000004.JPEG" in m for m in warnings)


def test_without_class_list_classes_are_numbered(tree, registered):
    name = f"test_wsol_noclass_{uuid.uuid4().hex[:8]}"
    register_wsol(
        name, tree["val"], tree["image_root"], class_root=os.path.join(tree["root"], "missing")
    )
    registered.append(name)
    DatasetCatalog.get(name)
    assert MetadataCatalog.get(name).thing_classes == [
        "class_0",
        "class_1",
        "class_2",
    ]  # largest label 2


def test_image_root_candidates_first_holding_the_paths(tree):
    nowhere = os.path.join(tree["root"], "nowhere")
    dicts = load_wsol_metadata(tree["test"], [nowhere, tree["image_root"]])
    assert dicts == expected_dicts(tree["image_root"], TEST_SPLIT)


def test_repeated_stems_use_the_relative_path(tmp_path):
    """The older V2 metadata names files 0.jpeg..9.jpeg in every class folder."""
    images = [
        ("val2/0/0.png", (20, 10), 0, [(1, 1, 5, 5)], (10, 10, 10)),
        ("val2/1/0.png", (20, 10), 1, [(2, 2, 6, 6)], (20, 20, 20)),
    ]
    write_split(str(tmp_path / "meta"), str(tmp_path / "img"), images)
    dicts = load_wsol_metadata(str(tmp_path / "meta"), str(tmp_path / "img"))
    assert [d["image_id"] for d in dicts] == ["val2/0/0", "val2/1/0"]


# ---------------------------------------------------------------------------------------
# Bad input


def test_bad_lines_skipped_and_counted_with_file_and_line(tree, log_records):
    meta_dir, root = tree["test"], tree["image_root"]
    a, b, c, d = (p for p, *_ in TEST_SPLIT)
    loc = os.path.join(meta_dir, "localization.txt")
    with open(loc, "w") as f:
        f.write(
            f"{a},5,6,30,20\n"  # 1 ok
            f"{b},1,2,20,30\n"  # 2 ok
            f"{b},10,40,45\n"  # 3 four fields
            f"{c},0,0,abc,39\n"  # 4 not a number
            f"{c},30,0,10,39\n"  # 5 x1 <= x0
            "val/ILSVRC2012_val_00000099.JPEG,1,1,5,5\n"  # 6 not in image_ids.txt
            "\n"  # 7 blank: ignored
            f"{c},0,0,39,39\n"  # 8 ok
        )
    labels = os.path.join(meta_dir, "class_labels.txt")
    with open(labels) as f:
        label_lines = f.read().splitlines()
    label_lines[3] = f"{d},one"  # line 4: not an integer -> d has no label
    with open(labels, "w") as f:
        f.write("\n".join(label_lines) + "\n")

    meta = read_wsol_metadata(meta_dir, num_classes=3)
    assert meta.stats == {"bad_lines": 3, "orphan_lines": 1, "degenerate_boxes": 1}
    assert meta.examples["bad_lines"] == [
        f"{labels}:4: label 'one' is not an integer",
        f"{loc}:3: expected '<path>,<x0>,<y0>,<x1>,<y1>', got '{b},10,40,45'",
        f"{loc}:4: non-numeric coordinates ['0', '0', 'abc', '39']",
    ]
    assert meta.examples["degenerate_boxes"][0].startswith(f"{loc}:5: ")
    assert meta.examples["orphan_lines"][0].startswith(f"{loc}:6: ")

    dicts = load_wsol_metadata(meta_dir, root)
    assert [x["image_id"] for x in dicts] == [
        "ILSVRC2012_val_00000001",
        "ILSVRC2012_val_00000002",
        "ILSVRC2012_val_00000003",
    ]  # d: unlabeled, dropped
    assert [[x["bbox"] for x in y["annotations"]] for y in dicts] == [
        [[5.0, 6.0, 30.0, 20.0]],
        [[1.0, 2.0, 20.0, 30.0]],
        [[0.0, 0.0, 39.0, 39.0]],
    ]
    warnings = " | ".join(r.getMessage() for r in log_records if r.levelno == logging.WARNING)
    for key, n in (
        ("bad_lines", 3),
        ("orphan_lines", 1),
        ("degenerate_boxes", 1),
        ("unlabeled_images", 1),
    ):
        assert f"{key} = {n}" in warnings
    assert f"{loc}:3" in warnings and f"{loc}:5" in warnings and f"{labels}:4" in warnings


def test_label_out_of_range_and_bad_size(tree):
    meta_dir = tree["test"]
    a = TEST_SPLIT[0][0]
    path = os.path.join(meta_dir, "class_labels.txt")
    lines = open(path).read().splitlines()
    lines[0] = f"{a},7"
    open(path, "w").write("\n".join(lines) + "\n")
    sizes = os.path.join(meta_dir, "image_sizes.txt")
    lines = open(sizes).read().splitlines()
    lines[2] = f"{TEST_SPLIT[2][0]},40,0"
    open(sizes, "w").write("\n".join(lines) + "\n")

    meta = read_wsol_metadata(meta_dir, num_classes=3)
    assert meta.stats == {"bad_lines": 2}
    assert meta.examples["bad_lines"] == [
        f"{path}:1: label 7 is not in [0, 3)",
        f"{sizes}:3: size 40x0 is not positive",
    ]
    dicts = {
        d["image_id"]: d for d in load_wsol_metadata(meta_dir, tree["image_root"], num_classes=3)
    }
    assert "ILSVRC2012_val_00000001" not in dicts
    c = dicts["ILSVRC2012_val_00000003"]  # kept without a size, boxes as written
    assert (
        "width" not in c
        and "height" not in c
        and c["annotations"][0]["bbox"] == [0.0, 0.0, 39.0, 39.0]
    )


def test_boxes_clipped_to_the_image_size(tmp_path, log_records):
    images = [
        ("val/x.png", (60, 40), 1, [(50, 30, 70, 45), (70, 0, 80, 10), (-3, -2, 10, 10)], (9, 9, 9))
    ]
    write_split(str(tmp_path / "meta"), str(tmp_path / "img"), images)
    meta = read_wsol_metadata(str(tmp_path / "meta"))
    assert meta.boxes == {"val/x.png": [(50.0, 30.0, 60.0, 40.0), (0.0, 0.0, 10.0, 10.0)]}
    assert meta.stats == {"clipped_boxes": 2, "degenerate_boxes": 1}
    assert meta.examples["degenerate_boxes"][0].startswith(
        f"{tmp_path / 'meta' / 'localization.txt'}:2: "
    )


def test_missing_file_is_a_clear_error(tree):
    os.remove(os.path.join(tree["test"], "image_sizes.txt"))
    with pytest.raises(FileNotFoundError, match="image_sizes.txt"):
        load_wsol_metadata(tree["test"], tree["image_root"])


def test_repeated_path_is_a_clear_error(tree):
    path = os.path.join(tree["test"], "class_labels.txt")
    with open(path, "a") as f:
        f.write(f"{TEST_SPLIT[0][0]},1\n")  # line 5 repeats line 1 with another label
    with pytest.raises(
        ValueError, match=r"class_labels.txt: 1 path\(s\) listed more than once.*lines 1, 5"
    ):
        load_wsol_metadata(tree["test"], tree["image_root"])


def test_missing_images_counted_and_none_found_is_an_error(tree, log_records):
    os.remove(os.path.join(tree["image_root"], TEST_SPLIT[2][0]))
    dicts = load_wsol_metadata(tree["test"], tree["image_root"])
    assert [d["image_id"] for d in dicts] == [
        "ILSVRC2012_val_00000001",
        "ILSVRC2012_val_00000002",
        "ILSVRC2012_val_00000004",
    ]
    assert any("missing_images = 1" in r.getMessage() for r in log_records)
    with pytest.raises(FileNotFoundError, match="none of its 4 images"):
        load_wsol_metadata(tree["test"], os.path.join(tree["root"], "elsewhere"))


def test_paths_leaving_the_root_are_dropped(tmp_path):
    images = [("val/ok.png", (10, 10), 0, [(1, 1, 5, 5)], (1, 2, 3))]
    write_split(str(tmp_path / "meta"), str(tmp_path / "img"), images)
    with open(tmp_path / "meta" / "image_ids.txt", "a") as f:
        f.write("../../etc/passwd\n/etc/passwd\n")
    meta = read_wsol_metadata(str(tmp_path / "meta"))
    assert meta.image_ids == ["val/ok.png"] and meta.stats == {"outside_root": 2}


def test_unknown_subset_rejected_at_registration():
    name = f"t_{uuid.uuid4().hex}"
    with pytest.raises(ValueError, match="subset"):
        register_wsol(name, "/nonexistent", "/nonexistent", "boxed")
    assert name not in DatasetCatalog.list()


# ---------------------------------------------------------------------------------------
# Context dicts through the mapper


@pytest.mark.parametrize("split", ["test", "val"])
def test_context_dicts_map_to_images_painted_inside_every_box(tree, registered, split):
    images = {
        p: (size, colour) for p, size, _, _, colour in (TEST_SPLIT if split == "test" else V2_SPLIT)
    }
    paint = (10, 200, 30)
    mapper = ClassificationDatasetMapper(False, augmentations=[], paint_color=paint)
    for d in DatasetCatalog.get(_register(registered, tree, split, "context")):
        out = mapper(d)
        rel = os.path.relpath(d["file_name"], tree["image_root"]).replace(os.sep, "/")
        (w, h), colour = images[rel]
        img = out["image"].permute(1, 2, 0).numpy()
        assert img.shape == (h, w, 3)  # width, height of image_sizes.txt are the image's
        inside = np.zeros((h, w), bool)
        for a in d["annotations"]:
            x0, y0, x1, y1 = map(int, a["bbox"])
            inside[y0:y1, x0:x1] = True
        assert inside.any() and (img[inside] == np.array(paint, np.uint8)).all()
        outside = img[~inside].astype(int)
        tol = 0 if rel.endswith(".png") else 3  # JPEG: the background colour within 3 levels
        assert outside.size and np.abs(outside - np.array(colour)).max() <= tol
        assert out["label"] == d["label"] and out["objectness"] == 0.0 and out["context"] is False


def test_context_dict_painted_with_the_pixel_mean_by_default(tree, registered):
    d = DatasetCatalog.get(_register(registered, tree, "val", "context"))[0]
    img = ClassificationDatasetMapper(False, augmentations=[])(d)["image"].permute(1, 2, 0).numpy()
    x0, y0, x1, y1 = map(int, d["annotations"][0]["bbox"])
    assert (
        img[y0:y1, x0:x1] == np.array([124, 116, 104], np.uint8)
    ).all()  # detectron2's mean, RGB


# ---------------------------------------------------------------------------------------
# Builtin names


def test_builtin_wsol_names_under_detectron2_datasets(tmp_path):
    """A fresh interpreter: the four names appear at import, read nothing then, and resolve
    under $DETECTRON2_DATASETS; without wsolevaluation/dataset/ILSVRC/val the test split
    takes its images from the ImageNet tree's val."""
    built = tmp_path / "built"
    fx.make_imagenet_tree(str(built / "imagenet"), n_classes=3, train_per_class=1, val_per_class=0)
    wsol = built / "wsolevaluation"
    write_split(str(wsol / "metadata" / "ILSVRC" / "test"), str(built / "imagenet"), TEST_SPLIT)
    write_split(
        str(wsol / "metadata" / "ILSVRC" / "val"), str(wsol / "dataset" / "ILSVRC"), V2_SPLIT
    )
    d2 = tmp_path / "d2"  # does not exist at import: registration must not need it
    body = """
names = [
    "imagenet_val_wsol", "imagenet_val_wsol_context", "imagenetv2_wsol", "imagenetv2_wsol_context"
]
out = {n: [d["file_name"] for d in DatasetCatalog.get(n)] for n in names}
out["classes"] = {n: MetadataCatalog.get(n).thing_classes for n in names}
out["ctx"] = all(d["paint_all_objects"] for d in DatasetCatalog.get("imagenetv2_wsol_context"))
"""
    out = run_after_builtin_import(str(built), str(d2), body)
    val_root = str(d2 / "imagenet")
    v2_root = str(d2 / "wsolevaluation" / "dataset" / "ILSVRC")
    assert out["imagenet_val_wsol"] == [os.path.join(val_root, p) for p, *_ in TEST_SPLIT]
    assert out["imagenet_val_wsol_context"] == [
        os.path.join(val_root, p) for p, *_ in TEST_SPLIT[:3]
    ]
    v2_files = [os.path.join(v2_root, p) for p, *_ in V2_SPLIT]
    assert out["imagenetv2_wsol"] == out["imagenetv2_wsol_context"] == v2_files
    assert all(c == CLASS_NAMES for c in out["classes"].values()) and out["ctx"] is True


def test_every_kind_counted_is_in_the_policy_table(tree, log_records):
    """One of each problem the reader and the loader count (written here): the counts are
    exactly those, each kind is a row of indexing.KINDS and of COUNTERS, and the log line
    of each carries its severity and meaning from KINDS (a warning unless fixed)."""
    from als_d2.data.datasets import wsol_metadata
    from als_d2.data.datasets.indexing import FIXED, KINDS

    meta_dir, root = tree["test"], tree["image_root"]
    a, b, c, d = (p for p, *_ in TEST_SPLIT)
    e, f = "val/ILSVRC2012_val_00000005.JPEG", "val/ILSVRC2012_val_00000006.JPEG"
    write_image(os.path.join(root, f), (10, 10), (1, 1, 1))  # on disk, but no label
    files = {
        "image_ids.txt": [a, b, c, d, e, f, "../../etc/passwd"],  # e: not on disk
        "class_labels.txt": [f"{a},2", f"{b},0", f"{c},1", f"{d},1", f"{e},1"],  # f: no label
        "image_sizes.txt": [f"{a},60,40", f"{b},50,70", f"{d},30,20", f"{e},10,10"],  # c: none
        "localization.txt": [
            f"{a},5,6,30,20",
            f"{b},1,2,20,30",
            f"{b},10,40,45",  # bad line: four fields
            f"{b},10,40,60,65",  # x1 60 > width 50: clipped
            f"{c},0,0,39,39",
            f"{c},30,0,10,39",  # degenerate
            "val/elsewhere.JPEG,1,1,5,5",  # orphan
            f"{e},1,1,5,5",
        ],  # d: no box
    }
    for name, lines in files.items():
        with open(os.path.join(meta_dir, name), "w") as fh:
            fh.write("".join(line + "\n" for line in lines))
    dicts, meta = wsol_metadata._load(meta_dir, root, "all", None, True)
    expected = {
        "bad_lines": 1,
        "orphan_lines": 1,
        "degenerate_boxes": 1,
        "clipped_boxes": 1,
        "outside_root": 1,
        "unlabeled_images": 1,
        "missing_images": 1,
        "unsized_images": 1,
        "unboxed_images": 1,
    }
    assert meta.stats == expected
    assert [x["file_name"] for x in dicts] == [os.path.join(root, p) for p in (a, b, c, d)]
    assert set(expected) == set(wsol_metadata.COUNTERS) and set(expected) <= set(KINDS)
    for kind, n in expected.items():
        severity, meaning = KINDS[kind]
        level = logging.INFO if severity == FIXED else logging.WARNING
        assert any(
            r.levelno == level and f"{kind} = {n} [{severity}: {meaning}] (e.g. " in r.getMessage()
            for r in log_records
        ), kind
