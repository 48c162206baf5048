"""`make demo-quick` end to end: data, three classifiers, tables, figures, transfer, results.json;
and the seed summary of `tools/demo.py --seeds N` against numbers computed here."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRIC_KEYS = {
    "acc",
    "top5",
    "ece_15",
    "ece_100",
    "mce_15",
    "mce_100",
    "adaptive_ece_15",
    "over_conf",
    "under_conf",
    "avg_conf",
    "nll",
    "brier",
    "mean_objectness",
    "objectness_deviation",
    "paper_ece_15",
    "paper_ece_100",
    "paper_mce_15",
    "paper_mce_100",
}
# Context-only average confidence, hard / ALS, that the quick demo must reach (docs/demo.md:
# 3.44x for the seed the test runs, 2.51x and 2.46x for seeds 2 and 3; the bound leaves a
# margin below the lowest of them for library versions).
QUICK_RATIO_BOUND = 2.0


def _demo_module():
    spec = importlib.util.spec_from_file_location(
        "als_d2_demo_under_test", os.path.join(REPO, "tools", "demo.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_demo_shows_lower_context_confidence_for_als(tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tools", "demo.py"),
            "--quick",
            "--output",
            str(out),
            "--data-root",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=REPO,  # a hang guard, not a speed limit
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Table 1: context-only val" in proc.stdout and "ETA" in proc.stdout
    assert "| ECE15 pycalib |" in proc.stdout and "Wenger et al. 2020" in proc.stdout
    assert "Context-only average confidence, hard / ALS" in proc.stdout
    with open(out / "results.json") as f:
        results = json.load(f)
    assert results["seeds"] == [1] and results["num_classes"] == 20
    for method in ("hard", "ls", "als"):
        for split in ("val", "val_context"):
            assert METRIC_KEYS <= set(results["classification"][method][split]), (method, split)
            assert (
                results["classification_seeds"][method][0][split]["acc"]
                == results["classification"][method][split]["acc"]
            )
    for method in ("hard", "als"):
        assert isinstance(results["transfer"][method]["AP"], float)
    assert "reliability_all_methods" in results["figures"]
    # threshold metrics (issue 25): both tables, the keys per method, one figure
    assert "Val images vs their context-only versions" in proc.stdout
    assert "Selective prediction on val" in proc.stdout
    for method in ("hard", "ls", "als"):
        context = results["classification"][method]["val_context"]
        assert 0 <= context["ood_auroc_msp"] <= 1 and 0 <= context["ood_fpr95_msp"] <= 1
        assert context["ood_pairs"] > 0
        assert results["classification"][method]["val"]["aurc"] <= 1
    assert "threshold_curves" in results["figures"]
    # the CAM/scatter step sees the models as evaluated (32 px crops): the scatter's accuracy
    # is the evaluated val accuracy, and the 1x1 res5 map of a 32 px crop is said, not drawn
    for method in ("hard", "ls", "als"):
        evaluated = results["classification_seeds"][method][0]["val"]["acc"]
        assert results["scatter_acc"][method] == pytest.approx(evaluated, abs=1e-9), method
    assert "feature map is 1x1 at a 32 px evaluation crop" in proc.stdout
    # the console shows the demo's progress and tables, not detectron2's logs or warnings
    assert "[d2" not in proc.stdout + proc.stderr and "Warning" not in proc.stderr, proc.stderr
    assert "COCO AP x 100" in proc.stdout
    for path in results["figures"].values():
        assert os.path.getsize(path) > 1000, path
    # the generated val set has ImageNet's mean objectness (0.49) under the demo's test transform
    assert abs(results["classification"]["hard"]["val"]["mean_objectness"] - 0.49) < 0.05
    # the paper's effect, at reduced size: ALS is clearly less confident on context-only images
    hard = results["classification"]["hard"]["val_context"]["avg_conf"]
    als = results["classification"]["als"]["val_context"]["avg_conf"]
    assert hard > QUICK_RATIO_BOUND * als, (hard, als)
    assert results["context_conf_ratio_hard_over_als"] == pytest.approx(hard / als)


def test_seed_summary_mean_and_range():
    demo = _demo_module()
    runs = [
        {"acc": 0.5, "avg_conf": 0.2, "n": 3},
        {"acc": 0.7, "avg_conf": float("nan"), "n": 3},
        {"acc": 0.6, "avg_conf": 0.4, "n": 3},
    ]
    mean, spread = demo.summarize_seeds(runs)
    assert mean["acc"] == pytest.approx((0.5 + 0.7 + 0.6) / 3) and spread["acc"] == [0.5, 0.7]
    assert math.isnan(mean["avg_conf"]) and all(math.isnan(v) for v in spread["avg_conf"])
    assert mean["n"] == 3 and spread["n"] == [3, 3]
    assert demo.format_spread(0.6, [0.5, 0.7]) == "0.600 (0.500-0.700)"
    assert (
        demo.format_spread(0.6, [0.6, 0.6]) == "0.600" and demo.format_spread(0.6, None) == "0.600"
    )
    table = demo.markdown([("hard", mean, spread)], (("ACC", "acc"),), "T")
    assert "| hard | 0.600 (0.500-0.700) |" in table
    assert demo.no_nan({"a": [float("nan"), 1.0]}) == {"a": [None, 1.0]}


def test_seeds_must_be_positive(capsys):
    with pytest.raises(SystemExit, match="--seeds must be >= 1"):
        _demo_module().main(["--seeds", "0", "--output", os.devnull + "-unused"])
