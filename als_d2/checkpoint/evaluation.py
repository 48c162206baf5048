"""Strict loading of classifier checkpoints for evaluation and CAMs.

Training-time loading is forgiving on purpose (detectron2's "Skip loading parameter"
lets a backbone start a new head). An evaluation must not be: a head with another class
count, or a file without head or backbone tensors, would evaluate a randomly initialised
layer and print plausible-looking numbers. ``tools/eval_cls.py`` and
``tools/visualize_cam.py`` therefore use:

- :func:`check_files_exist`: every named file exists, checked before any model is built
  (one-line error);
- :func:`check_checkpoint_head`: the file's ``head.weight`` / ``head.bias`` exist and have
  ``MODEL.CLASSIFIER.NUM_CLASSES`` rows (read from the file, before a model is built);
- :class:`EvaluationCheckpointer`: :class:`ClassifierCheckpointer` that raises
  :class:`CheckpointMismatchError` instead of skipping a missing or shape-mismatched model
  tensor.

Every error names the file and, for class counts, ``MODEL.CLASSIFIER.NUM_CLASSES``.
"""

import os
from typing import Dict, Iterable, Optional

from .detection import ClassifierCheckpointer
from .file_io import WeightsFileError

__all__ = [
    "CheckpointMismatchError",
    "EvaluationCheckpointer",
    "check_checkpoint_head",
    "check_files_exist",
    "load_for_evaluation",
]

KEY = "MODEL.CLASSIFIER.NUM_CLASSES"


class CheckpointMismatchError(WeightsFileError):
    """A checkpoint does not fit the model that evaluates it (message names file and key)."""


def _is_remote(path: str) -> bool:
    return "://" in str(path)


def check_files_exist(paths: Iterable[str], what: str = "checkpoint") -> None:
    """``SystemExit`` with one line naming the missing local files (remote URIs are left to
    detectron2's PathManager)."""
    missing = [p for p in paths if p and not _is_remote(p) and not os.path.isfile(p)]
    if missing:
        raise SystemExit(f"error: {what} not found: {', '.join(missing)}")


def _head_tensors(state: Dict) -> Dict[str, object]:
    out = {}
    for k, v in state.items():
        for name in ("head.weight", "head.bias"):
            if k == name or k.endswith("." + name):
                out[name] = v
    return out


def _shape(value) -> tuple:
    return tuple(getattr(value, "shape", ()))


def head_problem(
    state: Dict, path: str, num_classes: int, in_features: Optional[int] = None
) -> Optional[str]:
    """What is wrong with the classifier head in the model dict ``state`` of ``path``
    (None when it fits ``num_classes`` outputs, and ``in_features`` inputs when given)."""
    head = _head_tensors(state)
    missing = [n for n in ("head.weight", "head.bias") if n not in head]
    if missing:
        return (
            f"{path}: no {' / '.join(missing)} in the checkpoint (a backbone-only or detector "
            f"file?): evaluation needs the classifier head of a tools/train_cls.py checkpoint with "
            f"{KEY} {num_classes}"
        )
    weight, bias = _shape(head["head.weight"]), _shape(head["head.bias"])
    if len(weight) != 2 or weight[0] != num_classes or bias != (weight[0],):
        rows = weight[0] if weight else "?"
        return (
            f"{path}: head.weight has {rows} classes (shape {list(weight)}, head.bias "
            f"{list(bias)}), the config {KEY} {num_classes}: evaluate it with {KEY} {rows}, or use "
            f"the checkpoint trained for {num_classes} classes"
        )
    if in_features is not None and weight[1] != in_features:
        return (
            f"{path}: head.weight takes {weight[1]} features, the model's head {in_features} "
            f"(another MODEL.RESNETS.DEPTH / MODEL.CLASSIFIER.IN_FEATURE?)"
        )
    return None


def check_checkpoint_head(path: str, num_classes: int) -> None:
    """Read ``path`` (safely, as the checkpointer does) and raise
    :class:`CheckpointMismatchError` when its head does not have ``num_classes`` outputs."""
    reader = ClassifierCheckpointer(_NoModel())
    data = reader._load_file(path)
    problem = head_problem(data.get("model", data), path, num_classes)
    if problem:
        raise CheckpointMismatchError(problem)


class _NoModel:
    """Stands in for a model when only a file is read."""

    def state_dict(self):
        return {}


class EvaluationCheckpointer(ClassifierCheckpointer):
    """Loads an ImageClassifier checkpoint for evaluation: every model tensor must come
    from the file, with its shape (:class:`CheckpointMismatchError` otherwise)."""

    def _load_model(self, checkpoint: Dict):
        source = getattr(self, "_source", "checkpoint")
        model_state = self.model.state_dict()
        head = model_state.get("head.weight")
        if head is not None:
            problem = head_problem(
                checkpoint["model"], source, int(head.shape[0]), int(head.shape[1])
            )
            if problem:
                raise CheckpointMismatchError(problem)
        incompatible = super()._load_model(checkpoint)
        if incompatible is None:
            return incompatible
        missing = [k for k in incompatible.missing_keys if not k.endswith("num_batches_tracked")]
        if missing:
            raise CheckpointMismatchError(
                f"{source}: {len(missing)} model tensor(s) are not in the checkpoint (e.g. "
                f"{', '.join(missing[:4])}): another architecture (MODEL.RESNETS.DEPTH, "
                f"MODEL.RESNETS.RES2_OUT_CHANNELS) or not a classifier checkpoint"
            )
        if incompatible.incorrect_shapes:
            k, got, want = incompatible.incorrect_shapes[0]
            raise CheckpointMismatchError(
                f"{source}: {len(incompatible.incorrect_shapes)} tensor(s) have another shape than "
                f"the model's (e.g. {k}: checkpoint {list(got)}, model {list(want)}): another "
                "architecture"
            )
        return incompatible


def load_for_evaluation(model, path: str, **kwargs) -> None:
    """Load ``path`` into ``model`` strictly (see :class:`EvaluationCheckpointer`)."""
    EvaluationCheckpointer(model, **kwargs).load(path)
