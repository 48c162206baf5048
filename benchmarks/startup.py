#!/usr/bin/env python
"""
Start-up cost of als-d2: what ``import als_d2`` adds to ``import detectron2.engine``, and
what a tool's ``--help`` costs next to a bare interpreter.

Each case is a fresh ``python -c ...`` (or ``python tools/x.py --help``) process; the cases
are interleaved over ``--reps`` rounds and the median wall-clock time of each is reported.

The last line printed is a JSON object: ``median_s`` per case, ``ratios``
(``als_d2_over_detectron2_engine``: time of ``import detectron2.engine, als_d2`` over that
of ``import detectron2.engine``; ``help_over_python``: a tool's ``--help`` over ``python -c
pass``), ``added_s`` (``import als_d2``'s median seconds on top of detectron2's engine),
``reps`` and ``hardware`` (CPU model and count).

    python benchmarks/startup.py            # 5 rounds
    python benchmarks/startup.py --reps 3 --tool tools/eval_cls.py
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# detectron2 v0.6 from the package index cannot import detectron2.engine without the
# ``detectron2._C`` placeholder and Pillow aliases of als_d2/compat.py: the reference runs
# that one file alone (not the package), then imports detectron2's engine.
COMPAT_ONLY = (
    "import importlib.util as u; s = u.spec_from_file_location('c', %r); "
    "s.loader.exec_module(u.module_from_spec(s)); " % os.path.join(ROOT, "als_d2", "compat.py")
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _time(argv) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="rounds (median over them); default 5")
    parser.add_argument("--tool", default="tools/train_cls.py", help="tool whose --help is timed")
    args = parser.parse_args(argv)
    py = sys.executable
    cases = {
        "python": [py, "-c", "pass"],
        "detectron2_engine": [py, "-c", COMPAT_ONLY + "import detectron2.engine"],
        "detectron2_engine_als_d2": [py, "-c", "import als_d2, detectron2.engine"],
        "tool_help": [py, os.path.join(ROOT, args.tool), "--help"],
    }
    times = {k: [] for k in cases}
    for _ in range(max(1, args.reps)):
        for name, cmd in cases.items():
            times[name].append(_time(cmd))
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "benchmark": "startup",
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "added_s": round(med["detectron2_engine_als_d2"] - med["detectron2_engine"], 3),
        "ratios": {
            "als_d2_over_detectron2_engine": round(
                med["detectron2_engine_als_d2"] / med["detectron2_engine"], 3
            ),
            "help_over_python": round(med["tool_help"] / med["python"], 3),
        },
        "tool": args.tool,
        "reps": max(1, args.reps),
        "hardware": f"{_cpu_model()} x{os.cpu_count()}",
    }
    for name, value in result["median_s"].items():
        print(f"{name:28s} median {value:.3f} s")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
