"""The one place that knows detectron2 versions.

Imported first by ``als_d2/__init__.py``. It makes sure detectron2 is importable and,
when the installed detectron2 has no compiled ops (``detectron2._C``; for example the
package index's pb1-detectron2 0.6, whose C++ sources are missing), registers a
placeholder module under that name *before* any detectron2 submodule imports it.
Classification and axis-aligned Faster R-CNN need none of those ops (RoIAlign and NMS
come from torchvision); calling one raises a RuntimeError that names it.

Everything else that differs between detectron2 v0.6 and main gets a small helper
here, decided by what the installed version offers, never by its version string.
"""
import importlib.util
import sys
import types

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


from PIL import Image as _PILImage  # noqa: E402

restore_pillow_aliases(_PILImage)


# ---------------------------------------------------------------------------------------
# Helpers for behaviour that differs between detectron2 versions.


def launch_supports_cpu_workers() -> bool:
    """Whether ``detectron2.engine.launch`` can start several CPU processes (over gloo).

    detectron2 main picks gloo when CUDA is absent; v0.6 asserts CUDA in every worker.
    Decided from the installed worker's code, not from a version string.
    """
    import inspect

    from detectron2.engine import launch as launch_module

    worker = getattr(launch_module, "_distributed_worker", None)
    if worker is None:
        return False
    try:
        source = inspect.getsource(worker)
    except (OSError, TypeError):
        return False
    return "gloo" in source.lower()


def create_ddp_model(model, **kwargs):
    """Wrap ``model`` in DistributedDataParallel when there are several processes.

    Unlike v0.6's ``create_ddp_model`` (which always passes ``device_ids``), this works
    for CPU models over gloo too: ``device_ids`` is given only for a CUDA model.
    """
    from detectron2.utils import comm
    from torch.nn.parallel import DistributedDataParallel

    if comm.get_world_size() == 1:
        return model
    if "device_ids" not in kwargs and next(model.parameters()).is_cuda:
        kwargs["device_ids"] = [comm.get_local_rank()]
    return DistributedDataParallel(model, **kwargs)




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


# detectron2 scripts functions with torch.jit at import; newer torch warns about it on
# every import. The warning is about detectron2's code, not the user's: silence it once.
import warnings  # noqa: E402

warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)


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
        raise ValueError(f"Unsupported query remaining: {queries}, original filename: {parsed.geturl()}")
    return loaded
