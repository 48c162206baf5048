#!/usr/bin/env python
"""Collect the COCO results of several tools/train_det.py runs into the paper's table layout.

    tools/compare_transfer.py hard=output/coco/hard_r50_C4 ls=output/coco/ls_r50_C4 \
        als=output/coco/als_r50_C4 cutmix=output/coco/cutmix_r50_C4 --table 4 --baseline hard

Each RUN is NAME=PATH or PATH (named after its folder); PATH is a run's OUTPUT_DIR or
a file in it: transfer_metrics.json (written by train_det.py at each evaluation), or
detectron2's metrics.json (its last row with bbox/AP). Prints a markdown table:

- table 4 (main text): AP, AP50, AP75, AR1, AR10, AR100
- table 7 (appendix): AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl

after a Recipe column: the recipe each run followed, from its transfer_metrics.json
("jwyang": jwyang/faster-rcnn.pytorch as the paper used it, the *_paper configs;
"detectron2": detectron2's 1x), with its BatchNorm when not FrozenBN ("jwyang (SyncBN)");
"unknown" for runs that did not record one (detectron2's metrics.json, older runs).
AP/AR on detectron2's 0-100 scale (COCO AP x 100, as papers write "AP 37.4") with one
decimal; the best value of each column in bold; ``--baseline NAME`` adds the AP
difference to that row. A RUN without results is a one-line error naming it (exit 2).

Rows are compared only when their transfer_metrics.json records agree: a run evaluated on
other test sets (``datasets``), trained with another schedule (``max_iter``,
``ims_per_batch``), stopped before its ``max_iter``, or never trained (``iteration:
null``) is marked with a dagger, left out of the bold best values and of the AP
differences, and a note under the table says why. The reference is the ``--baseline``
run (else the first run that was trained to its end); a baseline that was not is an error.
"""

import argparse
import json
import math
import os
import sys
from typing import Dict, List, NamedTuple, Optional, Tuple

from als_d2.evaluation import tables  # the shared markdown printer

TABLES = {
    "4": ["AP", "AP50", "AP75", "AR1", "AR10", "AR100"],
    "7": ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"],
}


UNKNOWN_RECIPE = "unknown"


class RunError(Exception):
    """A run that has no results to show (the message names it)."""


class Run(NamedTuple):
    metrics: Dict[str, Optional[float]]  # bbox metrics, detectron2's 0-100 scale
    recipe: str  # e.g. "jwyang", "detectron2 (SyncBN)", "unknown"
    # what transfer_metrics.json records of the evaluation: datasets, max_iter,
    # ims_per_batch, iteration (only the keys the file has; {} for detectron2's metrics.json)
    record: Dict = {}


RECORD_KEYS = ("datasets", "max_iter", "ims_per_batch", "iteration")


def _record(record: Dict) -> Dict:
    return {k: record[k] for k in RECORD_KEYS if k in record}


def not_trained(run: Run) -> Optional[str]:
    """Why the run's results do not come from a finished training (None when they do, or
    when its file does not say)."""
    rec = run.record
    if "iteration" in rec and rec["iteration"] is None:
        return "never trained (iteration: null: evaluated weights that record no training)"
    it, max_iter = rec.get("iteration"), rec.get("max_iter")
    if isinstance(it, int) and isinstance(max_iter, int) and it < max_iter:
        return f"stopped at iteration {it} of {max_iter}"
    return None


def incomparable(run: Run, reference: Run, ref_name: str) -> List[str]:
    """Reasons why ``run``'s AP cannot be set against ``reference``'s (empty: comparable, as
    far as both files record)."""
    reasons = []
    why = not_trained(run)
    if why:
        reasons.append(why)
    a, b = run.record, reference.record
    if "datasets" in a and "datasets" in b and list(a["datasets"]) != list(b["datasets"]):
        ours, theirs = ", ".join(a["datasets"]), ", ".join(b["datasets"])
        reasons.append(f"test set {ours}, {ref_name}'s {theirs}")
    for key, what in (("max_iter", "iterations"), ("ims_per_batch", "images per batch")):
        if key in a and key in b and a[key] != b[key]:
            reasons.append(f"{a[key]} {what}, {ref_name}'s {b[key]}")
    return reasons


