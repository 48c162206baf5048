"""The one place that knows detectron2 versions.

``als_d2/__init__.py`` imports it first. Importing it has two side effects, each only
where it is needed:

1. ``sys.modules["detectron2._C"]``: a placeholder when the installed detectron2 has no
   compiled ops (the package index's pb1-detectron2 0.6 ships no C++ sources), so that
   detectron2's modules import. Classification and axis-aligned Faster R-CNN need none of
   those ops (RoIAlign and NMS come from torchvision); calling one raises a RuntimeError
   that names it. A detectron2 with compiled ops is left alone (``HAS_COMPILED_OPS``).
2. ``PIL.Image.LINEAR`` / ``CUBIC`` / ``ANTIALIAS``: on Pillow >= 10, which removed them,
   set to the filters they named (detectron2 v0.6 uses them in default arguments).

:func:`quiet_detectron2_imports` (used by ``als_d2/__init__.py`` around its own imports,
not process-wide) hides the warnings that detectron2 and fvcore cause at import time.

Everything else that differs between detectron2 v0.6 and main is a helper below, decided
by what the installed version offers (an attribute, a method), never by its version string.
"""

import contextlib
import importlib.util
import sys
import types
import warnings

INSTALL_HINT = (
    "als_d2 needs detectron2, which is not on the Python package index under its own "
    "name. Install the official build:\n"
    "    pip install 'git+https://github.com/facebookresearch/detectron2.git'\n"
    "or run `make setup` in the als-d2 checkout, which installs detectron2 v0.6 from "
    "the package index (pb1-detectron2, pure Python, no compiled ops) into .venv."
)

try:
    import detectron2  # noqa: F401  (light: only sets up the environment)
except ImportError as e:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(INSTALL_HINT) from e

PLACEHOLDER_NOTE = "not compiled: als_d2 placeholder for detectron2._C"


class _MissingCompiledOps(types.ModuleType):
    """Stands in for ``detectron2._C``; every op raises a RuntimeError naming itself."""

    # Answers for detectron2.utils.collect_env, so that default_setup's env report works.
    def get_compiler_version(self) -> str:
        return PLACEHOLDER_NOTE

    def get_cuda_version(self) -> str:
        return PLACEHOLDER_NOTE

    def has_cuda(self) -> bool:
        return False

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # keep hasattr()/inspect/pickle probing harmless
        raise RuntimeError(
            f"detectron2._C.{name} is a compiled detectron2 op, and the installed detectron2 "
            f"({detectron2.__version__} at {detectron2.__file__}) was built without compiled ops. "
            "The official build provides it: "
            "pip install 'git+https://github.com/facebookresearch/detectron2.git'"
        )


def _has_compiled_ops() -> bool:
    existing = sys.modules.get("detectron2._C")
    if existing is not None:
        return not isinstance(existing, _MissingCompiledOps)
    return importlib.util.find_spec("detectron2._C") is not None


HAS_COMPILED_OPS: bool = _has_compiled_ops()

# Side effect 1: the placeholder, only without compiled ops.
if not HAS_COMPILED_OPS and "detectron2._C" not in sys.modules:
    _placeholder = _MissingCompiledOps("detectron2._C", "placeholder: " + PLACEHOLDER_NOTE)
    _placeholder.__file__ = __file__
    sys.modules["detectron2._C"] = _placeholder
    detectron2._C = _placeholder


# Pillow 10 removed the aliases Image.LINEAR, Image.CUBIC and Image.ANTIALIAS, which
# detectron2 v0.6 uses in default arguments (evaluated when its modules are imported).
PILLOW_ALIASES = (("LINEAR", "BILINEAR"), ("CUBIC", "BICUBIC"), ("ANTIALIAS", "LANCZOS"))


def restore_pillow_aliases(image_module) -> list:
    """Set each missing old filter name of ``image_module`` (PIL.Image) to the filter it
    named; returns the names set (none on Pillow < 10)."""
    added = []
    for old, new in PILLOW_ALIASES:
        if not hasattr(image_module, old) and hasattr(image_module, new):
            setattr(image_module, old, getattr(image_module, new))
            added.append(old)
    return added


def _pillow_major() -> int:
    import PIL

    return int(PIL.__version__.split(".")[0])


# Side effect 2: the aliases, only on Pillow >= 10 (on 9.x they exist, deprecated: probing
# them would warn).
if _pillow_major() >= 10:
    from PIL import Image as _PILImage

    restore_pillow_aliases(_PILImage)


# (message regex, category) of the warnings that importing detectron2 / fvcore raises
# about their own code, not the user's:
DETECTRON2_IMPORT_WARNINGS = (
    # fvcore.nn and detectron2.modeling apply torch.jit.script at import
    (r"`torch\.jit\.script` is deprecated", FutureWarning),
    # detectron2 v0.6's default arguments on Pillow 9.x
    (r"(LINEAR|CUBIC|ANTIALIAS) is deprecated", DeprecationWarning),
)


@contextlib.contextmanager
def quiet_detectron2_imports():
    """Inside, the :data:`DETECTRON2_IMPORT_WARNINGS` are ignored; outside, the filters are
    as before (``warnings.catch_warnings``). ``als_d2/__init__.py`` imports its modules,
    and with them detectron2's, inside it."""
    with warnings.catch_warnings():
        for message, category in DETECTRON2_IMPORT_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


# ---------------------------------------------------------------------------------------
# Helpers for behaviour that differs between detectron2 versions.


def launch_supports_cpu_workers() -> bool:
    """Whether ``detectron2.engine.launch`` can start several CPU processes (over gloo).

    detectron2 main's worker picks gloo when CUDA is absent and sets up the per-machine
    process group with ``comm.create_local_process_group``; v0.6's asserts CUDA and builds
    that group inline. The helper is the capability flag (no version string, no source).
    """
    from detectron2.utils import comm

    return callable(getattr(comm, "create_local_process_group", None))


class SavesStepState:
    """Mixin for ``DefaultTrainer`` subclasses: checkpoint the optimizer (and grad scaler).

    detectron2 main's DefaultTrainer saves its inner trainer's state under "_trainer";
    v0.6's saves none, so a resumed run restarts momentum from zero. This mixin adds the
    same entry where the installed DefaultTrainer lacks it.
    """

    def state_dict(self):
        ret = super().state_dict()
        if "_trainer" not in ret:
            ret["_trainer"] = self._trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if "_trainer" in state_dict and not _default_trainer_loads_step_state():
            self._trainer.load_state_dict(state_dict["_trainer"])


def _default_trainer_loads_step_state() -> bool:
    from detectron2.engine import DefaultTrainer

    return "load_state_dict" in vars(DefaultTrainer)


def apply_checkpoint_url_queries(checkpointer, loaded: dict) -> dict:
    """What detectron2 main's ``DetectionCheckpointer._load_file`` does with the URL query
    of ``load("file.pth?matching_heuristics=True")``, for checkpointers that override
    ``_load_file`` (to read files safely). v0.6 has no queries: ``loaded`` is returned as is.
    """
    parsed = getattr(checkpointer, "_parsed_url_during_load", None)
    if parsed is None:
        return loaded
    from urllib.parse import parse_qs

    queries = parse_qs(parsed.query)
    if queries.pop("matching_heuristics", "False") == ["True"]:
        loaded["matching_heuristics"] = True
    if queries:
        raise ValueError(
            f"Unsupported query remaining: {queries}, original filename: {parsed.geturl()}"
        )
    return loaded
