"""benchmarks/: the scripts run (--quick) and print their JSON last; no timing is asserted."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=240):
    out = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.parametrize("script", ["loader.py", "train_step.py", "run_all.py"])
def test_help(script):
    assert "usage" in _run(os.path.join("benchmarks", script), "--help")


def _positive(x):
    return isinstance(x, (int, float)) and x > 0


def _check_loader(r):
    pipelines = {"torchvision", "hard", "als", "als_mask", "mask_raster", "als_jitter"}
    assert r["benchmark"] == "loader"
    assert set(r["in_process"]) == pipelines
    assert set(r["dataloader"]) == pipelines | {"hard_unpacked", "als_unpacked"}
    assert all(
        _positive(v) for v in list(r["in_process"].values()) + list(r["dataloader"].values())
    )
    for key in (
        "als_over_hard",
        "hard_over_torchvision",
        "mask_raster_over_als",
        "objectness_us_per_sample",
    ):
        assert _positive(r[key]), key
    for key in (
        "als_over_hard",
        "hard_over_torchvision",
        "mask_raster_over_als",
        "als_over_als_unpacked",
    ):
        assert _positive(r["dataloader_ratios"][key]), key
    assert set(r["objectness_us_by_boxes"]) == {"1", "2", "3", "5", "10", "20", "50"}
    assert 1.0 <= r["objectness_boxes_per_sample"] <= 3.0
    assert 50 < r["mean_jpeg_kb"] < 200  # ImageNet-like JPEGs


def _check_train_step(r):
    assert r["benchmark"] == "train_step"
    assert r["device"] == "cpu" and r["model"].startswith("ImageClassifier R18")
    assert [x["name"] for x in r["results"]] == ["fp32", "bf16_cl"]
    for x in r["results"]:
        assert _positive(x["images_per_s"]) and _positive(x["step_ms"])
    assert _positive(r["results"][0]["peak_mem_mb"])  # --quick probes the first config only
    assert _positive(r["ratios"]["bf16_cl_over_fp32"])


def test_run_all_quick(tmp_path):
    """run_all runs train_step.py then loader.py (both --quick); the loader's JSON is last."""
    lines = _run("benchmarks/run_all.py", "--quick", "--out", str(tmp_path)).strip().splitlines()
    _check_loader(json.loads(lines[-1]))
    _check_train_step(json.loads(lines[-2]))
    assert json.load(open(tmp_path / "loader.json"))["benchmark"] == "loader"
    assert json.load(open(tmp_path / "train_step.json"))["benchmark"] == "train_step"


def test_gpu_check_refuses_an_incomplete_bundle(tmp_path):
    """benchmarks/gpu_check.sh stops before installing anything when .whl/ lacks the bundle
    (the full path was run in a Python 3.12 / numpy 2 / Pillow 13 environment with
    DEVICE=cpu TRAIN_STEP_ARGS=--quick; a GPU run needs a lent machine)."""
    import shutil

    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "benchmarks", "gpu_check.sh"), repo / "benchmarks")
    (repo / ".whl").mkdir()
    (repo / ".whl" / "iopath-0.1.9-py3-none-any.whl").write_bytes(b"")
    out = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=repo, capture_output=True, text=True,
                         env=dict(os.environ, OUT=str(tmp_path / "out"), SITE=str(tmp_path / "site")))
    assert out.returncode == 2 and "gpu_bundle.sh" in out.stderr
    assert not (tmp_path / "site").exists()


def test_offline_detectron2_install_needs_the_sdist_path(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ALS_D2_DETECTRON2_SDIST"}
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "install_detectron2.py"),
                          "--offline-target", str(tmp_path / "d2")], capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "ALS_D2_DETECTRON2_SDIST" in out.stderr
