"""Ctrl-C during training: ``tools/train_cls.py`` in a subprocess receives SIGINT during a
step, saves that step's checkpoint, prints one line with the command that resumes and exits
with code 130 without a traceback; the printed command then finishes the run with the
weights of an uninterrupted one."""

import os
import shlex
import subprocess
import sys

from tiny_data import assert_same_final_weights, synthetic_imagenet_env, tiny_train_cls_opts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "tools", "train_cls.py")
CONFIG = os.path.join(REPO, "configs/demo/Base-Demo-R18.yaml")
MAX_ITER = 6
# Runs tools/train_cls.py as __main__; the process sends itself SIGINT in its n-th
# Tensor.backward (n = SIGINT_AT_BACKWARD), i.e. during iteration n - 1, as a Ctrl-C would.
INTERRUPTING_RUN = (
    "import os, runpy, signal, sys\n"
    "import torch\n"
    "_n, _count = int(os.environ.get('SIGINT_AT_BACKWARD', '0')), [0]\n"
    "_backward = torch.Tensor.backward\n"
    "def _backward_interrupting(self, *args, **kwargs):\n"
    "    _count[0] += 1\n"
    "    if _count[0] == _n:\n"
    "        os.kill(os.getpid(), signal.SIGINT)\n"
    "    return _backward(self, *args, **kwargs)\n"
    "torch.Tensor.backward = _backward_interrupting\n"
    "sys.argv = sys.argv[1:]\n"
    "sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))  # as `python tools/x.py`\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def _run(env, argv, sigint_at=0):
    return subprocess.run(
        [sys.executable, "-c", INTERRUPTING_RUN, *argv],
        cwd=REPO,
        env=dict(env, SIGINT_AT_BACKWARD=str(sigint_at)),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_ctrl_c_saves_prints_the_resume_command_and_resumes(tmp_path):
    env = dict(os.environ, **synthetic_imagenet_env(str(tmp_path)), PYTHONUNBUFFERED="1")
    opts = tiny_train_cls_opts(MAX_ITER, 1000)  # no periodic checkpoint
    full = str(tmp_path / "full")
    proc = _run(env, [TRAIN, "--config-file", CONFIG, *opts, "OUTPUT_DIR", full])
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = str(tmp_path / "interrupted")
    proc = _run(env, [TRAIN, "--config-file", CONFIG, *opts, "OUTPUT_DIR", out], sigint_at=3)
    console = proc.stdout + proc.stderr
    assert proc.returncode == 130, console[-3000:]
    assert "Traceback" not in console, console[-3000:]
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read().strip() == "model_0000002.pth"  # the step that got the Ctrl-C
    assert not os.path.exists(os.path.join(out, "model_final.pth"))
    lines = [l for l in console.splitlines() if "resume with: " in l]
    assert len(lines) == 1 and "model_0000002.pth" in lines[0], console[-3000:]
    command = shlex.split(lines[0].split("resume with: ", 1)[1])
    assert command[:3] == ["python", TRAIN, "--resume"]

    proc = _run(env, command[1:])  # the printed command, with this interpreter
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_final_weights(full, out, MAX_ITER - 1)
