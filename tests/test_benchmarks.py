"""benchmarks/: the scripts run (--quick) and print their JSON last; no timing is asserted."""

import json
import os
import subprocess
import sys

import pytest

from forked_tools import run_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=240, env=None):
    out = run_tool(
        list(args),
        cwd=ROOT,
        timeout=timeout,
        env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})),
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
    pipelines |= {"strong_hard", "strong_als"}
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
        "strong_als_over_strong_hard",
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
    timed = [x for x in r["results"] if "skipped" not in x]
    for x in timed:
        assert _positive(x["images_per_s"]) and _positive(x["step_ms"])
    assert _positive(r["results"][0]["peak_mem_mb"])  # --quick probes the first config only
    assert r["reps"] >= 1 and _positive(r["budget_s"]) and r["cpu_capability"]
    if r["skipped"]:  # a CPU without native bf16 (see test_train_step_skips_emulated_bf16)
        assert set(r["skipped"]) == {"bf16_cl"} and "bf16_cl_over_fp32" not in r["ratios"]
    else:
        assert _positive(r["ratios"]["bf16_cl_over_fp32"])


def test_run_all_quick(tmp_path):
    """run_all runs train_step.py then loader.py (both --quick); the loader's JSON is last."""
    lines = _run("benchmarks/run_all.py", "--quick", "--out", str(tmp_path)).strip().splitlines()
    _check_loader(json.loads(lines[-1]))
    _check_train_step(json.loads(lines[-2]))
    assert json.load(open(tmp_path / "loader.json"))["benchmark"] == "loader"
    assert json.load(open(tmp_path / "train_step.json"))["benchmark"] == "train_step"


def test_train_step_skips_emulated_bf16():
    """Detection mocked to 'no native bf16' (the override als_d2.env reads): the bf16 rows
    say why they were skipped, their figures are null, no ratio uses them, exit 0."""
    out = _run(
        "benchmarks/train_step.py",
        "--device",
        "cpu",
        "--quick",
        "--configs",
        "fp32,bf16,bf16_cl",
        "--no-memory",
        env={"ALS_D2_CPU_NATIVE_BF16": "0"},
    )
    r = json.loads(out.strip().splitlines()[-1])
    rows = {x["name"]: x for x in r["results"]}
    assert list(rows) == ["fp32", "bf16", "bf16_cl"]
    assert _positive(rows["fp32"]["images_per_s"]) and "skipped" not in rows["fp32"]
    for name in ("bf16", "bf16_cl"):
        assert rows[name]["skipped"].startswith("no native bf16 on this CPU (capability ")
        assert (
            rows[name]["images_per_s"] is rows[name]["step_ms"] is rows[name]["peak_mem_mb"] is None
        )
        assert r["skipped"][name] == rows[name]["skipped"]
    assert r["ratios"] == {}  # bf16_over_fp32 etc. only between timed configs
    assert r["cpu_capability"] in rows["bf16"]["skipped"]


def test_train_step_skip_reasons_follow_the_detection(monkeypatch):
    import importlib.util

    from als_d2.env import CpuPrecision

    spec = importlib.util.spec_from_file_location(
        "bench_train_step", os.path.join(ROOT, "benchmarks", "train_step.py")
    )
    ts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ts)
    names = ["fp32", "fp32_cl", "bf16", "bf16_cl"]
    monkeypatch.setattr(ts, "cpu_precision", lambda: CpuPrecision("AVX2", False, False, "", ""))
    skipped = ts.skip_reasons(names, "cpu", emulated=False)
    assert set(skipped) == {"bf16", "bf16_cl"} and "capability AVX2" in skipped["bf16"]
    assert ts.skip_reasons(names, "cpu", emulated=True) == {}
    assert ts.skip_reasons(names, "cuda", emulated=False) == {}
    monkeypatch.setattr(ts, "cpu_precision", lambda: CpuPrecision("AVX512", True, False, "", ""))
    assert ts.skip_reasons(names, "cpu", emulated=False) == {}


def test_run_all_reports_a_slow_script_and_exits_0(monkeypatch):
    """A script past its time (here: a budget it cannot even start in) is an error record
    in the JSON, not a traceback."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_run_all", os.path.join(ROOT, "benchmarks", "run_all.py")
    )
    ra = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ra)
    monkeypatch.setattr(ra, "STARTUP_S", 0.0)
    r = ra._run("train_step.py", ["--device", "cpu", "--quick"], budget=0.1)
    assert r["benchmark"] == "train_step" and r["error"].startswith("timed out after")
    assert r["wall_s"] < 30
    r = ra._run("loader.py", ["--no-such-option"], budget=60)
    assert r["error"] == "exit code 2" and "no-such-option" in r["stderr_tail"]


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
    out = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=dict(os.environ, OUT=str(tmp_path / "out"), SITE=str(tmp_path / "site")),
    )
    assert out.returncode == 2 and "gpu_bundle.sh" in out.stderr
    assert not (tmp_path / "site").exists()


def test_offline_detectron2_install_needs_the_sdist_path(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ALS_D2_DETECTRON2_SDIST"}
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "tools", "install_detectron2.py"),
            "--offline-target",
            str(tmp_path / "d2"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode != 0 and "ALS_D2_DETECTRON2_SDIST" in out.stderr
