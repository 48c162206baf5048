"""``ClassificationTrainer``: a trainer with detectron2's ``DefaultTrainer`` interface for image
classification, composed from d2's public parts (``engine/base.py``).

What differs from training a detector:
- the schedule may be stated in epochs (``SOLVER.EPOCHS``...), turned into iterations
  from the training set size at start-up (``engine/schedule.py``);
- the train loader is resumable to the sample (``data/build.py``): a run stopped after
  checkpoint k and resumed sees the same samples and augmentations as an uninterrupted
  one;
- the training step can run under autocast in bf16 or fp16 (with a grad scaler), and
  DDP wrapping works for CPU processes over gloo as well as GPUs;
- DDP broadcasts the BatchNorm buffers from rank 0 (torchvision's reference recipe), and
  every rank evaluates with rank 0's buffers, those of the checkpoint;
- the ``als/*`` batch statistics are averaged over the ranks (the whole batch);
- before anything is built, the config is checked against the machine
  (``MODEL.DEVICE``) and against the loaded training dicts (``check_training_dicts``);
- training samples the mapper skipped (undecodable images) are counted across worker
  processes and ranks into ``data/skipped_samples`` (cumulative, kept in checkpoints);
- with ``MODEL_EMA.ENABLED`` an exponential moving average of the weights (``engine/ema.py``)
  is kept, saved in checkpoints (``"model_ema"``) and evaluated next to the raw model (its
  results under ``"ema"``: ``ema/classification/top1`` in the metrics, its files under
  ``OUTPUT_DIR/inference_ema``);
- checkpoints keep the recent history of every logged scalar, so a resumed run logs the
  same smoothed metrics (``metrics.json``) as an uninterrupted one, and the run's data seed
  (drawn at random with ``SEED -1``), so a resumed run draws the same samples.
"""

import logging
import os
import time
import weakref

import numpy as np
import torch
from detectron2.engine import HookBase, SimpleTrainer
from detectron2.engine.hooks import EvalHook, LRScheduler
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage

from ..checkpoint import ClassifierCheckpointer
from ..config import check_als_config, check_device, check_training_dicts, resolve_num_classes
from ..data.build import (
    build_cls_test_loader,
    build_cls_train_loader,
    load_dataset_dicts,
    load_datasets,
    pop_skipped,
    sample_seed,
)
from ..data.mapper import ClassificationDatasetMapper
from ..env import cpu_precision, cuda_precision
from ..evaluation import ClassificationEvaluator
from .base import ComposedTrainer, TrainingBatches
from .ema import EMA_CHECKPOINT_KEY, ModelEMA, run_epochs
from .schedule import apply_epoch_schedule

logger = logging.getLogger(__name__)


def autocast_dtype(cfg, device_type: str):
    """The autocast dtype the config asks for on ``device_type``, or None for float32.

    ``auto``: bf16 on GPUs with native bf16 (compute capability 8.0 on,
    ``als_d2.env.cuda_precision``), else fp16 with a grad scaler; on a CPU bf16 only where its
    matmuls are native (``als_d2.env.cpu_has_native_bf16``: AVX512-BF16 / AMX / ARM
    BF16), else float32 (emulated bf16 is several times slower than fp32), with one log
    line saying why. An explicit ``bf16`` / ``fp16`` is honoured (with a warning on a CPU
    that would emulate it).
    """
    if not cfg.SOLVER.AMP.ENABLED:
        return None
    precision = cfg.SOLVER.AMP.PRECISION
    if device_type == "cpu":
        prec = cpu_precision()
        if precision == "auto":
            if not prec.bf16:
                logger.warning(
                    f"SOLVER.AMP.PRECISION auto: training in float32, {prec.reason_bf16}"
                )
                return None
            logger.info(f"SOLVER.AMP.PRECISION auto: bf16 autocast, {prec.reason_bf16}")
            precision = "bf16"
        elif not getattr(prec, precision):
            reason = prec.reason_bf16 if precision == "bf16" else prec.reason_fp16
            logger.warning(
                f"SOLVER.AMP.PRECISION {precision}: emulated, likely slower than float32 ({reason})"
            )
    elif precision == "auto":
        precision = "bf16"
        if device_type == "cuda":
            prec = cuda_precision()
            precision = "bf16" if prec.bf16 else "fp16"
            logger.info(f"SOLVER.AMP.PRECISION auto: {precision} autocast, {prec.reason}")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def pins_memory(cfg) -> bool:
    """Whether the loaders pin their batches: on a CUDA ``MODEL.DEVICE``, so that the
    model's ``non_blocking`` copies to the GPU overlap with the step."""
    return torch.device(cfg.MODEL.DEVICE).type == "cuda"


