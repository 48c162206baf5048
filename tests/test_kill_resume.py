"""Kill-and-resume: ``tools/train_cls.py`` in a subprocess, SIGKILLed at several moments
(during its first save, during a training step, while a checkpoint file is being written,
while ``last_checkpoint`` is being replaced) and restarted with ``--resume`` each time,
ends with the same weights and the same metrics as an uninterrupted run.

The moments are deterministic, not a matter of timing: the killed runs go through a
wrapper that halts the process (it sleeps until killed, after writing a marker file) at
the n-th ``os.fsync`` of a given temporary file in that process (``.model_*.tmp``: a
checkpoint file being written; ``.last_checkpoint.*.tmp``: ``last_checkpoint`` being
replaced) or at its n-th ``loss.backward()`` (between a forward and a backward, some steps
after a checkpoint). The test waits for the marker, checks what is on disk and kills the
process there. ``ALS_D2_KILL_SEED`` picks other counts n.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from forked_tools import run_tool
from tiny_data import assert_same_final_weights, synthetic_imagenet_env, tiny_train_cls_opts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "tools", "train_cls.py")
MAX_ITER, PERIOD = 40, 5
TIMEOUT = 300  # per wait: far beyond what one needs, only to stop a hung test
# What the project logs deterministically (compared exactly): the losses (loss_* only
# where a model has several), the learning
# rate, the batch statistics of the ALS targets and the skipped-sample count. Everything
# else in metrics.json is left out: timing keys, whichever detectron2 logs (time,
# data_time, rank_data_time, eta_seconds...), and images_per_sec.
DETERMINISTIC_KEYS = {"iteration", "total_loss", "lr", "data/skipped_samples"}
DETERMINISTIC_PREFIXES = ("loss_", "als/")
REQUIRED_KEYS = {"iteration", "total_loss", "lr", "data/skipped_samples", "als/boxed_fraction"}

OPTS = tiny_train_cls_opts(MAX_ITER, PERIOD) + [
    "INPUT.CLS.VARIANT",
    "context",
    "INPUT.CLS.CONTEXT_PROB",
    "0.3",
]

# Runs tools/train_cls.py as __main__, halting at the point KILL_TEST_HALT names:
# "fsync:<prefix>:<n>" (n-th fsync of a temporary file <prefix>*.tmp), "backward:<n>"
# (n-th Tensor.backward), or "" (never). Halting = write KILL_TEST_MARKER, sleep.
HALTING_RUN = (
    "import os, runpy, sys, time\n"
    "import torch\n"
    "_kind, _, _arg = os.environ.get('KILL_TEST_HALT', '').partition(':')\n"
    "_count = [0]\n"
    "def _halt(what):\n"
    "    marker = os.environ['KILL_TEST_MARKER']\n"
    "    with open(marker + '.part', 'w') as f:\n"
    "        f.write(what)\n"
    "    os.replace(marker + '.part', marker)\n"
    "    while True:\n"
    "        time.sleep(3600)\n"
    "def _counts(hit, n):\n"
    "    if hit:\n"
    "        _count[0] += 1\n"
    "    return hit and _count[0] == int(n)\n"
    "_fsync = os.fsync\n"
    "def _fsync_halting(fd):\n"
    "    if _kind == 'fsync':\n"
    "        prefix, n = _arg.rsplit(':', 1)\n"
    "        name = os.path.basename(os.readlink('/proc/self/fd/%d' % fd))\n"
    "        if _counts(name.startswith(prefix) and name.endswith('.tmp'), n):\n"
    "            _halt('fsync %s #%s' % (name, n))\n"
    "    _fsync(fd)\n"
    "os.fsync = _fsync_halting\n"
    "_backward = torch.Tensor.backward\n"
    "def _backward_halting(self, *args, **kwargs):\n"
    "    if _kind == 'backward' and _counts(True, _arg):\n"
    "        _halt('backward #%s' % _arg)\n"
    "    return _backward(self, *args, **kwargs)\n"
    "torch.Tensor.backward = _backward_halting\n"
    "sys.argv = sys.argv[1:]\n"
    "sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))  # as `python tools/x.py`\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny generated ImageNet (Kaggle layout) under $DETECTRON2_DATASETS/synthetic_imagenet."""
    base = tmp_path_factory.mktemp("kill_resume")
    return dict(os.environ, **synthetic_imagenet_env(str(base)), PYTHONUNBUFFERED="1")


