"""What the tools share around detectron2's ``launch()``: the ``--num-gpus`` check."""
import torch
from detectron2.engine import launch

from .. import compat

__all__ = ["check_processes", "launch_from_args"]


def check_processes(num_gpus: int) -> None:
    """Stop early, saying what is possible, when ``--num-gpus`` cannot be honoured."""
    visible = torch.cuda.device_count()
    if num_gpus <= 1 or num_gpus <= visible:
        return
    if visible == 0 and compat.launch_supports_cpu_workers():
        return  # detectron2 main runs CPU processes over gloo
    if visible == 0:
        raise SystemExit(
            f"--num-gpus {num_gpus}: no CUDA device is visible and the installed detectron2's launch() "
            "cannot start CPU processes (v0.6 asserts CUDA; detectron2 main runs them over gloo). "
            "Run with --num-gpus 1 MODEL.DEVICE cpu, or install the official detectron2 main."
        )
    raise SystemExit(f"--num-gpus {num_gpus}: only {visible} CUDA device(s) are visible")


def launch_from_args(main, args) -> None:
    """``launch(main, ...)`` with the flags of detectron2's ``default_argument_parser``."""
    check_processes(args.num_gpus)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
