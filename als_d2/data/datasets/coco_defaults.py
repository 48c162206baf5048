"""COCO-format files without ``iscrowd`` / ``area``: register them so that evaluation works.

detectron2's ``load_coco_json`` accepts annotations without ``iscrowd`` and ``area`` (so a
detector trains), but ``COCOEvaluator`` hands the file itself to pycocotools, whose
``COCOeval`` reads ``gt["iscrowd"]`` and ``gt["area"]`` and stops with ``KeyError:
'iscrowd'`` after training. Many COCO-format exports (and mmdetection's
``tests/data/coco_sample.json``) omit both.

:func:`register_coco_with_defaults` is a drop-in for detectron2's
``register_coco_instances``: the dataset and the evaluator read the file with COCO's
defaults filled in (``iscrowd`` 0, ``area`` = ``w * h`` of the ``bbox``). Registration
stays lazy (nothing is read until the dataset or the evaluator asks): the metadata's
``json_file`` is ``als_d2_coco_defaults://<the file>``, which detectron2's ``PathManager``
resolves to the file itself when nothing is missing, else to a filled copy: a temporary
file of this process (in ``tempfile.gettempdir()``, removed when the process exits),
written at the first request and reused while the file's size and mtime are unchanged
(an edited file is filled again). Files that have both keys are read unchanged; nothing
is written next to them or kept between runs (filling is one JSON read and write).

For your own COCO-format data::

    from als_d2.data.datasets import register_coco_with_defaults
    register_coco_with_defaults("my_train", {}, "path/to/train.json", "path/to/images")

or, in ``tools/train_det.py``, the config key ``DATASETS.COCO_FILES`` (name, json_file,
image_root triples: :func:`register_coco_files`).

(code that opens ``MetadataCatalog.get(name).json_file`` itself should go through
``detectron2.utils.file_io.PathManager.get_local_path``, as detectron2 does).
"""

import atexit
import contextlib
import json
import logging
import os
import tempfile
from typing import Any, Dict, List

from detectron2.utils.file_io import PathManager
from iopath.common.file_io import PathHandler

__all__ = [
    "PREFIX",
    "coco_json_with_defaults",
    "fill_coco_defaults",
    "register_coco_files",
    "register_coco_with_defaults",
]

logger = logging.getLogger(__name__)

PREFIX = "als_d2_coco_defaults://"
_filled: Dict[tuple, str] = {}  # (path, size, mtime): the file or its filled copy


def fill_coco_defaults(data: Dict[str, Any]) -> int:
    """Fill COCO's defaults into the annotations of a loaded COCO json dict, in place:
    ``iscrowd`` 0 and ``area`` = ``w * h`` of ``bbox``. Returns how many annotations changed."""
    changed = 0
    for ann in data.get("annotations", []) or []:
        before = len(ann)
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            bbox = ann.get("bbox")
            if bbox is None or len(bbox) != 4:
                raise ValueError(
                    f"annotation {ann.get('id')!r} has neither 'area' nor a 4-number 'bbox'"
                )
            ann["area"] = float(bbox[2]) * float(bbox[3])
        changed += len(ann) != before
    return changed


