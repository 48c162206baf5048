"""Checkpointers that carry classifier backbones into detectron2 detectors.

The mechanism is detectron2's own: a checkpoint whose dict has ``matching_heuristics:
True`` is loaded by ``DetectionCheckpointer`` (v0.6 and main) through
``align_and_update_state_dicts``, which gives each model tensor the checkpoint tensor
whose name is its longest dot-separated suffix. With backbone-relative names
(``stem.*``, ``res2.*`` ... ``res5.*``, as in detectron2's and MoCo's ImageNet files):

======================  ====================================  ===================================
checkpoint key          C4 detector (Res5ROIHeads)            FPN detector
======================  ====================================  ===================================
stem.*, res2-res4.*     backbone.stem.*, backbone.res2-4.*    backbone.bottom_up.stem.*, ...res2-4.*
res5.*                  roi_heads.res5.*                      backbone.bottom_up.res5.*
head.*                  (no match: not used)                  (no match: not used)
======================  ====================================  ===================================

and the ImageClassifier itself (``backbone.res2...`` <- ``res2...``, ``head.*`` <- ``head.*``)
still loads it exactly, so resuming classification is unchanged.

- :class:`ClassifierCheckpointer` writes ImageClassifier checkpoints in that form, so
  any detectron2 tool can start a detector from a ``tools/train_cls.py`` checkpoint.
- :class:`TransferCheckpointer` (used by ``tools/train_det.py``) also reads the other
  formats of :mod:`.conversion` (torchvision/timm ResNets, classifier checkpoints written
  before ``ClassifierCheckpointer``) and logs what was transferred and what starts from
  scratch.

Both are :class:`SafeCheckpointer` s: every file they read (``MODEL.WEIGHTS``, resumed
checkpoints) is read without running pickled code (:mod:`.file_io`:
``torch.load(weights_only=True)``, the numpy-only unpickler for ``.pkl``; detectron2 v0.6
unpickles ``.pkl`` and ``.pyth`` files with plain pickle), and every checkpoint they write
is written atomically (temporary file in the same folder, fsync, ``os.replace``;
``last_checkpoint`` is replaced the same way, last), so a process killed during a save
leaves the previous checkpoint and ``last_checkpoint`` usable.
"""

from collections import OrderedDict
from typing import Dict, List

from detectron2.checkpoint import DetectionCheckpointer

from .. import compat
from .conversion import AUTHOR, backbone_relative, matching_checkpoint
from .file_io import AtomicLocalWrites, WeightsFileError, read_weights

__all__ = [
    "ClassifierCheckpointer",
    "SafeCheckpointer",
    "TransferCheckpointer",
    "describe_weights",
    "summarize_transfer",
    "transferred_keys",
]


class SafeCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that reads files without running pickled code and writes
    checkpoints atomically (see the module docstring).

    Saving is fvcore's ``Checkpointer.save`` and ``tag_last_checkpoint`` through an
    :class:`~.file_io.AtomicLocalWrites` path manager. Reading cannot go through
    ``DetectionCheckpointer._load_file`` (plain ``pickle.load`` of ``.pkl`` files), so
    :meth:`_load_file` reads the file safely, then gives it detectron2's meaning:
    detectron2 / Caffe2 ``.pkl``, pycls ``.pyth``, torch files (``{"model": ...}``).
    """

    def __init__(self, model, save_dir: str = "", **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.path_manager = AtomicLocalWrites(self.path_manager)

    def _load_file(self, filename: str) -> Dict:
        self._source = filename  # named in the logs and errors of _load_model
        with self.path_manager.open(filename, "rb") as f:
            data = read_weights(f, filename)
        if not isinstance(data, dict):
            raise WeightsFileError(
                f"{filename}: expected a checkpoint dict, got {type(data).__name__}"
            )
        if filename.endswith(".pkl"):
            if "model" in data and "__author__" in data:  # detectron2 model zoo format
                self.logger.info(f"Reading a file from '{data['__author__']}'")
                return data
            blobs = data.get("blobs", data)  # Caffe2 / Detectron1 model zoo
            blobs = {k: v for k, v in blobs.items() if not k.endswith("_momentum")}
            return {"model": blobs, "__author__": "Caffe2", "matching_heuristics": True}
        if filename.endswith(".pyth"):  # pycls
            if "model_state" not in data:
                raise WeightsFileError(
                    f"{filename}: pycls checkpoints (.pyth) must contain 'model_state'"
                )
            state = {
                k: v
                for k, v in data["model_state"].items()
                if not k.endswith("num_batches_tracked")
            }
            return {"model": state, "__author__": "pycls", "matching_heuristics": True}
        if "model" not in data:
            data = {"model": data}
        return compat.apply_checkpoint_url_queries(self, data)


class ClassifierCheckpointer(SafeCheckpointer):
    """Checkpointer for ImageClassifier training that saves the model in detectron2's
    backbone-relative naming with ``matching_heuristics: True`` (and ``__author__:
    "als_d2"``); checkpointables, extra data and ``last_checkpoint`` are saved as detectron2
    does, atomically. Loading is DetectionCheckpointer's, without running pickled code.
    """

    def save(self, name: str, **kwargs) -> None:
        # Checkpointer.save writes its extra data over its own entries: "model" is replaced
        model = backbone_relative(self.model.state_dict())
        super().save(name, model=model, __author__=AUTHOR, matching_heuristics=True, **kwargs)


def _stage(key: str) -> str:
    """Report group of a detector key: ``stem``, ``res2``..``res5`` (wherever they sit), or
    the module path of a detection-only parameter (``proposal_generator.rpn_head.conv``)."""
    parts = key.split(".")
    for p in parts:
        if p == "stem" or (p.startswith("res") and p[3:].isdigit()):
            return p
    return ".".join(parts[:-1])


def transferred_keys(model_keys: List[str], missing: List[str], incorrect: List[str]) -> List[str]:
    """Model keys that were loaded: all minus the missing and the shape-mismatched ones."""
    skip = set(missing) | set(incorrect)
    return [k for k in model_keys if k not in skip]


def summarize_transfer(
    model_keys: List[str], loaded: List[str], unused: List[str], source: str
) -> str:
    """A few log lines: tensors loaded per backbone stage and where they went, the
    detection parameters that start from scratch, the checkpoint tensors not used."""
    per_stage: "OrderedDict[str, List[str]]" = OrderedDict()
    for k in loaded:
        per_stage.setdefault(_stage(k), []).append(k)
    backbone_stages = [s for s in per_stage if s == "stem" or s.startswith("res")]
    n_backbone = sum(len(per_stage[s]) for s in backbone_stages)
    lines = [
        f"Transfer from {source}: {len(loaded)} of {len(model_keys)} model tensors loaded, "
        f"{n_backbone} of them ResNet backbone tensors:"
    ]
    for s in backbone_stages:
        where = sorted({k[: k.index(s) + len(s)] for k in per_stage[s]})
        lines.append(f"  {s:>5}: {len(per_stage[s]):4d} tensors -> {', '.join(where)}")
    other_loaded = [s for s in per_stage if s not in backbone_stages]
    if other_loaded:
        lines.append(f"  other loaded modules: {', '.join(other_loaded)}")
    loaded_set = set(loaded)
    scratch: "OrderedDict[str, int]" = OrderedDict()
    for k in model_keys:
        if k not in loaded_set:
            scratch[_stage(k)] = scratch.get(_stage(k), 0) + 1
    if scratch:
        lines.append(
            f"Start from scratch ({sum(scratch.values())} tensors): "
            + ", ".join(f"{m} ({n})" for m, n in scratch.items())
        )
    if unused:
        lines.append(
            f"Not used from the checkpoint ({len(unused)} tensors): "
            + ", ".join(sorted(unused)[:12])
            + (" ..." if len(unused) > 12 else "")
        )
    return "\n".join(lines)


def describe_weights(fmt: str, author: str) -> str:
    """How the logs name a ResNet file: its format (:func:`.conversion.detect_format`) and,
    where it differs, its ``__author__``: a ``.pkl`` that ``tools/convert_weights.py --to
    detectron2`` wrote is "detectron2 format, __author__ 'als_d2'", not an als_d2 file."""
    return f"{fmt} format" + ("" if author == fmt else f", __author__ {author!r}")


class TransferCheckpointer(SafeCheckpointer):
    """DetectionCheckpointer that also starts a detector from any ResNet format of
    :mod:`als_d2.checkpoint.conversion` and reports the transfer.

    ResNet weights in any format (torchvision/timm, ImageClassifier checkpoints with or
    without ``ClassifierCheckpointer``'s naming, detectron2 ``.pkl``) are reduced to
    backbone-relative keys and loaded with ``matching_heuristics``; detector checkpoints
    (resuming, ``--eval-only``) and Caffe2 files are loaded as DetectionCheckpointer loads
    them. Reading is :class:`SafeCheckpointer`'s (no pickled code runs).
    """

    def _load_file(self, filename: str) -> Dict:
        self._described = None
        data = super()._load_file(filename)
        if data.get("__author__") in ("Caffe2", "pycls"):
            return data  # converted by detectron2 itself (Caffe2 names, pycls)
        try:
            fmt, checkpoint = matching_checkpoint(data)
        except (ValueError, KeyError):
            return data  # a detector checkpoint, or anything else: detectron2's rules
        self._described = describe_weights(fmt, checkpoint["__author__"])
        self.logger.info(
            f"{filename}: ResNet weights in {self._described}, loaded by name-matching heuristics"
        )
        return checkpoint

    def _load_model(self, checkpoint: Dict):
        model_keys = list(self.model.state_dict().keys())
        source = getattr(self, "_source", "checkpoint")
        described = getattr(self, "_described", None)
        if described:
            source += f" ({described})"
        elif "__author__" in checkpoint:
            source += f" (__author__ {checkpoint['__author__']!r})"
        if checkpoint.get("matching_heuristics", False) and not any(
            k.endswith(".num_batches_tracked") for k in model_keys
        ):
            # FrozenBN has no batch counter: the classifier's BN counters have nowhere to go
            checkpoint["model"] = {
                k: v
                for k, v in checkpoint["model"].items()
                if not k.endswith(".num_batches_tracked")
            }
        incompatible = super()._load_model(checkpoint)
        if incompatible is not None:
            incorrect = [k for k, *_ in incompatible.incorrect_shapes]
            loaded = transferred_keys(model_keys, incompatible.missing_keys, incorrect)
            self.transfer = {
                "loaded": loaded,
                "missing": list(incompatible.missing_keys),
                "unused": list(incompatible.unexpected_keys) + incorrect,
            }
            self.logger.info(
                summarize_transfer(model_keys, loaded, self.transfer["unused"], source)
            )
        return incompatible
