"""ClassificationEvaluator: same numbers as calibration_metrics, batching- and
process-count-independent, files and TensorBoard images; on a small trained model
through ClassificationTrainer.test."""

import json
import logging
import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.utils.events import EventStorage
from PIL import Image

from als_d2.data.build import SKIPPED_KEY
from als_d2.evaluation import ClassificationEvaluator, calibration_metrics
from als_d2.evaluation.evaluator import TS_KEYS
from als_d2.evaluation.temperature import temperature_scaling_report

N, K = 120, 6


def synthetic(n=N, k=K, seed=0):
    """Logits (3x too sharp), labels, objectness (every 4th unknown) and input dicts."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g) * 4
    probs = (logits / 3).softmax(dim=1)
    labels = torch.multinomial(probs, 1, generator=g)[:, 0]
    objectness = torch.rand(n, generator=g)
    inputs = [
        {
            "label": int(labels[i]),
            "has_boxes": i % 4 != 0,
            "objectness": float(objectness[i]),
            "image_id": f"im{i:04d}",
        }
        for i in range(n)
    ]
    outputs = [{"logits": logits[i], "probs": logits[i].softmax(0)} for i in range(n)]
    return inputs, outputs


def run(evaluator, inputs, outputs, indices, batch=7):
    evaluator.reset()
    indices = list(indices)
    for s in range(0, len(indices), batch):
        idx = indices[s : s + batch]
        evaluator.process([inputs[i] for i in idx], [outputs[i] for i in idx])
    return evaluator.evaluate()


def same(a, b, tol=0.0):
    """Dicts of numbers equal (NaN == NaN), up to ``tol``."""
    assert a.keys() == b.keys(), set(a) ^ set(b)
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, float) and math.isnan(x):
            assert isinstance(y, float) and math.isnan(y), key
        else:
            assert abs(x - y) <= tol, (key, x, y)


def test_matches_calibration_metrics():
    inputs, outputs = synthetic()
    res = run(
        ClassificationEvaluator("syn", distributed=False, plots=False), inputs, outputs, range(N)
    )["classification"]
    logits = torch.stack([o["logits"] for o in outputs]).double()
    labels = np.array([x["label"] for x in inputs])
    obj = np.array([x["objectness"] if x["has_boxes"] else np.nan for x in inputs])
    expected = calibration_metrics(logits.softmax(1).numpy(), labels, obj)
    same({k: res[k] for k in expected}, expected, 1e-12)
    # the paper's (Wenger et al. / pycalib) estimator with K = the logits' width
    assert {
        "paper_ece_15",
        "paper_ece_100",
        "paper_mce_15",
        "paper_mce_100",
        "ts_paper_ece_15",
    } <= set(res)
    assert math.isfinite(res["paper_ece_15"]) and res["paper_ece_15"] != res["ece_15"]
    assert res["top1"] == pytest.approx(100 * res["acc"])
    ts = temperature_scaling_report(
        logits.float().numpy(), labels, obj, [x["image_id"] for x in inputs]
    )
    assert res["ts_temperature"] == ts["temperature"] and 1.5 < ts["temperature"] < 6
    for key in TS_KEYS:
        assert res[f"ts_base_{key}"] == ts["before"][key] and res[f"ts_{key}"] == ts["after"][key]
    assert res["ts_nll"] < res["ts_base_nll"]
    assert all(isinstance(v, (int, float)) for v in res.values())  # flat, print_csv_format-able

    # probability-only outputs (no logits): no temperature scaling, same metrics from probs
    probs_only = [{"probs": o["probs"]} for o in outputs]
    res2 = run(
        ClassificationEvaluator("syn", distributed=False, plots=False), inputs, probs_only, range(N)
    )
    res2 = res2["classification"]
    assert not any(k.startswith("ts_") for k in res2)
    same(
        {k: res2[k] for k in expected},
        calibration_metrics(torch.stack([o["probs"] for o in outputs]).numpy(), labels, obj),
    )


def test_batching_and_order_do_not_change_the_result():
    inputs, outputs = synthetic()
    ev = ClassificationEvaluator("syn", distributed=False, plots=False)
    base = run(ev, inputs, outputs, range(N), batch=1)["classification"]
    same(run(ev, inputs, outputs, range(N), batch=32)["classification"], base)
    # another order: the same held-out split (by image_id), sums equal up to rounding
    perm = np.random.default_rng(0).permutation(N)
    same(run(ev, inputs, outputs, perm, batch=5)["classification"], base, 1e-12)


def test_no_objectness_no_objectness_keys():
    inputs, outputs = synthetic(20)
    for x in inputs:
        x["has_boxes"] = False
    res = run(
        ClassificationEvaluator("syn", distributed=False, plots=False), inputs, outputs, range(20)
    )
    assert "mean_objectness" not in res["classification"]
    assert ClassificationEvaluator("syn", distributed=False).evaluate() == {}


def test_files_and_event_storage(tmp_path):
    inputs, outputs = synthetic()
    out = str(tmp_path / "inference")
    ev = ClassificationEvaluator("syn", distributed=False, output_dir=out)
    with EventStorage() as storage:
        res = run(ev, inputs, outputs, range(N))["classification"]
        images = {name: img for name, img, _ in storage._vis_data}
    names = ["reliability_diagram", "reliability_diagram_ts", "confidence_vs_objectness"]
    assert sorted(images) == sorted(f"syn/{n}" for n in names)
    for img in images.values():
        assert (
            img.ndim == 3
            and img.shape[0] == 3
            and img.dtype == np.float32
            and 0 <= img.min()
            and img.max() <= 1
        )
    for name in names:
        with Image.open(os.path.join(out, f"{name}.png")) as im:
            assert im.mode == "RGB" and min(im.size) > 200
    with open(os.path.join(out, "calibration.json")) as f:
        report = json.load(f, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert report["metrics"]["ece_15"] == pytest.approx(res["ece_15"])
    assert sum(report["bins"]["15"]["count"]) == N and len(report["bins"]["100"]["count"]) == 100
    paper = report["paper_bins"]["15"]
    assert (
        sum(paper["count"]) == N
        and paper["edges"][0] == pytest.approx(1 / K)
        and len(paper["reference"]) == 15
    )
    ts = report["temperature_scaling"]
    assert (
        ts["temperature"] == pytest.approx(res["ts_temperature"])
        and sum(ts["bins_after"]["count"]) == N // 2
    )
    # no EventStorage active (eval-only): still works
    run(
        ClassificationEvaluator("syn", distributed=False, output_dir=out), inputs, outputs, range(N)
    )


# ------------------------------------------------------------------ 2 processes (gloo)
def _worker(rank, world, init_file, out_dir):
    import als_d2  # noqa: F401

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    from detectron2.data.samplers import InferenceSampler

    inputs, outputs = synthetic()
    shard = list(InferenceSampler(N))
    inputs[shard[0]][SKIPPED_KEY] = rank + 1  # the test loader's count: 1 on rank 0, 2 on 1
    ev = ClassificationEvaluator(
        "syn", distributed=True, output_dir=os.path.join(out_dir, "files"), plots=False
    )
    res = run(ev, inputs, outputs, shard)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(res, f)  # NaN written as NaN (python json), read back as float nan
    dist.barrier()  # no rank tears gloo down while its peer still talks to it (SIGABRT)
    dist.destroy_process_group()


def test_two_processes_match_one(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    with open(tmp_path / "rank0.json") as f:
        rank0 = json.load(f)
    with open(tmp_path / "rank1.json") as f:
        assert json.load(f) == {}
    inputs, outputs = synthetic()
    single = run(
        ClassificationEvaluator("syn", distributed=False, plots=False), inputs, outputs, range(N)
    )
    assert rank0["classification"].pop("num_skipped") == 1 + 2  # summed over the ranks
    assert single["classification"].pop("num_skipped") == 0
    same(rank0["classification"], json.loads(json.dumps(single))["classification"])
    assert os.path.exists(tmp_path / "files" / "calibration.json")


class _Records(logging.Handler):
    """Collects the records of one logger (also when ``als_d2`` does not propagate)."""

    def __init__(self, name):
        super().__init__(logging.WARNING)
        self.records, self.logger = [], logging.getLogger(name)

    def emit(self, record):
        self.records.append(record.getMessage())

    def __enter__(self):
        self.logger.addHandler(self)
        return self.records

    def __exit__(self, *exc):
        self.logger.removeHandler(self)


def test_skipped_samples_reported_once_beside_num_samples():
    """The SKIPPED_KEY counts of the inputs (the test loader's) are summed into
    ``num_skipped`` and one warning naming the set; the metrics are those of the samples
    that arrived, as without the counts."""
    inputs, outputs = synthetic()
    evaluator = ClassificationEvaluator("syn_val", distributed=False, plots=False)
    plain = run(evaluator, inputs, outputs, range(N))["classification"]
    counted = [dict(x) for x in inputs]
    for i, n in ((0, 2), (50, 1), (N - 1, 3)):
        counted[i][SKIPPED_KEY] = n
    with _Records("als_d2.evaluation.evaluator") as warned:
        res = run(evaluator, counted, outputs, range(N), batch=16)["classification"]
    assert plain["num_skipped"] == 0 and res["num_skipped"] == 6 and res["num_samples"] == N
    assert len(warned) == 1 and "syn_val" in warned[0] and "skipped 6 unreadable" in warned[0]
    same(
        {k: v for k, v in res.items() if k != "num_skipped"},
        {k: v for k, v in plain.items() if k != "num_skipped"},
    )


def test_temperature_at_its_bound_warns_naming_the_set():
    """A set whose predictions are worse than uniform (every label is the least likely
    class): the NLL falls all the way to T -> infinity, T stops at its bound 100, and the
    evaluator warns, naming the set; a sound set gives no warning."""
    inputs, outputs = synthetic()
    worst = [dict(x, label=int(o["logits"].argmin())) for x, o in zip(inputs, outputs)]
    # independently: the mean NLL of softmax(z / T) still falls between T = 50 and T = 100
    z = torch.stack([o["logits"] for o in outputs]).double()
    y = torch.tensor([x["label"] for x in worst])

    def nll(t):
        return float(torch.nn.functional.cross_entropy(z / t, y))

    assert nll(100.0) < nll(50.0) < nll(10.0)
    evaluator = ClassificationEvaluator("worst_case_val", distributed=False, plots=False)
    with _Records("als_d2.evaluation.evaluator") as warned:
        res = run(evaluator, worst, outputs, range(N))["classification"]
    assert res["ts_temperature"] == 100.0
    assert len(warned) == 1 and "worst_case_val" in warned[0] and "bound T = 100" in warned[0]
    with _Records("als_d2.evaluation.evaluator") as warned:
        res = run(evaluator, inputs, outputs, range(N))["classification"]
    assert 1.0 < res["ts_temperature"] < 100.0 and not warned


def test_fresh_run_into_an_old_output_dir_warns_about_metrics_json(tmp_path):
    """als_default_setup (train_cls.py / train_det.py start-up): a run without --resume
    into an OUTPUT_DIR that holds metrics.json warns, naming the file, in log.txt (the
    rows would be appended after the old run's); with --resume, or a new folder, no warning."""
    import argparse

    from detectron2.config import get_cfg

    from als_d2.engine.launch import als_default_setup

    def setup(folder, resume):
        cfg = get_cfg()
        cfg.OUTPUT_DIR = str(folder)
        args = argparse.Namespace(config_file="", resume=resume, eval_only=False, opts=[])
        als_default_setup(cfg, args)
        return (folder / "log.txt").read_text()

    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.json").write_text(json.dumps({"iteration": 9, "total_loss": 1.0}) + "\n")
    log = setup(old, resume=False)
    assert f"{old / 'metrics.json'} exists from an earlier run" in log and "WARNING" in log
    for folder, resume in ((tmp_path / "resumed", True), (tmp_path / "new", False)):
        folder.mkdir()
        if resume:
            (folder / "metrics.json").write_text("{}\n")
        assert "exists from an earlier run" not in setup(folder, resume)
