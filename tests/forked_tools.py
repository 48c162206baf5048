"""``run_tool``: ``python <script> argv...`` for tests, started as a fork of a process that has
already imported torch and torchvision.

Importing torch and torchvision (which imports ``torch._dynamo``) is about 3.5 s of the 4.5 s
that every tool start costs on a 2-core CPU, and the tests start tools some forty times. Here
one server process per pytest process imports the two once and forks a child per run; the
child changes to the run's directory and environment, points its stdout/stderr at files, and
runs the script as ``__main__`` (``runpy``, the script's folder first on ``sys.path``, as
``python script`` does). Everything else (detectron2, als_d2 and the builtin datasets read
from the run's ``DETECTRON2_DATASETS``, logging, the tool) is imported in the child as in a
fresh interpreter; the child ends as the interpreter would (uncaught exception: traceback and
status 1; ``SystemExit``: its code; ``atexit`` functions run), except that it skips the
teardown of every module at the end (about 1.4 s with torch loaded).

Not for what depends on a truly fresh interpreter (import side effects, ``-X importtime``),
for commands as a user types them (tests/test_readme_commands.py starts them from a shell),
or for runs that a test signals (they run in their own process group)."""

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from typing import List, Optional

# the server: one JSON request per line on stdin; for each, fork; the server answers the
# child's pid, then its exit status; the child leaves with os._exit
_SERVER = r"""
import atexit, json, os, runpy, sys, traceback
import torch, torchvision

def reply(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()

def run(request):
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
        return 0
    except SystemExit as e:  # the interpreter's rules for its code
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1

for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        code = run(json.loads(line))
        # the interpreter's exit, less the teardown of every module (about 1.4 s with torch)
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    reply(pid)
    reply(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""

_server: Optional[subprocess.Popen] = None


def _stop_server() -> None:
    if _server is not None and _server.poll() is None:
        _server.stdin.close()
        _server.wait(30)


def _started_server() -> subprocess.Popen:
    global _server
    if _server is None or _server.poll() is not None:
        _server = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        atexit.register(_stop_server)
    return _server


def _read_reply(server: subprocess.Popen):
    line = server.stdout.readline()
    if not line:
        raise RuntimeError(f"the tool server exited (status {server.wait()})")
    return json.loads(line)


def run_tool(
    argv: List[str], *, cwd: Optional[str] = None, env: Optional[dict] = None, timeout=300
) -> subprocess.CompletedProcess:
    """Run ``python argv[0] argv[1:]`` in ``cwd`` with environment ``env`` (default: this
    process's current directory and environment; ``sys.path`` is the server's, so
    ``PYTHONPATH`` in ``env`` has no effect) as described in the module docstring; returns
    what ``subprocess.run(..., capture_output=True, text=True)`` would (``args`` starts with
    ``sys.executable``).
    Past ``timeout`` seconds the run is killed and ``subprocess.TimeoutExpired`` raised."""
    server = _started_server()
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        request = dict(
            argv=[os.fspath(a) for a in argv],
            cwd=os.fspath(os.getcwd() if cwd is None else cwd),
            env=dict(os.environ if env is None else env),
            stdout=out,
            stderr=err,
        )
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        pid = _read_reply(server)
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            status = _read_reply(server)
        finally:
            timer.cancel()
        if timed_out.is_set() and status == -signal.SIGKILL:
            raise subprocess.TimeoutExpired([sys.executable, *argv], timeout)
        with open(out, errors="replace") as f_out, open(err, errors="replace") as f_err:
            stdout, stderr = f_out.read(), f_err.read()
    return subprocess.CompletedProcess([sys.executable, *argv], status, stdout, stderr)
