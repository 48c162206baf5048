"""What the tools share around detectron2's ``launch()``: the ``--num-gpus`` check and the
per-process set-up (output folder, config dump, loggers)."""

import logging
import multiprocessing
import os

import torch
from detectron2.config import CfgNode
from detectron2.engine import default_setup, launch
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch.multiprocessing import ProcessExitedException

from .. import compat
from .preemption import INTERRUPT_EXIT_CODE

__all__ = [
    "evaluate_weights",
    "als_default_setup",
    "check_processes",
    "hide_cuda_for_cpu_processes",
    "launch_from_args",
    "requested_device",
    "short_errors",
]

logger = logging.getLogger(__name__)


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
    ``setup_logger`` is cached per argument set, so a second call adds no handler."""
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="als_d2")


def evaluate_weights(cfg, trainer_cls, checkpointer_cls, resume: bool = False):
    """``--eval-only`` of detectron2's ``train_net.py``: load ``cfg.MODEL.WEIGHTS`` (or
    OUTPUT_DIR's last checkpoint with ``resume``) through ``checkpointer_cls`` into
    ``trainer_cls.build_model(cfg)``, run ``trainer_cls.test`` and ``verify_results``.
    A missing weights file is a one-line error before any model is built."""
    from detectron2.evaluation import verify_results

    if not resume:
        from ..checkpoint.evaluation import check_files_exist

        check_files_exist([cfg.MODEL.WEIGHTS], "MODEL.WEIGHTS")
    model = trainer_cls.build_model(cfg)
    checkpointer_cls(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
        cfg.MODEL.WEIGHTS, resume=resume
    )
    res = trainer_cls.test(cfg, model)
    if comm.is_main_process():
        verify_results(cfg, res)
    return res


def requested_device(args) -> str:
    """``MODEL.DEVICE`` of the run ``args`` (d2's ``default_argument_parser``) describe: its
    last ``KEY VALUE`` override, else the config file's (``_BASE_`` chain included), else
    detectron2's default ``cuda``. Read in the launching process, before any worker."""
    opts = list(getattr(args, "opts", None) or [])
    overrides = [v for k, v in zip(opts[0::2], opts[1::2]) if k == "MODEL.DEVICE"]
    if overrides:
        return str(overrides[-1])
    try:
        loaded = CfgNode.load_yaml_with_base(args.config_file, allow_unsafe=True)
    except Exception:  # no or no readable file: the worker's setup says what is wrong
        return "cuda"
    return str(((loaded or {}).get("MODEL") or {}).get("DEVICE", "cuda"))


def hide_cuda_for_cpu_processes(args) -> bool:
    """Several processes on a CPU ``MODEL.DEVICE`` where CUDA is visible: set
    ``CUDA_VISIBLE_DEVICES=""`` for the worker processes, so that detectron2's ``launch()``
    (which picks NCCL whenever CUDA is available; NCCL carries no CPU tensors) sets them up
    over gloo. Returns whether it did."""
    if args.num_gpus <= 1 or torch.device(requested_device(args)).type != "cpu":
        return False
    if not torch.cuda.is_available():
        return False
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    logger.info(
        f"MODEL.DEVICE cpu with --num-gpus {args.num_gpus}: {args.num_gpus} CPU processes over "
        "gloo (CUDA hidden from them)"
    )
    return True


def check_processes(num_gpus: int, cpu: bool = False) -> None:
    """Stop early, saying what is possible, when ``--num-gpus`` cannot be honoured
    (``cpu``: the processes train on the CPU, whatever CUDA devices are visible)."""
    visible = 0 if cpu else torch.cuda.device_count()
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
    """``launch(main, ...)`` with the flags of detectron2's ``default_argument_parser``;
    several processes on a CPU ``MODEL.DEVICE`` use gloo (:func:`hide_cuda_for_cpu_processes`).

    Ctrl-C with several processes: the workers save and exit with code 130
    (``engine/preemption.py``); this process waits for them and exits with the same code,
    without a traceback."""
    hide_cuda_for_cpu_processes(args)
    check_processes(args.num_gpus, cpu=torch.device(requested_device(args)).type == "cpu")
    try:
        launch(
            short_errors(main),
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
    except KeyboardInterrupt:  # the launcher's own SIGINT, while its workers save
        for child in multiprocessing.active_children():
            child.join()
        raise SystemExit(INTERRUPT_EXIT_CODE) from None
    except ProcessExitedException as e:
        if e.exit_code != INTERRUPT_EXIT_CODE:
            raise
        raise SystemExit(INTERRUPT_EXIT_CODE) from None
