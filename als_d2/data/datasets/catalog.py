"""What the lazy registrations of ImageNet and OpenImages share: a loader registered in
``DatasetCatalog`` that reads nothing until ``DatasetCatalog.get(name)``, and class lists
that reach ``MetadataCatalog`` only then (they are on disk) and must not change after."""
from typing import Callable, Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog

__all__ = ["register_lazy", "set_class_metadata"]


def register_lazy(name: str, load: Callable[[], List[dict]], root: str, split: str, **metadata) -> None:
    """Register ``load`` under ``name`` and set, now, ``evaluator_type="classification"``,
    ``image_root=root``, ``split`` and ``metadata`` in ``MetadataCatalog``."""
    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(evaluator_type="classification", image_root=root, split=split, **metadata)


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
