"""What the tools share around detectron2's ``launch()``: the ``--num-gpus`` check and the
per-process set-up (output folder, config dump, loggers)."""

import torch
from detectron2.engine import default_setup, launch
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from .. import compat

__all__ = [
    "evaluate_weights",
    "als_default_setup",
    "check_processes",
    "launch_from_args",
    "short_errors",
]


class short_errors:
    """``main`` with the errors that explain themselves (a config key that cannot work, a
    missing dataset root) turned into a one-line ``SystemExit`` instead of a traceback
    through the trainer and the loaders. A class, not a closure, so that ``launch`` can
    pickle it for worker processes."""

    def __init__(self, main):
        self.main = main

    def __call__(self, *args, **kwargs):
        from ..config import ConfigError
        from ..data.datasets.catalog import DatasetRootMissingError

        try:
            return self.main(*args, **kwargs)
        except (ConfigError, DatasetRootMissingError) as e:
            raise SystemExit(f"error: {e}") from None


def als_default_setup(cfg, args) -> None:
    """detectron2's ``default_setup`` (OUTPUT_DIR, the config dump, the environment report,
    the ``detectron2`` and ``fvcore`` loggers) plus the ``als_d2`` logger, set up the same
    way: console on the main process, ``OUTPUT_DIR/log.txt`` (``log.txt.rank<N>`` on the
    other ranks). Without it the messages of als_d2's modules (dataset index and subset
    tables, skipped samples, schedule) reach neither the console nor log.txt.
    ``setup_logger`` is cached per argument set, so a second call adds no handler.

    A training run without ``--resume`` into an OUTPUT_DIR that holds a ``metrics.json``
    logs a warning naming the file: detectron2's ``JSONWriter`` appends, so the new run's
    rows follow the old run's in the same file."""
    import logging
    import os

    metrics = os.path.join(cfg.OUTPUT_DIR, "metrics.json") if cfg.OUTPUT_DIR else ""
    stale = (
        bool(metrics)
        and not getattr(args, "resume", False)
        and not getattr(args, "eval_only", False)
        and os.path.isfile(metrics)
    )
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="als_d2")
    if stale and comm.is_main_process():
        logging.getLogger(__name__).warning(
            f"{metrics} exists from an earlier run: this fresh run (no --resume) appends its "
            "rows after the old ones (detectron2's JSONWriter appends): use a new OUTPUT_DIR, "
            "or --resume to continue that run"
        )


def evaluate_weights(cfg, trainer_cls, checkpointer_cls, resume: bool = False):
    """``--eval-only`` of detectron2's ``train_net.py``: load ``cfg.MODEL.WEIGHTS`` (or
    OUTPUT_DIR's last checkpoint with ``resume``) into ``trainer_cls.build_model(cfg)``, run
    ``trainer_cls.test`` and ``verify_results``.

    Loading is strict, as in ``tools/eval_cls.py``: the evaluation counterpart of
    ``checkpointer_cls`` (``als_d2.checkpoint.evaluation.strict_checkpointer``) refuses a
    file that leaves a model tensor at its random init, has tensors the model lacks, or
    other shapes (another MODEL.RESNETS.DEPTH; a classifier checkpoint given to a
    detector). A missing weights file, or such a mismatch, is a one-line error before
    anything is evaluated or written. The test runs in an ``EventStorage`` whose ``iter`` is
    the number of iterations the loaded checkpoint was trained (its ``iteration`` + 1, as
    the storage reads at the end of training), when the file records one: what the test
    writes (``transfer_metrics.json``) then says how long the weights were trained."""
    from detectron2.evaluation import verify_results
    from detectron2.utils.events import EventStorage

    from ..checkpoint.evaluation import (
        CheckpointMismatchError,
        check_files_exist,
        strict_checkpointer,
    )

    if not resume:
        check_files_exist([cfg.MODEL.WEIGHTS], "MODEL.WEIGHTS")
    model = trainer_cls.build_model(cfg)
    checkpointer = strict_checkpointer(checkpointer_cls)(model, save_dir=cfg.OUTPUT_DIR)
    try:
        extra = checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=resume)
    except CheckpointMismatchError as e:
        raise SystemExit(f"error: {e}") from None
    iteration = extra.get("iteration") if isinstance(extra, dict) else None
    if isinstance(iteration, int):
        with EventStorage(iteration + 1):
            res = trainer_cls.test(cfg, model)
    else:
        res = trainer_cls.test(cfg, model)
    if comm.is_main_process():
        verify_results(cfg, res)
    return res


def check_processes(num_gpus: int) -> None:
    """Stop early, saying what is possible, when ``--num-gpus`` cannot be honoured."""
    visible = torch.cuda.device_count()
    if num_gpus <= 1 or num_gpus <= visible:
        return
    if visible == 0 and compat.launch_supports_cpu_workers():
        return  # detectron2 main runs CPU processes over gloo
    if visible == 0:
        raise SystemExit(
            f"--num-gpus {num_gpus}: no CUDA device is visible and the installed detectron2's "
            "launch() cannot start CPU processes (v0.6 asserts CUDA; detectron2 main runs them "
            "over gloo). Run with --num-gpus 1 MODEL.DEVICE cpu, or install the official "
            "detectron2 main."
        )
    raise SystemExit(f"--num-gpus {num_gpus}: only {visible} CUDA device(s) are visible")


def launch_from_args(main, args) -> None:
    """``launch(main, ...)`` with the flags of detectron2's ``default_argument_parser``."""
    check_processes(args.num_gpus)
    launch(
        short_errors(main),
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
