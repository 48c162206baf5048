"""SLURM jobs for the training tools: submitit, one task per node, detectron2's ``launch()``.

``tools/submit.py`` submits a :class:`TrainJob`: each SLURM task (one per node) runs
``tools/train_cls.py`` or ``tools/train_det.py`` as a child process with the launcher flags
its node needs (:func:`launch_arguments`: ``--num-gpus G --num-machines N --machine-rank
<node> --dist-url tcp://<first node>:<port>``), and that tool's ``launch()`` starts the G
training processes of the node: global ranks ``node * G .. node * G + G - 1`` of ``N * G``.

Time-out and preemption (submitit's protocol): SLURM sends SIGUSR2 ``--signal-delay``
seconds before the time limit (and on preemption); submitit calls :meth:`TrainJob.checkpoint`
in the main task, in its signal handler. That method asks the training processes to stop
(the same signal, forwarded to the tool's process group; the trainers' ``StopOnSignal``
hook, :mod:`als_d2.engine.preemption`, saves ``model_<iter>.pth`` after the current step
and exits 0), waits for them, and returns a ``DelayedSubmission`` of the same job with
``--resume``; submitit then requeues the job. The requeued job resumes exactly where the
stopped one saved (the trainers' exact resume). A tool that does not stop in time is
killed, and the requeued job resumes from its last periodic checkpoint.

Resources of a node's task (:func:`task_resources`): ``G`` trainers, each with
``DATALOADER.NUM_WORKERS`` loader processes, so ``G x (NUM_WORKERS + 1)`` CPUs and
:data:`MEM_GB_PER_PROCESS` GB for each of those processes.
"""

import ctypes
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from typing import List, Optional, Sequence

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission

from .preemption import REPORT_ENV, SIGNALS_ENV, read_stop_report

__all__ = [
    "LAUNCH_FLAGS",
    "LaunchArguments",
    "MEM_GB_PER_PROCESS",
    "TrainJob",
    "build_executor",
    "check_local_machine",
    "check_tool_args",
    "local_job_dir",
    "task_resources",
    "default_port",
    "launch_arguments",
]

logger = logging.getLogger(__name__)

# The flags of detectron2's default_argument_parser that the job sets from its environment.
LAUNCH_FLAGS = ("--num-gpus", "--num-machines", "--machine-rank", "--dist-url")
PORT_BASE, PORT_SPAN = 20000, 20000  # default ports: 20000..39999, from the job id
# Host memory per process of a node (a trainer: model, optimizer, CUDA context, pinned
# batches; a loader worker: decoded images and its copy-on-write view of the dataset dicts),
# GB: an allowance for the R50 ImageNet configs, not a measurement.
MEM_GB_PER_PROCESS = 4.0


def task_resources(gpus_per_node: int, num_workers: int):
    """(CPUs, memory in GB) of a node's task: ``gpus_per_node`` trainers and
    ``num_workers`` (``DATALOADER.NUM_WORKERS``) loader processes per trainer, one CPU
    and :data:`MEM_GB_PER_PROCESS` GB for each process."""
    processes = gpus_per_node * (num_workers + 1)
    return processes, processes * MEM_GB_PER_PROCESS


def check_local_machine(device: str, gpus_per_node: int) -> None:
    """A ``ValueError`` when this machine cannot run ``gpus_per_node`` training processes
    on ``device`` (``MODEL.DEVICE``): submitit's local executor would accept the job and it
    would fail in its log."""
    import torch

    from .. import compat

    kind = torch.device(device).type
    visible = torch.cuda.device_count()
    if kind == "cuda" and gpus_per_node > visible:
        raise ValueError(
            f"--gpus-per-node {gpus_per_node} with MODEL.DEVICE {device}: "
            + (
                f"this machine has {visible} CUDA device(s); ask for at most {visible}"
                if visible
                else "this machine has no CUDA device; train on the CPU with MODEL.DEVICE cpu"
            )
        )
    if kind == "cpu" and gpus_per_node > 1 and not compat.launch_supports_cpu_workers():
        raise ValueError(
            f"--gpus-per-node {gpus_per_node} with MODEL.DEVICE cpu: the installed detectron2's "
            "launch() cannot start CPU processes (v0.6; detectron2 main runs them over gloo); "
            "use --gpus-per-node 1"
        )


