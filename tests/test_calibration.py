"""calibration_metrics against a plain-Python reference; edge cases; temperature scaling."""

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from als_d2.evaluation.calibration import (
    bin_statistics,
    calibration_metrics,
    metrics_from_stats,
    paper_bin_statistics,
    paper_ece_mce,
    sample_stats_from_logits,
)
from als_d2.evaluation.temperature import (
    fit_temperature,
    held_out_split,
    nll_at_temperature,
    temperature_scaling_report,
)


# ------------------------------------------------------------------ reference (loops)
def reference_paper_ece_mce(conf, correct, bins, k):
    """Wenger et al. (2020) / pycalib ECE and MCE, one sample and one bin at a time: bin b
    holds e_b <= p < e_{b+1} (the last one also p == 1), e = linspace(1/K, 1, B+1);
    samples in no bin are dropped; each bin's accuracy is compared with the fixed value
    linspace(1/K + 1/(2B), 1 - 1/(2B), B)[b]."""
    edges = np.linspace(1 / k, 1, bins + 1).tolist()
    ref = np.linspace(1 / k + 1 / (2 * bins), 1 - 1 / (2 * bins), bins).tolist()
    members = [[] for _ in range(bins)]
    for p, c in zip(conf, correct):
        p = float(p)
        for b in range(bins):
            if edges[b] <= p and (p < edges[b + 1] or (b == bins - 1 and p == edges[bins])):
                members[b].append(1.0 if c else 0.0)
                break
    total = sum(len(m) for m in members)
    if total == 0:
        return float("nan"), float("nan")
    gaps = [(len(m), abs(sum(m) / len(m) - ref[b])) for b, m in enumerate(members) if m]
    return sum(n * g for n, g in gaps) / total, max(g for _, g in gaps)


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
        k = len(probs[0]) if probs else 2
        out[f"paper_ece_{bins}"], out[f"paper_mce_{bins}"] = reference_paper_ece_mce(
            conf, correct, bins, k
        )
    # equal mass: sorted by confidence (wrong before right on ties), np.array_split sizes
    order = sorted(range(n), key=lambda i: (conf[i], correct[i]))
    ece, start = 0.0, 0
    for b in range(15):
        size = n // 15 + (1 if b < n % 15 else 0)
        m = order[start : start + size]
        start += size
        if m:
            ece += (
                len(m) / n * abs(mean([float(correct[i]) for i in m]) - mean([conf[i] for i in m]))
            )
    out["adaptive_ece_15"] = ece if n else nan
    out.update(reference_selective(conf, correct))
    if objectness is not None:
        known = [i for i in range(n) if not math.isnan(objectness[i])]
        out["mean_objectness"] = mean([float(objectness[i]) for i in known])
        out["objectness_deviation"] = mean([abs(conf[i] - float(objectness[i])) for i in known])
        out["objectness_samples"] = len(known)
        out["conf_objectness_spearman"] = (
            float(spearmanr([conf[i] for i in known], [objectness[i] for i in known]).statistic)
            if len(known) > 1
            else nan
        )
    return out


def reference_selective(conf, correct):
    """Selective prediction by confidence, one threshold at a time (ties accepted together)."""
    n, nan = len(conf), float("nan")
    keys = ["aurc", "eaurc", "augrc", "risk_at_cov_80", "risk_at_cov_90", "risk_at_cov_95"]
    if not n:
        return dict.fromkeys(keys + ["cov_at_risk_05", "cov_at_risk_10"], nan)
    points = []  # (coverage, risk, generalized risk) from the highest threshold down
    for t in sorted(set(conf), reverse=True):
        accepted = [i for i in range(n) if conf[i] >= t]
        errors = sum(1 for i in accepted if not correct[i])
        points.append((len(accepted) / n, errors / len(accepted), errors / n))
    out = {"aurc": 0.0, "augrc": 0.0}
    previous = 0.0
    for cov, risk, grisk in points:
        out["aurc"] += (cov - previous) * risk
        out["augrc"] += (cov - previous) * grisk
        previous = cov
    e = points[-1][1]
    out["eaurc"] = out["aurc"] - (e + (1 - e) * math.log(1 - e) if e < 1 else 1.0)
    for key, c in (("risk_at_cov_80", 0.8), ("risk_at_cov_90", 0.9), ("risk_at_cov_95", 0.95)):
        out[key] = next(risk for cov, risk, _ in points if cov >= c - 1e-12)
    for key, r in (("cov_at_risk_05", 0.05), ("cov_at_risk_10", 0.10)):
        out[key] = max([cov for cov, risk, _ in points if risk <= r + 1e-12], default=0.0)
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
    "n,k,seed,dtype",
    [
        (500, 10, 0, np.float64),
        (1000, 50, 1, np.float32),
        (37, 3, 2, np.float64),
        (9000, 7, 3, np.float64),
    ],
)
def test_matches_reference(n, k, seed, dtype):
    probs, labels, objectness = random_case(n, k, seed, dtype)
    assert_metrics_equal(
        calibration_metrics(probs, labels, objectness), reference_metrics(probs, labels, objectness)
    )
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
    assert (
        wrong["acc"] == 0.0
        and wrong["ece_100"] == pytest.approx(0.75)
        and wrong["mce_100"] == pytest.approx(0.8)
    )
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