def _start(env, out_dir, *, resume: bool, halt=None, marker=None) -> subprocess.Popen:
    """tools/train_cls.py; with ``halt`` (see HALTING_RUN; "" for none) through the wrapper."""
    args = ["--config-file", os.path.join(REPO, "configs/demo/Base-Demo-R18.yaml")]
    args += ["--resume"] if resume else []
    args += OPTS + ["OUTPUT_DIR", out_dir]
    if halt is None:
        cmd = [sys.executable, TRAIN, *args]
    else:
        cmd = [sys.executable, "-c", HALTING_RUN, TRAIN, *args]
        env = dict(env, KILL_TEST_HALT=halt, KILL_TEST_MARKER=marker or os.devnull)
    log = open(
        os.path.join(os.path.dirname(out_dir), os.path.basename(out_dir) + ".console.txt"), "ab"
    )
    # own process group: the kill reaches the trainer and nothing else
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _last_checkpoint(out_dir):
    try:
        with open(os.path.join(out_dir, "last_checkpoint")) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def _temp_files(out_dir, prefix, ignore=()):
    try:
        return [
            n
            for n in os.listdir(out_dir)
            if n.startswith(prefix) and n.endswith(".tmp") and n not in ignore
        ]
    except FileNotFoundError:
        return []


def _wait_for_halt(proc, marker, console):
    """Wait until the process halts (its marker appears); fails if it ends first."""
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(marker):
        if proc.poll() is not None:
            raise AssertionError(
                f"the run ended (exit {proc.returncode}) before its halt point:\n"
                + open(console).read()[-3000:]
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"waiting for {marker}")
        time.sleep(0.05)
    with open(marker) as f:
        return f.read()


def _kill_at(proc, out_dir, mode, marker, stale):
    """The process has halted at the moment of ``mode``: check the files there, SIGKILL it."""
    where = _wait_for_halt(proc, marker, out_dir + ".console.txt")
    tag = _last_checkpoint(out_dir)
    seen = sorted(_temp_files(out_dir, ".", stale))
    if mode in ("first save", "model file"):
        assert any(n.startswith(".model_") for n in seen), (mode, seen)
    if mode == "first save":
        assert tag is None
    if mode == "last_checkpoint":
        assert any(n.startswith(".last_checkpoint.") for n in seen), (mode, seen)
    if mode == "step":
        assert tag is not None and not seen, (tag, seen)  # between saves
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return f"{mode} at {where} (last_checkpoint {tag or 'none'}; temp files {seen or 'none'})"


def _check_checkpoints_usable(out_dir):
    """``last_checkpoint`` names a complete file, and every model_*.pth there loads."""
    tag = _last_checkpoint(out_dir)
    if tag is not None:
        assert os.path.isfile(os.path.join(out_dir, tag)), tag
    for name in os.listdir(out_dir):
        if name.endswith(".pth"):
            ckpt = torch.load(os.path.join(out_dir, name), map_location="cpu", weights_only=True)
            assert "model" in ckpt and "iteration" in ckpt, name


def _deterministic(key):
    return key in DETERMINISTIC_KEYS or key.startswith(DETERMINISTIC_PREFIXES)


def _metrics(out_dir):
    """Last record of every iteration in metrics.json (a resumed run rewrites some), only
    the keys the project logs deterministically."""
    by_iter = {}
    with open(os.path.join(out_dir, "metrics.json")) as f:
        for line in f:
            row = json.loads(line)
            by_iter.setdefault(row["iteration"], {}).update(
                {k: v for k, v in row.items() if _deterministic(k)}
            )
    return by_iter


