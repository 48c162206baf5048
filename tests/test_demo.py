"""`make demo-quick` end to end: data, three classifiers, tables, figures, transfer, results.json."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRIC_KEYS = {"acc", "top5", "ece_15", "ece_100", "mce_15", "mce_100", "adaptive_ece_15", "over_conf",
               "under_conf", "avg_conf", "nll", "brier", "mean_objectness", "objectness_deviation",
               "paper_ece_15", "paper_ece_100", "paper_mce_15", "paper_mce_100"}


def test_quick_demo_shows_lower_context_confidence_for_als(tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "demo.py"), "--quick", "--output", str(out), "--data-root", str(data)],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Table 1: context-only val" in proc.stdout and "ETA" in proc.stdout
    assert "| ECE15 pycalib |" in proc.stdout and "Wenger et al. 2020" in proc.stdout
    with open(out / "results.json") as f:
        results = json.load(f)
    for method in ("hard", "ls", "als"):
        for split in ("val", "val_context"):
            assert METRIC_KEYS <= set(results["classification"][method][split]), (method, split)
    for method in ("hard", "als"):
        assert isinstance(results["transfer"][method]["AP"], float)
    for path in results["figures"].values():
        assert os.path.getsize(path) > 1000, path
    # the paper's effect, at reduced size: ALS is clearly less confident on context-only images
    hard = results["classification"]["hard"]["val_context"]["avg_conf"]
    als = results["classification"]["als"]["val_context"]["avg_conf"]
    assert als < 0.75 * hard, (als, hard)
