#!/usr/bin/env python
"""
The CPU benchmarks in one go (under 5 minutes on 2 cores): the training step
(``train_step.py --device cpu``: ResNet-18 at 112 px, fp32 / bf16, channels_last on / off)
then the data path (``loader.py``). Each runs in its own process; its JSON line is
printed as it finishes (and written to ``--out`` when given), the loader's last: the
last line printed is the loader benchmark's JSON object.

    python benchmarks/run_all.py [--quick] [--out output/bench]
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(script: str, extra, timeout: float) -> dict:
    cmd = [sys.executable, os.path.join(HERE, script)] + list(extra)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"{script} failed with exit code {out.returncode}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    p.add_argument("--quick", action="store_true", help="tiny runs (for tests)")
    p.add_argument("--out", default="", help="folder for train_step.json and loader.json")
    args = p.parse_args(argv)
    quick = ["--quick"] if args.quick else []
    results = {}
    results["train_step"] = _run("train_step.py", ["--device", "cpu"] + quick, timeout=150)
    print(json.dumps(results["train_step"]), flush=True)
    results["loader"] = _run("loader.py", quick, timeout=240)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for name, r in results.items():
            with open(os.path.join(args.out, f"{name}.json"), "w") as f:
                json.dump(r, f, indent=2)
    print(json.dumps(results["loader"]), flush=True)
    return results


if __name__ == "__main__":
    main()