def test_sigkill_at_chosen_moments_then_resume_matches_uninterrupted_run(env, tmp_path):
    seed = int(os.environ.get("ALS_D2_KILL_SEED", "0"))
    rng = random.Random(seed)
    full_dir, killed_dir = str(tmp_path / "full"), str(tmp_path / "killed")
    reference = _start(env, full_dir, resume=False)  # runs alongside the killed runs

    # Each run (but the first, which has no checkpoint yet) resumes after a checkpoint and
    # saves after its 5th and 10th steps. At most one checkpoint of progress per kill
    # (5 x 5 iterations), so every halt point is reached before MAX_ITER.
    schedule = [
        ("first save", "fsync:.model_:1"),
        ("step", f"backward:{rng.randint(PERIOD + 1, 2 * PERIOD)}"),  # after the run's first save
        ("model file", f"fsync:.model_:{rng.randint(1, 2)}"),
        ("last_checkpoint", f"fsync:.last_checkpoint.:{rng.randint(1, 2)}"),
        ("step", f"backward:{rng.randint(PERIOD + 1, 2 * PERIOD)}"),
        ("model file", f"fsync:.model_:{rng.randint(1, 2)}"),
    ]
    kills = []
    for k, (mode, halt) in enumerate(schedule):
        marker = str(tmp_path / f"halted_{k}")
        stale = set(_temp_files(killed_dir, "."))  # left by an earlier kill: not this run's saves
        proc = _start(env, killed_dir, resume=k > 0, halt=halt, marker=marker)
        kills.append(_kill_at(proc, killed_dir, mode, marker, stale))
        _check_checkpoints_usable(killed_dir)
    proc = _start(env, killed_dir, resume=True, halt="")
    assert proc.wait(TIMEOUT) == 0, open(killed_dir + ".console.txt").read()[-3000:]
    assert reference.wait(TIMEOUT) == 0, open(full_dir + ".console.txt").read()[-3000:]
    print(f"seed {seed}: survived {len(kills)} kills:\n  " + "\n  ".join(kills))

    assert_same_final_weights(full_dir, killed_dir, MAX_ITER - 1)
    got_metrics, expected_metrics = _metrics(killed_dir), _metrics(full_dir)
    assert sorted(expected_metrics) == sorted(got_metrics)
    training_rows = [row for row in expected_metrics.values() if "total_loss" in row]
    assert len(training_rows) >= 2, expected_metrics  # the comparison is not vacuous
    for row in training_rows:
        assert REQUIRED_KEYS <= set(row), sorted(row)
    assert got_metrics == expected_metrics
    assert not _temp_files(killed_dir, "."), (
        "a completed save removes the temporary files of killed saves"
    )


def test_cutmix_with_loader_workers_resumes_to_the_same_weights(env, tmp_path):
    """CutMix draws its pairs and boxes from torch's global RNG in the training process. With
    loader workers nothing in that process reseeds torch per sample (with 0 workers the
    loader does), so only the per-step seed makes a resumed run draw what an uninterrupted
    one draws: resumed from the checkpoint after step 4 (what a run killed then leaves), the
    final weights equal the uninterrupted run's, bitwise."""
    max_iter, period = 8, 4
    opts = tiny_train_cls_opts(max_iter, period) + [
        "MODEL.ALS.METHOD", "cutmix",
        "MODEL.ALS.MIX_PROB", "1.0",
        "MODEL.ALS.MIX_ALPHA", "1.0",
        "DATALOADER.NUM_WORKERS", "2",
    ]  # fmt: skip
    config = os.path.join(REPO, "configs/demo/Base-Demo-R18.yaml")

    def train(out_dir, *resume):
        cmd = [TRAIN, "--config-file", config, *resume, *opts, "OUTPUT_DIR", str(out_dir)]
        proc = run_tool(cmd, cwd=REPO, env=env, timeout=TIMEOUT)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]

    full, resumed = tmp_path / "full", tmp_path / "resumed"
    train(full)
    first = f"model_{period - 1:07d}.pth"
    resumed.mkdir()
    (resumed / first).write_bytes((full / first).read_bytes())
    (resumed / "last_checkpoint").write_text(first)
    train(resumed, "--resume")
    assert_same_final_weights(str(full), str(resumed), max_iter - 1)
