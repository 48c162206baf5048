"""What the lazy registrations of ImageNet and OpenImages share: a loader registered in
``DatasetCatalog`` that reads nothing until ``DatasetCatalog.get(name)``, and class lists
that reach ``MetadataCatalog`` only then (they are on disk) and must not change after."""

import os
from typing import Callable, Dict, List, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog

__all__ = [
    "DatasetNotPreparedError",
    "DatasetRootMissingError",
    "check_dataset_root",
    "datasets_home",
    "register_lazy",
    "set_class_metadata",
]


class DatasetRootMissingError(FileNotFoundError):
    """A registered dataset's root folder does not exist (the message says where it is
    expected and how to create or point to it). The tools print it as one line."""


class DatasetNotPreparedError(DatasetRootMissingError):
    """A registered dataset's prepared file (``tools/prepare_*.py``) does not exist; the
    message names the command that writes it. The tools print it as one line."""


def datasets_home() -> str:
    """``$DETECTRON2_DATASETS`` (default ``datasets``), where the builtin names are read."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


def check_dataset_root(name: str, root: str, how: Optional[str] = None) -> None:
    """``DatasetRootMissingError`` naming ``DETECTRON2_DATASETS``, the expected path and
    ``how`` to create it when ``root`` is not a folder."""
    if os.path.isdir(root):
        return
    env = os.getenv("DETECTRON2_DATASETS")
    where = (
        f"DETECTRON2_DATASETS={env}"
        if env is not None
        else "DETECTRON2_DATASETS is unset: default ./datasets"
    )
    message = (
        f"dataset {name!r}: {root} does not exist ({where}, now {os.path.abspath(datasets_home())})"
    )
    if how:
        message += f"; {how}"
    message += ", or set DETECTRON2_DATASETS to the folder that holds it"
    raise DatasetRootMissingError(message)


def register_lazy(
    name: str, load: Callable[[], List[dict]], root: str, split: str, **metadata
) -> None:
    """Register ``load`` under ``name`` and set, now, ``evaluator_type="classification"``,
    ``image_root=root``, ``split`` and ``metadata`` in ``MetadataCatalog``."""
    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(
        evaluator_type="classification", image_root=root, split=split, **metadata
    )


def set_class_metadata(name: str, root: str, classes: Dict[str, object]) -> None:
    """Set each key of ``classes`` (``thing_classes``, ``num_classes``, ...) on the metadata
    of ``name`` at its first load. Raises RuntimeError naming the dataset and the key when a
    later load in this process finds other values (the tree or the rules changed:
    detectron2's metadata cannot be changed once set, and models were built with it)."""
    meta = MetadataCatalog.get(name)
    for key, value in classes.items():
        old = meta.get(key)
        if old is None:
            setattr(meta, key, value)
        elif old != value:
            raise RuntimeError(
                f"The classes of dataset '{name}' ({root}) changed since they were first loaded in "
                f"this process ({key}); restart to use the new tree or rules."
            )
