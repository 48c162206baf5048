"""The one hardened reader of ILSVRC (PASCAL-VOC style) bounding-box XML files.

Every ILSVRC XML in als-d2 goes through :func:`parse_ilsvrc_xml`. The lxml parser never
resolves entities, never loads a DTD, never touches the network and refuses huge trees;
files above ``MAX_XML_BYTES`` are refused before parsing, and any document that declares a
DOCTYPE (billion laughs, XXE) is refused as well: real ILSVRC annotations have none.

The expected content (``<folder>`` and ``<filename>`` are not used)::

    <annotation>
      <size><width>500</width><height>375</height>...</size>
      <object>
        <name>n01440764</name>
        <bndbox><xmin>55</xmin><ymin>85</ymin><xmax>327</xmax><ymax>274</ymax></bndbox>
      </object>
      ...
    </annotation>

Problems with the whole file raise :class:`IlsvrcXmlError` (naming the file); a broken
``<object>`` is reported in ``IlsvrcAnnotation.bad_objects`` and the other objects are kept.
"""

import math
import threading
from typing import List, NamedTuple, Optional, Tuple

from lxml import etree

__all__ = ["MAX_XML_BYTES", "IlsvrcXmlError", "IlsvrcAnnotation", "parse_ilsvrc_xml"]

MAX_XML_BYTES = 1 << 20  # 1 MiB; real ILSVRC annotations are about 1 KiB
_COORDS = ("xmin", "ymin", "xmax", "ymax")
_local = threading.local()  # lxml parsers must not be shared between threads


class IlsvrcXmlError(ValueError):
    """A bounding-box XML file that cannot be used; ``path`` and ``reason`` say why."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"bad ILSVRC annotation file {path}: {reason}")
        self.path = path
        self.reason = reason


class IlsvrcAnnotation(NamedTuple):
    """One parsed XML file.

    width, height: the image size the XML claims (``<size>``), pixels, both > 0.
    objects: ``[(wnid, (x0, y0, x1, y1))]``, coordinates as written (float pixels, in the
        frame of ``width`` x ``height``; not clipped, not validated against each other).
    bad_objects: one reason per ``<object>`` that was left out (missing name or bndbox,
        missing / non-numeric / non-finite coordinate).
    """

    path: str
    width: int
    height: int
    objects: List[Tuple[str, Tuple[float, float, float, float]]]
    bad_objects: List[str]


# no entity expansion, DTD or network access, no huge trees; comments and processing
# instructions dropped
SAFE_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


def _parser() -> "etree.XMLParser":
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(**SAFE_PARSER_OPTIONS)
        _local.parser = parser
    return parser


def _text(elem, tag: str) -> Optional[str]:
    child = elem.find(tag)
    if child is None or child.text is None or len(child):  # len(child): entity refs inside
        return None
    return child.text.strip()


def _positive_int(root, tag: str, path: str) -> int:
    text = _text(root, "size/" + tag)
    if text is None:
        raise IlsvrcXmlError(path, f"missing <size><{tag}>")
    try:
        value = float(text)
    except ValueError:
        raise IlsvrcXmlError(path, f"<size><{tag}> is not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0 or value != int(value):
        raise IlsvrcXmlError(path, f"<size><{tag}> is not a positive integer: {text!r}")
    return int(value)


def _parse_object(obj) -> Tuple[Optional[Tuple[str, Tuple[float, ...]]], Optional[str]]:
    name = _text(obj, "name")
    if not name:
        return None, "<object> without <name>"
    box = obj.find("bndbox")
    if box is None:
        return None, f"<object> {name} without <bndbox>"
    coords = []
    for tag in _COORDS:
        text = _text(box, tag)
        if text is None:
            return None, f"<object> {name}: missing <{tag}>"
        try:
            value = float(text)
        except ValueError:
            return None, f"<object> {name}: <{tag}> is not a number: {text!r}"
        if not math.isfinite(value):
            return None, f"<object> {name}: <{tag}> is not finite: {text!r}"
        coords.append(value)
    return (name, tuple(coords)), None


def parse_ilsvrc_xml(path: str, max_bytes: int = MAX_XML_BYTES) -> IlsvrcAnnotation:
    """Parse one ILSVRC bounding-box XML file (local path) safely.

    Raises:
        IlsvrcXmlError: unreadable, larger than ``max_bytes``, not well-formed, declares a
            DOCTYPE/entities, root is not ``<annotation>``, or ``<size>`` is missing/invalid.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise IlsvrcXmlError(path, f"cannot read: {e}") from None
    if len(data) > max_bytes:
        raise IlsvrcXmlError(path, f"larger than the {max_bytes}-byte limit")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise IlsvrcXmlError(path, "DOCTYPE / entity declarations are not allowed")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as e:
        raise IlsvrcXmlError(path, f"not well-formed XML: {e}") from None
    if root.getroottree().docinfo.doctype:  # e.g. a DOCTYPE in another encoding
        raise IlsvrcXmlError(path, "DOCTYPE / entity declarations are not allowed")
    if root.tag != "annotation":
        raise IlsvrcXmlError(path, f"root element is <{root.tag}>, expected <annotation>")
    width = _positive_int(root, "width", path)
    height = _positive_int(root, "height", path)
    objects, bad = [], []
    for obj in root.iterfind("object"):
        parsed, reason = _parse_object(obj)
        if parsed is None:
            bad.append(reason)
        else:
            objects.append(parsed)
    return IlsvrcAnnotation(path, width, height, objects, bad)
