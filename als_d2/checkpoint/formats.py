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
through ``torch.load(weights_only=True)``. A file that needs more (a pickled class, a
function) raises :class:`UnsafeWeightsError`; a truncated or foreign file raises
:class:`WeightsFileError`; both name the file.

Writing is atomic (:func:`atomic_write`): a temporary file in the same folder, fsync,
``os.replace``, so a crash mid-save leaves the previous file as it was.
"""
import contextlib
import importlib
import io
import logging
import os
import pickle
import re
import uuid
from collections import OrderedDict
from typing import Any, BinaryIO, Callable, Dict, Tuple

import numpy as np
import torch

from .torchvision import als_to_torchvision, torchvision_to_als

logger = logging.getLogger(__name__)

__all__ = [
    "AUTHOR",
    "FORMATS",
    "RestrictedUnpickler",
    "UnsafeWeightsError",
    "WeightsFileError",
    "atomic_write",
    "backbone_relative",
    "convert",
    "detect_format",
    "from_canonical",
    "load_weights_file",
    "read_canonical",
    "load_pickle_file",
    "safe_pickle_load",
    "safe_torch_load",
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


class WeightsFileError(ValueError):
    """A weight / checkpoint file that cannot be read (truncated, empty, not a checkpoint)."""


class UnsafeWeightsError(WeightsFileError, pickle.UnpicklingError):
    """A weight file whose pickle references code (a class, a function): refused unread."""


_UNSAFE_HINT = (
    "weight files are read without running pickled code (torch.load(weights_only=True), "
    "a numpy-only unpickler for .pkl). If you trust this file, load it yourself and re-save "
    "only its tensors, e.g. torch.save({'model': state_dict}, 'clean.pth'), then point "
    "MODEL.WEIGHTS (or the tool) at that file"
)


def _unsafe(path: str, e: Exception) -> UnsafeWeightsError:
    text = str(e)
    if text.startswith("refusing to unpickle"):  # RestrictedUnpickler's own words
        what = text.split(":", 1)[0]
    else:  # torch's weights_only unpickler: "... unsupported GLOBAL posix.system ..."
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f"refusing to unpickle {found.group(1)}" if found else f"refusing to load ({text.strip().splitlines()[0]})"
    return UnsafeWeightsError(f"{path}: {what}: the file needs code to be loaded; {_UNSAFE_HINT}")


def safe_pickle_load(f) -> Any:
    """Unpickle from a binary file object with :class:`RestrictedUnpickler` (latin1 for
    Python-2 pickles, as detectron2 does)."""
    return RestrictedUnpickler(f, encoding="latin1").load()


def safe_torch_load(f, name: str = None) -> Any:
    """``torch.load(f, map_location="cpu", weights_only=True)`` with errors that name the
    file: :class:`UnsafeWeightsError` when the file needs more than tensors and plain
    containers, :class:`WeightsFileError` when it is truncated or not a torch file."""
    name = name or (f if isinstance(f, str) else getattr(f, "name", "<weights file>"))
    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" in str(e) or "weights_only" in str(e).lower() or "Weights only" in str(e):
            raise _unsafe(name, e) from None
        raise WeightsFileError(f"{name}: not a readable torch file ({e})") from e
    except Exception as e:  # RuntimeError (zip), EOFError, KeyError (garbage opcodes), ...
        if isinstance(e, FileNotFoundError):
            raise
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsFileError(f"{name}: truncated, empty or not a torch checkpoint ({reason})") from e


def load_pickle_file(f, name: str) -> Any:
    """:func:`safe_pickle_load` with errors that name the file (see :func:`safe_torch_load`)."""
    try:
        return safe_pickle_load(f)
    except pickle.UnpicklingError as e:
        if str(e).startswith("refusing to unpickle"):
            raise _unsafe(name, e) from None
        raise WeightsFileError(f"{name}: not a readable pickle file ({e})") from e
    except Exception as e:  # EOFError, ValueError, KeyError, ... from malformed data
        raise WeightsFileError(f"{name}: truncated or not a weights pickle ({e!r})") from e


def load_weights_file(path: str) -> Any:
    """Read a weight file without executing code: ``.pkl`` -> restricted unpickler,
    anything else (``.pth``, ``.pt``, ``.pth.tar``, ``.bin``) -> ``torch.load(weights_only=True)``.
    Raises :class:`UnsafeWeightsError` / :class:`WeightsFileError` naming the file."""
    if path.endswith(".pkl"):
        with open(path, "rb") as f:
            return load_pickle_file(f, path)
    return safe_torch_load(path)


# --------------------------------------------------------------------------------------
# Atomic writing


def _fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable (where the OS allows opening a folder)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


TMP_SUFFIX = ".tmp"


def temp_path_for(path: str) -> str:
    """``<folder>/.<name>.<pid>-<random>.tmp``: the temporary file :func:`atomic_write` uses."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}" + re.escape(TMP_SUFFIX) + "$")


def _process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (True when unsure)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def remove_stale_temps(folder: str, name: str = "") -> int:
    """Delete the temporary files of :func:`atomic_write` in ``folder`` that no writer
    will finish: those of ``name`` (about to be written again), and any whose writing
    process no longer exists (a run killed while saving, whatever the file name).
    Returns how many were removed."""
    removed = 0
    for entry in os.listdir(folder):
        m = _TEMP_NAME.match(entry)
        if m is None:
            continue
        pid = int(m.group("pid"))
        if m.group("name") == name or (pid != os.getpid() and not _process_alive(pid)):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, entry))
                removed += 1
    if removed:
        logger.info(f"removed {removed} unfinished temporary file(s) of killed writers in {folder}")
    return removed


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(f)`` into a temporary file of the same folder, fsync
    it, then ``os.replace`` it over ``path`` (and fsync the folder). Readers see either
    the old file or the complete new one; after a crash, at worst a stale
    ``.<name>.<pid>-*.tmp`` file is left: the next atomic write in the folder removes it
    (:func:`remove_stale_temps`: same name, or its writer is gone)."""
    folder, name = os.path.split(os.path.abspath(path))
    remove_stale_temps(folder, name)
    tmp = temp_path_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


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
        logger.info("Dropping the classifier head (head.weight, head.bias): detectors do not use it")
    if to in ("torchvision", "als_d2") and not has_head:
        logger.warning(f"{input_path} has no classifier head: the {to} weights have none (load with strict=False)")
    obj = from_canonical(state, to)
    save_weights(obj, output_path, to)
    n = len(obj["model"]) if isinstance(obj, dict) and "model" in obj else len(obj)
    logger.info(f"{input_path} ({fmt}) -> {output_path} ({to}): {n} tensors")
    return fmt, obj