# ------------------------------------------------------------------ Wenger et al. / pycalib ECE
def test_paper_bins_by_hand():
    # K = 4, B = 3: edges 0.25, 0.5, 0.75, 1; reference linspace(0.25 + 1/6, 1 - 1/6, 3)
    conf = np.array([0.2, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0, 1.0, 1.0 + 1e-9])
    correct = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], dtype=bool)
    stats = paper_bin_statistics(conf, correct, 3, 4)
    np.testing.assert_allclose(stats["edges"], [0.25, 0.5, 0.75, 1.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(stats["reference"], [5 / 12, 5 / 8, 5 / 6], rtol=0, atol=1e-15)
    # 0.2 < 1/K and 1 + 1e-9 > 1: in no bin; 1/K = 0.25 in the first bin; the interior
    # edges 0.5 and 0.75 in the upper bin; 1.0 in the last bin
    np.testing.assert_array_equal(stats["count"], [2, 2, 4])
    np.testing.assert_allclose(stats["accuracy"], [0.5, 0.5, 0.75], rtol=0, atol=1e-15)
    ece, mce = paper_ece_mce(conf, correct, 3, 4)
    # gaps 1/12, 1/8, 1/12 weighted 2, 2, 4 over the 8 samples in range (not 10)
    assert ece == pytest.approx((2 / 12 + 2 / 8 + 4 / 12) / 8, rel=0, abs=1e-15)
    assert ece == pytest.approx(0.09375, rel=0, abs=1e-15)
    assert mce == pytest.approx(0.125, rel=0, abs=1e-15)
    # an empty bin has NaN accuracy and plays no part
    empty = paper_bin_statistics(np.array([0.3, 0.3]), np.array([True, False]), 3, 4)
    np.testing.assert_array_equal(empty["count"], [2, 0, 0])
    assert np.isnan(empty["accuracy"][1:]).all()
    assert paper_ece_mce(np.array([0.3, 0.3]), np.array([True, False]), 3, 4) == pytest.approx(
        (1 / 12, 1 / 12)
    )


def test_paper_ece_differs_from_guo():
    # K = 2, B = 15: paper bins of width 1/30 on [0.5, 1]; 0.71 in bin 6, 0.98 and 0.99 in bin 14
    probs = np.array([[0.98, 0.02], [0.99, 0.01], [0.71, 0.29]])
    m = calibration_metrics(probs, [0, 1, 0])
    ref6, ref14 = 1 / 2 + 1 / 30 + 6 * (13 / 30) / 14, 1 - 1 / 30  # 0.7190476..., 0.9666...
    assert m["paper_ece_15"] == pytest.approx(
        (1 * (1 - ref6) + 2 * (ref14 - 0.5)) / 3, rel=0, abs=1e-12
    )
    assert m["paper_ece_15"] == pytest.approx(0.4047619047619, rel=0, abs=1e-12)
    assert m["paper_mce_15"] == pytest.approx(14 / 30, rel=0, abs=1e-12)
    # Guo et al.: bins of width 1/15 on [0, 1], each accuracy against its mean confidence
    assert m["ece_15"] == pytest.approx((0.29 + 2 * 0.485) / 3, rel=0, abs=1e-12)
    assert m["mce_15"] == pytest.approx(0.485, rel=0, abs=1e-12)


def test_paper_ece_edge_cases():
    nan = paper_ece_mce(np.array([0.1, 0.2, 0.24]), np.array([True, False, True]), 15, 4)
    assert math.isnan(nan[0]) and math.isnan(nan[1])  # nothing in [1/K, 1]
    stats = {
        "confidence": np.array([0.1, 0.2]),
        "correct": np.array([True, False]),
        "top5": np.array([True, True]),
        "nll": np.array([1.0, 1.0]),
        "brier": np.array([1.0, 1.0]),
    }
    with_k = metrics_from_stats(stats, num_classes=4)
    assert all(math.isnan(with_k[f"paper_{m}_{b}"]) for m in ("ece", "mce") for b in (15, 100))
    assert not any(
        key.startswith("paper_") for key in metrics_from_stats(stats)
    )  # K unknown: no keys
    assert math.isnan(metrics_from_stats(stats, num_classes=1)["paper_ece_15"])
    with pytest.raises(ValueError):
        paper_bin_statistics(np.array([1.0]), np.array([True]), 15, 1)
    # K is the model's class count, not the number of classes seen (pycalib's default)
    probs = np.array([[0.6, 0.3, 0.1, 0.0], [0.2, 0.7, 0.1, 0.0]])
    assert calibration_metrics(probs, [0, 0])["paper_ece_15"] == pytest.approx(
        paper_ece_mce([0.6, 0.7], [True, False], 15, 4)[0]
    )


@pytest.mark.parametrize("k", [2, 3, 10, 1000])
@pytest.mark.parametrize("bins", [15, 100])
def test_paper_ece_matches_loop_and_histogram(k, bins):
    rng = np.random.default_rng(k * 1000 + bins)
    n = 3000
    conf = rng.dirichlet(np.full(k, 0.2), size=n).max(axis=1)
    edges = np.linspace(1 / k, 1, bins + 1)
    # values exactly on edges, at 1, and (as with unnormalised scores) below 1/K
    conf[:200] = rng.choice(edges, 200)
    conf[200:230] = 1.0
    conf[230:260] = rng.random(30) / k
    correct = rng.random(n) < conf
    ece, mce = paper_ece_mce(conf, correct, bins, k)
    loop = reference_paper_ece_mce(conf, correct, bins, k)
    assert ece == pytest.approx(loop[0], rel=0, abs=1e-12) and mce == pytest.approx(
        loop[1], rel=0, abs=1e-12
    )
    # pycalib's way: np.histogram over the edges gives the weights and the accuracies
    weight = np.histogram(conf, edges)[0]
    hits = np.histogram(conf, edges, weights=correct.astype(float))[0]
    used = weight > 0
    reference = np.linspace(1 / k + 1 / (2 * bins), 1 - 1 / (2 * bins), bins)
    gap = np.abs(hits[used] / weight[used] - reference[used])
    assert ece == pytest.approx(np.average(gap, weights=weight[used]), rel=0, abs=1e-12)
    assert mce == pytest.approx(gap.max(), rel=0, abs=1e-12)
    stats = paper_bin_statistics(conf, correct, bins, k)
    np.testing.assert_array_equal(stats["count"], weight)
    assert stats["count"].sum() == n - 30


def test_logits_path_matches_probabilities():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((300, 12)) * 4
    labels = rng.integers(0, 12, 300)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert_metrics_equal(
        metrics_from_stats(sample_stats_from_logits(logits, labels), num_classes=12),
        calibration_metrics(probs, labels),
        1e-12,
    )
    # temperature 2 == logits / 2
    assert_metrics_equal(
        metrics_from_stats(sample_stats_from_logits(logits, labels, 2.0), num_classes=12),
        metrics_from_stats(sample_stats_from_logits(logits / 2, labels), num_classes=12),
        1e-12,
    )
    # huge logits: the probability of the true class underflows, the NLL stays finite
    stats = sample_stats_from_logits(np.array([[0.0, 2000.0]]), [0])
    assert stats["nll"][0] == pytest.approx(2000.0)


def test_50k_by_1k_in_chunks():
    """ImageNet-val scale (50k x 1k float32, 200 MB): handled in chunks, never a float64
    copy of the whole array (400 MB); speed is measured by ``make bench``, not here."""
    import tracemalloc

    rng = np.random.default_rng(0)
    probs = rng.random((50_000, 1000), dtype=np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 1000, 50_000)
    tracemalloc.start()
    try:
        metrics = calibration_metrics(probs, labels, rng.random(50_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < probs.nbytes / 2, (
        f"peak {peak / 2**20:.0f} MiB for a {probs.nbytes / 2**20:.0f} MiB input"
    )
    assert metrics["num_samples"] == 50_000
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["acc"] == pytest.approx(np.mean(probs.argmax(1) == labels))


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
    assert_metrics_equal(
        before,
        metrics_from_stats(sample_stats_from_logits(logits[held], labels[held]), None, 10),
        1e-12,
    )
    assert after["nll"] < before["nll"] and after["ece_15"] < before["ece_15"] / 2
    assert (
        after["acc"] == before["acc"] and after["top5"] == before["top5"]
    )  # predictions do not change
    assert math.isnan(temperature_scaling_report(logits[:1], labels[:1])["temperature"])


def _nll_brute(logits, labels, temperature):
    """Mean NLL of softmax(logits / T), written out (log-sum-exp)."""
    z = np.asarray(logits, np.float64) / temperature
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(labels)), labels]))


