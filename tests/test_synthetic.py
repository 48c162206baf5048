"""The embedded default dataset (als_d2.data.synthetic): exact ILSVRC/Kaggle layout, real
XML/CSV/COCO formats, boxes that match the pixels, determinism, the context bias, caching.

Pixels are checked on the decoded JPEGs: objects are saturated colours, backgrounds nearly
grey, so ``saturation > 0.5`` finds object pixels independently of the generator's own
bookkeeping."""

import csv
import glob
import json
import os
import re
import time

import numpy as np
import pytest
from lxml import etree
from PIL import Image

from als_d2.data import synthetic
from als_d2.data.synthetic import MANIFEST_NAME, class_specs, generate_synthetic_imagenet

SMALL = dict(num_classes=4, train_per_class=10, val_per_class=5, coco_train=8, coco_val=4, seed=3)
TINY = dict(num_classes=3, train_per_class=4, val_per_class=2, coco_train=2, coco_val=2)
SAT_THRESHOLD = 0.5  # objects: HSV saturation >= ~0.6 after JPEG; backgrounds <= ~0.3
TOL = 3  # pixels of JPEG blur allowed at sharp tips


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    summary = generate_synthetic_imagenet(root, **SMALL)
    return root, summary


def _cls_loc(root, *parts):
    return os.path.join(root, "ILSVRC", *parts)


def _load_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


def _saturation(rgb):
    a = rgb.astype(np.float32)
    mx = a.max(2)
    return (mx - a.min(2)) / np.maximum(mx, 1.0)