def _bbox_from_results(results: Dict, dataset: Optional[str]) -> Dict:
    """The ``bbox`` metrics of DefaultTrainer.test's results: ``{"bbox": ...}`` for one
    test set, ``{dataset: {"bbox": ...}}`` for several."""
    if "bbox" in results:
        return results["bbox"]
    if dataset is not None:
        return results[dataset]["bbox"]
    first = next(iter(results.values()))
    return first["bbox"]


def _recipe(record: Dict) -> str:
    recipe = record.get("recipe") or UNKNOWN_RECIPE
    norm = record.get("norm")
    return recipe if not norm or norm == "FrozenBN" else f"{recipe} ({norm})"


def read_run(path: str, dataset: Optional[str] = None) -> Run:
    """bbox metrics and recipe of one run directory or metrics file; :class:`RunError` when
    it has none (no such path, no metrics file, no evaluation in it, not a metrics file)."""
    if not os.path.exists(path):
        raise RunError(f"{path}: no such run folder or file")
    if os.path.isdir(path):
        for name in ("transfer_metrics.json", "metrics.json"):
            if os.path.isfile(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
        else:
            raise RunError(
                f"{path}: no results (neither transfer_metrics.json nor metrics.json; "
                "is the run finished and evaluated?)"
            )
    with open(path) as f:
        text = f.read()
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        record = None  # detectron2's metrics.json: one JSON object per line
    if isinstance(record, dict) and "results" in record:
        try:
            return Run(
                dict(_bbox_from_results(record["results"], dataset)),
                _recipe(record),
                _record(record),
            )
        except (KeyError, StopIteration, TypeError, AttributeError):
            which = f" for {dataset}" if dataset else ""
            raise RunError(f"{path}: no bbox results{which}") from None
    try:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError:
        raise RunError(
            f"{path}: not a transfer_metrics.json or detectron2 metrics.json file"
        ) from None
    prefix = f"{dataset}/bbox/" if dataset else "bbox/"
    rows = [r for r in rows if isinstance(r, dict) and prefix + "AP" in r]
    if not rows:
        raise RunError(f"{path}: no evaluation results ({prefix}AP)")
    return Run(
        {k[len(prefix) :]: v for k, v in rows[-1].items() if k.startswith(prefix)}, UNKNOWN_RECIPE
    )


def load_run(path: str, dataset: Optional[str] = None) -> Dict[str, Optional[float]]:
    """bbox metrics (detectron2's 0-100 scale) of one run directory or metrics file."""
    return read_run(path, dataset).metrics


def _value(metrics: Dict, column: str) -> Optional[float]:
    v = metrics.get(column)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return float(v)


def markdown_table(
    runs: List[Tuple[str, Dict]],
    columns: List[str],
    baseline: Optional[str] = None,
    recipes: Optional[List[str]] = None,
    excluded: Optional[Dict[str, List[str]]] = None,
) -> str:
    """Rows = runs, columns = metrics on detectron2's 0-100 scale, one decimal; best per
    column in bold. ``recipes`` (one per run): a Recipe column after Method. ``excluded``:
    {name: reasons} of runs marked with a dagger and left out of the best values and of the
    AP differences."""
    excluded = excluded or {}
    best = {}
    for c in columns:
        values = [_value(m, c) for n, m in runs if n not in excluded]
        values = [v for v in values if v is not None]
        best[c] = max(values) if values else None
    header = ["Method"] + (["Recipe"] if recipes is not None else []) + columns
    base = None
    if baseline is not None:
        names = [n for n, _ in runs]
        if baseline not in names:
            raise ValueError(f"--baseline {baseline!r} is not one of {names}")
        base = _value(dict(runs)[baseline], "AP")
        header.append(f"ΔAP vs {baseline}")
    compared = len([n for n, _ in runs if n not in excluded]) > 1
    rows = []
    for i, (name, metrics) in enumerate(runs):
        cells = [f"{name} †" if name in excluded else name]
        cells += [recipes[i]] if recipes is not None else []
        for c in columns:
            v = _value(metrics, c)
            if v is None:
                cells.append("–")
                continue
            text = f"{v:.1f}"
            bold = compared and name not in excluded and best[c] is not None and v == best[c]
            cells.append(f"**{text}**" if bold else text)
        if baseline is not None:
            ap = _value(metrics, "AP")
            cells.append(
                "–" if ap is None or base is None or name in excluded else f"{ap - base:+.1f}"
            )
        rows.append(cells)
    return tables.markdown_table(header, rows, align=["left"] + ["right"] * (len(header) - 1))


def comparability(runs: List[Tuple[str, Run]], baseline: Optional[str]) -> Tuple[str, Dict]:
    """(the reference run's name, {name: reasons} of the runs not comparable with it).
    :class:`RunError` when the ``--baseline`` run itself was not trained to its end."""
    ref_name = baseline
    if ref_name is None:
        ref_name = next((n for n, r in runs if not_trained(r) is None), runs[0][0])
    named = dict(runs)
    if ref_name not in named:
        return ref_name, {}  # markdown_table names the unknown --baseline
    why = not_trained(named[ref_name])
    if baseline is not None and why:
        raise RunError(f"--baseline {baseline}: {why}; no AP difference to it means anything")
    excluded = {}
    for name, run in runs:
        reasons = [] if name == ref_name else incomparable(run, named[ref_name], ref_name)
        if name == ref_name and why:
            reasons = [why]
        if reasons:
            excluded[name] = reasons
    return ref_name, excluded


def parse_run(spec: str) -> Tuple[str, str]:
    if "=" in spec and not os.path.exists(spec):
        name, path = spec.split("=", 1)
        return name, path
    path = spec.rstrip("/")
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    return os.path.basename(os.path.abspath(folder)), spec


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=os.path.basename(__file__), description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "runs", nargs="+", metavar="[NAME=]PATH", help="run OUTPUT_DIR or its metrics JSON"
    )
    parser.add_argument(
        "--table", choices=sorted(TABLES), default="4", help="paper table layout (default 4)"
    )
    parser.add_argument("--columns", nargs="+", help="metrics to show instead of a paper table's")
    parser.add_argument("--baseline", help="add each run's AP difference to this run (e.g. hard)")
    parser.add_argument("--dataset", help="test set to report when the runs evaluated several")
    parser.add_argument("-o", "--output", help="also write the table to this file")
    return parser


