"""ResNet weight files: recognise their format, convert between formats.

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
are refused. Files are read and written by :mod:`.file_io` (no pickled code runs;
atomic writes).
"""

import io
import logging
import os
import pickle
from collections import OrderedDict
from typing import Any, Dict, Tuple

import numpy as np
import torch

from .file_io import atomic_write, load_weights_file
from .torchvision import als_to_torchvision, torchvision_to_als

logger = logging.getLogger(__name__)

__all__ = [
    "AUTHOR",
    "FORMATS",
    "backbone_relative",
    "convert",
    "detect_format",
    "from_canonical",
    "matching_checkpoint",
    "read_canonical",
    "save_weights",
    "to_canonical",
]

AUTHOR = "als_d2"
FORMATS = ("torchvision", "als_d2", "detectron2")
_BACKBONE_PREFIXES = ("stem.", "res2.", "res3.", "res4.", "res5.")
_CONTAINERS = ("model", "state_dict", "blobs")


# --------------------------------------------------------------------------------------
# Recognising formats


def _unwrap(obj: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(state dict, metadata) of a loaded file: the tensors under ``model`` /
    ``state_dict`` / ``blobs`` (nested containers are opened in turn, as in detectron2's
    ``{"model": {"state_dict": ...}}`` wrapping of a plain file), or the file itself; the
    metadata are the other entries of every level (the innermost wins)."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a dict of weights, got {type(obj).__name__}")
    state, meta = obj, {}
    while True:
        key = next((k for k in _CONTAINERS if _is_state_dict(state.get(k))), None)
        if key is None:
            return dict(state), meta
        meta.update((k, v) for k, v in state.items() if k != key)
        state = state[key]


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(k, str) for k in value)


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
        raise ValueError(
            "a detectron2 detector checkpoint (backbone.* with proposal_generator.*, roi_heads.*), "
            "not ResNet classifier weights"
        )
    if "stem.conv1.weight" in keys:
        # backbone-relative: als_d2's own checkpoints hold torch tensors, detectron2's .pkl
        # numpy arrays
        own = meta.get("__author__") == AUTHOR and isinstance(
            state["stem.conv1.weight"], torch.Tensor
        )
        return "als_d2" if own else "detectron2"
    if "conv1_w" in keys or "res2_0_branch2a_w" in keys:
        raise ValueError(
            "this is a Caffe2/Detectron1 ResNet (res2_0_branch2a_w ...): BGR input and stride in "
            "the 1x1 conv, another convention than torchvision's; detectron2 loads it directly "
            "with INPUT.FORMAT BGR and RESNETS.STRIDE_IN_1X1 True, but it cannot be converted by "
            "renaming"
        )
    sample = ", ".join(sorted(keys)[:5])
    raise ValueError(
        f"unrecognised weights (keys {sample}, ...): expected a torchvision/timm ResNet, "
        "an als_d2 classifier checkpoint or detectron2 backbone weights"
    )


def backbone_relative(state: Dict[str, Any]) -> Dict[str, Any]:
    """ImageClassifier keys -> detectron2 backbone-relative keys (``backbone.res2...`` ->
    ``res2...``); other keys (``head.*``) unchanged, order kept."""
    return OrderedDict(
        (k[len("backbone.") :] if k.startswith("backbone.") else k, v) for k, v in state.items()
    )


def _check_canonical(state: Dict[str, Any]) -> None:
    unknown = [k for k in state if not (k.startswith(_BACKBONE_PREFIXES) or k.startswith("head."))]
    if unknown:
        raise ValueError(
            f"keys that are neither ResNet backbone nor classifier head: {unknown[:8]}"
        )


def _canonical(obj: Any) -> Tuple[str, Dict[str, torch.Tensor], Dict[str, Any]]:
    """(source format, canonical state dict of tensors, the file's metadata)."""
    state, meta = _unwrap(obj)
    state = _strip(state, "module.")
    fmt = detect_format(state, meta)
    if fmt == "torchvision":
        state = torchvision_to_als(state)
    state = OrderedDict(
        (k, torch.tensor(v) if isinstance(v, np.ndarray) else v)  # copy; keeps 0-d shapes
        for k, v in backbone_relative(state).items()
    )
    _check_canonical(state)
    return fmt, state, meta


def to_canonical(obj: Any) -> Tuple[str, Dict[str, torch.Tensor]]:
    """(source format, canonical state dict of tensors) of a loaded weight file.
    Raises ValueError (or KeyError for an unexpected torchvision key) for other files."""
    fmt, state, _ = _canonical(obj)
    return fmt, state


def matching_checkpoint(obj: Any) -> Tuple[str, Dict[str, Any]]:
    """(source format, ``{"model": canonical state dict, "__author__": the file's author
    (else its format), "matching_heuristics": True}``): what detectron2's
    DetectionCheckpointer loads into a C4 or FPN detector by name matching. Raises as
    :func:`to_canonical` does."""
    fmt, state, meta = _canonical(obj)
    return fmt, {
        "model": state,
        "__author__": meta.get("__author__", fmt),
        "matching_heuristics": True,
    }


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
        classifier_keys = OrderedDict(
            (k if k.startswith("head.") else "backbone." + k, v) for k, v in state.items()
        )
        return OrderedDict(als_to_torchvision(classifier_keys))
    if fmt == "als_d2":
        return {"model": OrderedDict(state), "__author__": AUTHOR, "matching_heuristics": True}
    if fmt == "detectron2":
        model = OrderedDict(
            (k, v.detach().cpu().numpy()) for k, v in state.items() if not k.startswith("head.")
        )
        return {"model": model, "__author__": AUTHOR, "matching_heuristics": True}
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def save_weights(obj: Any, path: str, fmt: str) -> None:
    """Write ``from_canonical``'s object: pickle for ``detectron2`` (``.pkl``), torch.save
    otherwise."""
    if fmt == "detectron2" and not path.endswith(".pkl"):
        raise ValueError(
            f"{path}: detectron2 weights are a .pkl file (DetectionCheckpointer picks the "
            "reader by suffix)"
        )
    if fmt != "detectron2" and path.endswith(".pkl"):
        raise ValueError(
            f"{path}: {fmt} weights are a torch file (.pth); .pkl is for --to detectron2"
        )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if fmt == "detectron2":
        buffer = io.BytesIO()
        pickle.dump(obj, buffer, protocol=4)
        atomic_write(path, lambda f: f.write(buffer.getvalue()))
    else:
        atomic_write(path, lambda f: torch.save(obj, f))


def convert(input_path: str, output_path: str, to: str) -> Tuple[str, Dict[str, Any]]:
    """Convert a weight file; return (source format, the saved object)."""
    if to not in FORMATS:
        raise ValueError(f"--to {to!r}: expected one of {FORMATS}")
    fmt, state = read_canonical(input_path)
    has_head = any(k.startswith("head.") for k in state)
    if to == "detectron2" and has_head:
        logger.info(
            "Dropping the classifier head (head.weight, head.bias): detectors do not use it"
        )
    if to in ("torchvision", "als_d2") and not has_head:
        logger.warning(
            f"{input_path} has no classifier head: the {to} weights have none "
            "(load with strict=False)"
        )
    obj = from_canonical(state, to)
    save_weights(obj, output_path, to)
    n = len(obj["model"]) if isinstance(obj, dict) and "model" in obj else len(obj)
    logger.info(f"{input_path} ({fmt}) -> {output_path} ({to}): {n} tensors")
    return fmt, obj