def local_job_dir(job_dir: str, now: Optional[float] = None) -> str:
    """``job_dir`` with ``%j`` replaced by ``local_<UTC time>``: the local executor's job id
    (its controller's process id) exists only once the job runs, and submitit's local
    controller would create the folder ``%j`` literally, beside the job's real one."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(time.time() if now is None else now))
    return job_dir.replace("%j", f"local_{stamp}")


@dataclasses.dataclass(frozen=True)
class LaunchArguments:
    """What ``launch()`` needs on one node: ``num_gpus`` processes there, ``num_machines``
    nodes, this one ``machine_rank``, the rendezvous ``dist_url``."""

    num_gpus: int
    num_machines: int
    machine_rank: int
    dist_url: str

    @property
    def world_size(self) -> int:
        return self.num_gpus * self.num_machines

    @property
    def ranks(self) -> List[int]:
        """Global ranks of this node's processes (detectron2: machine_rank * G + local rank)."""
        return [self.machine_rank * self.num_gpus + i for i in range(self.num_gpus)]

    def flags(self) -> List[str]:
        """The tool's command-line flags (detectron2's ``default_argument_parser``)."""
        return [
            "--num-gpus",
            str(self.num_gpus),
            "--num-machines",
            str(self.num_machines),
            "--machine-rank",
            str(self.machine_rank),
            "--dist-url",
            self.dist_url,
        ]


def default_port(job_id: str) -> int:
    """A rendezvous port from the job id (the same on every node; two jobs sharing a first
    node get different ports unless their ids collide modulo ``PORT_SPAN``)."""
    return PORT_BASE + zlib.crc32(str(job_id).encode()) % PORT_SPAN


def launch_arguments(env, gpus_per_node: int, port: Optional[int] = None) -> LaunchArguments:
    """The ``launch()`` arguments of this task from submitit's ``JobEnvironment`` ``env``
    (SLURM: ``SLURM_NODEID``, ``SLURM_JOB_NUM_NODES``, ``SLURM_NTASKS``, ``SLURM_JOB_NODELIST``...).

    One task per node: ``launch()`` starts the node's ``gpus_per_node`` processes; the
    rendezvous is on the first host of the job's node list."""
    if gpus_per_node < 1:
        raise ValueError(f"gpus_per_node {gpus_per_node}: need at least 1 process per node")
    if env.num_tasks != env.num_nodes or env.local_rank != 0:
        raise ValueError(
            f"{env}: {env.num_tasks} tasks on {env.num_nodes} nodes; the job needs one task per "
            "node (tasks_per_node=1), whose launch() starts the node's processes"
        )
    main_host = env.hostnames[0]
    return LaunchArguments(
        num_gpus=gpus_per_node,
        num_machines=env.num_nodes,
        machine_rank=env.node,
        dist_url=f"tcp://{main_host}:{port or default_port(env.job_id)}",
    )


def _flag_names(tool_args: Sequence[str]) -> List[str]:
    return [a.split("=", 1)[0] for a in tool_args if a.startswith("--")]


def check_tool_args(tool_args: Sequence[str]) -> None:
    """A ``ValueError`` naming the flag when ``tool_args`` set what the job sets."""
    for flag in _flag_names(tool_args):
        if flag in LAUNCH_FLAGS:
            raise ValueError(
                f"{flag}: set by the job (--gpus-per-node, --nodes, the node's rank and the first "
                "node's address); leave it out of the training tool's flags"
            )


