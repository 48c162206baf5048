#!/usr/bin/env python
"""Submit tools/train_cls.py or tools/train_det.py to SLURM (submitit): N nodes x G GPUs,
checkpoint on time-out / preemption, requeue, resume (--resume: exact for train_cls.py).

    tools/submit.py --tool cls --nodes 2 --gpus-per-node 8 --partition gpu --timeout 4320 \\
        --job-dir /checkpoint/$USER/jobs/%j --config-file configs/als_r50.yaml \\
        OUTPUT_DIR /checkpoint/$USER/als_r50
    tools/submit.py --tool det --gpus-per-node 8 \
        --config-file configs/COCO-Detection/... MODEL.WEIGHTS ...

Everything after the flags below is the training tool's: ``--config-file``, ``--resume``,
``--eval-only`` and trailing ``KEY VALUE`` overrides (``--num-gpus``, ``--num-machines``,
``--machine-rank`` and ``--dist-url`` come from the job). One task per node runs the tool,
whose ``launch()`` starts the node's G processes; see ``als_d2/engine/submit.py``.
OUTPUT_DIR and ``--job-dir`` must be on a file system that every node sees.
``--cluster local`` runs the same job on this machine (one node, no SLURM; ``%j`` in
``--job-dir`` becomes ``local_<UTC time>``).

CPUs and memory of each node's task, unless ``--cpus-per-task`` / ``--mem`` set them:
G x (DATALOADER.NUM_WORKERS + 1) CPUs (G trainers and their loader workers) and
4 GB for each of those processes (``als_d2.engine.submit.MEM_GB_PER_PROCESS``).
"""

import argparse
import os
import sys

import als_d2  # noqa: F401  (first: detectron2's bootstrap, see als_d2/__init__.py)
import submitit
from detectron2.config import get_cfg

from als_d2.config import ConfigError, add_als_config, check_als_config
from als_d2.engine.detection import add_transfer_config
from als_d2.engine.launch import default_argument_parser
from als_d2.engine.submit import (
    MEM_GB_PER_PROCESS,
    TrainJob,
    build_executor,
    check_local_machine,
    check_tool_args,
    local_job_dir,
    task_resources,
)

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = {"cls": "train_cls.py", "det": "train_det.py"}


def memory_gb(text: str) -> float:
    """``--mem``: GB per node, ``64`` or ``64G`` (``500M`` in MB)."""
    scale = {"G": 1.0, "M": 1.0 / 1024, "T": 1024.0}.get(text[-1:].upper())
    try:
        return float(text[:-1]) * scale if scale else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a memory size (e.g. 64, 64G, 500M)"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # a training tool's flag is never taken for an abbreviation of these
        epilog="Other arguments go to the training tool: "
        "--config-file FILE [--resume] [--eval-only] [KEY VALUE ...]",
    )
    parser.add_argument(
        "--tool",
        choices=sorted(TOOLS),
        required=True,
        help="cls: tools/train_cls.py, det: tools/train_det.py",
    )
    parser.add_argument("--nodes", type=int, default=1, help="nodes (machines)")
    parser.add_argument(
        "--gpus-per-node", type=int, default=1, help="GPUs, hence training processes, per node"
    )
    parser.add_argument("--partition", help="SLURM partition")
    parser.add_argument(
        "--timeout", type=int, default=24 * 60, help="time limit of each run of the job, minutes"
    )
    parser.add_argument(
        "--job-dir",
        default="output/jobs/%j",
        help="submitit's folder: logs, pickles (%%j: the job id, local_<UTC time> with the local "
        "executor; shared by the nodes)",
    )
    parser.add_argument(
        "--cpus-per-task",
        type=int,
        help="CPUs of each node's task (default: G x (DATALOADER.NUM_WORKERS + 1))",
    )
    parser.add_argument(
        "--mem",
        "--mem-gb",
        dest="mem",
        type=memory_gb,
        help=f"memory per node in GB (64, 64G, 500M; default: {MEM_GB_PER_PROCESS:g} GB per "
        "process of --cpus-per-task's default)",
    )
    parser.add_argument(
        "--signal-delay",
        type=int,
        default=120,
        help="seconds before the time limit at which SLURM signals (SIGUSR2) the job to checkpoint",
    )
    parser.add_argument(
        "--max-requeues", type=int, default=10, help="requeues after time-outs (not preemptions)"
    )
    parser.add_argument(
        "--port", type=int, help="rendezvous port on the first node (default: from the job id)"
    )
    parser.add_argument("--name", help="job name (default als_d2_<tool>)")
    parser.add_argument(
        "--cluster",
        choices=("slurm", "local"),
        help="default: SLURM where srun exists; local: this machine, one node",
    )
    return parser


