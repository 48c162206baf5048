"""Stop training cleanly on a scheduler's signal: save a checkpoint at a step boundary, exit 0.

A job started by ``tools/submit.py`` (see :mod:`als_d2.engine.submit`) runs the training tool
with ``ALS_D2_STOP_SIGNALS`` set (e.g. ``"USR2,TERM"``). The trainers then add
:class:`StopOnSignal` as their last hook (:func:`stop_on_signal_hooks`): from
``before_train`` on, those signals only set a flag; after each step the ranks agree whether
any of them saw one (one small gloo ``all_gather`` per step when there are several
processes), and if so every rank stops after that same step. The main process saves
``model_<iter>.pth`` (``last_checkpoint`` names it) with the trainer's full state, exactly as
the periodic checkpointer would at that iteration, so ``--resume`` continues as if nothing
had happened. Without the variable only Ctrl-C is handled (below).

With ``ALS_D2_STOP_REPORT`` set, the local main process of each machine writes a JSON
report there after the save: ``{"iteration", "checkpoint", "signal"}``.

Ctrl-C (SIGINT) is handled the same way in every run, with or without the variable: the
ranks stop after the same step, the main process saves ``model_<iter>.pth``, prints one line
with the command that resumes (``... --resume``) and the process exits with code 130
(:class:`TrainingInterrupted`), without a traceback. A second Ctrl-C stops at once, without
saving. Without the variable and with several processes the ranks compare their Ctrl-C
flags every :data:`INTERRUPT_CHECK_PERIOD` steps only (one small gloo ``all_gather``).
"""

import json
import logging
import os
import shlex
import signal
import sys
import threading
from typing import List, Optional

from detectron2.engine import HookBase
from detectron2.utils import comm

__all__ = [
    "SIGNALS_ENV",
    "REPORT_ENV",
    "StopOnInterrupt",
    "StopOnSignal",
    "TrainingInterrupted",
    "TrainingStopped",
    "resume_command",
    "parse_signals",
    "read_stop_report",
    "stop_on_signal_hooks",
]

SIGNALS_ENV = "ALS_D2_STOP_SIGNALS"
REPORT_ENV = "ALS_D2_STOP_REPORT"
INTERRUPT_EXIT_CODE = 130  # a shell's code for a process stopped by SIGINT
INTERRUPT_CHECK_PERIOD = 10  # steps between the ranks' Ctrl-C checks without the variable

logger = logging.getLogger(__name__)


class TrainingStopped(SystemExit):
    """Raised by :class:`StopOnSignal` after the checkpoint is saved. A ``SystemExit`` with
    code 0: detectron2's training loop does not log it as a failure (it runs ``after_train``
    and lets it pass), a single-process tool exits 0, and ``launch()``'s worker processes
    exit 0 without making the launcher terminate the others."""

    def __init__(self, iteration: int, checkpoint: str, signame: str):
        super().__init__(0)
        self.iteration, self.checkpoint, self.signame = iteration, checkpoint, signame


class TrainingInterrupted(SystemExit):
    """Raised by :class:`StopOnSignal` after the checkpoint of a Ctrl-C is saved: exit code
    130, no traceback (detectron2's training loop lets a ``SystemExit`` pass)."""

    def __init__(self, iteration: int, checkpoint: str):
        super().__init__(INTERRUPT_EXIT_CODE)
        self.iteration, self.checkpoint = iteration, checkpoint


def resume_command(argv: Optional[List[str]] = None) -> str:
    """The command line of this process (``sys.argv``) with ``--resume`` right after the
    script (before the ``KEY VALUE`` overrides, which take the rest of the line)."""
    argv = list(sys.argv if argv is None else argv)
    rest = [a for a in argv[1:] if a != "--resume"]
    return shlex.join(["python", argv[0], "--resume", *rest])


def parse_signals(spec: str) -> List[signal.Signals]:
    """``"USR2,TERM"`` -> [SIGUSR2, SIGTERM]; a clear error naming the variable otherwise."""
    out = []
    for name in filter(None, (s.strip().upper() for s in spec.split(","))):
        sig = getattr(signal, name if name.startswith("SIG") else "SIG" + name, None)
        if not isinstance(sig, signal.Signals):
            raise ValueError(
                f"{SIGNALS_ENV}={spec!r}: {name!r} is not a signal name (e.g. USR2,TERM)"
            )
        out.append(sig)
    return out


