"""calibration_metrics against a plain-Python reference; edge cases; temperature scaling."""
import math
import time

import numpy as np
import pytest

from als_d2.evaluation.calibration import bin_statistics, calibration_metrics, metrics_from_stats, sample_stats_from_logits
from als_d2.evaluation.temperature import (
    fit_temperature,
    held_out_split,
    nll_at_temperature,
    temperature_scaling_report,
)


# ------------------------------------------------------------------ reference (loops)
def reference_metrics(probs, labels, objectness=None):
    """The metrics as written in section 4.2 / the issue, one sample at a time."""
    probs = [[float(v) for v in row] for row in probs]
    labels = [int(v) for v in labels]
    n, nan = len(labels), float("nan")

    def mean(xs):
        return sum(xs) / len(xs) if xs else nan

    conf, correct, top5, nll, brier = [], [], [], [], []
    for row, y in zip(probs, labels):
        p = max(row)
        pred = row.index(p)  # first maximum
        conf.append(p)
        correct.append(pred == y)
        ranked = sorted(range(len(row)), key=lambda k: -row[k])
        top5.append(y in ranked[: min(5, len(row))])
        nll.append(-math.log(row[y]) if row[y] > 0 else math.inf)
        brier.append(sum((row[k] - (1.0 if k == y else 0.0)) ** 2 for k in range(len(row))))
    out = {
        "acc": mean([float(c) for c in correct]),
        "top5": mean([float(c) for c in top5]),
        "avg_conf": mean(conf),
        "over_conf": mean([p for p, c in zip(conf, correct) if not c]),
        "under_conf": mean([1 - p for p, c in zip(conf, correct) if c]),
        "nll": mean(nll),
        "brier": mean(brier),
        "num_samples": n,
    }
    for bins in (15, 100):
        members = [[] for _ in range(bins)]
        for i, p in enumerate(conf):
            members[min(int(math.floor(p * bins)), bins - 1)].append(i)
        ece, gaps = 0.0, []
        for m in members:
            if m:
                gap = abs(mean([float(correct[i]) for i in m]) - mean([conf[i] for i in m]))
                ece += len(m) / n * gap
                gaps.append(gap)
        out[f"ece_{bins}"] = ece if n else nan
        out[f"mce_{bins}"] = max(gaps) if gaps else nan
    # equal mass: sorted by confidence (wrong before right on ties), np.array_split sizes
    order = sorted(range(n), key=lambda i: (conf[i], correct[i]))
    ece, start = 0.0, 0
    for b in range(15):
        size = n // 15 + (1 if b < n % 15 else 0)
        m = order[start : start + size]
        start += size
        if m:
            ece += len(m) / n * abs(mean([float(correct[i]) for i in m]) - mean([conf[i] for i in m]))
    out["adaptive_ece_15"] = ece if n else nan
    if objectness is not None:
        known = [i for i in range(n) if not math.isnan(objectness[i])]
        out["mean_objectness"] = mean([float(objectness[i]) for i in known])
        out["objectness_deviation"] = mean([abs(conf[i] - float(objectness[i])) for i in known])
        out["objectness_samples"] = len(known)
    return out


def assert_metrics_equal(got, expected, tol=1e-9):
    assert set(got) == set(expected), set(got) ^ set(expected)
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got[key]), (key, got[key])
        else:
            assert got[key] == pytest.approx(value, rel=0, abs=tol), key


def random_case(n, k, seed, dtype=np.float64, concentration=0.3):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, concentration), size=n).astype(dtype)
    # labels: mostly the argmax so that both right and wrong predictions occur
    labels = np.where(rng.random(n) < 0.6, probs.argmax(axis=1), rng.integers(0, k, n))
    objectness = rng.random(n)
    objectness[rng.random(n) < 0.3] = np.nan
    return probs, labels, objectness


@pytest.mark.parametrize(
    "n,k,seed,dtype", [(500, 10, 0, np.float64), (1000, 50, 1, np.float32), (37, 3, 2, np.float64), (9000, 7, 3, np.float64)]
)
def test_matches_reference(n, k, seed, dtype):
    probs, labels, objectness = random_case(n, k, seed, dtype)
    assert_metrics_equal(calibration_metrics(probs, labels, objectness), reference_metrics(probs, labels, objectness))
    assert_metrics_equal(calibration_metrics(probs, labels), reference_metrics(probs, labels))


def test_bin_edges():
    # p = 1 falls in the last bin; p = b / B starts bin b; values written exactly in binary
    conf = np.array([0.0, 0.25, 0.5, 0.999, 1.0])
    stats = bin_statistics(conf, np.ones(5, dtype=bool), 4)
    np.testing.assert_array_equal(stats["count"], [1, 1, 1, 2])
    np.testing.assert_allclose(stats["confidence"], [0.0, 0.25, 0.5, 0.9995])
    empty = bin_statistics(np.array([0.95]), np.array([False]), 10)
    assert empty["count"].sum() == 1 and np.isnan(empty["accuracy"][:9]).all()


def test_known_values():
    # two bins used: {0.9, 0.9 (right, wrong)} and {0.6 (right)}
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    labels = np.array([0, 1, 1])
    m = calibration_metrics(probs, labels)
    assert m["acc"] == pytest.approx(2 / 3)
    assert m["ece_15"] == pytest.approx(2 / 3 * abs(0.5 - 0.9) + 1 / 3 * abs(1 - 0.6))
    assert m["mce_15"] == pytest.approx(0.4)
    assert m["over_conf"] == pytest.approx(0.9)
    assert m["under_conf"] == pytest.approx((0.1 + 0.4) / 2)
    assert m["brier"] == pytest.approx((0.02 + 1.62 + 0.32) / 3)
    assert m["nll"] == pytest.approx(-(math.log(0.9) + math.log(0.1) + math.log(0.6)) / 3)
    assert m["top5"] == 1.0  # K = 2 < 5: every label is in the top K


