"""Exponential moving average (EMA) of the weights, as torchvision's classification reference
builds it, on torch's ``torch.optim.swa_utils.AveragedModel``.

Every ``MODEL_EMA.STEPS`` iterations (after iterations ``i`` with ``(i + 1) % STEPS == 0``)
the average is updated from the unwrapped model, parameters and buffers alike
(``use_buffers=True``: BatchNorm running statistics are averaged too; integer buffers such
as ``num_batches_tracked`` are averaged and truncated, as torch does):

    W_ema <- W            on the first update (AveragedModel's ``n_averaged == 0``)
    W_ema <- d W_ema + (1 - d) W   afterwards (``get_ema_multi_avg_fn(d)``)

with the decay ``d`` adjusted for the batch size and the update period as torchvision does
(:func:`ema_decay`). With ``MODEL_EMA.WARMUP_RESET`` the counter ``n_averaged`` is reset to 0
after every update during the lr warm-up (iterations < ``SOLVER.WARMUP_ITERS``), so the
average is a copy of the weights until the warm-up ends and starts averaging after it.

Differences from torchvision's reference: it counts the update period within each epoch
(after batch ``i`` of the epoch when ``i % steps == 0``, so also after each epoch's first
batch), we count the run's iterations; its warm-up is in epochs, ours in iterations (an
epoch schedule's ``SOLVER.WARMUP_EPOCHS`` becomes ``WARMUP_ITERS``).

The average lives on the model's device, in every process (DDP ranks hold identical weights;
every rank evaluates rank 0's buffers, those of the checkpoint), and is saved in
checkpoints under ``"model_ema"`` (the ``AveragedModel``'s state dict: ``module.*`` and
``n_averaged``), so a resumed run continues it exactly.
"""

import logging
from typing import Dict, Optional

import torch
from detectron2.engine import HookBase
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = [
    "EMA_CHECKPOINT_KEY",
    "ModelEMA",
    "build_model_ema",
    "ema_decay",
    "load_ema_weights",
    "run_epochs",
]

logger = logging.getLogger(__name__)

EMA_CHECKPOINT_KEY = "model_ema"  # the checkpointable's key in checkpoint files


def ema_decay(decay: float, total_batch_size: int, steps: int, epochs: float) -> float:
    """torchvision's adjusted decay: ``adjust = total_batch_size * steps / epochs``, ``alpha =
    min(1, (1 - decay) * adjust)``, returns ``1 - alpha``. ``total_batch_size`` is
    torchvision's ``world_size * batch_size`` (our ``SOLVER.IMS_PER_BATCH``), ``steps`` the
    iterations between updates, ``epochs`` the run's length in epochs (> 0)."""
    if epochs <= 0:
        raise ValueError(f"ema_decay: epochs must be > 0, got {epochs}")
    adjust = total_batch_size * steps / epochs
    alpha = min(1.0, (1.0 - decay) * adjust)
    return 1.0 - alpha


def run_epochs(cfg, dataset_size: int) -> float:
    """The run's length in epochs, before ``apply_epoch_schedule``: ``SOLVER.EPOCHS`` for an
    epoch schedule, else ``MAX_ITER * IMS_PER_BATCH / dataset_size``."""
    if cfg.SOLVER.EPOCHS > 0:
        return float(cfg.SOLVER.EPOCHS)
    return cfg.SOLVER.MAX_ITER * cfg.SOLVER.IMS_PER_BATCH / float(dataset_size)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def build_model_ema(model: torch.nn.Module, decay: float) -> AveragedModel:
    """torch's ``AveragedModel`` of the unwrapped ``model`` (a copy on its device), EMA with
    ``decay`` over parameters and buffers."""
    return AveragedModel(unwrap(model), multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


class ModelEMA(HookBase):
    """Updates :attr:`ema` (an ``AveragedModel``) after every ``steps``-th iteration (module
    docstring); :attr:`ema` ``.module`` is the averaged model to evaluate.

    Register it before the checkpointer and evaluation hooks, so that a checkpoint or an
    evaluation after iteration i sees the average that includes iteration i."""

    def __init__(
        self, model: torch.nn.Module, decay: float, steps: int, warmup_iters: int, warmup_reset
    ):
        self._model = unwrap(model)
        self.ema = build_model_ema(self._model, decay)
        self.decay, self.steps = float(decay), int(steps)
        self.warmup_iters, self.warmup_reset = int(warmup_iters), bool(warmup_reset)

    @classmethod
    def from_config(cls, cfg, model, epochs: float) -> "ModelEMA":
        """The hook of ``cfg.MODEL_EMA`` for a run of ``epochs`` epochs (decay adjusted and
        logged)."""
        ema = cfg.MODEL_EMA
        decay = ema_decay(ema.DECAY, cfg.SOLVER.IMS_PER_BATCH, ema.STEPS, epochs)
        logger.info(
            f"Model EMA: MODEL_EMA.DECAY {ema.DECAY} -> decay {decay:.8g} per update (torchvision's"
            f" adjustment for IMS_PER_BATCH {cfg.SOLVER.IMS_PER_BATCH}, an update every "
            f"MODEL_EMA.STEPS {ema.STEPS} iterations, {epochs:.4g} epochs)"
            + (
                f"; restarted after each update of the {cfg.SOLVER.WARMUP_ITERS} warm-up iterations"
                if ema.WARMUP_RESET and cfg.SOLVER.WARMUP_ITERS > 0
                else ""
            )
        )
        return cls(model, decay, ema.STEPS, cfg.SOLVER.WARMUP_ITERS, ema.WARMUP_RESET)

    def update(self, iteration: int) -> None:
        """Update after ``iteration`` (0-based) when it ends a period of ``steps``."""
        if (iteration + 1) % self.steps:
            return
        self.ema.update_parameters(self._model)
        if self.warmup_reset and iteration < self.warmup_iters:
            self.ema.n_averaged.fill_(0)  # torchvision: keep copying during the warm-up

    def after_step(self):
        self.update(self.trainer.iter)


def load_ema_weights(model: torch.nn.Module, state: Dict, source: Optional[str] = None) -> None:
    """Load the ``"model_ema"`` entry of a checkpoint (an ``AveragedModel`` state dict:
    ``module.<key>`` and ``n_averaged``) into ``model``, strictly: every model tensor must be
    there with its shape (``CheckpointMismatchError`` naming ``source`` otherwise)."""
    from ..checkpoint.evaluation import CheckpointMismatchError

    weights = {k[len("module.") :]: v for k, v in state.items() if k.startswith("module.")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        why = " ".join(str(e).split())[:400]
        raise CheckpointMismatchError(
            f"{source or 'checkpoint'}: its {EMA_CHECKPOINT_KEY} weights do not fit the model: "
            f"{why}"
        ) from None
