"""What the project's trainers change around ``DefaultTrainer.__init__`` (both build on it).

- :func:`ddp_without_device_ids`: several CPU processes (gloo) train a DDP model too;
- :func:`use_checkpointer`: the project's checkpointer in place of the
  ``DetectionCheckpointer`` that ``DefaultTrainer.__init__`` builds.
"""

import contextlib
import functools

import torch
from detectron2.engine import defaults as d2_defaults
from detectron2.engine import hooks
from detectron2.utils import comm

__all__ = ["ddp_without_device_ids", "use_checkpointer"]


@contextlib.contextmanager
def ddp_without_device_ids(cfg):
    """Within the block, a ``DefaultTrainer.__init__`` of several processes on a non-CUDA
    ``MODEL.DEVICE`` wraps the model in DDP without ``device_ids``.

    detectron2's ``create_ddp_model`` (v0.6 and main) passes ``device_ids=[local rank]``,
    which DDP refuses for a CPU model. On one process, or on GPUs, nothing changes.
    """
    if comm.get_world_size() == 1 or torch.device(cfg.MODEL.DEVICE).type == "cuda":
        yield
        return
    original = d2_defaults.create_ddp_model
    d2_defaults.create_ddp_model = functools.partial(original, device_ids=None)
    try:
        yield
    finally:
        d2_defaults.create_ddp_model = original


def use_checkpointer(trainer, checkpointer) -> None:
    """Make ``checkpointer`` the trainer's, also in the ``PeriodicCheckpointer`` hook that
    ``DefaultTrainer.__init__`` built with its ``DetectionCheckpointer``."""
    trainer.checkpointer = checkpointer
    for hook in trainer._hooks:
        if isinstance(hook, hooks.PeriodicCheckpointer):
            hook.checkpointer = checkpointer
