"""ResNet weight files: read them safely, recognise their format, convert between formats.

Every format is reduced to one canonical state dict, detectron2's *backbone-relative*
ResNet naming (the keys of ``build_resnet_backbone``'s ResNet, as in MoCo's and
detectron2's ImageNet-pretrained files) plus the optional classifier ``head.*``::

    stem.conv1.weight, stem.conv1.norm.{weight,bias,running_mean,running_var,...},
    res{2-5}.{block}.conv{k}.weight, .conv{k}.norm.*, .shortcut.weight, .shortcut.norm.*,
    head.weight (K x C), head.bias (K)

Formats (``detect_format``):

- ``torchvision``: a torchvision (or timm) ResNet state dict: ``conv1``, ``bn1``,
  ``layer1-4``, ``fc``; optionally under ``"state_dict"``/``"model"``, ``module.``-prefixed.
- ``als_d2``: an ImageClassifier checkpoint (``tools/train_cls.py``): either the
  classifier's own keys (``backbone.stem...``, ``head.*``), or the backbone-relative keys
  that ``ClassifierCheckpointer`` writes (torch tensors, ``__author__: "als_d2"``,
  ``matching_heuristics``).
- ``detectron2``: backbone-relative keys in detectron2's pickle format
  (``{"model": {name: ndarray}, "__author__": ..., "matching_heuristics": True}``), the
  format MoCo and others feed to detectron2; any other author's backbone-relative file.

All of them share torchvision's convention (RGB input, stride in the 3x3 conv), so
converting only renames; tensors are never changed. Caffe2/Detectron1 ``.pkl`` files
(``res2_0_branch2a_w``...) use another convention (BGR, stride in the 1x1 conv) and
are refused.

Reading never unpickles arbitrary objects: ``.pkl`` goes through
:class:`RestrictedUnpickler` (numpy arrays and plain containers only), everything else
through ``torch.load(weights_only=True)``.
"""
import importlib
import io
import logging
import os
import pickle
from collections import OrderedDict
from typing import Any, Dict, Tuple

import numpy as np
import torch

from .torchvision import als_to_torchvision, torchvision_to_als

logger = logging.getLogger(__name__)

__all__ = [
    "AUTHOR",
    "FORMATS",
    "RestrictedUnpickler",
    "backbone_relative",
    "convert",
    "detect_format",
    "from_canonical",
    "load_weights_file",
    "read_canonical",
    "safe_pickle_load",
    "save_weights",
    "to_canonical",
]

AUTHOR = "als_d2"
FORMATS = ("torchvision", "als_d2", "detectron2")
_BACKBONE_PREFIXES = ("stem.", "res2.", "res3.", "res4.", "res5.")


# --------------------------------------------------------------------------------------
# Safe reading


def _numpy_global(submodule: str, name: str):
    """``numpy._core.<submodule>.<name>`` (numpy 2) or ``numpy.core.<...>`` (numpy 1)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {submodule}.{name}")


# (module, name) a pickle may reference -> how to get the local object. Only what numpy
# arrays, numpy scalars and plain containers need; pickles written by numpy 1 or 2 and
# by Python 2 (Detectron-era) resolve to the installed numpy.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("collections", "OrderedDict"): lambda: OrderedDict,
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
    ("__builtin__", "set"): lambda: set,
    ("__builtin__", "frozenset"): lambda: frozenset,
    ("_codecs", "encode"): lambda: __import__("codecs").encode,  # bytes in protocol-2 pickles
}
for _pkg in ("numpy.core", "numpy._core"):
    _ALLOWED_GLOBALS[(f"{_pkg}.multiarray", "_reconstruct")] = lambda: _numpy_global("multiarray", "_reconstruct")
    _ALLOWED_GLOBALS[(f"{_pkg}.multiarray", "scalar")] = lambda: _numpy_global("multiarray", "scalar")
    _ALLOWED_GLOBALS[(f"{_pkg}.numeric", "_frombuffer")] = lambda: _numpy_global("numeric", "_frombuffer")


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that reconstructs numpy arrays/scalars and builtin containers only.

    Any other global (``os.system``, ``builtins.eval``, a class with ``__reduce__``...)
    raises ``pickle.UnpicklingError`` before anything is called.
    """

    def find_class(self, module: str, name: str):
        factory = _ALLOWED_GLOBALS.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: weight files may only contain numpy arrays "
                "and plain containers"
            )
        return factory()