def test_edge_cases():
    # N = 0: every metric NaN, counts 0
    m = calibration_metrics(np.zeros((0, 10)), np.zeros(0, dtype=int), np.zeros(0))
    assert m["num_samples"] == 0 and m["objectness_samples"] == 0
    for key, value in m.items():
        if key not in ("num_samples", "objectness_samples"):
            assert math.isnan(value), key
    # all right: no over-confidence defined; all wrong: no under-confidence
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    right = calibration_metrics(probs, [0, 1])
    assert math.isnan(right["over_conf"]) and right["under_conf"] == pytest.approx(0.25)
    wrong = calibration_metrics(probs, [2, 2])
    assert math.isnan(wrong["under_conf"]) and wrong["over_conf"] == pytest.approx(0.75)
    assert wrong["acc"] == 0.0 and wrong["ece_100"] == pytest.approx(0.75) and wrong["mce_100"] == pytest.approx(0.8)
    # N < 15: empty equal-mass bins are skipped (here each sample is its own bin)
    assert right["adaptive_ece_15"] == pytest.approx((0.3 + 0.2) / 2)
    # objectness: absent keys without it, NaN when nothing is known
    assert "mean_objectness" not in right
    unknown = calibration_metrics(probs, [0, 1], np.array([np.nan, np.nan]))
    assert math.isnan(unknown["mean_objectness"]) and math.isnan(unknown["objectness_deviation"])
    assert unknown["objectness_samples"] == 0
    part = calibration_metrics(probs, [0, 1], np.array([np.nan, 0.5]))
    assert part["objectness_deviation"] == pytest.approx(0.3) and part["mean_objectness"] == 0.5
    # a true-class probability of exactly 0 gives an infinite NLL (documented)
    assert calibration_metrics(np.array([[1.0, 0.0]]), [1])["nll"] == math.inf
    with pytest.raises(ValueError):
        calibration_metrics(probs, [0, 3])


def test_logits_path_matches_probabilities():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((300, 12)) * 4
    labels = rng.integers(0, 12, 300)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert_metrics_equal(metrics_from_stats(sample_stats_from_logits(logits, labels)), calibration_metrics(probs, labels), 1e-12)
    # temperature 2 == logits / 2
    assert_metrics_equal(
        metrics_from_stats(sample_stats_from_logits(logits, labels, 2.0)),
        metrics_from_stats(sample_stats_from_logits(logits / 2, labels)),
        1e-12,
    )
    # huge logits: the probability of the true class underflows, the NLL stays finite
    stats = sample_stats_from_logits(np.array([[0.0, 2000.0]]), [0])
    assert stats["nll"][0] == pytest.approx(2000.0)


def test_speed_50k_by_1k():
    rng = np.random.default_rng(0)
    probs = rng.random((50_000, 1000), dtype=np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 1000, 50_000)
    start = time.perf_counter()
    calibration_metrics(probs, labels, rng.random(50_000))
    elapsed = time.perf_counter() - start
    print(f"calibration_metrics 50k x 1k float32: {elapsed:.2f} s")
    assert elapsed < 5.0  # ~0.2-0.3 s on a 2-core CPU; generous for shared CI machines


# ------------------------------------------------------------------ temperature scaling
def _sampled_labels(logits, temperature, rng):
    p = np.exp((logits - logits.max(1, keepdims=True)) / temperature)
    p /= p.sum(1, keepdims=True)
    return (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)


def test_fit_temperature_recovers_the_generating_temperature():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((20_000, 10)) * 4
    labels = _sampled_labels(logits, 2.5, rng)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(2.5, rel=0.05)
    best = nll_at_temperature(logits, labels, t)
    for factor in (0.99, 0.999, 1.001, 1.01):
        assert best <= nll_at_temperature(logits, labels, t * factor)


def test_fit_temperature_bounds():
    logits = np.array([[5.0, 0.0], [0.0, 5.0]])
    assert fit_temperature(logits, [0, 1], t_min=0.05) == 0.05  # separable: T -> 0
    assert fit_temperature(logits, [1, 0], t_max=50.0) == 50.0  # all wrong: T -> infinity


def test_held_out_split_ignores_the_gathering_order():
    keys = [f"img{i:03d}" for i in range(101)]
    fit, held = held_out_split(101, keys)
    assert len(fit) == 51 and len(held) == 50 and not set(fit) & set(held)
    perm = np.random.default_rng(1).permutation(101)
    fit2, held2 = held_out_split(101, [keys[i] for i in perm])
    assert {keys[perm[i]] for i in fit2} == {keys[i] for i in fit}
    np.testing.assert_array_equal(held_out_split(5)[0], [0, 2, 4])


def test_temperature_scaling_report_improves_an_overconfident_model():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((4000, 10)) * 4
    labels = _sampled_labels(logits, 3.0, rng)  # the model's logits are 3x too sharp
    report = temperature_scaling_report(logits, labels)
    assert report["fit_samples"] == 2000 and report["eval_samples"] == 2000
    assert report["temperature"] == pytest.approx(3.0, rel=0.15)
    before, after = report["before"], report["after"]
    _, held = held_out_split(4000)
    assert_metrics_equal(before, metrics_from_stats(sample_stats_from_logits(logits[held], labels[held])), 1e-12)
    assert after["nll"] < before["nll"] and after["ece_15"] < before["ece_15"] / 2
    assert after["acc"] == before["acc"] and after["top5"] == before["top5"]  # predictions do not change
    assert math.isnan(temperature_scaling_report(logits[:1], labels[:1])["temperature"])
