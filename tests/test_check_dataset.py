"""tools/check_dataset.py on a tree with one of every kind of bad input: each is reported
by file under its kind, the exit status says whether training would fail, and hostile
files (a decompression bomb header, a billion-laughs XML) stay cheap."""

import io
import json
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from forked_tools import run_tool
import ilsvrc_fixtures as fx
from tiny_data import load_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "check_dataset.py")


@pytest.fixture(scope="module")
def tool():
    return load_tool("check_dataset")


def png_header_only(path, width, height):
    """A PNG whose header claims width x height pixels, with (almost) no pixel data."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b"")
        )


def jpeg_bytes(size=(40, 30), mode="RGB", **save):
    buf = io.BytesIO()
    Image.new(mode, size, 128 if mode == "L" else (10, 200, 30, 0)[: len(mode)]).save(
        buf, "JPEG", **save
    )
    return buf.getvalue()


def write(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


@pytest.fixture
def hostile(tmp_path):
    """A Kaggle-layout tree with every kind of problem; returns (tree, {kind: [file markers]})."""
    tree = fx.FixtureTree(str(tmp_path / "imagenet"), "kaggle", fx.wnid_names(3))
    a, b, c = tree.wnids
    expect = {}

    def note(kind, marker):
        expect.setdefault(kind, []).append(marker)

    good = tree.add_image("train", a, (40, 30), [(a, (1, 1, 20, 20))], csv_row=True)
    tree.add_image("train", b, (40, 30), [(b, (2, 2, 30, 20))])
    tree.add_image("train", c, (40, 30), [])
    # annotations
    broken = tree.add_image("train", a, (40, 30), [(a, (1, 1, 10, 10))])
    fx.write_text(broken.xml_path, "<annotation><size><width>40</width>")
    note("bad_xml", broken.xml_path)
    nosize = tree.add_image("train", a, (40, 30), [(a, (1, 1, 10, 10))])
    fx.write_text(
        nosize.xml_path,
        fx.ilsvrc_xml_text(a, nosize.stem, (40, 30), nosize.objects).replace(
            "<width>40</width>", ""
        ),
    )
    note("bad_xml", nosize.xml_path)
    laughs = tree.add_image("train", b, (40, 30), [(b, (1, 1, 10, 10))])
    fx.write_text(laughs.xml_path, fx.BILLION_LAUGHS.format(w=40, h=30))
    note("bad_xml", laughs.xml_path)
    mixed = tree.add_image(
        "train",
        b,
        (40, 30),
        [
            (b, (1, 1, 10, 10)),
            ("n00000042", (1, 1, 5, 5)),
            (b, (20, 20, 10, 10)),
            (b, (30, 10, 80, 60)),
        ],
    )
    text = fx.ilsvrc_xml_text(b, mixed.stem, (40, 30), mixed.objects).replace(
        "<xmin>1</xmin>", "<xmin>one</xmin>", 1
    )
    fx.write_text(mixed.xml_path, text)
    note("bad_objects", mixed.xml_path)  # non-numeric coordinate
    note("unknown_wnid", mixed.xml_path)
    note("degenerate_boxes", mixed.xml_path)  # inverted
    note("clipped_boxes", mixed.xml_path)  # outside the image
    resized = tree.add_image("train", c, (60, 40), [(c, (3, 3, 15, 15))], xml_size=(120, 80))
    note("rescaled_files", resized.xml_path)
    notimage = tree.add_image("train", c, (40, 30), [(c, (1, 1, 10, 10))])
    write(notimage.path, b"GIF89a but not really")
    note("unreadable_images", notimage.path)
    # listings
    fx.write_text(
        os.path.join(tree.ann_dir("train"), a, f"{a}_424242.xml"),
        fx.ilsvrc_xml_text(a, "x", (9, 9), []),
    )
    note("orphan_xml", f"{a}_424242.xml")
    fx.write_jpeg(os.path.join(tree.image_dir("train"), "n55555555", "n55555555_1.JPEG"), (9, 9))
    note("unknown_folders", "n55555555")
    fx.write_text(os.path.join(tree.image_dir("train"), a, "README.txt"), "hello")
    note("non_image_files", "README.txt")
    # paths outside the root: a symlinked image and a symlinked XML
    outside = tmp_path / "secret"
    outside.mkdir()
    write(str(outside / "passwd.JPEG"), jpeg_bytes())
    os.symlink(
        str(outside / "passwd.JPEG"), os.path.join(tree.image_dir("train"), a, f"{a}_31337.JPEG")
    )
    note("outside_root", f"{a}_31337.JPEG")
    fx.write_text(str(outside / "x.xml"), fx.ilsvrc_xml_text(b, "x", (40, 30), [(b, (1, 1, 5, 5))]))
    linked = tree.add_image("train", b, (40, 30), [])
    os.symlink(str(outside / "x.xml"), os.path.join(tree.ann_dir("train"), b, linked.stem + ".xml"))
    note("outside_root", linked.stem + ".xml")
    # duplicates: the same file in two class folders
    dup = os.path.join(tree.image_dir("train"), b, os.path.basename(good.path))
    write(dup, open(good.path, "rb").read())
    note("duplicate_images", dup)
    note("duplicate_content", dup)
    # images: zero bytes, truncated, PNG under .JPEG, CMYK, greyscale, EXIF-rotated, a bomb
    images = {
        "empty_images": b"",
        "undecodable_images": jpeg_bytes((64, 48))[:300],
        "format_mismatch": None,
        "converted_images": jpeg_bytes(mode="CMYK"),
        "exif_rotated": None,
        "decompression_bombs": None,
    }
    for kind, data in images.items():
        im = tree.add_image("train", c, (40, 30), [])
        if kind == "format_mismatch":
            Image.new("RGB", (40, 30), (1, 2, 3)).save(im.path, "PNG")
        elif kind == "exif_rotated":
            exif = Image.Exif()
            exif[0x0112] = 6
            write(im.path, jpeg_bytes(exif=exif.tobytes()))
        elif kind == "decompression_bombs":
            png_header_only(im.path, 40000, 40000)  # 1.6 Gpixel: decoding would need 4.8 GB
        else:
            write(im.path, data)
        note(kind, im.path)
    grey = tree.add_image("train", c, (40, 30), [])
    write(grey.path, jpeg_bytes(mode="L"))
    note("converted_images", grey.path)
    # CSV: a bad box string, a row without image, an ImageId that is a path
    tree.add_image("train", a, (40, 30), [(a, (1, 1, 9, 9))], xml=False, csv_row=True)
    tree.write_csvs()
    with open(tree.csv_path("train"), "a") as f:
        f.write(f"{a}_5555,{a} 1 1 9 9 \n")
        f.write(f"../../etc/passwd,{a} 1 1 9 9 \n")
    with open(tree.csv_path("train")) as f:
        rows = f.read().splitlines()
    rows[1] = rows[1].split(",")[0] + f",{a} 1 x 5 5 {a} 1 1 9 9 {a} 7"
    with open(tree.csv_path("train"), "w") as f:
        f.write("\n".join(rows) + "\n")
    note("bad_csv_groups", good.stem)
    note("orphan_csv_rows", f"{a}_5555")
    note("outside_root", "../../etc/passwd")
    # val: fine except an image without any label
    tree.add_image("val", a, (40, 30), [(a, (1, 1, 9, 9))])
    tree.add_image("val", b, (40, 30), [(b, (2, 2, 9, 9))])
    tree.add_image("val", c, (40, 30), [], xml=False)
    note("unlabeled_images", "ILSVRC2012_val_00000003")
    return tree, expect


def run_main(tool, capsys, *argv):
    rc = tool.main(["--workers", "1", "--quiet", *argv])
    return rc, capsys.readouterr().out


def test_every_kind_is_reported_by_file(tool, hostile, tmp_path, capsys, monkeypatch):
    tree, expect = hostile
    from PIL import ImageFile

    decoded = []  # pixels of every image decoded (--workers 1: in this process)
    real_load = ImageFile.ImageFile.load

    def load(self):
        decoded.append(self.size[0] * self.size[1])
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    rc, out = run_main(tool, capsys, "--root", tree.root, "--json", str(tmp_path / "r.json"))
    monkeypatch.undo()
    # hostile files stay cheap: the 1.6 Gpixel bomb is refused from its header, never decoded
    assert decoded and max(decoded) < 10**6, max(decoded, default=None)
    report = json.load(open(tmp_path / "r.json"))
    problems = {}  # kind -> files, both splits
    for split in ("train", "val"):
        for kind, p in report["splits"][split]["problems"].items():
            assert p["count"] == len(p["files"])
            problems.setdefault(kind, []).extend(p["files"])
    for kind, markers in expect.items():
        assert kind in problems, (kind, out)
        files = "\n".join(problems[kind])
        for marker in markers:
            assert marker in files, (kind, marker, files)
        assert len(problems[kind]) >= len(markers)
        assert f"{kind}: " in out and markers[0] in out  # the text report too
    # exact counts where the tree fixes them
    train = report["splits"]["train"]["problems"]
    assert train["bad_xml"]["count"] == 3 and train["outside_root"]["count"] == 3
    assert train["empty_images"]["count"] == 1 and train["decompression_bombs"]["count"] == 1
    assert train["converted_images"]["count"] == 2
    # train skips these: training runs, and val is clean -> exit 0; --strict fails
    assert rc == 0 and not report["fails"], out
    assert "would run" in out
    rc, _ = run_main(tool, capsys, "--root", tree.root, "--strict", "--no-decode")
    assert rc == 1


def test_undecodable_val_image_fails_evaluation(tool, tmp_path, capsys):
    tree = fx.FixtureTree(str(tmp_path / "imagenet"), "standard", fx.wnid_names(2))
    a, b = tree.wnids
    for w in (a, b):
        tree.add_image("train", w, (40, 30), [(w, (1, 1, 9, 9))])
        tree.add_image("val", w, (40, 30), [(w, (1, 1, 9, 9))])
    bad = tree.add_image(
        "val", a, (40, 30), [], xml=False, in_folder=True
    )  # labelled by its folder
    write(bad.path, jpeg_bytes((64, 48))[:200])
    rc, out = run_main(tool, capsys, "--root", tree.root, "--list", "5")
    assert rc == 1
    assert "would FAIL" in out and bad.path in out and "evaluation stops" in out
    rc, out = run_main(tool, capsys, "--root", tree.root, "--splits", "train")
    assert rc == 0 and "no problems" in out


def test_reader_errors_are_fatal_and_name_the_file(tool, tmp_path, capsys):
    tree = fx.FixtureTree(str(tmp_path / "imagenet"), "kaggle", fx.wnid_names(2))
    a, b = tree.wnids
    for w in (a, b):
        tree.add_image("train", w, (40, 30), [(w, (1, 1, 9, 9))], csv_row=True)
    tree.add_image("val", a, (40, 30), [(a, (1, 1, 9, 9))])
    tree.write_csvs()
    stem = tree.split_images("train")[0].stem
    with open(tree.csv_path("train"), "a") as f:
        f.write(f"{stem},{a} 2 2 8 8 \n")  # the same ImageId twice
    rc, out = run_main(tool, capsys, "--root", tree.root, "--no-decode")
    assert rc == 1
    assert (
        "index_error" in out
        and "LOC_train_solution.csv" in out
        and f"ImageId {stem} appears twice (lines 2, 4)" in out
    )
    # an empty split: no usable image
    empty = fx.FixtureTree(str(tmp_path / "empty"), "standard", fx.wnid_names(2))
    os.makedirs(empty.image_dir("train"))
    rc, out = run_main(tool, capsys, "--root", empty.root, "--splits", "train")
    assert rc == 1 and "empty_split" in out


def test_command_line_exit_status_and_json(hostile, tmp_path):
    tree, _ = hostile
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = run_tool(
        [
            TOOL,
            "--root",
            tree.root,
            "--workers",
            "2",
            "--quiet",
            "--strict",
            "--json",
            str(tmp_path / "r.json"),
        ],
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # --strict: skipped problems fail
    report = json.load(open(tmp_path / "r.json"))
    assert report["splits"]["train"]["problems"]["decompression_bombs"]["count"] == 1
    assert report["splits"]["train"]["problems"]["undecodable_images"]["count"] >= 1
    proc = run_tool(
        [TOOL, "--root", str(tmp_path / "nope")],
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2 and "not a folder" in proc.stderr


def test_csv_row_of_an_unknown_wnid_is_named_as_such(tool, tmp_path, capsys):
    """A val image whose CSV row names only a wnid outside LOC_synset_mapping.txt is an
    unknown label, not an image without a label."""
    tree = fx.FixtureTree(str(tmp_path / "imagenet"), "kaggle", fx.wnid_names(2))
    a, b = tree.wnids
    for w in (a, b):
        tree.add_image("train", w, (40, 30), [(w, (1, 1, 9, 9))], csv_row=True)
        tree.add_image("val", w, (40, 30), [(w, (1, 1, 9, 9))], csv_row=True, xml=False)
    stray = "n99999999"
    im = tree.add_image("val", a, (40, 30), [(stray, (1, 1, 9, 9))], csv_row=True, xml=False)
    tree.write_csvs()
    rc, out = run_main(tool, capsys, "--root", tree.root, "--no-decode", "--list", "5")
    assert rc == 0, out
    assert "unlabeled_images" not in out
    line = next(s for s in out.splitlines() if "unknown_labels:" in s)
    assert line.split("unknown_labels:")[1].split()[0] == "1", line
    assert f"{im.stem}.JPEG: {stray} not in LOC_synset_mapping.txt" in out


def test_summary_counts_every_fatal_reason_and_duplicates_are_noted(tool, tmp_path, capsys):
    """An undecodable val image is fatal (evaluation stops): the summary's fatal count says
    so (it read '0 fatal' above 'would FAIL'); identical files are noted, not 'fixed'."""
    tree = fx.FixtureTree(str(tmp_path / "imagenet"), "standard", fx.wnid_names(2))
    a, b = tree.wnids
    for w in (a, b):
        tree.add_image("train", w, (40, 30), [(w, (1, 1, 9, 9))])
        tree.add_image("val", w, (40, 30), [(w, (1, 1, 9, 9))])
    bad = tree.add_image("val", a, (40, 30), [], xml=False, in_folder=True)
    write(bad.path, jpeg_bytes((64, 48))[:200])
    twin = tree.add_image("train", a, (40, 30), [], xml=False)
    with open(tree.split_images("train")[0].path, "rb") as f:
        write(twin.path, f.read())
    rc, out = run_main(tool, capsys, "--root", tree.root)
    assert rc == 1 and "would FAIL" in out
    summary = next(s for s in out.splitlines() if s.startswith("Summary:"))
    assert summary.startswith("Summary: 1 fatal,"), summary
    assert "[noted] duplicate_content: 1" in out and "[fixed] duplicate_content" not in out


def test_boxes_outside_resized_images_fail(tool, tmp_path, capsys):
    """A resized copy of the images with the original CSV boxes: most boxes reach outside
    their images; training would run with wrong objectness, so the check fails."""
    tree = fx.FixtureTree(str(tmp_path / "imagenet"), "kaggle", fx.wnid_names(2))
    a, b = tree.wnids
    for w in (a, b, a, b):
        # boxes written for a 160x120 original, images 40x30
        tree.add_image("train", w, (40, 30), [(w, (50, 40, 150, 110))], csv_row=True)
    tree.add_image("train", a, (40, 30), [(a, (1, 1, 9, 9))], csv_row=True)
    tree.write_csvs()
    rc, out = run_main(tool, capsys, "--root", tree.root, "--splits", "train", "--no-decode")
    assert rc == 1, out
    assert "would FAIL" in out and "train: 4 of 5 boxes reach outside their images" in out


def test_one_table_of_problem_kinds_for_the_reader_and_the_report(tool, hostile):
    """check_dataset reports with the readers' table (the same object), and every problem
    the reader counts on a tree with one of each is a row of it: skipped, or fixed."""
    from als_d2.data.datasets import imagenet_index, indexing

    assert tool.KINDS is indexing.KINDS
    tree, _ = hostile
    totals = {"images", "boxed_images", "objects", "classes"}
    for split in ("train", "val"):
        stats = imagenet_index.build_index(tree.root, split, "kaggle", show_progress=False)["stats"]
        counted = {k for k, n in stats.items() if n and k not in totals}
        assert counted, split
        for kind in counted:
            assert indexing.KINDS[kind][0] in (indexing.SKIPPED, indexing.FIXED), kind


def test_openimages_tree_every_kind_reported_by_file_and_line(tool, tmp_path, capsys):
    """An OpenImages tree (found by its class descriptions file) with one of each problem
    the reader counts: every kind listed with its count and each bad CSV row by file:line;
    skipped problems in train only: exit 0 (--strict: 1); an undecodable val image: 1."""
    import openimages_fixtures as ofx

    root, index_counts, label_counts = ofx.write_hostile_tree(str(tmp_path / "oi"))
    rc, out = run_main(tool, capsys, "--root", root, "--json", str(tmp_path / "r.json"))
    assert rc == 0, out
    assert f"Dataset {root} (openimages layout)" in out and "would run" in out
    report = json.load(open(tmp_path / "r.json"))
    assert report["layout"] == "openimages" and not report["fails"]
    train = report["splits"]["train"]["problems"]
    expected = dict(index_counts)
    for kind, n in label_counts.items():  # the image-level label CSV's, under train
        expected[kind] += n
    for kind, n in expected.items():
        assert train[kind]["count"] == n and len(train[kind]["files"]) == n, (kind, train[kind])
        assert f"[{tool.KINDS[kind][0]}] {kind}: {n}  ({tool.KINDS[kind][1]})" in out
    assert train["exif_rotated"]["files"][0].startswith(os.path.join(root, "train", ""))
    # every bad row by file and line: box CSV header line 1, TINY's 25 rows, then the bad ones
    box_csv = os.path.join(root, ofx.CSV_NAMES["train"])
    bad_box_rows = ofx.BAD_TRAIN_ROWS + ofx.MORE_BAD_TRAIN_ROWS
    label_csv = os.path.join(root, ofx.IMAGE_LABELS_NAME)
    bad_label_rows = ofx.BAD_IMAGE_LABEL_ROWS
    for path, first, rows in (
        (box_csv, 27, bad_box_rows),
        (label_csv, 2 + len(ofx.IMAGE_LABELS), bad_label_rows),
    ):
        for line, (kind, _) in enumerate(rows, start=first):
            if kind != "missing_images":
                assert any(f.startswith(f"{path}:{line}: ") for f in train[kind]["files"]), (
                    kind,
                    line,
                )
                assert f"{path}:{line}: " in out
    assert set(report["splits"]) == {"train", "val"}
    assert report["splits"]["val"]["stats"]["images"] == 3
    rc, _ = run_main(tool, capsys, "--root", root, "--strict", "--no-decode")
    assert rc == 1
    # an undecodable val image: evaluation would stop
    val_image = os.path.join(root, "validation", ofx.TINY["val"][0].image_id + ".jpg")
    noise = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG")
    write(val_image, buf.getvalue()[: len(buf.getvalue()) * 6 // 10])  # the header is whole
    rc, out = run_main(tool, capsys, "--root", root, "--splits", "val", "test", "--list", "3")
    assert rc == 1 and "would FAIL" in out and "evaluation stops" in out and val_image in out