def _tool_preexec(ignored: Sequence[signal.Signals]):
    """What runs in the tool's process before exec: its own process group (so that signals
    can be forwarded to it and its ``launch()`` workers), the stop signals ignored until the
    trainers handle them (a launcher parent must survive them), and on Linux a SIGKILL when
    this task dies."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None

    def preexec():
        os.setpgid(0, 0)
        for sig in ignored:
            signal.signal(sig, signal.SIG_IGN)
        if prctl is not None:
            prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG

    return preexec


class Finished:
    """An already finished job: returns its ``result`` (what :meth:`TrainJob.checkpoint`
    requeues when the training ended just as the signal came)."""

    def __init__(self, result):
        self.result = result

    def __call__(self):
        return self.result


class TrainJob(Checkpointable):
    """The callable a SLURM task runs (see the module docstring).

    Args:
        script: path of ``tools/train_cls.py`` or ``tools/train_det.py``.
        tool_args: the tool's own flags (``--config-file``, ``--resume``, ``--eval-only``,
            trailing ``KEY VALUE`` overrides), without the launcher flags.
        gpus_per_node: processes per node (``--num-gpus`` of each node's ``launch()``).
        cwd: working directory of the tool (relative paths in ``tool_args`` and configs).
        port: rendezvous port (None: :func:`default_port` of the job id).
        resume: add ``--resume`` (set on the requeued job).
        stop_timeout_s: how long :meth:`checkpoint` waits for the tool to save and stop.
        signal_grace_s: how long a task whose trainers stopped on a signal that did not reach
            it waits for submitit's requeue signal before failing.
        requeues: how many times this job was requeued so far.
    """

    def __init__(
        self,
        script: str,
        tool_args: Sequence[str],
        gpus_per_node: int = 1,
        cwd: Optional[str] = None,
        port: Optional[int] = None,
        resume: bool = False,
        stop_timeout_s: float = 90.0,
        signal_grace_s: float = 60.0,
        requeues: int = 0,
    ):
        check_tool_args(tool_args)
        self.script = os.path.abspath(script)
        self.tool_args = list(tool_args)
        self.gpus_per_node = int(gpus_per_node)
        self.cwd = os.path.abspath(cwd or os.getcwd())
        self.port = port
        self.resume = resume
        self.stop_timeout_s = float(stop_timeout_s)
        self.signal_grace_s = float(signal_grace_s)
        self.requeues = requeues
        self._proc = self._rc = self._report = None

    # -- pickling: only the arguments travel (submitit pickles the job and its requeued copy)
    def _arguments(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __getstate__(self):
        return self._arguments()

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._proc = self._rc = self._report = None

    @property
    def eval_only(self) -> bool:
        return "--eval-only" in _flag_names(self.tool_args)

    def command(self, launch: LaunchArguments) -> List[str]:
        """The tool's command line on this node (launcher flags first: the tool's trailing
        ``KEY VALUE`` overrides must stay last)."""
        resume = (
            ["--resume"] if self.resume and "--resume" not in _flag_names(self.tool_args) else []
        )
        return [sys.executable, self.script, *launch.flags(), *resume, *self.tool_args]

    def _result(self, stopped: Optional[dict]) -> dict:
        return {"script": self.script, "requeues": self.requeues, "stopped": stopped}

    @staticmethod
    def _stop_signals() -> List[signal.Signals]:
        usr = getattr(signal, "SIG" + submitit.JobEnvironment.USR_SIG)
        return [usr, signal.SIGTERM] if usr != signal.SIGTERM else [usr]

    def __call__(self) -> dict:
        env = submitit.JobEnvironment()
        launch = launch_arguments(env, self.gpus_per_node, self.port)
        self._report = os.path.join(
            str(env.paths.folder), f"{env.job_id}_{env.global_rank}_stop.json"
        )
        if os.path.exists(self._report):
            os.remove(self._report)  # left by the previous run of this job
        cmd = self.command(launch)
        signals = self._stop_signals()
        _log(
            f"{env}: node {launch.machine_rank} of {launch.num_machines}, ranks {launch.ranks[0]}.."
            f"{launch.ranks[-1]} of {launch.world_size}; requeued {self.requeues} time(s); "
            f"running {' '.join(cmd)}"
        )
        tool_env = dict(
            os.environ, **{SIGNALS_ENV: ",".join(s.name for s in signals), REPORT_ENV: self._report}
        )
        self._rc = None
        self._proc = subprocess.Popen(
            cmd, cwd=self.cwd, env=tool_env, preexec_fn=_tool_preexec(signals)
        )
        threading.Thread(target=self._reap, name="als_d2-submit-reaper", daemon=True).start()
        try:
            while (
                self._rc is None
            ):  # no lock is taken here: submitit's handler may run anywhere in it
                time.sleep(0.5)
        finally:
            if self._rc is None:  # interrupted (cancelled): the tool must not outlive the task
                self._signal_tool(signal.SIGKILL)
        stopped = read_stop_report(self._report)
        if self._rc != 0:
            raise RuntimeError(
                f"{os.path.basename(self.script)} exited with status {self._rc} "
                "(see this task's log)"
            )
        if stopped is None:
            return self._result(None)
        if env.global_rank != 0:
            return self._result(stopped)  # the main task checkpoints and requeues the job
        _log(
            f"the trainers stopped on {stopped['signal']} after iteration {stopped['iteration']}; "
            f"waiting up to {self.signal_grace_s:.0f} s for the requeue signal"
        )
        deadline = time.monotonic() + self.signal_grace_s
        while time.monotonic() < deadline:
            time.sleep(0.5)  # submitit's handler calls checkpoint(), requeues and exits
        raise RuntimeError(
            f"training stopped on {stopped['signal']} after iteration {stopped['iteration']} "
            f"(saved {stopped['checkpoint']}) and the job was not requeued: submit it again "
            "with --resume"
        )

    def _reap(self) -> None:
        self._rc = self._proc.wait()  # the only user of the Popen object's lock

    def _signal_tool(self, sig) -> None:
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _wait(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._rc is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return self._rc is not None

    def _stop_tool(self, sig) -> bool:
        """Forward ``sig`` to the tool's process group (again every 5 s: a trainer that was
        still starting has no handler yet) until it exits; SIGKILL after ``stop_timeout_s``.
        Returns whether it exited by itself."""
        deadline = time.monotonic() + self.stop_timeout_s
        _log(
            f"sending {sig.name} to {os.path.basename(self.script)} "
            f"(process group {self._proc.pid}); waiting "
            f"up to {self.stop_timeout_s:.0f} s for it to save a checkpoint and stop"
        )
        while self._rc is None and time.monotonic() < deadline:
            self._signal_tool(sig)
            self._wait(min(5.0, max(0.0, deadline - time.monotonic())))
        if self._rc is not None:
            return True
        _log(
            f"{os.path.basename(self.script)} did not stop within "
            f"{self.stop_timeout_s:.0f} s: killing it; "
            "the requeued job resumes from its last periodic checkpoint"
        )
        self._signal_tool(signal.SIGKILL)
        self._wait(60.0)
        return False

    def requeued(self) -> "TrainJob":
        """This job again, resuming (``--resume``; not for ``--eval-only``, which would then
        evaluate OUTPUT_DIR's last checkpoint instead of MODEL.WEIGHTS)."""
        args = self._arguments()
        args.update(resume=self.resume or not self.eval_only, requeues=self.requeues + 1)
        return TrainJob(**args)

    def checkpoint(self, *args, **kwargs) -> DelayedSubmission:
        """Called by submitit in the main task's signal handler on time-out or preemption:
        makes the trainers save and stop (see the module docstring), then returns this job
        with ``--resume`` for submitit to requeue."""
        usr = self._stop_signals()[0]
        signal.signal(
            usr, signal.SIG_IGN
        )  # a second signal does not re-enter (any thread may receive it)
        if self._proc is not None:
            stopped_by_itself = self._stop_tool(usr)
            stopped = read_stop_report(self._report)
            if stopped is not None:
                _log(
                    f"stopped after iteration {stopped['iteration']}, "
                    f"saved {stopped['checkpoint']}: requeuing"
                )
            elif stopped_by_itself and self._rc == 0:
                _log("the tool had finished: nothing to resume")
                return DelayedSubmission(Finished(self._result(None)))
            elif stopped_by_itself:
                raise RuntimeError(
                    f"{os.path.basename(self.script)} exited with status {self._rc} while stopping"
                )
        return DelayedSubmission(self.requeued())


def _log(message: str) -> None:
    # logging's handler lock is reentrant: safe in submitit's signal handler
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(
            logging.Formatter("[%(asctime)s als_d2.submit] %(message)s", "%m/%d %H:%M:%S")
        )
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    logger.info(message)


def build_executor(
    folder: str,
    *,
    cluster: Optional[str] = None,
    nodes: int = 1,
    gpus_per_node: int = 1,
    timeout_min: int = 60,
    partition: Optional[str] = None,
    cpus_per_task: Optional[int] = None,
    mem_gb: Optional[float] = None,
    signal_delay_s: int = 120,
    max_requeues: int = 10,
    name: str = "als_d2",
):
    """submitit's ``AutoExecutor`` for a :class:`TrainJob`: ``nodes`` nodes, one task and
    ``gpus_per_node`` GPUs on each, SIGUSR2 ``signal_delay_s`` before the time limit,
    at most ``max_requeues`` requeues after time-outs (preemptions do not count).
    ``cluster``: None (SLURM where ``srun`` exists), "slurm", "local" or "debug"."""
    executor = submitit.AutoExecutor(
        folder=folder,
        cluster=cluster,
        slurm_max_num_timeout=max_requeues,
        local_max_num_timeout=max_requeues,
    )
    executor.update_parameters(
        name=name,
        nodes=nodes,
        tasks_per_node=1,
        gpus_per_node=gpus_per_node,
        timeout_min=timeout_min,
        cpus_per_task=cpus_per_task,
        mem_gb=mem_gb,
        slurm_partition=partition,
        slurm_signal_delay_s=signal_delay_s,
    )
    return executor