def _remove(path: str, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child that exits normally
        with contextlib.suppress(OSError):
            os.unlink(path)


def coco_json_with_defaults(json_file: str) -> str:
    """A local path of ``json_file`` with COCO's defaults (:func:`fill_coco_defaults`): the
    file itself when no annotation lacks ``iscrowd`` or ``area``, else a filled copy (a
    temporary file of this process; see the module docstring)."""
    local = PathManager.get_local_path(json_file)
    if not os.path.isfile(local):
        raise FileNotFoundError(f"COCO annotation file not found: {json_file}")
    stat = os.stat(local)
    key = (os.path.abspath(local), stat.st_size, stat.st_mtime_ns)
    if key in _filled:
        return _filled[key]
    with open(local) as f:
        data = json.load(f)
    changed = fill_coco_defaults(data)
    path = local
    if changed:
        base = os.path.splitext(os.path.basename(local))[0]
        fd, path = tempfile.mkstemp(prefix=f"als_d2_{base}_", suffix=".json")
        atexit.register(_remove, path, os.getpid())
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        logger.info(
            f"{json_file}: {changed} annotation(s) without 'iscrowd' / 'area' got COCO's "
            f"defaults (iscrowd 0, area = bbox w*h); evaluation reads the filled copy {path}"
        )
    _filled[key] = path
    return path


class CocoDefaultsHandler(PathHandler):
    """``als_d2_coco_defaults://<path>``: ``<path>`` with COCO's defaults filled in."""

    def _get_supported_prefixes(self) -> List[str]:
        return [PREFIX]

    @staticmethod
    def _source(path: str) -> str:
        return path[len(PREFIX) :]

    def _get_local_path(self, path: str, force: bool = False, **kwargs: Any) -> str:
        return coco_json_with_defaults(self._source(path))

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any):
        if any(c in mode for c in "wax+"):
            raise ValueError(f"{path} is read-only")
        return open(coco_json_with_defaults(self._source(path)), mode, buffering)

    def _exists(self, path: str, **kwargs: Any) -> bool:
        return PathManager.exists(self._source(path))

    def _isfile(self, path: str, **kwargs: Any) -> bool:
        return PathManager.isfile(self._source(path))


if PREFIX not in PathManager._path_handlers:
    PathManager.register_handler(CocoDefaultsHandler())


def register_coco_with_defaults(
    name: str, metadata: Dict[str, Any], json_file: str, image_root: str
) -> None:
    """detectron2's ``register_coco_instances(name, metadata, json_file, image_root)`` for
    files that may lack ``iscrowd`` / ``area``: training and ``COCOEvaluator`` read the file
    with COCO's defaults filled in (lazily; see the module docstring)."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets.coco import load_coco_json

    assert isinstance(name, str), name
    assert isinstance(json_file, (str, os.PathLike)), json_file
    assert isinstance(image_root, (str, os.PathLike)), image_root
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    DatasetCatalog.register(
        name, lambda: load_coco_json(coco_json_with_defaults(json_file), image_root, name)
    )
    MetadataCatalog.get(name).set(
        json_file=PREFIX + json_file, image_root=image_root, evaluator_type="coco", **metadata
    )


def register_coco_files(entries, key: str = "DATASETS.COCO_FILES") -> None:
    """Register each ``(name, json_file, image_root)`` of ``entries`` (the config key
    ``key``) with :func:`register_coco_with_defaults`. A name registered before with the same
    files is left as it is (a second set-up in the process); a missing file or folder, a
    malformed entry, or a name taken by another dataset is a ``ConfigError`` naming ``key``."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from ...config import ConfigError

    for entry in entries:
        if (
            not isinstance(entry, (list, tuple))
            or len(entry) != 3
            or not all(isinstance(v, str) and v for v in entry)
        ):
            raise ConfigError(
                f"config key {key}: entry {entry!r} is not a (name, json_file, image_root) "
                'triple of strings, e.g. [["my_train", "ann/train.json", "images/train"]]'
            )
        name, json_file, image_root = entry
        if not os.path.isfile(json_file):
            raise ConfigError(f"config key {key}: {name!r}: json_file {json_file} does not exist")
        if not os.path.isdir(image_root):
            raise ConfigError(
                f"config key {key}: {name!r}: image_root {image_root} is not a folder"
            )
        if name in DatasetCatalog.list():
            meta = MetadataCatalog.get(name)
            if meta.get("json_file") == PREFIX + json_file and meta.get("image_root") == image_root:
                continue
            raise ConfigError(
                f"config key {key}: the name {name!r} is already registered (to "
                f"{meta.get('json_file', '?')}): choose another name"
            )
        register_coco_with_defaults(name, {}, json_file, image_root)