def _grid_temperature(logits, labels):
    """The T with the lowest NLL on a geometric grid over [0.1, 20] (steps of 1%), then on a
    grid of steps of 0.01% around it."""
    best = 1.0
    for grid in (np.geomspace(0.1, 20.0, 533), None):
        grid = np.geomspace(best / 1.01, best * 1.01, 201) if grid is None else grid
        best = float(grid[int(np.argmin([_nll_brute(logits, labels, t) for t in grid]))])
    return best


def test_temperature_is_fitted_on_the_other_half_than_the_one_evaluated():
    """The two halves of held_out_split need very different temperatures (0.5: logits too
    soft; 4: too sharp): the reported T is the fit half's (by brute force over a grid), and
    the reported metrics are the held half's at that T. Samples come in shuffled order with
    keys, so the halves are those of the keys' order."""
    rng = np.random.default_rng(5)
    n, k = 4000, 10
    by_rank = rng.standard_normal((n, k)) * 3
    labels_by_rank = np.where(
        np.arange(n) % 2 == 0,  # even ranks of the keys' order: the fit half
        _sampled_labels(by_rank, 0.5, rng),
        _sampled_labels(by_rank, 4.0, rng),
    )
    order = rng.permutation(n)  # the gathering order
    logits, labels = by_rank[order], labels_by_rank[order]
    keys = [f"val/{r:05d}.JPEG" for r in order]
    fit_half, held_half = np.arange(0, n, 2), np.arange(1, n, 2)  # ranks

    report = temperature_scaling_report(logits, labels, keys=keys)
    expected = _grid_temperature(by_rank[fit_half], labels_by_rank[fit_half])
    other = _grid_temperature(by_rank[held_half], labels_by_rank[held_half])
    assert expected == pytest.approx(0.5, rel=0.15) and other == pytest.approx(4.0, rel=0.15)
    assert report["temperature"] == pytest.approx(expected, rel=2e-3)
    held_logits, held_labels = by_rank[held_half], labels_by_rank[held_half]
    for key, t in (("before", 1.0), ("after", report["temperature"])):
        assert report[key]["num_samples"] == n // 2
        assert report[key]["nll"] == pytest.approx(_nll_brute(held_logits, held_labels, t))
        assert report[key]["acc"] == pytest.approx(np.mean(held_logits.argmax(1) == held_labels))
    # T fitted on the other half makes this half's NLL worse, not better
    assert report["after"]["nll"] > report["before"]["nll"]


def test_combined_reliability_figure_names_its_estimators_and_fits_its_ticks():
    """The all-methods diagram: the legend's ECE is pycalib's (the tables' lead) with Guo's
    beside it, the marker size is explained, every x tick label lies inside the figure."""
    from als_d2.evaluation.calibration import bin_statistics
    from als_d2.evaluation.plots_combined import combined_reliability_figure

    rng = np.random.default_rng(0)
    conf = rng.uniform(0.2, 1.0, 300)
    correct = rng.random(300) < conf
    metrics = {"acc": 0.5, "avg_conf": 0.6, "paper_ece_15": 0.123, "ece_15": 0.101}
    fig = combined_reliability_figure(
        {"ALS (als_r18)": (bin_statistics(conf, correct, 15), metrics)}
    )
    top, bottom = fig.axes
    legend = top.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert "ALS (als_r18) (acc 0.500, conf 0.600, ECE15 pycalib 0.123, Guo 0.101)" in labels
    assert "marker area" in legend.get_title().get_text()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width = fig.bbox.width
    for label in bottom.get_xticklabels():
        if label.get_visible() and label.get_text():
            box = label.get_window_extent(renderer)
            assert 0 <= box.x0 and box.x1 <= width, (label.get_text(), box, width)
