"""The ImageNet prepare step: tools/prepare_imagenet.py writes one file per split that
registration reads."""

import gzip
import json
import os
import re
import uuid

import pytest
from detectron2.data import DatasetCatalog
from detectron2.structures import BoxMode

from als_d2.data.datasets import load_imagenet_dicts, register_imagenet
from als_d2.data.datasets.catalog import DatasetNotPreparedError

from forked_tools import run_tool
import ilsvrc_fixtures as fx
from tiny_data import load_tool


@pytest.fixture
def tree(tmp_path):
    return fx.make_imagenet_tree(
        str(tmp_path / "in"), layout="kaggle", n_classes=3, train_per_class=4
    )


def test_prepare_tool_writes_what_the_loader_reads(tree, tmp_path, capsys):
    assert load_tool("prepare_imagenet").main(["--root", tree.root, "--quiet"]) == 0
    printed = capsys.readouterr().out
    for split in ("train", "val"):
        path = os.path.join(tree.root, f"als_d2_{split}.json.gz")
        assert f"{split}: {path}" in printed
        with gzip.open(path, "rt") as f:
            content = json.load(f)  # plain JSON
        images = tree.split_images(split)
        assert len(content["images"]) == len(images)
        assert content["stats"]["images"] == len(images)
        assert content["wnids"] == sorted(tree.wnids)
        # the loader's dicts: from the file, as the fixture wrote them
        dicts = {d["file_name"]: d for d in load_imagenet_dicts(tree.root, split)}
        for im in images:
            d = dicts[im.path]
            assert d["label"] == sorted(tree.wnids).index(im.wnid)
            want = sorted([sorted(tree.wnids).index(w), list(map(float, b))] for w, b in im.objects)
            got = sorted([a["category_id"], a["bbox"]] for a in d["annotations"])
            assert got == want and all(a["bbox_mode"] == BoxMode.XYXY_ABS for a in d["annotations"])


def test_output_dir_and_index_file(tree, tmp_path, registered):
    out = str(tmp_path / "prepared")
    tool = load_tool("prepare_imagenet")
    assert tool.main(["--root", tree.root, "--splits", "val", "--output-dir", out, "--quiet"]) == 0
    assert not os.path.exists(os.path.join(tree.root, "als_d2_val.json.gz"))
    name = f"t_{uuid.uuid4().hex[:8]}"
    index_file = os.path.join(out, "als_d2_val.json.gz")
    register_imagenet(name, tree.root, "val", index_file=index_file)
    registered.append(name)
    assert len(DatasetCatalog.get(name)) == len(tree.split_images("val"))


def test_missing_prepared_file_names_the_command(tree, registered):
    name = f"t_{uuid.uuid4().hex[:8]}"
    register_imagenet(name, tree.root, "train")
    registered.append(name)
    command = f"python tools/prepare_imagenet.py --root {tree.root} --splits train"
    with pytest.raises(DatasetNotPreparedError, match=re.escape(command)):
        DatasetCatalog.get(name)


def test_tool_error_is_one_line(tmp_path, capsys):
    root = tmp_path / "in"
    fx.write_jpeg(str(root / "val" / "ILSVRC2012_val_00000001.JPEG"), (10, 10))
    assert load_tool("prepare_imagenet").main(["--root", str(root), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "LOC_synset_mapping.txt" in err and "\n" not in err


def test_loading_leaves_the_garbage_collector_as_it_was(tree):
    """The loader pauses Python's cyclic GC while it builds the dicts (speed); it must
    restore the caller's setting, also when the prepared file is bad."""
    import gc

    from als_d2.data.datasets import prepare_imagenet, prepared_path

    prepare_imagenet(tree.root, splits=["val"])
    n = len(tree.split_images("val"))
    try:
        for enabled in (True, False):
            gc.enable() if enabled else gc.disable()
            assert len(load_imagenet_dicts(tree.root, "val")) == n
            assert gc.isenabled() == enabled
        gc.enable()
        with open(prepared_path(tree.root, "val"), "r+b") as f:
            f.truncate(40)
        with pytest.raises(ValueError, match="not a readable prepared ImageNet index"):
            load_imagenet_dicts(tree.root, "val")
        assert gc.isenabled()
    finally:
        gc.enable()


def test_prepare_benchmark_runs_and_prints_json_last(tmp_path):
    """benchmarks/prepare.py on a tiny generated tree (no timing asserted): the tree has
    what was asked for, and the prepared file indexes all of it."""

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tree_dir = str(tmp_path / "bench")
    args = ["--images", "30", "--classes", "3", "--boxed", "0.5", "--val", "4", "--reps", "1"]
    proc = run_tool(
        [os.path.join(repo, "benchmarks", "prepare.py"), "--tree", tree_dir]
        + args
        + ["--checkout", repo],
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    name = os.path.basename(repo)
    assert set(result["median_s"][name]) == {"train_w1", "val_w1"}
    assert result["images"] == {"train": 30, "boxed": 0.5, "val": 4}
    jpegs = [f for _, _, fs in os.walk(os.path.join(tree_dir, "train")) for f in fs]
    xmls = [f for _, _, fs in os.walk(os.path.join(tree_dir, "bbox", "train")) for f in fs]
    with open(os.path.join(tree_dir, "LOC_train_solution.csv")) as f:
        rows = f.read().splitlines()[1:]
    assert len(jpegs) == 30 and len(xmls) == len(rows) > 0
    with gzip.open(os.path.join(tree_dir + "_prepared", "als_d2_train.json.gz"), "rt") as f:
        prepared = json.load(f)
    assert len(prepared["images"]) == 30
    assert sum(1 for im in prepared["images"] if im[4]) == len(xmls)