def training_config(tool: str, config_file: str, opts):
    """The training tool's config as far as the job needs it (``DATALOADER.NUM_WORKERS``,
    ``MODEL.DEVICE``); the classification configs also pass ``check_als_config``."""
    cfg = get_cfg()
    (add_als_config if tool == "cls" else add_transfer_config)(cfg)
    try:
        cfg.merge_from_file(config_file)
        cfg.merge_from_list(list(opts))
        if tool == "cls":
            check_als_config(cfg)
    except (ConfigError, KeyError, ValueError, AssertionError) as e:
        raise SystemExit(f"error: --config-file {config_file}: {e}") from None
    return cfg


def prepare(argv):
    """(TrainJob, submitit executor, parsed flags) of the command line ``argv``: everything
    but the submission. Usage errors are one-line ``SystemExit``."""
    args, tool_args = build_parser().parse_known_args(argv)
    script = os.path.join(HERE, TOOLS[args.tool])
    tool = default_argument_parser().parse_args(tool_args)  # the tool's own parsing and errors
    if not tool.config_file:
        raise SystemExit(
            f"error: --config-file: the training tool tools/{TOOLS[args.tool]} needs a config"
        )
    if not os.path.isfile(tool.config_file):
        raise SystemExit(f"error: --config-file {tool.config_file}: no such file")
    if args.nodes < 1 or args.gpus_per_node < 1:
        raise SystemExit(
            f"error: --nodes {args.nodes} --gpus-per-node {args.gpus_per_node}: both must be >= 1"
        )
    if args.signal_delay < 30 or args.signal_delay * 2 > args.timeout * 60:
        raise SystemExit(
            f"error: --signal-delay {args.signal_delay}: between 30 s and half of --timeout "
            f"({args.timeout} min)"
        )
    try:
        check_tool_args(tool_args)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None

    cluster = args.cluster or submitit.AutoExecutor.which()  # "slurm" where srun exists
    if cluster != "slurm" and args.nodes > 1:
        why = "no srun on PATH" if args.cluster is None else "--cluster local"
        raise SystemExit(
            f"error: --nodes {args.nodes}: SLURM is not used here ({why}) and a job on this "
            "machine runs on one node; submit from a SLURM login node, or use --nodes 1"
        )
    cfg = training_config(args.tool, tool.config_file, tool.opts)
    job_dir = args.job_dir
    if cluster != "slurm":
        try:
            check_local_machine(cfg.MODEL.DEVICE, args.gpus_per_node)
        except ValueError as e:
            where = "--cluster local" if args.cluster else "no srun on PATH, the job runs here"
            raise SystemExit(f"error: {where}: {e}") from None
        job_dir = local_job_dir(job_dir)
    cpus, mem_gb = task_resources(args.gpus_per_node, cfg.DATALOADER.NUM_WORKERS)

    job = TrainJob(
        script,
        tool_args,
        gpus_per_node=args.gpus_per_node,
        port=args.port,
        stop_timeout_s=args.signal_delay - 20,  # leaves the requeue some seconds
    )
    try:
        executor = build_executor(
            job_dir,
            cluster=cluster,
            nodes=args.nodes,
            gpus_per_node=args.gpus_per_node,
            timeout_min=args.timeout,
            partition=args.partition,
            cpus_per_task=args.cpus_per_task or cpus,
            mem_gb=args.mem or mem_gb,
            signal_delay_s=args.signal_delay,
            max_requeues=args.max_requeues,
            name=args.name or f"als_d2_{args.tool}",
        )
    except (ValueError, RuntimeError) as e:  # e.g. --cluster slurm without srun
        raise SystemExit(f"error: {e}") from None
    return job, executor, args


def main(argv=None):
    job, executor, args = prepare(argv)
    submitted = executor.submit(job)
    print(
        f"submitted job {submitted.job_id} ({executor.cluster}): tools/{TOOLS[args.tool]} "
        f"on {args.nodes} node(s) x {args.gpus_per_node} GPU(s), "
        f"{executor.parameters.get('cpus_per_task')} CPUs and "
        f"{executor.parameters.get('mem_gb', executor.parameters.get('mem'))} per node; "
        f"log {submitted.paths.stdout}"
    )
    return submitted


if __name__ == "__main__":
    main(sys.argv[1:])
