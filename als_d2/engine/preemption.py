"""Stop training cleanly on a scheduler's signal: save a checkpoint at a step boundary, exit 0.

A job started by ``tools/submit.py`` (see :mod:`als_d2.engine.submit`) runs the training tool
with ``ALS_D2_STOP_SIGNALS`` set (e.g. ``"USR2,TERM"``). The trainers then add
:class:`StopOnSignal` as their last hook (:func:`stop_on_signal_hooks`): from
``before_train`` on, those signals only set a flag; after each step the ranks agree whether
any of them saw one (one small gloo ``all_gather`` per step when there are several
processes), and if so every rank stops after that same step. The main process saves
``model_<iter>.pth`` (``last_checkpoint`` names it) with the trainer's full state, exactly as
the periodic checkpointer would at that iteration, so ``--resume`` continues as if nothing
had happened. Without the variable no hook is added and nothing changes.

With ``ALS_D2_STOP_REPORT`` set, the local main process of each machine writes a JSON
report there after the save: ``{"iteration", "checkpoint", "signal"}``.
"""

import json
import logging
import os
import signal
from typing import List, Optional

from detectron2.engine import HookBase
from detectron2.utils import comm

__all__ = [
    "SIGNALS_ENV",
    "REPORT_ENV",
    "StopOnSignal",
    "TrainingStopped",
    "parse_signals",
    "read_stop_report",
    "stop_on_signal_hooks",
]

SIGNALS_ENV = "ALS_D2_STOP_SIGNALS"
REPORT_ENV = "ALS_D2_STOP_REPORT"

logger = logging.getLogger(__name__)


class TrainingStopped(SystemExit):
    """Raised by :class:`StopOnSignal` after the checkpoint is saved. A ``SystemExit`` with
    code 0: detectron2's training loop does not log it as a failure (it runs ``after_train``
    and lets it pass), a single-process tool exits 0, and ``launch()``'s worker processes
    exit 0 without making the launcher terminate the others."""

    def __init__(self, iteration: int, checkpoint: str, signame: str):
        super().__init__(0)
        self.iteration, self.checkpoint, self.signame = iteration, checkpoint, signame


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

    Args:
        signals: the signals that ask for a stop (handled from ``before_train`` until
            ``after_train``; the previous handlers are restored then).
        report_path: where the local main process writes the JSON report (None: no report).
    """

    def __init__(self, signals, report_path: Optional[str] = None):
        self._signals = list(signals)
        self._report_path = report_path
        self._received: Optional[str] = None
        self._previous = {}

    def _handler(self, signum, frame):  # runs in the main thread, between bytecodes
        if self._received is None:
            self._received = signal.Signals(signum).name

    def before_train(self):
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, self._handler)

    def after_train(self):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def _requested(self) -> Optional[str]:
        """The signal any rank received (the same answer on every rank), or None."""
        if comm.get_world_size() == 1:
            return self._received
        return next((s for s in comm.all_gather(self._received) if s), None)

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


def stop_on_signal_hooks() -> List[HookBase]:
    """``[StopOnSignal(...)]`` when ``ALS_D2_STOP_SIGNALS`` names signals, else ``[]``."""
    spec = os.environ.get(SIGNALS_ENV, "")
    signals = parse_signals(spec)
    if not signals:
        return []
    return [StopOnSignal(signals, os.environ.get(REPORT_ENV) or None)]
