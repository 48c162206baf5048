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
  tensor;
- :class:`DetectorEvaluationCheckpointer`: the same for a detector (``train_det.py
  --eval-only``): a classifier or backbone file leaves the RPN and box heads at random, so
  it is refused, naming the missing modules;
- :func:`strict_checkpointer`: the strict class of a training checkpointer (what
  ``als_d2.engine.launch.evaluate_weights`` loads ``--eval-only`` weights with).

Every error names the file and, for class counts, ``MODEL.CLASSIFIER.NUM_CLASSES``.
"""

import os
from typing import Dict, Iterable, List, Optional, Sequence

from .detection import ClassifierCheckpointer, TransferCheckpointer
from .file_io import WeightsFileError

__all__ = [
    "CheckpointMismatchError",
    "DetectorEvaluationCheckpointer",
    "EvaluationCheckpointer",
    "key_groups",
    "strict_checkpointer",
    "check_checkpoint_head",
    "check_files_exist",
    "checkpoint_labels",
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


def checkpoint_labels(paths: Sequence[str], names: Optional[Sequence[str]] = None) -> List[str]:
    """Short unique labels of checkpoint files for tables, figures and folders: ``names``
    when given (one per path, else ``SystemExit``); otherwise the run's name (the folder)
    for detectron2's generic ``model_final.pth``, ``<run>_<stem>`` for its periodic
    ``model_0004999.pth``, the file's stem for any other name; made unique with the run
    folder, then an index."""
    if names:
        if len(names) != len(paths):
            raise SystemExit(f"--names has {len(names)} entries for {len(paths)} checkpoints")
        return list(names)
    stem = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    run = [os.path.basename(os.path.dirname(os.path.abspath(p))) or "ckpt" for p in paths]
    label = [
        r if s == "model_final" else f"{r}_{s}" if s.startswith("model_") else s
        for r, s in zip(run, stem)
    ]
    for candidate in (label, [f"{r}_{s}" for r, s in zip(run, stem)]):
        if len(set(candidate)) == len(candidate):
            return candidate
    return [f"{i}_{s}" for i, s in enumerate(label)]


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


def key_groups(keys: Iterable[str], limit: int = 12) -> str:
    """Model keys summarised by module, in order: ``backbone.res2.2.conv1.weight`` ->
    ``backbone.res2.2.*`` (up to the first block index), ``roi_heads.box_predictor.bbox_pred.bias``
    -> ``roi_heads.box_predictor.*`` (two names otherwise); at most ``limit`` groups shown."""
    groups = []
    for k in keys:
        parts = k.split(".")
        digit = next((i for i, p in enumerate(parts[:-1]) if p.isdigit()), None)
        cut = digit + 1 if digit is not None and digit < 4 else min(2, len(parts) - 1)
        group = ".".join(parts[:cut]) + ".*" if cut > 0 else k
        if group not in groups:
            groups.append(group)
    more = f" (+{len(groups) - limit} more)" if len(groups) > limit else ""
    return ", ".join(groups[:limit]) + more


def _strict_problem(source: str, incompatible, hint: str) -> Optional[str]:
    """What keeps ``incompatible`` (fvcore's ``_IncompatibleKeys`` of a load) from being an
    exact load, in one line; None when every model tensor came from the file with its shape
    and nothing of the file was left over (BN batch counters aside)."""
    missing = [k for k in incompatible.missing_keys if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in incompatible.unexpected_keys if not k.endswith("num_batches_tracked")]
    parts = []
    if missing:
        parts.append(f"{len(missing)} model tensor(s) missing ({key_groups(missing)})")
    if unexpected:
        parts.append(
            f"{len(unexpected)} checkpoint tensor(s) the model does not have "
            f"({key_groups(unexpected)})"
        )
    if incompatible.incorrect_shapes:
        k, got, want = incompatible.incorrect_shapes[0]
        parts.append(
            f"{len(incompatible.incorrect_shapes)} tensor(s) with another shape (e.g. {k}: "
            f"checkpoint {list(got)}, model {list(want)})"
        )
    if not parts:
        return None
    return f"{source}: does not fit the model: {'; '.join(parts)}: {hint}"


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
        problem = _strict_problem(
            source,
            incompatible,
            "another architecture (MODEL.RESNETS.DEPTH, MODEL.RESNETS.RES2_OUT_CHANNELS) or "
            "not a classifier checkpoint: evaluate it with the config it was trained with",
        )
        if problem:
            raise CheckpointMismatchError(problem)
        return incompatible


class DetectorEvaluationCheckpointer(TransferCheckpointer):
    """Loads a detector checkpoint for evaluation: every model tensor must come from the
    file, with its shape (:class:`CheckpointMismatchError` otherwise). A classifier or
    backbone file (``tools/train_cls.py``, torchvision, detectron2 ``.pkl``) is refused: it
    has no ``proposal_generator.*`` / ``roi_heads.box_predictor.*``."""

    def _load_model(self, checkpoint: Dict):
        incompatible = super()._load_model(checkpoint)
        if incompatible is None:
            return incompatible
        problem = _strict_problem(
            getattr(self, "_source", "checkpoint"),
            incompatible,
            "evaluation needs a detector checkpoint (tools/train_det.py's model_final.pth) "
            "of this config; a classifier or backbone file starts detectors for training",
        )
        if problem:
            raise CheckpointMismatchError(problem)
        return incompatible


def strict_checkpointer(checkpointer_cls):
    """The evaluation counterpart of a training checkpointer class:
    :class:`EvaluationCheckpointer` for :class:`ClassifierCheckpointer`,
    :class:`DetectorEvaluationCheckpointer` for :class:`TransferCheckpointer`; a class that
    is already strict is returned as it is."""
    for strict in (EvaluationCheckpointer, DetectorEvaluationCheckpointer):
        if issubclass(checkpointer_cls, strict):
            return checkpointer_cls
    if issubclass(checkpointer_cls, TransferCheckpointer):
        return DetectorEvaluationCheckpointer
    if issubclass(checkpointer_cls, ClassifierCheckpointer):
        return EvaluationCheckpointer
    raise TypeError(f"no strict evaluation loading for {checkpointer_cls.__name__}")


def load_for_evaluation(model, path: str, **kwargs) -> None:
    """Load ``path`` into ``model`` strictly (see :class:`EvaluationCheckpointer`)."""
    EvaluationCheckpointer(model, **kwargs).load(path)
