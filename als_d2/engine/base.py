"""``ComposedTrainer``: detectron2's ``DefaultTrainer`` shape, built from its public parts.

detectron2's ``DefaultTrainer.__init__`` builds its step runner, its DDP wrapper
(``broadcast_buffers=False``, ``device_ids=[local rank]``) and its checkpointer itself, with
no way to choose them. The project's trainers need other ones (a classifier's plain
BatchNorm wants buffers broadcast from rank 0; several CPU processes over gloo want DDP
without ``device_ids``; the checkpointers of ``als_d2/checkpoint``), so this class composes
the same pieces (``TrainerBase``, a ``SimpleTrainer``/``AMPTrainer`` step runner, d2's hooks
and writers, a checkpointer), each built once, through overridable ``build_*`` methods:

- :meth:`build_step_runner`, :meth:`build_checkpointer`, :meth:`ddp_kwargs`;
- the classmethods of ``DefaultTrainer`` (``build_model``, ``build_optimizer``,
  ``build_lr_scheduler``, ``build_train_loader``, ``build_test_loader``,
  ``build_evaluator``, ``test``) and ``build_hooks`` / ``build_writers``, with the same
  meaning.

The step runner's state (optimizer, grad scaler) is saved under ``"_trainer"`` in
checkpoints, as detectron2 main's DefaultTrainer does.
"""

import logging
import weakref
from collections import OrderedDict

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import (
    AMPTrainer,
    DefaultTrainer,
    SimpleTrainer,
    TrainerBase,
    create_ddp_model,
    default_writers,
    hooks,
)
from detectron2.evaluation import DatasetEvaluator, inference_on_dataset, print_csv_format
from detectron2.evaluation import verify_results
from detectron2.modeling import build_model
from detectron2.solver import build_lr_scheduler, build_optimizer
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from .preemption import stop_on_signal_hooks

__all__ = ["ComposedTrainer", "TrainingBatches", "ddp_device_ids"]

logger = logging.getLogger(__name__)


def ddp_device_ids(cfg):
    """DDP's ``device_ids`` for ``cfg.MODEL.DEVICE``: ``[local rank]`` on CUDA, None
    elsewhere (DDP refuses ``device_ids`` for a CPU model, as with gloo CPU processes)."""
    if torch.device(cfg.MODEL.DEVICE).type == "cuda":
        return [comm.get_local_rank()]
    return None


class TrainingBatches:
    """The training batches: an iterator over ``make_loader()``, called on the first
    ``next()`` (d2's SimpleTrainer calls ``iter()`` on construction, before
    ``resume_or_load`` sets the start iteration). :meth:`close` drops the loader's iterator,
    so that torch shuts its worker processes down then, not whenever the garbage collector
    finds the trainer (a trainer whose step raised stays referenced by the traceback)."""

    def __init__(self, make_loader):
        self._make_loader = make_loader
        self._batches = None

    def __iter__(self):
        return self

    def __next__(self):
        if self._batches is None:
            self._batches = iter(self._make_loader())
        return next(self._batches)

    def close(self) -> None:
        self._batches = None