def read_stop_report(path: str) -> Optional[dict]:
    """The report :class:`StopOnSignal` wrote at ``path``, or None when there is none."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


class StopOnSignal(HookBase):
    """Last hook of a trainer: on one of ``signals``, save after the current step and stop.

    Ctrl-C (SIGINT) too, exiting with :class:`TrainingInterrupted` (see the module docstring).

    Args:
        signals: the signals that ask for a stop (handled from ``before_train`` until
            ``after_train``; the previous handlers are restored then).
        report_path: where the local main process writes the JSON report (None: no report).
        check_period: with several processes, the ranks compare what they received every
            ``check_period`` steps.
    """

    def __init__(self, signals, report_path: Optional[str] = None, check_period: int = 1):
        self._signals = [s for s in signals if s != signal.SIGINT]
        self._report_path = report_path
        self._check_period = max(1, int(check_period))
        self._received: Optional[str] = None
        self._interrupted = False
        self._previous = {}

    def _handler(self, signum, frame):  # runs in the main thread, between bytecodes
        if self._received is None:
            self._received = signal.Signals(signum).name

    def _interrupt(self, signum, frame):
        if self._interrupted:  # the second Ctrl-C: stop now, without saving
            raise KeyboardInterrupt
        self._interrupted = True
        if comm.is_main_process():
            print(
                "\nCtrl-C: saving a checkpoint after this iteration (Ctrl-C again: stop "
                "without saving)",
                file=sys.stderr,
                flush=True,
            )

    def before_train(self):
        if threading.current_thread() is not threading.main_thread():
            return  # Python sets signal handlers in the main thread only
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, self._handler)
        self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._interrupt)

    def after_train(self):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def _requested(self) -> Optional[str]:
        """The signal any rank received (the same answer on every rank), or None; a
        scheduler's signal before a Ctrl-C."""
        received = self._received or ("SIGINT" if self._interrupted else None)
        if comm.get_world_size() == 1:
            return received
        if (self.trainer.iter + 1) % self._check_period:
            return None
        names = [s for s in comm.all_gather(received) if s]
        return next((s for s in names if s != "SIGINT"), names[0] if names else None)

    def after_step(self):
        signame = self._requested()
        trainer = self.trainer
        if signame is None or trainer.iter >= trainer.max_iter - 1:
            return  # no signal, or the last step: the run ends normally (model_final)
        name = f"model_{trainer.iter:07d}"
        checkpointer = trainer.checkpointer
        path = os.path.join(checkpointer.save_dir, name + ".pth")
        if (
            checkpointer.get_checkpoint_file() != path
        ):  # else the periodic checkpointer just saved it
            checkpointer.save(
                name, iteration=trainer.iter
            )  # the main process writes; others return
        comm.synchronize()
        if signame == "SIGINT":
            if comm.is_main_process():
                print(
                    f"Interrupted after iteration {trainer.iter}, saved {path}; resume with: "
                    f"{resume_command()}",
                    file=sys.stderr,
                    flush=True,
                )
            raise TrainingInterrupted(trainer.iter, path)
        if comm.is_main_process():
            logger.warning(
                f"Stopping on {signame} after iteration {trainer.iter}: saved {path}; "
                "continue with --resume"
            )
        if self._report_path and comm.get_local_rank() == 0:
            tmp = f"{self._report_path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump({"iteration": trainer.iter, "checkpoint": path, "signal": signame}, f)
            os.replace(tmp, self._report_path)
        raise TrainingStopped(trainer.iter, path, signame)


class StopOnInterrupt(StopOnSignal):
    """:class:`StopOnSignal` for Ctrl-C only (runs without ``ALS_D2_STOP_SIGNALS``); the
    ranks compare their flags every :data:`INTERRUPT_CHECK_PERIOD` steps."""

    def __init__(self):
        super().__init__([], check_period=INTERRUPT_CHECK_PERIOD)


def stop_on_signal_hooks() -> List[HookBase]:
    """``[StopOnSignal(...)]`` when ``ALS_D2_STOP_SIGNALS`` names signals (Ctrl-C included),
    else ``[StopOnInterrupt()]``."""
    spec = os.environ.get(SIGNALS_ENV, "")
    signals = parse_signals(spec)
    if not signals:
        return [StopOnInterrupt()]
    return [StopOnSignal(signals, os.environ.get(REPORT_ENV) or None)]