def main(argv=None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)

    runs, recipes = [], []
    for spec in args.runs:
        name, path = parse_run(spec)
        try:
            run = read_run(path, args.dataset)
        except RunError as e:
            print(f"{parser.prog}: error: run {name!r}: {e}", file=sys.stderr)
            return 2
        runs.append((name, run))
        recipes.append(run.recipe)
    try:
        ref_name, excluded = comparability(runs, args.baseline)
        table = markdown_table(
            [(n, r.metrics) for n, r in runs],
            args.columns or TABLES[args.table],
            baseline=args.baseline,
            recipes=recipes,
            excluded=excluded,
        )
    except (ValueError, RunError) as e:  # --baseline naming no run, or an untrained one
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    layout = "Custom columns" if args.columns else f"Table {args.table} layout"
    caption = (
        f"{layout}: Faster R-CNN fine-tuned on COCO from each classifier "
        "(AP/AR on detectron2's 0-100 scale, i.e. COCO AP x 100; "
        "AR at 1/10/100 detections, IoU 0.5:0.95; Recipe: jwyang = jwyang/faster-rcnn.pytorch "
        "as the paper used it, detectron2 = detectron2's 1x)"
    )
    notes = [
        f"† {name}: not comparable with {ref_name} ({'; '.join(reasons)}): left out of the "
        "best values and the AP differences"
        for name, reasons in excluded.items()
    ]
    table = table + ("\n\n" + "\n".join(notes) if notes else "")
    text = caption + "\n\n" + table + "\n"
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