def safe_pickle_load(f) -> Any:
    """Unpickle from a binary file object with :class:`RestrictedUnpickler` (latin1 for
    Python-2 pickles, as detectron2 does)."""
    return RestrictedUnpickler(f, encoding="latin1").load()


def load_weights_file(path: str) -> Any:
    """Read a weight file without executing code: ``.pkl`` -> restricted unpickler,
    anything else (``.pth``, ``.pt``, ``.pth.tar``, ``.bin``) -> ``torch.load(weights_only=True)``."""
    if path.endswith(".pkl"):
        with open(path, "rb") as f:
            return safe_pickle_load(f)
    return torch.load(path, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------------------
# Recognising formats


def _unwrap(obj: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(state dict, metadata) of a loaded file: the tensors under ``model``/``state_dict``
    (or the file itself) and the other top-level entries."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a dict of weights, got {type(obj).__name__}")
    for key in ("model", "state_dict", "blobs"):
        inner = obj.get(key)
        if isinstance(inner, dict) and inner and all(isinstance(k, str) for k in inner):
            meta = {k: v for k, v in obj.items() if k != key}
            return dict(inner), meta
    return dict(obj), {}


def _strip(state: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def detect_format(state: Dict[str, Any], meta: Dict[str, Any]) -> str:
    """``torchvision`` | ``als_d2`` | ``detectron2`` from the keys (and the ``__author__``)."""
    keys = set(state)
    if "conv1.weight" in keys and any(k.startswith("layer1.") for k in keys):
        return "torchvision"
    if "backbone.stem.conv1.weight" in keys:
        if all(k.startswith(("backbone.", "head.")) for k in keys):
            return "als_d2"
        raise ValueError("a detectron2 detector checkpoint (backbone.* with proposal_generator.*, roi_heads.*), "
                         "not ResNet classifier weights")
    if "stem.conv1.weight" in keys:
        # backbone-relative: als_d2's own checkpoints hold torch tensors, detectron2's .pkl numpy arrays
        own = meta.get("__author__") == AUTHOR and isinstance(state["stem.conv1.weight"], torch.Tensor)
        return "als_d2" if own else "detectron2"
    if "conv1_w" in keys or "res2_0_branch2a_w" in keys:
        raise ValueError(
            "this is a Caffe2/Detectron1 ResNet (res2_0_branch2a_w ...): BGR input and stride in the "
            "1x1 conv, another convention than torchvision's; detectron2 loads it directly with "
            "INPUT.FORMAT BGR and RESNETS.STRIDE_IN_1X1 True, but it cannot be converted by renaming"
        )
    sample = ", ".join(sorted(keys)[:5])
    raise ValueError(f"unrecognised weights (keys {sample}, ...): expected a torchvision/timm ResNet, "
                     "an als_d2 classifier checkpoint or detectron2 backbone weights")


def backbone_relative(state: Dict[str, Any]) -> Dict[str, Any]:
    """ImageClassifier keys -> detectron2 backbone-relative keys (``backbone.res2...`` ->
    ``res2...``); other keys (``head.*``) unchanged, order kept."""
    return OrderedDict((k[len("backbone.") :] if k.startswith("backbone.") else k, v) for k, v in state.items())


def _check_canonical(state: Dict[str, Any]) -> None:
    unknown = [k for k in state if not (k.startswith(_BACKBONE_PREFIXES) or k.startswith("head."))]
    if unknown:
        raise ValueError(f"keys that are neither ResNet backbone nor classifier head: {unknown[:8]}")


def to_canonical(obj: Any) -> Tuple[str, Dict[str, torch.Tensor]]:
    """(source format, canonical state dict of tensors) of a loaded weight file."""
    state, meta = _unwrap(obj)
    state = _strip(state, "module.")
    fmt = detect_format(state, meta)
    if fmt == "torchvision":
        state = backbone_relative(torchvision_to_als(state))
    else:
        state = backbone_relative(state)
    state = OrderedDict((k, torch.tensor(v) if isinstance(v, np.ndarray) else v)  # copy; keeps 0-d shapes
                        for k, v in state.items())
    _check_canonical(state)
    return fmt, state


def read_canonical(path: str) -> Tuple[str, Dict[str, torch.Tensor]]:
    """(source format, canonical state dict) of a weight file on disk."""
    return to_canonical(load_weights_file(path))


# --------------------------------------------------------------------------------------
# Writing


def from_canonical(state: Dict[str, torch.Tensor], fmt: str) -> Any:
    """The object to save for ``fmt``:

    - ``torchvision``: a plain torchvision ResNet state dict;
    - ``als_d2``: ``{"model": backbone-relative keys + head, "__author__": "als_d2",
      "matching_heuristics": True}`` (what ``ClassifierCheckpointer`` writes; loads into
      ImageClassifier and into C4/FPN detectors with detectron2's DetectionCheckpointer);
    - ``detectron2``: the same without the classifier head and with numpy arrays, for a
      ``.pkl`` file.
    """
    if fmt == "torchvision":
        return OrderedDict(als_to_torchvision(OrderedDict(
            (k if k.startswith("head.") else "backbone." + k, v) for k, v in state.items())))
    if fmt == "als_d2":
        return {"model": OrderedDict(state), "__author__": AUTHOR, "matching_heuristics": True}
    if fmt == "detectron2":
        model = OrderedDict((k, v.detach().cpu().numpy()) for k, v in state.items() if not k.startswith("head."))
        return {"model": model, "__author__": AUTHOR, "matching_heuristics": True}
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def save_weights(obj: Any, path: str, fmt: str) -> None:
    """Write ``from_canonical``'s object: pickle for ``detectron2`` (``.pkl``), torch.save otherwise."""
    if fmt == "detectron2" and not path.endswith(".pkl"):
        raise ValueError(f"{path}: detectron2 weights are a .pkl file (DetectionCheckpointer picks the reader by suffix)")
    if fmt != "detectron2" and path.endswith(".pkl"):
        raise ValueError(f"{path}: {fmt} weights are a torch file (.pth); .pkl is for --to detectron2")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if fmt == "detectron2":
        buffer = io.BytesIO()
        pickle.dump(obj, buffer, protocol=4)
        with open(path, "wb") as f:
            f.write(buffer.getvalue())
    else:
        torch.save(obj, path)


def convert(input_path: str, output_path: str, to: str) -> Tuple[str, Dict[str, Any]]:
    """Convert a weight file; return (source format, the saved object)."""
    if to not in FORMATS:
        raise ValueError(f"--to {to!r}: expected one of {FORMATS}")
    fmt, state = read_canonical(input_path)
    has_head = any(k.startswith("head.") for k in state)
    if to == "detectron2" and has_head:
        logger.info("Dropping the classifier head (head.weight, head.bias): detectors do not use it")
    if to in ("torchvision", "als_d2") and not has_head:
        logger.warning(f"{input_path} has no classifier head: the {to} weights have none (load with strict=False)")
    obj = from_canonical(state, to)
    save_weights(obj, output_path, to)
    n = len(obj["model"]) if isinstance(obj, dict) and "model" in obj else len(obj)
    logger.info(f"{input_path} ({fmt}) -> {output_path} ({to}): {n} tensors")
    return fmt, obj
