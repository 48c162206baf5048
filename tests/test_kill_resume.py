"""Kill-and-resume: ``tools/train_cls.py`` in a subprocess, SIGKILLed at several moments
(during its first save, during training steps, while a checkpoint file is being written,
while ``last_checkpoint`` is being replaced) and restarted with ``--resume`` each time,
ends with the same weights and the same metrics as an uninterrupted run.

Saves are made observable by a wrapper that slows ``os.fsync`` down in the killed run:
the checkpointer's temporary file (``.model_*.pth.*.tmp``) then exists long enough for
the test to see it and kill the process while it is there. ``ALS_D2_KILL_SEED`` picks
another random schedule.
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "tools", "train_cls.py")
MAX_ITER, PERIOD = 40, 5
FSYNC_DELAY = 0.1  # seconds per fsync in the killed runs (each save fsyncs 4 times)
TIMEOUT = 120  # per process: far beyond what one needs, only to stop a hung test
# time-dependent values; every other logged scalar must match exactly
TIMING_KEYS = {"time", "data_time", "eta_seconds", "images_per_sec"}

OPTS = [
    "MODEL.CLASSIFIER.NUM_CLASSES", "4", "MODEL.RESNETS.OUT_FEATURES", '["res3"]',
    "MODEL.CLASSIFIER.IN_FEATURE", "res3", "INPUT.CLS.CROP_SIZE", "32", "INPUT.CLS.TEST_RESIZE", "36",
    "MODEL.ALS.METHOD", "als", "INPUT.CLS.VARIANT", "context", "INPUT.CLS.CONTEXT_PROB", "0.3",
    "SOLVER.EPOCHS", "0", "SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.STEPS", "(25,)", "SOLVER.WARMUP_ITERS", "3",
    "SOLVER.IMS_PER_BATCH", "8", "SOLVER.BASE_LR", "0.05", "SOLVER.LR_REFERENCE_BATCH", "0",
    "SOLVER.CHECKPOINT_PERIOD", str(PERIOD), "SOLVER.CHECKPOINT_PERIOD_EPOCHS", "0.0",
    "TEST.EVAL_PERIOD", "0", "DATALOADER.NUM_WORKERS", "0", "SEED", "3",
]

# Runs tools/train_cls.py as __main__ with every fsync slowed down by FSYNC_DELAY.
SLOW_SAVES = (
    "import os, runpy, sys, time\n"
    "_fsync = os.fsync\n"
    "def _slow_fsync(fd):\n"
    "    time.sleep(float(os.environ['KILL_TEST_FSYNC_DELAY']))\n"
    "    _fsync(fd)\n"
    "os.fsync = _slow_fsync\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny generated ImageNet (Kaggle layout) under $DETECTRON2_DATASETS/synthetic_imagenet."""
    from als_d2.data.synthetic import generate_synthetic_imagenet

    base = tmp_path_factory.mktemp("kill_resume")
    generate_synthetic_imagenet(
        str(base / "datasets" / "synthetic_imagenet"), num_classes=4, train_per_class=8, val_per_class=2,
        boxed_fraction=1.0, image_size=(48, 64), coco_train=0, coco_val=0,
    )
    e = dict(os.environ)
    e.update(DETECTRON2_DATASETS=str(base / "datasets"), ALS_D2_CACHE=str(base / "cache"), OMP_NUM_THREADS="1",
             MKL_NUM_THREADS="1", KILL_TEST_FSYNC_DELAY=str(FSYNC_DELAY), PYTHONUNBUFFERED="1")
    return e


def _start(env, out_dir, *, resume: bool, slow_saves: bool) -> subprocess.Popen:
    args = ["--config-file", os.path.join(REPO, "configs/demo/Base-Demo-R18.yaml")]
    args += ["--resume"] if resume else []
    args += OPTS + ["OUTPUT_DIR", out_dir]
    cmd = [sys.executable, "-c", SLOW_SAVES, TRAIN, *args] if slow_saves else [sys.executable, TRAIN, *args]
    log = open(os.path.join(os.path.dirname(out_dir), os.path.basename(out_dir) + ".console.txt"), "ab")
    # own process group: the kill reaches the trainer and nothing else
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _last_checkpoint(out_dir):
    try:
        with open(os.path.join(out_dir, "last_checkpoint")) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def _temp_files(out_dir, prefix, ignore=()):
    try:
        return [n for n in os.listdir(out_dir) if n.startswith(prefix) and n.endswith(".tmp") and n not in ignore]
    except FileNotFoundError:
        return []


