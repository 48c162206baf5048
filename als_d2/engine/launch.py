"""What the tools share around detectron2's ``launch()``: detectron2's command line (with a
rendezvous port outside the ephemeral range and the boolean flags accepted anywhere), the
``--num-gpus`` check and the per-process set-up (output folder, config dump, loggers)."""

import argparse
import logging
import multiprocessing
import os
import sys
from typing import Tuple

import torch
from detectron2.config import CfgNode
from detectron2.engine import default_argument_parser as d2_default_argument_parser
from detectron2.engine import default_setup, launch
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch.multiprocessing import ProcessExitedException

from .. import compat
from .preemption import INTERRUPT_EXIT_CODE

__all__ = [
    "default_argument_parser",
    "default_dist_url",
    "ephemeral_port_range",
    "evaluate_weights",
    "als_default_setup",
    "check_processes",
    "hide_cuda_for_cpu_processes",
    "launch_from_args",
    "requested_device",
    "short_errors",
]

logger = logging.getLogger(__name__)


# detectron2's store_true flags, recognised also among (after) the trailing KEY VALUE overrides
BOOLEAN_FLAGS = ("--resume", "--eval-only")
LINUX_EPHEMERAL = (32768, 60999)  # Linux's default net.ipv4.ip_local_port_range


def ephemeral_port_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> Tuple[int, int]:
    """``(first, last)`` port the kernel hands out to outgoing connections: ``path`` where it
    is readable, else Linux's default ``(32768, 60999)``."""
    try:
        with open(path) as f:
            first, last = (int(v) for v in f.read().split()[:2])
        return first, last
    except (OSError, ValueError):
        return LINUX_EPHEMERAL


def default_dist_url() -> str:
    """``tcp://127.0.0.1:<port>``, the port fixed per user as detectron2 chooses it (a hash of
    the uid: an orphan process of an earlier run then shows up as a port in use), but outside
    the ephemeral range (:func:`ephemeral_port_range`), where an outgoing connection may
    already hold it: 20000-29999 when the range leaves it free, else the wider free span of
    1024-65535."""
    uid = os.getuid() if sys.platform != "win32" else 1
    first, last = ephemeral_port_range()
    if first > 29999 or last < 20000:
        lo, hi = 20000, 29999
    else:  # the wider span of 1024-65535 left free by the range
        lo, hi = max((1024, first - 1), (last + 1, 65535), key=lambda s: s[1] - s[0])
    if hi < lo:  # every port is ephemeral: detectron2's choice
        lo, hi = 2**15 + 2**14, 2**16 - 1
    return f"tcp://127.0.0.1:{lo + hash(uid) % (hi - lo + 1)}"


class _ToolArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that takes :data:`BOOLEAN_FLAGS` also where a ``KEY`` of the
    trailing ``KEY VALUE`` overrides (``opts``, argparse's REMAINDER) would stand:
    ``--config-file a.yaml SOLVER.BASE_LR 0.1 --resume`` resumes. Any other ``--flag`` there
    is a usage error saying to put it before the overrides."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        opts = getattr(namespace, "opts", None)
        if not opts:
            return namespace, extras
        kept, i = [], 0
        while i < len(opts):
            token = opts[i]
            if token in BOOLEAN_FLAGS:
                setattr(namespace, token[2:].replace("-", "_"), True)
                i += 1
            elif token.startswith("--"):
                self.error(
                    f"{token} after the KEY VALUE config overrides: put it before them "
                    f"(only {' and '.join(BOOLEAN_FLAGS)} may follow them)"
                )
            else:
                kept += opts[i : i + 2]  # KEY VALUE (an odd list is the config's error)
                i += 2
        namespace.opts = kept
        return namespace, extras


def default_argument_parser(epilog=None) -> argparse.ArgumentParser:
    """detectron2's ``default_argument_parser(epilog)`` (``--config-file``, ``--resume``,
    ``--eval-only``, ``--num-gpus``, ``--num-machines``, ``--machine-rank``, ``--dist-url``,
    trailing ``KEY VALUE`` ``opts``), extended: ``--resume`` / ``--eval-only`` are also taken
    after the overrides, and ``--dist-url`` defaults to :func:`default_dist_url`. Tools add
    their own flags to it with ``add_argument``."""
    base = d2_default_argument_parser(epilog)
    parser = _ToolArgumentParser(
        parents=[base],
        add_help=False,
        description=base.description,
        epilog=base.epilog,
        formatter_class=base.formatter_class,
    )
    parser.set_defaults(dist_url=default_dist_url())
    return parser


class short_errors:
    """``main`` with the errors that explain themselves (a config key that cannot work, a
    missing dataset root, an image evaluation cannot decode, also from a DataLoader worker)
    turned into a one-line ``SystemExit`` instead of a traceback
    through the trainer and the loaders. A class, not a closure, so that ``launch`` can
    pickle it for worker processes."""

    def __init__(self, main):
        self.main = main

    def __call__(self, *args, **kwargs):
        from ..config import ConfigError
        from ..data.datasets.catalog import DatasetRootMissingError
        from ..data.image_io import ImageDecodeError

        try:
            return self.main(*args, **kwargs)
        except (ConfigError, DatasetRootMissingError, ImageDecodeError) as e:
            raise SystemExit(f"error: {e}") from None
        except RuntimeError as e:
            line = _worker_error_line(str(e), ImageDecodeError)
            if line is None:
                raise
            raise SystemExit(f"error: {line}") from None


def _worker_error_line(message: str, exc_type: type):
    """The message of an ``exc_type`` raised in a DataLoader worker, from the RuntimeError
    torch re-raises it as in the main process ("Caught <name> in DataLoader worker process
    N. Original Traceback ... <module>.<name>: <message>"), or None for any other error."""
    if not message.startswith(f"Caught {exc_type.__name__} "):
        return None
    last = message.rstrip().splitlines()[-1]
    name = f"{exc_type.__module__}.{exc_type.__name__}: "
    return last[len(name) :] if last.startswith(name) else None


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
    writes (``transfer_metrics.json``) then says how long the weights were trained.

    A checkpoint holding a moving average of the weights (``"model_ema"``, written with
    ``MODEL_EMA.ENABLED``) is evaluated twice when ``trainer_cls`` has ``test_ema``: the
    weights (the results as before) and the average, strictly loaded into a second model,
    under ``"ema"`` of the results."""
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
    extra = extra if isinstance(extra, dict) else {}
    iteration = extra.get("iteration")
    ema_state = extra.get("model_ema") if hasattr(trainer_cls, "test_ema") else None
    ema_model = None
    if ema_state is not None:
        from .ema import load_ema_weights

        ema_model = trainer_cls.build_model(cfg)
        try:
            load_ema_weights(ema_model, ema_state, cfg.MODEL.WEIGHTS)
        except CheckpointMismatchError as e:
            raise SystemExit(f"error: {e}") from None

    def test():
        res = trainer_cls.test(cfg, model)
        if ema_model is not None:
            res["ema"] = trainer_cls.test_ema(cfg, ema_model)
        return res

    if isinstance(iteration, int):
        with EventStorage(iteration + 1):
            res = test()
    else:
        res = test()
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