class ComposedTrainer(TrainerBase):
    """A trainer with ``DefaultTrainer``'s interface (see the module docstring)."""

    #: DDP's ``broadcast_buffers``: False as in detectron2 (detectors with frozen BN)
    broadcast_buffers = False
    #: iterations between two writes of the metric writers (d2's DefaultTrainer: 20)
    log_period = 20

    def __init__(self, cfg):
        super().__init__()
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        self.cfg = cfg
        model = self.build_model(cfg)
        self.optimizer = self.build_optimizer(cfg, model)
        self.model = create_ddp_model(model, **self.ddp_kwargs(cfg))
        self.data_loader = self.run_train_loader(cfg)
        self._trainer = self.build_step_runner(cfg, self.model, self.data_loader, self.optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, self.optimizer)
        self.checkpointer = self.build_checkpointer(cfg, self.model)
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.register_hooks(self.build_hooks())

    # --- the parts DefaultTrainer builds without asking -------------------------------------

    def ddp_kwargs(self, cfg) -> dict:
        """Keyword arguments of ``DistributedDataParallel`` (via d2's ``create_ddp_model``)."""
        return {"broadcast_buffers": self.broadcast_buffers, "device_ids": ddp_device_ids(cfg)}

    def run_train_loader(self, cfg) -> TrainingBatches:
        """The training batches of this run (default: :meth:`build_train_loader`, built now,
        iterated from the first step)."""
        loader = self.build_train_loader(cfg)
        return TrainingBatches(lambda: loader)

    def build_step_runner(self, cfg, model, data_loader, optimizer) -> TrainerBase:
        """The object whose ``run_step`` trains one iteration: d2's ``AMPTrainer`` with
        ``SOLVER.AMP.ENABLED`` (CUDA only), else ``SimpleTrainer``."""
        runner = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        return runner(model, data_loader, optimizer)

    def build_checkpointer(self, cfg, model):
        """The checkpointer of ``model`` in ``OUTPUT_DIR``, saving this trainer's state too."""
        return DetectionCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))

    # --- DefaultTrainer's interface ---------------------------------------------------------

    def resume_or_load(self, resume: bool = True) -> None:
        """Load the last checkpoint of ``OUTPUT_DIR`` with all states (``resume`` and one
        exists; training continues after its iteration), else ``MODEL.WEIGHTS``' model only."""
        self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            self.start_iter = self.iter + 1

    def build_hooks(self):
        """d2's default hooks: timer, lr scheduler, PreciseBN, checkpointer (main process),
        evaluation, writers (main process, every :attr:`log_period` iterations), then the
        scheduler's stop signals and Ctrl-C (``engine/preemption.py``)."""
        cfg = self.cfg.clone()
        cfg.defrost()
        cfg.DATALOADER.NUM_WORKERS = 0  # PreciseBN's loader: save memory and time
        ret = [
            hooks.IterationTimer(),
            hooks.LRScheduler(),
            hooks.PreciseBN(
                cfg.TEST.EVAL_PERIOD,
                self.model,
                self.build_train_loader(cfg),
                cfg.TEST.PRECISE_BN.NUM_ITER,
            )
            if cfg.TEST.PRECISE_BN.ENABLED and hooks.get_bn_modules(self.model)
            else None,
        ]
        if comm.is_main_process():
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD))

        def test_and_save_results():
            self._last_eval_results = self.run_evaluation()
            return self._last_eval_results

        ret.append(hooks.EvalHook(cfg.TEST.EVAL_PERIOD, test_and_save_results))
        if comm.is_main_process():
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=self.log_period))
        return ret + stop_on_signal_hooks()

    def run_evaluation(self):
        """What the evaluation hook runs: :meth:`test` of the trained model (subclasses add
        other models' results, e.g. the weights' moving average)."""
        return self.test(self.cfg, self.model)

    def build_writers(self):
        """d2's ``default_writers``: console, ``metrics.json``, TensorBoard."""
        return default_writers(self.cfg.OUTPUT_DIR, self.max_iter)

    def train(self):
        """Train from ``start_iter`` to ``max_iter``; the last evaluation's results (checked
        against ``TEST.EXPECTED_RESULTS`` when set), or None without evaluation. The
        training loader's worker processes end with it, also when a step raises."""
        try:
            super().train(self.start_iter, self.max_iter)
        finally:
            self.data_loader.close()
        if len(self.cfg.TEST.EXPECTED_RESULTS) and comm.is_main_process():
            verify_results(self.cfg, self._last_eval_results)
        return getattr(self, "_last_eval_results", None)

    def run_step(self):
        self._trainer.iter = self.iter
        self._trainer.run_step()

    def state_dict(self):
        ret = super().state_dict()
        ret["_trainer"] = self._trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if "_trainer" in state_dict:
            self._trainer.load_state_dict(state_dict["_trainer"])

    @classmethod
    def build_model(cls, cfg):
        model = build_model(cfg)
        logging.getLogger(__name__).info(f"Model:\n{model}")
        return model

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        raise NotImplementedError(f"{cls.__name__}.build_evaluator")

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """Evaluate ``model`` on each of ``cfg.DATASETS.TEST`` (``evaluators``: one per
        dataset, default :meth:`build_evaluator`); one dataset's results, or a dict of them
        by dataset name."""
        if isinstance(evaluators, DatasetEvaluator):
            evaluators = [evaluators]
        if evaluators is not None and len(evaluators) != len(cfg.DATASETS.TEST):
            raise ValueError(
                f"{len(evaluators)} evaluators for the {len(cfg.DATASETS.TEST)} datasets of "
                "DATASETS.TEST: give one per dataset"
            )
        results = OrderedDict()
        for idx, dataset_name in enumerate(cfg.DATASETS.TEST):
            data_loader = cls.build_test_loader(cfg, dataset_name)
            if evaluators is not None:
                evaluator = evaluators[idx]
            else:
                evaluator = cls.build_evaluator(cfg, dataset_name)
            results[dataset_name] = inference_on_dataset(model, data_loader, evaluator)
            if comm.is_main_process():
                logger.info(f"Evaluation results for {dataset_name} in csv format:")
                print_csv_format(results[dataset_name])
        if len(results) == 1:
            return list(results.values())[0]
        return results

    @staticmethod
    def auto_scale_workers(cfg, num_workers: int):
        """detectron2's ``DefaultTrainer.auto_scale_workers`` (``SOLVER.REFERENCE_WORLD_SIZE``)."""
        return DefaultTrainer.auto_scale_workers(cfg, num_workers)
