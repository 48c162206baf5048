#!/usr/bin/env python
"""
The CPU benchmarks in one go (under 5 minutes on 2 cores): the training step
(``train_step.py --device cpu``: ResNet-18 at 112 px, fp32 / bf16, channels_last on / off)
then the data path (``loader.py``). Each runs in its own process; its JSON line is
printed as it finishes (and written to ``--out`` when given), the loader's last: the
last line printed is the loader benchmark's JSON object.

Time: ``--budget`` seconds in all (default 300), split between the two (train step
``2/5``, the loader the rest, plus what the train step left over); each script fits its
repetitions to its share. bf16 rows are skipped on a CPU without native bf16 (see
``train_step.py``). A script that runs far past its share (its budget plus a start-up
allowance, then doubled) is stopped and reported as ``{"benchmark": ..., "error":
"timed out after N s"...}``, and the run still exits 0; a script that fails gives
``"error": "exit code N"`` with the end of its stderr, and exit code 1 at the end.

    python benchmarks/run_all.py [--quick] [--budget 300] [--out output/bench]
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STARTUP_S = 30.0  # imports and set-up of a script, outside its own budget


def _run(script: str, extra, budget: float) -> dict:
    """The script's JSON result (with ``wall_s``), or an ``error`` record: never raises."""
    cmd = [sys.executable, os.path.join(HERE, script)] + list(extra) + ["--budget", f"{budget:.0f}"]
    timeout = 2 * (budget + STARTUP_S)
    name = os.path.splitext(script)[0]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {
            "benchmark": name,
            "error": (
                f"timed out after {timeout:.0f} s (budget {budget:.0f} s): this machine is slower "
                "than the budget allows"
            ),
            "wall_s": round(time.perf_counter() - t0, 1),
        }
    wall = round(time.perf_counter() - t0, 1)
    if out.returncode != 0:
        return {
            "benchmark": name,
            "error": f"exit code {out.returncode}",
            "stderr_tail": out.stderr[-2000:],
            "wall_s": wall,
        }
    try:
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {
            "benchmark": name,
            "error": "no JSON result",
            "stdout_tail": out.stdout[-2000:],
            "wall_s": wall,
        }
    result["wall_s"] = wall
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    p.add_argument("--quick", action="store_true", help="tiny runs (for tests)")
    p.add_argument("--budget", type=float, default=None, help="seconds in all (300; --quick 120)")
    p.add_argument("--out", default="", help="folder for train_step.json and loader.json")
    args = p.parse_args(argv)
    quick = ["--quick"] if args.quick else []
    budget = args.budget if args.budget is not None else (120.0 if args.quick else 300.0)
    t0 = time.perf_counter()
    results = {}
    results["train_step"] = _run("train_step.py", ["--device", "cpu"] + quick, budget=0.4 * budget)
    print(json.dumps(results["train_step"]), flush=True)
    left = budget - (time.perf_counter() - t0)
    results["loader"] = _run("loader.py", quick, budget=max(0.3 * budget, left - STARTUP_S / 2))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for name, r in results.items():
            with open(os.path.join(args.out, f"{name}.json"), "w") as f:
                json.dump(r, f, indent=2)
    print(json.dumps(results["loader"]), flush=True)
    failed = [
        n
        for n, r in results.items()
        if str(r.get("error", "")).startswith(("exit code", "no JSON"))
    ]
    if failed:
        sys.stderr.write(
            "".join(
                f"{n}: {results[n]['error']}\n{results[n].get('stderr_tail', '')}\n" for n in failed
            )
        )
        sys.exit(1)
    return results


if __name__ == "__main__":
    main()