class ClassificationStepRunner(SimpleTrainer):
    """d2's ``SimpleTrainer`` whose step runs under autocast on any device (bf16, or fp16
    with a grad scaler), which d2's ``AMPTrainer`` does only on CUDA.

    With ``step_seed`` set, torch's global RNG is seeded from (step_seed, iteration)
    before each forward, so batch-level randomness (CutMix/Mixup pairing and ratio) is
    a function of the iteration and survives kill-and-resume.

    Metrics go to EventStorage in one ``comm.gather`` per step, as in d2's
    ``SimpleTrainer.write_metrics`` (losses averaged over the ranks, ``data_time`` their
    maximum), which also carries:

    * the samples the loader skipped (``data.build.SKIPPED_KEY`` of each dict), summed over
      the ranks into ``skipped_samples`` (cumulative), logged as ``data/skipped_samples``;
    * the model's ``als/*`` batch statistics of this step, averaged over the ranks (the
      ranks' batches are of equal size), so that they describe the whole batch.
    """

    def __init__(
        self, model, data_loader, optimizer, *, amp_dtype=None, device_type="cpu", step_seed=None
    ):
        super().__init__(model, data_loader, optimizer)
        self.amp_dtype = amp_dtype
        self.device_type = device_type
        self.step_seed = step_seed
        self.grad_scaler = torch.amp.GradScaler(device_type) if amp_dtype == torch.float16 else None
        self.skipped_samples = 0
        self._skipped_in_step = 0

    def run_step(self):
        assert self.model.training, "[ClassificationStepRunner] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        self._skipped_in_step = pop_skipped(data)
        if self.step_seed is not None:
            torch.manual_seed(sample_seed(self.step_seed, self.iter))
        amp = self.amp_dtype is not None
        with torch.autocast(self.device_type, dtype=self.amp_dtype or torch.float32, enabled=amp):
            loss_dict = self.model(data)
        losses = sum(loss_dict.values())
        self.optimizer.zero_grad(set_to_none=True)
        scaler = self.grad_scaler
        (scaler.scale(losses) if scaler is not None else losses).backward()
        self._write_metrics(loss_dict, data_time)
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()

    def _write_metrics(self, loss_dict, data_time: float, prefix: str = "", iter=None) -> None:
        """d2's ``SimpleTrainer.write_metrics`` with the skipped samples and the ``als/*``
        scalars of the step in the same gather (see the class docstring)."""
        storage = get_event_storage()
        losses = {k: v.detach().cpu().item() for k, v in loss_dict.items()}
        extra = {"data_time": data_time, "skipped": self._skipped_in_step}
        if comm.get_world_size() > 1:  # the model put them into each rank's storage
            extra["als"] = {
                k: v
                for k, (v, it) in storage.latest().items()
                if k.startswith("als/") and it == storage.iter
            }
        gathered = comm.gather((losses, extra))
        if not comm.is_main_process():
            return
        extras = [e for _, e in gathered]
        storage.put_scalar("data_time", max(e["data_time"] for e in extras))
        self.skipped_samples += sum(e["skipped"] for e in extras)
        storage.put_scalar("data/skipped_samples", self.skipped_samples, smoothing_hint=False)
        if len(gathered) > 1:
            names = {k for e in extras for k in e["als"]}
            for name in sorted(names):
                values = [e["als"][name] for e in extras if name in e["als"]]
                storage.put_scalar(name, sum(values) / len(values), smoothing_hint=False)
        metrics = {k: float(np.mean([m[k] for m, _ in gathered])) for k in losses}
        total = sum(metrics.values())
        if not np.isfinite(total):
            raise FloatingPointError(
                f"Loss became infinite or NaN at iteration={storage.iter}!\nloss_dict = {metrics}"
            )
        storage.put_scalar(f"{prefix}total_loss", total)
        if len(metrics) > 1:
            storage.put_scalars(**metrics)

    def state_dict(self):
        ret = super().state_dict()
        if self.grad_scaler is not None:
            ret["grad_scaler"] = self.grad_scaler.state_dict()
        ret["skipped_samples"] = self.skipped_samples
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if self.grad_scaler is not None and "grad_scaler" in state_dict:
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])
        self.skipped_samples = int(state_dict.get("skipped_samples", 0))


