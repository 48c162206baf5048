"""The files the prepare steps write (``tools/prepare_imagenet.py``,
``tools/prepare_openimages.py``) and registration reads: gzipped JSON, one object per
file with a ``format`` key, written deterministically (no time or file name in the gzip
header, compact separators: the same content gives the same bytes) to a temporary name,
then renamed. A missing file is a :class:`.catalog.DatasetNotPreparedError` naming the
prepare command; there is no cache, lock or fingerprint: after the tree changes, run the
prepare step again.
"""

import contextlib
import gc
import gzip
import io
import json
import os

from .catalog import DatasetNotPreparedError

__all__ = ["gc_paused", "read_prepared_file", "write_prepared_file"]


def write_prepared_file(path: str, content: dict, compresslevel: int = 6) -> None:
    """Write ``content`` (JSON-serialisable, with a ``format`` key) to ``path``
    (``compresslevel`` 1: 3x faster, 6% larger on OpenImages' packed arrays)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    # no time or name in the gzip header: the same tree prepares to the same bytes
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0) as gz,
        io.TextIOWrapper(gz, encoding="utf-8") as f,
    ):
        json.dump(content, f, separators=(",", ":"))
    os.replace(tmp, path)


def read_prepared_file(path: str, fmt: str, kind: str, what: str, command: str) -> dict:
    """The content of the prepared file ``path`` of format ``fmt``. ``kind`` (e.g.
    "ImageNet index"), ``what`` (e.g. "ImageNet train at ROOT") and ``command`` (the
    prepare command) make the errors:
    :class:`.catalog.DatasetNotPreparedError` when it is missing, ValueError when it is
    not a prepared file of that format."""
    if not os.path.isfile(path):
        raise DatasetNotPreparedError(f"{what}: {path} not found; prepare it with: {command}")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f, gc_paused():
            content = json.load(f)
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(
            f"{path} is not a readable prepared {kind} ({e}); run again: {command}"
        ) from None
    if not isinstance(content, dict) or content.get("format") != fmt:
        raise ValueError(f"{path} is not a prepared {kind} of format {fmt}; run again: {command}")
    return content


@contextlib.contextmanager
def gc_paused():
    """Python's cyclic garbage collector off while a split's containers are made: with
    torch and detectron2 imported, its full passes over the heap took ~90% of the time of
    reading a prepared file into dicts (``benchmarks/prepare.py``: 2.5 s -> 0.3 s for 20k
    images). The JSON lists and the dicts hold no reference cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
