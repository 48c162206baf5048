"""The index cache: reused while the tree is unchanged, rebuilt when it changes; and the
parallel indexer agrees with the serial one."""

import logging
import os

import numpy as np
import pytest

from als_d2.data.datasets import (
    imagenet,
    imagenet_index,
    index_cache,
    load_imagenet_dicts,
    load_imagenet_index,
)

import ilsvrc_fixtures as fx


pytestmark = pytest.mark.usefixtures("private_index_cache")


def cache_files(tmp_path):
    folder = tmp_path / "cache" / "index"
    return sorted(p for p in os.listdir(folder) if p.endswith(".pkl")) if folder.exists() else []


def forbid_indexing(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("re-indexed although the cache is valid")

    monkeypatch.setattr(imagenet_index, "parse_ilsvrc_xml", boom)
    monkeypatch.setattr(imagenet, "build_index", boom)


@pytest.fixture
def tree(tmp_path):
    return fx.make_imagenet_tree(
        str(tmp_path / "in"), layout="kaggle", n_classes=3, train_per_class=4
    )


def test_second_load_reads_the_cache(tree, tmp_path, monkeypatch):
    first = load_imagenet_dicts(tree.root, "train")
    assert len(cache_files(tmp_path)) == 1
    forbid_indexing(monkeypatch)
    assert load_imagenet_dicts(tree.root, "train") == first
    assert load_imagenet_dicts(tree.root, "train", subset="mask")  # subsets share the index
    assert len(cache_files(tmp_path)) == 1


def test_cache_is_keyed_by_root_split_layout(tree, tmp_path):
    load_imagenet_dicts(tree.root, "train")
    load_imagenet_dicts(tree.root, "val")
    load_imagenet_dicts(tree.root, "val", layout="kaggle")  # "auto" resolves to the same key
    assert len(cache_files(tmp_path)) == 2
    other = fx.make_imagenet_tree(str(tmp_path / "other"), n_classes=2)
    load_imagenet_dicts(other.root, "val")
    assert len(cache_files(tmp_path)) == 3


def test_use_cache_false_writes_nothing(tree, tmp_path):
    load_imagenet_dicts(tree.root, "train", use_cache=False)
    assert cache_files(tmp_path) == []


@pytest.mark.parametrize(
    "change", ["add_image", "add_xml", "remove_image", "edit_csv", "edit_mapping"]
)
def test_tree_changes_invalidate_the_cache(tree, change):
    before = {d["image_id"]: d for d in load_imagenet_dicts(tree.root, "train")}
    w = tree.wnids
    unboxed = next(im for im in tree.split_images("train") if not im.objects)
    if change == "add_image":
        new = tree.add_image("train", w[1], (40, 40), [])
    elif change == "add_xml":
        path = os.path.join(tree.ann_dir("train"), unboxed.wnid, unboxed.stem + ".xml")
        fx.write_text(
            path,
            fx.ilsvrc_xml_text(
                unboxed.wnid, unboxed.stem, unboxed.size, [(unboxed.wnid, (1, 2, 9, 9))]
            ),
        )
    elif change == "remove_image":
        os.remove(unboxed.path)
    elif change == "edit_csv":
        rows = {unboxed.stem: f"{unboxed.wnid} 3 3 8 8 {unboxed.wnid} 1 1 7 7 "}
        fx.write_loc_solution_csv(tree.csv_path("train"), rows)
    elif change == "edit_mapping":
        fx.write_synset_mapping(tree.mapping_path, [(wn, f"renamed {wn}") for wn in w])
    after = {d["image_id"]: d for d in load_imagenet_dicts(tree.root, "train")}
    if change == "add_image":
        assert set(after) - set(before) == {new.stem}
    elif change == "add_xml":
        assert after[unboxed.stem]["annotations"][0]["bbox"] == [1, 2, 9, 9]
    elif change == "remove_image":
        assert set(before) - set(after) == {unboxed.stem}
    elif change == "edit_csv":
        assert [a["bbox"] for a in after[unboxed.stem]["annotations"]] == [
            [3, 3, 8, 8],
            [1, 1, 7, 7],
        ]
    elif change == "edit_mapping":
        assert load_imagenet_index(tree.root, "train")["names"] == [f"renamed {wn}" for wn in w]


def test_corrupt_cache_is_rebuilt_with_a_warning(tree, tmp_path, caplog):
    first = load_imagenet_dicts(tree.root, "train")
    (path,) = cache_files(tmp_path)
    full = tmp_path / "cache" / "index" / path
    full.write_bytes(full.read_bytes()[:100])
    logger = logging.getLogger(index_cache.__name__)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        assert load_imagenet_dicts(tree.root, "train") == first
    finally:
        logger.removeHandler(handler)
    assert any("unreadable index cache" in r.getMessage() for r in records)


def test_parallel_index_equals_serial(tmp_path):
    tree = fx.make_imagenet_tree(
        str(tmp_path / "in"), n_classes=4, train_per_class=5, val_per_class=3
    )
    for split in ("train", "val"):
        serial = imagenet_index.build_index(
            tree.root, split, "standard", num_workers=1, show_progress=False
        )
        parallel = imagenet_index.build_index(
            tree.root, split, "standard", num_workers=2, show_progress=False
        )
        for key in ("wnids", "names", "rel_paths", "stats"):
            assert serial[key] == parallel[key]
        for key in ("labels", "sizes", "box_image", "box_cat", "box_xyxy"):
            np.testing.assert_array_equal(serial[key], parallel[key])


def test_fingerprint_sees_added_file_within_the_same_mtime_tick(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    before = index_cache.tree_fingerprint([str(folder)])
    st = os.stat(folder)
    (folder / "x.JPEG").write_bytes(b"")
    os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))  # as on a coarse-mtime filesystem
    assert index_cache.tree_fingerprint([str(folder)]) != before