def _dilate(mask, r):
    h, w = mask.shape
    padded = np.pad(mask, r)
    out = np.zeros_like(mask)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def _parse_xml(path):
    """(root element, [(wnid, (xmin, ymin, xmax, ymax))]), the exact ILSVRC structure asserted."""
    root = etree.parse(path, etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    tags = [c.tag for c in root]
    n_obj = tags.count("object")
    assert n_obj >= 1
    assert tags == ["folder", "filename", "source", "size", "segmented"] + ["object"] * n_obj
    assert [c.tag for c in root.find("source")] == ["database"]
    assert root.findtext("source/database") == "ILSVRC_2012"
    assert [c.tag for c in root.find("size")] == ["width", "height", "depth"]
    assert root.findtext("size/depth") == "3" and root.findtext("segmented") == "0"
    objects = []
    for obj in root.iterfind("object"):
        assert [c.tag for c in obj] == ["name", "pose", "truncated", "difficult", "bndbox"]
        assert (obj.findtext("pose"), obj.findtext("truncated"), obj.findtext("difficult")) == (
            "Unspecified",
            "0",
            "0",
        )
        assert [c.tag for c in obj.find("bndbox")] == ["xmin", "ymin", "xmax", "ymax"]
        box = tuple(int(obj.findtext("bndbox/" + t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        objects.append((obj.findtext("name"), box))
    return root, objects


def _read_solution(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ImageId", "PredictionString"]
    out = {}
    for image_id, text in rows[1:]:
        tokens = text.split()
        assert tokens and len(tokens) % 5 == 0, text
        out[image_id] = [
            (tokens[i], tuple(int(t) for t in tokens[i + 1 : i + 5]))
            for i in range(0, len(tokens), 5)
        ]
    return out


def _check_boxes_match_pixels(rgb, objects, specs):
    """Each box: the object pixels around it span the box (within TOL px), most of them
    have the class colour; no object pixels outside the boxes."""
    h, w = rgb.shape[:2]
    obj = _saturation(rgb) > SAT_THRESHOLD
    colours = sorted({c.colour for c in specs})
    palette = np.array(colours + [tuple(0.6 * v for v in c) for c in colours], np.float32)
    near_boxes = np.zeros_like(obj)
    for k, (x0, y0, x1, y1) in objects:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        near_boxes[max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2] = True
        ya, yb, xa, xb = max(y0 - TOL, 0), min(y1 + TOL, h), max(x0 - TOL, 0), min(x1 + TOL, w)
        ys, xs = np.nonzero(obj[ya:yb, xa:xb])
        found = (xa + xs.min(), ya + ys.min(), xa + xs.max() + 1, ya + ys.max() + 1)
        assert np.abs(np.array(found) - (x0, y0, x1, y1)).max() <= TOL, (found, (x0, y0, x1, y1))
        inside = obj[y0:y1, x0:x1]
        assert inside.mean() > 0.1  # the shape fills a good part of its box
        pixels = rgb[y0:y1, x0:x1][inside].astype(np.float32)
        nearest = np.linalg.norm(pixels[:, None, :] - palette[None], axis=2).argmin(1) % len(
            colours
        )
        assert np.mean(nearest == colours.index(specs[k].colour)) > 0.9, (k, np.bincount(nearest))
    assert (obj & ~near_boxes).sum() <= 3  # a stray JPEG pixel at most


def test_layout(small):
    root, summary = small
    K, n, nv = SMALL["num_classes"], SMALL["train_per_class"], SMALL["val_per_class"]
    wnids = [f"n{90000000 + k:08d}" for k in range(K)]
    assert summary["wnids"] == wnids and not summary["cached"]
    assert sorted(os.listdir(_cls_loc(root, "Data", "CLS-LOC", "train"))) == wnids
    n_boxed = int(round(0.6 * n))
    for wnid in wnids:
        jpegs = sorted(os.listdir(_cls_loc(root, "Data", "CLS-LOC", "train", wnid)))
        xmls = sorted(os.listdir(_cls_loc(root, "Annotations", "CLS-LOC", "train", wnid)))
        assert len(jpegs) == n and len(xmls) == n_boxed
        assert all(re.fullmatch(wnid + r"_[1-9]\d*\.JPEG", f) for f in jpegs)
        assert {x[:-4] for x in xmls} <= {j[:-5] for j in jpegs}
    val = sorted(os.listdir(_cls_loc(root, "Data", "CLS-LOC", "val")))
    assert val == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, K * nv + 1)]
    val_xml = sorted(os.listdir(_cls_loc(root, "Annotations", "CLS-LOC", "val")))
    assert val_xml == [v[:-5] + ".xml" for v in val]
    with open(os.path.join(root, "LOC_synset_mapping.txt"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert [line.split()[0] for line in lines] == wnids
    assert all(re.fullmatch(r"n\d{8} [a-z]+ [a-z]+, [a-z]+", line) for line in lines), lines
    assert lines[0] == "n90000000 red disc, disc"
    sets = _cls_loc(root, "ImageSets", "CLS-LOC")
    with open(os.path.join(sets, "train_cls.txt")) as f:
        cls_lines = f.read().splitlines()
    assert len(cls_lines) == K * n and cls_lines[0].startswith(wnids[0] + "/" + wnids[0] + "_")
    assert [int(s.split()[1]) for s in cls_lines] == list(range(1, K * n + 1))
    with open(os.path.join(sets, "val.txt")) as f:
        assert f.read().splitlines()[0] == "ILSVRC2012_val_00000001 1"
    for name in (
        "LOC_train_solution.csv",
        "LOC_val_solution.csv",
        MANIFEST_NAME,
        "synthetic_context.csv",
    ):
        assert os.path.isfile(os.path.join(root, name))
    assert summary["train_images"] == K * n and summary["train_boxed_images"] == K * n_boxed
    assert summary["val_images"] == K * nv


def test_xml_format_and_boxes_match_pixels(small):
    root, _ = small
    specs = class_specs(SMALL["num_classes"])
    index = {c.wnid: c.index for c in specs}
    xmls = sorted(
        glob.glob(_cls_loc(root, "Annotations", "CLS-LOC", "*", "**", "*.xml"), recursive=True)
    )
    assert len(xmls) == 4 * 6 + 4 * 5
    fractions = []
    for path in xmls:
        xml, objects = _parse_xml(path)
        stem = os.path.basename(path)[:-4]
        split = "val" if stem.startswith("ILSVRC2012_val_") else "train"
        folder = "val" if split == "val" else stem.split("_")[0]
        assert xml.findtext("folder") == folder and xml.findtext("filename") == stem
        sub = (folder,) if split == "train" else ()
        rgb = _load_rgb(_cls_loc(root, "Data", "CLS-LOC", split, *sub, stem + ".JPEG"))
        h, w = rgb.shape[:2]
        assert (int(xml.findtext("size/width")), int(xml.findtext("size/height"))) == (w, h)
        assert 96 <= w <= 160 and 96 <= h <= 160
        if split == "train":
            assert {name for name, _ in objects} == {
                folder
            }  # ImageNet: objects of the image's class
        assert len(objects) <= 3
        _check_boxes_match_pixels(rgb, [(index[name], box) for name, box in objects], specs)
        fractions += [(b[2] - b[0]) * (b[3] - b[1]) / float(w * h) for _, b in objects]
    assert 0.005 < min(fractions) and max(fractions) <= 1.0  # small to full-frame, as on ImageNet


def test_project_reader_accepts_tree(small, tmp_path, monkeypatch):
    """The project's ImageNet reader (Kaggle layout, auto-detected) reads the tree, which
    the generator has prepared (tools/prepare_imagenet.py's files)."""
    from als_d2.data.datasets.imagenet import get_imagenet_class_info, load_imagenet_dicts

    root, summary = small
    wnids, names = get_imagenet_class_info(root, "auto")
    assert wnids == summary["wnids"] and names == summary["class_names"]
    train = load_imagenet_dicts(root, "train", "auto")
    boxed = [d for d in train if d["annotations"]]
    assert len(train) == 40 and len(boxed) == 24
    val = load_imagenet_dicts(root, "val", "auto")
    assert len(val) == 20 and all(d["annotations"] for d in val)


def test_csv_rows_agree_with_xml(small):
    root, _ = small
    ann = _cls_loc(root, "Annotations", "CLS-LOC")
    train = _read_solution(os.path.join(root, "LOC_train_solution.csv"))
    train_xml = glob.glob(os.path.join(ann, "train", "*", "*.xml"))
    assert sorted(train) == sorted(os.path.basename(p)[:-4] for p in train_xml)
    for path in train_xml:
        assert train[os.path.basename(path)[:-4]] == _parse_xml(path)[1]
    val = _read_solution(os.path.join(root, "LOC_val_solution.csv"))
    assert sorted(val) == [f"ILSVRC2012_val_{i:08d}" for i in range(1, 21)]
    for image_id, objects in val.items():
        assert objects == _parse_xml(os.path.join(ann, "val", image_id + ".xml"))[1]
    with open(os.path.join(root, "LOC_val_solution.csv"), encoding="utf-8") as f:
        assert re.fullmatch(
            r"ILSVRC2012_val_\d{8},(n\d{8} \d+ \d+ \d+ \d+ )+", f.read().splitlines()[1]
        )


def test_context_correlation(small):
    """The background of each image, recognised from its pixels (nearest class tint), is
    the one synthetic_context.csv records; the own-class share is context_prob."""
    root, summary = small
    specs = class_specs(SMALL["num_classes"])
    tints = np.array([c.background_rgb for c in specs], np.float32)
    index = {c.wnid: c.index for c in specs}
    with open(os.path.join(root, "synthetic_context.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 + 20
    agree, checked, own = 0, 0, {"train": [], "val": []}
    for r in rows:
        own[r["split"]].append(r["background_wnid"] == r["wnid"])
        sub = (r["wnid"],) if r["split"] == "train" else ()
        rgb = _load_rgb(_cls_loc(root, "Data", "CLS-LOC", r["split"], *sub, r["ImageId"] + ".JPEG"))
        background = ~_dilate(_saturation(rgb) > SAT_THRESHOLD, 3)
        if background.sum() < 200:  # a full-frame object leaves little background to see
            continue
        mean = rgb[background].astype(np.float32).mean(0)
        seen = int(np.linalg.norm(tints - mean, axis=1).argmin())
        agree += seen == index[r["background_wnid"]]
        checked += 1
    assert agree == checked and checked >= 0.8 * len(rows)
    # exactly round(0.8 * count) per class: 8 of 10 train, 4 of 5 val
    assert np.mean(own["train"]) == pytest.approx(0.8) and np.mean(own["val"]) == pytest.approx(0.8)
    assert summary["train_own_context_fraction"] == pytest.approx(0.8)


def test_context_prob_extremes(tmp_path):
    for p in (0.0, 1.0):
        s = generate_synthetic_imagenet(str(tmp_path / str(p)), context_prob=p, **TINY)
        assert s["train_own_context_fraction"] == p and s["val_own_context_fraction"] == p


IMAGENET_VAL_OBJECTNESS = 0.49  # the paper, section 4.2: mean objectness of ImageNet val


def _test_transform_objectness(width, height, boxes, resize=256, crop=224):
    """Objectness of one image under "resize the shorter side to 256, centre crop 224",
    by counting pixels: the boxes are scaled to the resized image, a pixel belongs to a box
    when its centre is inside, and the covered pixels of the central crop are counted."""
    scale = resize / min(width, height)
    w, h = int(round(width * scale)), int(round(height * scale))
    centres_x, centres_y = np.arange(w) + 0.5, np.arange(h) + 0.5
    mask = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in boxes:
        inside_x = (centres_x >= x0 * scale) & (centres_x < x1 * scale)
        inside_y = (centres_y >= y0 * scale) & (centres_y < y1 * scale)
        mask |= inside_y[:, None] & inside_x[None, :]
    top, left = (h - crop) // 2, (w - crop) // 2
    return float(mask[top : top + crop, left : left + crop].mean())


@pytest.fixture(scope="module")
def many_val(tmp_path_factory):
    """A val set of 50 classes x 8 images (400), the default class count."""
    root = str(tmp_path_factory.mktemp("objectness"))
    summary = generate_synthetic_imagenet(
        root, num_classes=50, train_per_class=1, val_per_class=8, coco_train=0, coco_val=0, seed=0
    )
    images = []
    for image_id, objects in _read_solution(os.path.join(root, "LOC_val_solution.csv")).items():
        xml, _ = _parse_xml(_cls_loc(root, "Annotations", "CLS-LOC", "val", image_id + ".xml"))
        size = int(xml.findtext("size/width")), int(xml.findtext("size/height"))
        images.append((size, [box for _, box in objects]))
    return summary, images


def test_val_objectness_is_imagenets(many_val):
    """Mean objectness of the generated val set under the test transform is ImageNet's 0.49,
    with ImageNet-like spread: small objects, full-frame ones, some images with several."""
    summary, images = many_val
    assert len(images) == 400
    obj = np.array([_test_transform_objectness(w, h, boxes) for (w, h), boxes in images])
    assert obj.mean() == pytest.approx(IMAGENET_VAL_OBJECTNESS, abs=0.03), obj.mean()
    assert summary["val_mean_test_objectness"] == pytest.approx(obj.mean(), abs=0.01)
    assert np.mean(obj >= 0.95) > 0.07  # full-frame objects
    assert np.mean(obj < 0.2) > 0.1  # small objects
    assert 0.3 < np.median(obj) < 0.6
    counts = np.array([len(boxes) for _, boxes in images])
    assert (
        counts.max() == 3 and 0.04 < np.mean(counts > 1) < 0.16
    )  # the paper's 0.528M / 0.474M = 1.11
    assert summary["val_mean_objects_per_image"] == pytest.approx(counts.mean())


def test_centre_crop_objectness_agrees_with_pixel_count(many_val):
    _, images = many_val
    for (w, h), boxes in images[:100]:
        exact = synthetic.centre_crop_objectness(boxes, w, h)
        assert exact == pytest.approx(_test_transform_objectness(w, h, boxes), abs=0.02), (
            (w, h),
            boxes,
        )
    assert synthetic.centre_crop_objectness([(0, 0, 100, 80)], 100, 80) == 1.0
    assert synthetic.centre_crop_objectness([], 100, 80) == 0.0
    # a 100 x 100 image: the crop is [6.25, 93.75]^2; a box on its left half covers half of it
    assert synthetic.centre_crop_objectness([(0, 0, 50, 100)], 100, 100) == pytest.approx(0.5)


def test_side_fractions_place_full_frame_objects():
    specs = class_specs(10)
    rng = np.random.default_rng(0)
    for k in range(10):
        image, objects = synthetic.render_image(
            specs, 120, 100, k, [k], None, rng, side_fractions=[1.0]
        )
        ((cls, (x0, y0, x1, y1), pixels),) = objects
        assert cls == k and image.shape == (100, 120, 3)
        assert (x1 - x0) * (y1 - y0) >= 0.5 * 120 * 100  # the aspect jitter may trim one side
        assert 0 < pixels <= (x1 - x0) * (y1 - y0)
    with pytest.raises(ValueError, match="side_fractions"):
        synthetic.render_image(specs, 120, 100, 0, [0, 1], None, rng, side_fractions=[0.5])


def test_coco_split(small):
    from pycocotools.coco import COCO

    root, summary = small
    specs = class_specs(SMALL["num_classes"])
    for split, count in (("train", SMALL["coco_train"]), ("val", SMALL["coco_val"])):
        path = os.path.join(root, "coco", "annotations", f"instances_{split}.json")
        assert summary[f"coco_{split}_json"] == path
        coco = COCO(path)
        assert sorted(coco.getCatIds()) == [1, 2, 3, 4]
        assert [coco.cats[i]["name"] for i in (1, 2, 3, 4)] == summary["class_names"]
        assert len(coco.getImgIds()) == count
        for image_id in coco.getImgIds():
            info = coco.imgs[image_id]
            rgb = _load_rgb(os.path.join(root, "coco", split, info["file_name"]))
            assert rgb.shape[:2] == (info["height"], info["width"])
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
            assert len(anns) >= 1
            objects = []
            for a in anns:
                x, y, bw, bh = a["bbox"]
                assert a["iscrowd"] == 0 and 0 < a["area"] <= bw * bh
                objects.append((a["category_id"] - 1, (x, y, x + bw, y + bh)))
            _check_boxes_match_pixels(rgb, objects, specs)
    assert summary["coco_train_annotations"] > SMALL["coco_train"]  # several objects per image


def _tree_bytes(root):
    out = {}
    for path in glob.glob(os.path.join(root, "**", "*"), recursive=True):
        if os.path.isfile(path) and os.path.basename(path) != MANIFEST_NAME:
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_deterministic(tmp_path, monkeypatch):
    a = generate_synthetic_imagenet(str(tmp_path / "a"), seed=5, **TINY)
    # a later clock (gzip headers record one unless told not to): the same bytes
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    b = generate_synthetic_imagenet(str(tmp_path / "b"), seed=5, **TINY)
    monkeypatch.undo()
    c = generate_synthetic_imagenet(str(tmp_path / "c"), seed=6, **TINY)
    ta, tb, tc = (_tree_bytes(s["root"]) for s in (a, b, c))
    assert ta == tb
    jpegs = [k for k in ta if k.endswith((".JPEG", ".jpg"))]
    assert len(jpegs) == 3 * 4 + 3 * 2 + 2 + 2
    assert all(ta[k] != tc.get(k) for k in jpegs if k in tc)
    assert ta["LOC_val_solution.csv"] != tc["LOC_val_solution.csv"]


def test_manifest_cache(tmp_path):
    root = str(tmp_path / "ds")
    first = generate_synthetic_imagenet(root, **TINY)
    assert not first["cached"]
    jpeg = sorted(glob.glob(os.path.join(root, "ILSVRC", "Data", "CLS-LOC", "val", "*.JPEG")))[0]
    mtime = os.stat(jpeg).st_mtime_ns
    calls = []  # the cached call renders and writes nothing
    with pytest.MonkeyPatch.context() as mp:
        for name in ("render_image", "_save_jpeg", "_write_text", "_write_csv"):
            real = getattr(synthetic, name)
            mp.setattr(
                synthetic,
                name,
                lambda *a, _n=name, _f=real, **k: (calls.append(_n), _f(*a, **k))[1],
            )
        second = generate_synthetic_imagenet(root, **TINY)
    assert second["cached"] and calls == []
    assert {k: v for k, v in second.items() if k != "cached"} == {
        k: v for k, v in first.items() if k != "cached"
    }
    assert os.stat(jpeg).st_mtime_ns == mtime
    with open(os.path.join(root, MANIFEST_NAME)) as f:
        manifest = json.load(f)
    assert manifest["complete"] and manifest["params"]["num_classes"] == 3

    # other parameters: regenerated from scratch, nothing of the old tree left over
    third = generate_synthetic_imagenet(root, **dict(TINY, num_classes=2))
    assert not third["cached"]
    assert sorted(os.listdir(os.path.join(root, "ILSVRC", "Data", "CLS-LOC", "train"))) == [
        "n90000000",
        "n90000001",
    ]
    assert len(os.listdir(os.path.join(root, "ILSVRC", "Data", "CLS-LOC", "val"))) == 4
    assert not generate_synthetic_imagenet(root, force=True, **dict(TINY, num_classes=2))["cached"]

    # a tree whose prepared index is missing (generated before the prepare step existed, or
    # the file deleted) is generated and prepared again, not reported as cached
    os.remove(os.path.join(root, "als_d2_train.json.gz"))
    assert not generate_synthetic_imagenet(root, **dict(TINY, num_classes=2))["cached"]
    assert os.path.exists(os.path.join(root, "als_d2_train.json.gz"))

    # an unfinished generation (manifest without "complete") is redone
    manifest = dict(json.load(open(os.path.join(root, MANIFEST_NAME))), complete=False)
    with open(os.path.join(root, MANIFEST_NAME), "w") as f:
        json.dump(manifest, f)
    assert not generate_synthetic_imagenet(root, **dict(TINY, num_classes=2))["cached"]


def test_refuses_foreign_tree(tmp_path):
    (tmp_path / "ILSVRC").mkdir()
    with pytest.raises(FileExistsError, match="synthetic_manifest.json"):
        generate_synthetic_imagenet(str(tmp_path), **TINY)
    assert (tmp_path / "ILSVRC").is_dir()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_classes=0),
        dict(num_classes=101),
        dict(boxed_fraction=1.5),
        dict(context_prob=-0.1),
        dict(image_size=(20, 30)),
        dict(image_size=(120, 100)),
        dict(train_per_class=0),
    ],
)
def test_bad_parameters(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_synthetic_imagenet(str(tmp_path), **dict(TINY, **kwargs))
    assert not os.listdir(tmp_path)


def test_many_classes_are_distinct():
    specs = class_specs(100)
    assert len({c.wnid for c in specs}) == 100 and len({c.synonyms for c in specs}) == 100
    assert len({(c.shape, c.colour) for c in specs}) == 100
    assert class_specs(3) == specs[:3]  # a class does not depend on the number of classes
    tints = np.array([c.background_rgb for c in specs[:10]], np.float32)
    d = np.linalg.norm(tints[:, None] - tints[None], axis=2) + 1e3 * np.eye(10)
    assert d.min() > 20  # the ten default backgrounds are far apart in mean colour


def test_cli(tmp_path, capsys):
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), os.pardir, "tools", "make_synthetic_imagenet.py")
    spec = importlib.util.spec_from_file_location("make_synthetic_imagenet", path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    args = [
        "--root",
        str(tmp_path),
        "--quick",
        "--num-classes",
        "2",
        "--train-per-class",
        "3",
        "--val-per-class",
        "2",
        "--coco-train",
        "1",
        "--coco-val",
        "1",
        "--seed",
        "7",
    ]
    summary = cli.main(args)
    assert summary["params"] == dict(
        num_classes=2,
        train_per_class=3,
        val_per_class=2,
        boxed_fraction=0.6,
        context_prob=0.8,
        image_size=[96, 160],
        seed=7,
        coco_train=1,
        coco_val=1,
    )
    assert "written in" in capsys.readouterr().out
    assert cli.main(args)["cached"] and "already there" in capsys.readouterr().out
    quick = cli.build_parser().parse_args(["--root", "x", "--quick"])
    assert (
        quick.quick
        and synthetic.QUICK_SIZES["num_classes"] < synthetic.DEFAULT_SIZES["num_classes"]
    )