def _wait(proc, condition, what):
    """Poll every 2 ms until ``condition()``; False if the process ended first."""
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None:
        if condition():
            return True
        if time.monotonic() > deadline:
            raise TimeoutError(f"waiting for {what}")
        time.sleep(0.002)
    return False


def _kill_when(proc, out_dir, mode, rng):
    """Wait for the moment of ``mode`` in this process's run and SIGKILL it there.
    Returns a description of the kill, or None when the run finished first."""
    start_tag = _last_checkpoint(out_dir)
    stale = set(_temp_files(out_dir, "."))  # left by an earlier kill: not this run's saves
    new_checkpoint = lambda: _last_checkpoint(out_dir) not in (None, start_tag)  # noqa: E731
    if mode != "first save" and not _wait(proc, new_checkpoint, "a checkpoint"):
        return None  # progress: every kill but the first comes after one completed checkpoint
    if mode in ("first save", "model file"):
        hit = _wait(proc, lambda: _temp_files(out_dir, ".model_", stale), "a checkpoint being written")
    elif mode == "last_checkpoint":
        hit = _wait(proc, lambda: _temp_files(out_dir, ".last_checkpoint.", stale), "last_checkpoint being replaced")
    else:  # "step": some time into the training steps after that checkpoint
        time.sleep(rng.uniform(0.0, 0.4))
        hit = proc.poll() is None
    if not hit:
        return None
    seen = sorted(_temp_files(out_dir, "."))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return f"{mode} (after {start_tag or 'no checkpoint'}; temp files {seen or 'none'})"


def _check_checkpoints_usable(out_dir):
    """``last_checkpoint`` names a complete file, and every model_*.pth there loads."""
    tag = _last_checkpoint(out_dir)
    if tag is not None:
        assert os.path.isfile(os.path.join(out_dir, tag)), tag
    for name in os.listdir(out_dir):
        if name.endswith(".pth"):
            ckpt = torch.load(os.path.join(out_dir, name), map_location="cpu", weights_only=True)
            assert "model" in ckpt and "iteration" in ckpt, name


def _metrics(out_dir):
    """Last record of every iteration in metrics.json (a resumed run rewrites some), with
    the timing keys left out."""
    by_iter = {}
    with open(os.path.join(out_dir, "metrics.json")) as f:
        for line in f:
            row = json.loads(line)
            by_iter.setdefault(row["iteration"], {}).update(
                {k: v for k, v in row.items() if k not in TIMING_KEYS}
            )
    return by_iter


def test_sigkill_at_random_moments_then_resume_matches_uninterrupted_run(env, tmp_path):
    seed = int(os.environ.get("ALS_D2_KILL_SEED", "0"))
    rng = random.Random(seed)
    full_dir, killed_dir = str(tmp_path / "full"), str(tmp_path / "killed")
    reference = _start(env, full_dir, resume=False, slow_saves=False)  # runs alongside the killed runs

    modes = ["first save", "step", "model file", "last_checkpoint", "step", "model file"]
    kills = []
    proc = _start(env, killed_dir, resume=False, slow_saves=True)
    for mode in modes:
        killed = _kill_when(proc, killed_dir, mode, rng)
        if killed is None:
            break
        kills.append(killed)
        _check_checkpoints_usable(killed_dir)
        proc = _start(env, killed_dir, resume=True, slow_saves=True)
    assert proc.wait(TIMEOUT) == 0, open(killed_dir + ".console.txt").read()[-3000:]
    assert reference.wait(TIMEOUT) == 0, open(full_dir + ".console.txt").read()[-3000:]
    print(f"seed {seed}: survived {len(kills)} kills:\n  " + "\n  ".join(kills))
    assert len(kills) >= 5, kills  # every mode but possibly the last one happened

    expected = torch.load(os.path.join(full_dir, "model_final.pth"), weights_only=True)
    got = torch.load(os.path.join(killed_dir, "model_final.pth"), weights_only=True)
    assert expected["iteration"] == got["iteration"] == MAX_ITER - 1
    assert expected["model"].keys() == got["model"].keys()
    for key in expected["model"]:
        torch.testing.assert_close(got["model"][key], expected["model"][key], rtol=0, atol=0, msg=key)
    assert _metrics(killed_dir) == _metrics(full_dir)
    assert not _temp_files(killed_dir, "."), "a completed save removes the temporary files of killed saves"
