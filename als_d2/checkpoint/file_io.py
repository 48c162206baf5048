"""Weight and checkpoint files on disk: read without running pickled code, write atomically.

Reading never unpickles arbitrary objects: ``.pkl`` goes through
:class:`RestrictedUnpickler` (numpy arrays and plain containers only), everything else
through ``torch.load(weights_only=True)``. A file that needs more (a pickled class, a
function) raises :class:`UnsafeWeightsError`; a truncated or foreign file raises
:class:`WeightsFileError`; both name the file.

Writing is atomic (:func:`atomic_open`, :func:`atomic_write`): a temporary file
``.<name>.<pid>-<random>.tmp`` in the same folder, fsync, ``os.replace``, so a crash
mid-save leaves the previous file as it was; the next atomic write in the folder removes
temporary files that no writer will finish (:func:`remove_stale_temps`).
"""

import contextlib
import importlib
import logging
import os
import pickle
import re
import uuid
from collections import OrderedDict
from typing import Any, BinaryIO, Callable, Iterator, TextIO, Union

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = [
    "RestrictedUnpickler",
    "UnsafeWeightsError",
    "WeightsFileError",
    "AtomicLocalWrites",
    "atomic_open",
    "atomic_write",
    "load_pickle_file",
    "load_weights_file",
    "read_weights",
    "remove_stale_temps",
    "safe_pickle_load",
    "safe_torch_load",
]


# --------------------------------------------------------------------------------------
# Safe reading


class WeightsFileError(ValueError):
    """A weight / checkpoint file that cannot be read (truncated, empty, not a checkpoint)."""


class UnsafeWeightsError(WeightsFileError, pickle.UnpicklingError):
    """A weight file whose pickle references code (a class, a function): refused unread."""


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
    for _sub, _name in (
        ("multiarray", "_reconstruct"),
        ("multiarray", "scalar"),
        ("numeric", "_frombuffer"),
    ):
        _ALLOWED_GLOBALS[(f"{_pkg}.{_sub}", _name)] = lambda s=_sub, n=_name: _numpy_global(s, n)


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
        what = (
            f"refusing to unpickle {found.group(1)}"
            if found
            else f"refusing to load ({text.strip().splitlines()[0]})"
        )
    return UnsafeWeightsError(f"{path}: {what}: the file needs code to be loaded; {_UNSAFE_HINT}")


def safe_pickle_load(f: BinaryIO) -> Any:
    """Unpickle from a binary file object with :class:`RestrictedUnpickler` (latin1 for
    Python-2 pickles, as detectron2 does)."""
    return RestrictedUnpickler(f, encoding="latin1").load()


def safe_torch_load(f: Union[str, BinaryIO], name: str = None) -> Any:
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
        raise WeightsFileError(
            f"{name}: truncated, empty or not a torch checkpoint ({reason})"
        ) from e


def load_pickle_file(f: BinaryIO, name: str) -> Any:
    """:func:`safe_pickle_load` with errors that name the file (see :func:`safe_torch_load`)."""
    try:
        return safe_pickle_load(f)
    except pickle.UnpicklingError as e:
        if str(e).startswith("refusing to unpickle"):
            raise _unsafe(name, e) from None
        raise WeightsFileError(f"{name}: not a readable pickle file ({e})") from e
    except Exception as e:  # EOFError, ValueError, KeyError, ... from malformed data
        raise WeightsFileError(f"{name}: truncated or not a weights pickle ({e!r})") from e


def read_weights(f: BinaryIO, name: str) -> Any:
    """The object in the open binary file ``f`` of the file ``name``: ``.pkl`` -> the
    numpy-only unpickler, anything else -> ``torch.load(weights_only=True)``."""
    return load_pickle_file(f, name) if name.endswith(".pkl") else safe_torch_load(f, name)


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

TMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}" + re.escape(TMP_SUFFIX) + "$")


def temp_path_for(path: str) -> str:
    """``<folder>/.<name>.<pid>-<random>.tmp``: the temporary file :func:`atomic_open` uses."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


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
    """Delete the temporary files of :func:`atomic_open` in ``folder`` that no writer
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


def _fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable (where the OS allows opening a folder)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "wb") -> Iterator[Union[BinaryIO, TextIO]]:
    """``open(path, mode)`` for writing (``"wb"`` or ``"w"``, UTF-8), atomically: the file
    is a temporary one of the same folder, fsynced and moved over ``path`` by ``os.replace``
    (then the folder fsynced) when the ``with`` block ends without an exception, and
    deleted when it raises. Readers see either the old file or the complete new one;
    after a crash, at worst a stale ``.<name>.<pid>-*.tmp`` is left, which the next
    atomic write in the folder removes (:func:`remove_stale_temps`)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', not {mode!r}")
    folder, name = os.path.split(os.path.abspath(path))
    remove_stale_temps(folder, name)
    tmp = temp_path_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, as for open()
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(f)`` (a binary file) with :func:`atomic_open`."""
    with atomic_open(path, "wb") as f:
        write(f)


class AtomicLocalWrites:
    """A detectron2 / iopath ``PathManager`` whose ``open(path, "wb" | "w")`` of a local
    path is :func:`atomic_open` (creating the folder); everything else, remote URIs
    included, is the wrapped manager's. Give it to a checkpointer as ``path_manager``
    and ``Checkpointer.save`` / ``tag_last_checkpoint`` write atomically."""

    def __init__(self, path_manager):
        self._path_manager = path_manager

    def open(self, path: str, mode: str = "r", **kwargs):
        if mode in ("wb", "w") and "://" not in str(path):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            return atomic_open(path, mode)
        return self._path_manager.open(path, mode, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._path_manager, name)