class ThroughputHook(HookBase):
    """Logs ``images_per_sec`` (whole job) from the iteration time of d2's IterationTimer."""

    def __init__(self, total_batch_size: int):
        self._batch = total_batch_size

    def after_step(self):
        history = self.trainer.storage.histories().get("time")
        if history is not None and history.latest() > 0:
            self.trainer.storage.put_scalar("images_per_sec", self._batch / history.latest())


class BroadcastBuffers(HookBase):
    """Rank 0's model buffers (BatchNorm running mean / var) copied to every rank before
    each evaluation (every ``eval_period`` iterations) and after the last iteration.

    DDP with ``broadcast_buffers=True`` sends rank 0's buffers to the others at the start
    of each training forward, which then updates them with its own rank's batch: without
    this hook each rank would evaluate its shard of the validation set with slightly
    different statistics from those of the checkpoint (rank 0's)."""

    def __init__(self, eval_period: int):
        self._period = eval_period

    def after_step(self):
        next_iter = self.trainer.iter + 1
        if next_iter == self.trainer.max_iter or (
            self._period > 0 and next_iter % self._period == 0
        ):
            broadcast_buffers(self.trainer.model)


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Copy the buffers of ``model`` on rank 0 to every rank (no-op on one process)."""
    if comm.get_world_size() == 1:
        return
    for buffer in model.buffers():
        torch.distributed.broadcast(buffer, src=0)


METRIC_HISTORY_KEPT = 100  # per scalar; d2's writers smooth over the last 20


def metric_history(storage, keep: int = METRIC_HISTORY_KEPT) -> dict:
    """The last ``keep`` (value, iteration) pairs of every scalar of an EventStorage."""
    return {
        name: [(float(v), int(i)) for v, i in h.values()[-keep:]]
        for name, h in storage.histories().items()
    }


def restore_metric_history(storage, history: dict) -> None:
    """Put :func:`metric_history`'s values back into the (new) histories of ``storage``, so
    that smoothed scalars (window medians) continue as in an uninterrupted run."""
    for name, values in history.items():
        buffer = storage.histories()[name]
        if buffer.values():
            continue  # already written in this run
        for value, iteration in values:
            buffer.update(value, iteration)


class ClassificationTrainer(ComposedTrainer):
    """The trainer of ``ImageClassifier`` with the ALS data path (see the module docstring),
    with ``DefaultTrainer``'s interface (``engine/base.py``)."""

    # plain BatchNorm: every rank trains and evaluates with rank 0's running statistics
    broadcast_buffers = True

    def __init__(self, cfg):
        # d2's worker scaling first (ComposedTrainer's own call is then a no-op): the checks
        # and the epoch schedule see the batch size that is trained
        cfg = self.auto_scale_workers(cfg, comm.get_world_size())
        check_als_config(cfg)
        check_device(cfg)
        datasets = load_datasets(cfg.DATASETS.TRAIN)
        cfg = resolve_num_classes(cfg, datasets)
        check_training_dicts(cfg, datasets)
        self.train_dicts = [d for part in datasets.values() for d in part]
        del datasets
        logger.info(f"Training on {cfg.DATASETS.TRAIN}: {len(self.train_dicts)} samples")
        self.run_epochs = run_epochs(cfg, len(self.train_dicts))  # before EPOCHS is applied
        self.model_ema = None  # the ModelEMA hook with MODEL_EMA.ENABLED (build_hooks)
        cfg = apply_epoch_schedule(cfg, len(self.train_dicts))
        self.data_seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
        self.log_period = cfg.LOG_PERIOD
        self._pending_metric_history = None
        super().__init__(cfg)

    def run_train_loader(self, cfg) -> TrainingBatches:
        """The training loader of this run: :meth:`build_train_loader` of the dicts that
        ``__init__`` checked and the run's seed, built on the first step, at the iteration
        ``resume_or_load`` starts from (exact resume)."""
        return TrainingBatches(
            lambda: self.build_train_loader(
                self.cfg, start_iter=self.start_iter, dicts=self.train_dicts, seed=self.data_seed
            )
        )

    def build_step_runner(self, cfg, model, data_loader, optimizer) -> ClassificationStepRunner:
        """This project's step: autocast on any device, per-step seed, skipped samples."""
        device_type = torch.device(cfg.MODEL.DEVICE).type
        return ClassificationStepRunner(
            model,
            data_loader,
            optimizer,
            amp_dtype=autocast_dtype(cfg, device_type),
            device_type=device_type,
            step_seed=self.data_seed + 1,
        )

    def build_checkpointer(self, cfg, model) -> ClassifierCheckpointer:
        """Backbone-relative keys that stock DetectionCheckpointer loads into C4 and FPN
        detectors (see als_d2/checkpoint)."""
        return ClassifierCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))

    def state_dict(self):
        ret = super().state_dict()
        storage = getattr(self, "storage", None)
        if storage is not None:
            ret["metric_history"] = metric_history(storage)
        ret["data_seed"] = self.data_seed
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self._pending_metric_history = state_dict.get("metric_history")
        # the seed the run drew (SEED -1) or was given: its samples, augmentations and
        # mixing draws continue as in an uninterrupted run (the loader is built after this)
        seed = state_dict.get("data_seed")
        if seed is not None and int(seed) != self.data_seed:
            logger.info(f"Resuming with the run's data seed {seed} (SEED {self.cfg.SEED})")
            self.data_seed = int(seed)
            self._trainer.step_seed = self.data_seed + 1

    def before_train(self):
        history = self._pending_metric_history
        if history:  # the storage exists from here on (TrainerBase.train)
            restore_metric_history(self.storage, history)
        self._pending_metric_history = None
        super().before_train()

    def build_hooks(self):
        hooks = super().build_hooks()
        hooks.insert(1, ThroughputHook(self.cfg.SOLVER.IMS_PER_BATCH))  # right after IterationTimer
        # rank 0's BatchNorm statistics on every rank before the evaluation hook runs
        evaluation = next(i for i, h in enumerate(hooks) if isinstance(h, EvalHook))
        hooks.insert(evaluation, BroadcastBuffers(self.cfg.TEST.EVAL_PERIOD))
        if self.cfg.MODEL_EMA.ENABLED:
            # right after the lr scheduler: before PreciseBN, checkpoints and evaluation
            self.model_ema = ModelEMA.from_config(self.cfg, self.model, self.run_epochs)
            self.checkpointer.add_checkpointable(EMA_CHECKPOINT_KEY, self.model_ema.ema)
            lr = next(i for i, h in enumerate(hooks) if isinstance(h, LRScheduler))
            hooks.insert(lr + 1, self.model_ema)
        return hooks

    def run_evaluation(self):
        """The trained model's results; with ``MODEL_EMA.ENABLED`` also those of the moving
        average (rank 0's buffers on every rank) under ``"ema"``."""
        results = super().run_evaluation()
        if self.model_ema is not None:
            ema_model = self.model_ema.ema.module
            broadcast_buffers(ema_model)
            results["ema"] = self.test_ema(self.cfg, ema_model)
        return results

    @classmethod
    def test_ema(cls, cfg, model):
        """:meth:`test` of the weights' moving average ``model``: its evaluators write under
        ``OUTPUT_DIR/inference_ema/<dataset>`` and name the model ``<run>_ema``."""
        run = os.path.basename(os.path.normpath(cfg.OUTPUT_DIR))
        evaluators = [
            cls.build_evaluator(
                cfg,
                name,
                output_folder=os.path.join(cfg.OUTPUT_DIR, "inference_ema", name),
                model_name=f"{run}_ema",
            )
            for name in cfg.DATASETS.TEST
        ]
        return cls.test(cfg, model, evaluators)

    @classmethod
    def build_train_loader(cls, cfg, start_iter: int = 0, dicts=None, seed=None):
        """Endless batches of mapped training dicts for this rank, starting at ``start_iter``."""
        if dicts is None:
            dicts = load_dataset_dicts(cfg.DATASETS.TRAIN)
        if seed is None:
            seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
        return build_cls_train_loader(
            dicts,
            ClassificationDatasetMapper(cfg, is_train=True),
            total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
            seed=seed,
            start_iter=start_iter,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
            pin_memory=pins_memory(cfg),
        )

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_cls_test_loader(
            load_dataset_dicts([dataset_name]),
            ClassificationDatasetMapper(cfg, is_train=False),
            batch_size=cfg.TEST.IMS_PER_BATCH,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
            skip_unreadable=cfg.INPUT.CLS.SKIP_UNREADABLE_EVAL,
            pin_memory=pins_memory(cfg),
        )

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None, model_name=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        # names the model in figures: the run (OUTPUT_DIR's folder) by default
        run = model_name or os.path.basename(os.path.normpath(cfg.OUTPUT_DIR))
        return ClassificationEvaluator(
            dataset_name, distributed=True, output_dir=output_folder, model_name=run
        )
