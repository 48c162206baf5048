"""The hardened ILSVRC XML parser: real files, broken files, hostile files."""

import gzip
import pickle

import pytest
from lxml import etree

from als_d2.data.datasets import (
    IlsvrcXmlError,
    parse_ilsvrc_xml,
)
from als_d2.data.datasets import ilsvrc_xml
from als_d2.data.datasets.imagenet import prepared_path

import ilsvrc_fixtures as fx

SECRET = "TOP-SECRET-7f3a9c"


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + "\n")
    return str(path)


def test_parses_a_real_ilsvrc_file(tmp_path):
    objects = [("n01440764", (55, 85, 327, 274)), ("n01440764", (1.5, 2, 30, 40.25))]
    path = fx.write_text(
        str(tmp_path / "a.xml"),
        fx.ilsvrc_xml_text("n01440764", "n01440764_18", (500, 375), objects),
    )
    ann = parse_ilsvrc_xml(path)
    assert (ann.width, ann.height) == (500, 375)
    assert ann.objects == [
        ("n01440764", (55.0, 85.0, 327.0, 274.0)),
        ("n01440764", (1.5, 2.0, 30.0, 40.25)),
    ]
    assert ann.bad_objects == []


@pytest.mark.parametrize(
    "text, reason",
    [
        ("<annotation><size><width>5</width>", "not well-formed"),
        ("", "not well-formed"),
        ("<voc><size><width>5</width><height>5</height></size></voc>", "expected <annotation>"),
        ("<annotation><size><height>5</height></size></annotation>", "missing <size><width>"),
        (
            "<annotation><size><width>0</width><height>5</height></size></annotation>",
            "positive integer",
        ),
        (
            "<annotation><size><width>ten</width><height>5</height></size></annotation>",
            "not a number",
        ),
        (
            "<annotation><size><width>7.5</width><height>5</height></size></annotation>",
            "positive integer",
        ),
    ],
)
def test_bad_files_raise_naming_the_file(tmp_path, text, reason):
    path = fx.write_text(str(tmp_path / "n01440764_1.xml"), text)
    with pytest.raises(IlsvrcXmlError, match=reason) as info:
        parse_ilsvrc_xml(path)
    assert path in str(info.value) and info.value.path == path


def test_bad_objects_are_reported_and_the_rest_kept(tmp_path):
    text = fx.ilsvrc_xml_text("n1", "x", (50, 50), [("n1", (1, 2, 3, 4))] * 5)
    parts = text.split("<object>")
    parts[1] = parts[1].replace("<xmin>1</xmin>", "<xmin>1,5</xmin>")
    parts[2] = parts[2].replace("<ymax>4</ymax>", "<ymax>nan</ymax>")
    parts[3] = parts[3].replace("<name>n1</name>", "<name></name>")
    parts[4] = parts[4].replace("<xmax>3</xmax>", "")
    path = fx.write_text(str(tmp_path / "x.xml"), "<object>".join(parts))
    ann = parse_ilsvrc_xml(path)
    assert ann.objects == [("n1", (1.0, 2.0, 3.0, 4.0))]
    assert len(ann.bad_objects) == 4
    assert any("not a number" in r for r in ann.bad_objects)
    assert any("not finite" in r for r in ann.bad_objects)
    assert any("without <name>" in r for r in ann.bad_objects)
    assert any("missing <xmax>" in r for r in ann.bad_objects)


def test_size_cap(tmp_path):
    body = fx.ilsvrc_xml_text("n1", "x", (50, 50), [("n1", (1, 2, 3, 4))])
    padded = body.replace("<segmented>", " " * (ilsvrc_xml.MAX_XML_BYTES + 10) + "<segmented>")
    path = fx.write_text(str(tmp_path / "big.xml"), padded)
    with pytest.raises(IlsvrcXmlError, match="byte limit"):
        parse_ilsvrc_xml(path)
    assert parse_ilsvrc_xml(path, max_bytes=2 * ilsvrc_xml.MAX_XML_BYTES).objects  # only the cap


def test_billion_laughs_is_not_expanded(tmp_path):
    data = fx.BILLION_LAUGHS.replace("{w}", "50").replace("{h}", "50")
    path = fx.write_text(str(tmp_path / "lol.xml"), data)
    with pytest.raises(IlsvrcXmlError, match="DOCTYPE"):
        parse_ilsvrc_xml(path)
    # The parser alone (without the DOCTYPE refusal in front of it) does not expand either.
    try:
        root = etree.fromstring(data.encode(), ilsvrc_xml._parser())
    except etree.XMLSyntaxError as e:  # libxml2's own amplification guard may refuse it
        assert "amplification" in str(e) or "entity" in str(e).lower()
    else:
        assert root.find("object/name").text is None  # an unexpanded entity reference
        assert len(etree.tostring(root)) < 1000


@pytest.mark.parametrize("template", [fx.XXE, fx.XXE_PARAMETER])
def test_xxe_does_not_read_local_files(tmp_path, secret_file, template):
    data = template.replace("{target}", secret_file).replace("{w}", "50").replace("{h}", "50")
    path = fx.write_text(str(tmp_path / "xxe.xml"), data)
    with pytest.raises(IlsvrcXmlError, match="DOCTYPE") as info:
        parse_ilsvrc_xml(path)
    assert SECRET not in str(info.value)
    root = etree.fromstring(data.encode(), ilsvrc_xml._parser())
    assert SECRET not in etree.tostring(root.getroottree()).decode()
    assert all(SECRET not in (t or "") for t in root.itertext())


def test_hostile_files_in_a_tree_are_counted_and_leak_nothing(tmp_path, secret_file):
    tree = fx.FixtureTree(str(tmp_path / "in"), "standard", fx.wnid_names(2))
    a = tree.wnids[0]
    lol = tree.add_image("train", a, (50, 50), [(a, (1, 1, 5, 5))])
    xxe = tree.add_image("train", a, (50, 50), [(a, (1, 1, 5, 5))])
    fine = tree.add_image("train", a, (50, 50), [(a, (1, 1, 5, 5))])
    fx.write_text(lol.xml_path, fx.BILLION_LAUGHS.replace("{w}", "50").replace("{h}", "50"))
    fx.write_text(
        xxe.xml_path,
        fx.XXE.replace("{target}", secret_file).replace("{w}", "50").replace("{h}", "50"),
    )
    dicts = {d["image_id"]: d for d in fx.prepared_dicts(tree.root, "train")}
    assert dicts[lol.stem]["annotations"] == [] and dicts[xxe.stem]["annotations"] == []
    assert len(dicts[fine.stem]["annotations"]) == 1
    index = fx.prepared_index(tree.root, "train")
    assert index["stats"]["bad_xml"] == 2
    assert SECRET.encode() not in pickle.dumps((dicts, index))
    with gzip.open(prepared_path(tree.root, "train"), "rb") as f:
        assert SECRET.encode() not in f.read()  # nor in the prepared file
