"""als_d2.evaluation.thresholds against independent computations: scikit-learn's
roc_auc_score / average_precision_score / roc_curve, brute-force loops over thresholds,
and tiny hand-made cases with ties."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from als_d2.evaluation.thresholds import context_separation, selective_metrics


def random_probs(rng, n, k, sharpness):
    logits = rng.normal(size=(n, k)) * sharpness
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def rounded(p, decimals=1):
    """Probability rows with many tied maxima (rounded logits)."""
    p = np.round(p, decimals) + 1e-3
    return p / p.sum(1, keepdims=True)


@pytest.mark.parametrize("ties", [False, True])
def test_separation_matches_scikit_learn_and_openood(ties):
    rng = np.random.default_rng(0)
    p_in, p_out = random_probs(rng, 300, 5, 2.0), random_probs(rng, 200, 5, 0.7)
    if ties:
        p_in, p_out = rounded(p_in), rounded(p_out)
    got = context_separation(p_in, p_out)
    for s, score in {
        "msp": lambda p: p.max(1),
        "entropy": lambda p: (p * np.log(p)).sum(1),
    }.items():
        y = np.r_[np.ones(len(p_in)), np.zeros(len(p_out))]
        x = np.r_[score(p_in), score(p_out)]
        assert got[f"ood_auroc_{s}"] == pytest.approx(roc_auc_score(y, x), abs=1e-12)
        assert got[f"ood_aupr_in_{s}"] == pytest.approx(average_precision_score(y, x), abs=1e-12)
        assert got[f"ood_aupr_out_{s}"] == pytest.approx(
            average_precision_score(1 - y, -x), abs=1e-12
        )
        fpr, tpr, _ = roc_curve(y, x)  # OpenOOD's fpr_recall
        assert got[f"ood_fpr95_{s}"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-12)
        # the same by its definition: accept score >= t, t the highest accepting 95% of "in"
        t = max(v for v in np.unique(x) if (score(p_in) >= v).mean() >= 0.95)
        assert got[f"ood_fpr95_{s}"] == pytest.approx((score(p_out) >= t).mean(), abs=1e-12)


def test_separation_by_hand():
    """msp in: 0.9, 0.6, 0.6; out: 0.6, 0.5. AUROC = (2 + 0.5 + 0.5 + 1 + 1 + 1) / 6."""
    p_in = np.array([[0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    p_out = np.array([[0.6, 0.4], [0.5, 0.5]])
    got = context_separation(p_in, p_out)
    assert got["ood_auroc_msp"] == pytest.approx(5 / 6)
    # thresholds 0.9 (R 1/3, P 1), 0.6 (R 1, P 3/4): AP = 1/3 + (2/3)(3/4)
    assert got["ood_aupr_in_msp"] == pytest.approx(1 / 3 + 0.5)
    # 95% of "in" accepted only at t = 0.6, which accepts one of two context-only images
    assert got["ood_fpr95_msp"] == 0.5


def brute_force_selective(p, y):
    conf, wrong = p.max(1), p.argmax(1) != y
    thresholds = np.unique(conf)[::-1]
    cov = np.array([(conf >= t).mean() for t in thresholds])
    risk = np.array([wrong[conf >= t].mean() for t in thresholds])
    grisk = np.array([(wrong & (conf >= t)).sum() / len(y) for t in thresholds])
    return cov, risk, grisk


@pytest.mark.parametrize("ties", [False, True])
def test_selective_metrics_against_brute_force(ties):
    rng = np.random.default_rng(1)
    p = random_probs(rng, 400, 4, 1.5)
    if ties:
        p = rounded(p)
    y = rng.integers(0, 4, 400)
    y[:200] = p[:200].argmax(1)  # half right by construction
    got = selective_metrics(p, y)
    cov, risk, grisk = brute_force_selective(p, y)
    widths = np.diff(np.r_[0, cov])
    assert got["aurc"] == pytest.approx(float((widths * risk).sum()), abs=1e-12)
    assert got["augrc"] == pytest.approx(float((widths * grisk).sum()), abs=1e-12)
    e = (p.argmax(1) != y).mean()
    assert got["eaurc"] == pytest.approx(got["aurc"] - (e + (1 - e) * np.log(1 - e)), abs=1e-12)
    for key, c in (("risk_at_cov_80", 0.8), ("risk_at_cov_90", 0.9), ("risk_at_cov_95", 0.95)):
        assert got[key] == pytest.approx(risk[cov >= c][0], abs=1e-12)
    for key, r in (("cov_at_risk_05", 0.05), ("cov_at_risk_10", 0.10)):
        ok = cov[risk <= r]
        assert got[key] == (ok.max() if len(ok) else 0.0)
    if not ties:  # Geifman et al.'s per-sample mean
        order = np.argsort(-p.max(1))
        wrong = (p.argmax(1) != y)[order]
        per_sample = np.mean(np.cumsum(wrong) / np.arange(1, len(y) + 1))
        assert got["aurc"] == pytest.approx(per_sample, abs=1e-12)


def test_selective_metrics_by_hand_with_ties():
    """Confidences 0.9 (right), 0.7 (wrong), 0.7 (right), 0.6 (wrong): the two 0.7s are
    accepted together. Points: (1/4, 0), (3/4, 1/3), (1, 1/2)."""
    p = np.array([[0.9, 0.1], [0.7, 0.3], [0.3, 0.7], [0.6, 0.4]])
    y = np.array([0, 1, 1, 1])
    got = selective_metrics(p, y)
    assert got["aurc"] == pytest.approx(0.25 * 0 + 0.5 * (1 / 3) + 0.25 * 0.5)
    assert got["augrc"] == pytest.approx(0.25 * 0 + 0.5 * 0.25 + 0.25 * 0.5)
    assert got["risk_at_cov_80"] == 0.5 and got["cov_at_risk_05"] == 0.25
    assert got["eaurc"] == pytest.approx(got["aurc"] - (0.5 + 0.5 * np.log(0.5)))
    perfect = selective_metrics(p, p.argmax(1))
    assert perfect["aurc"] == 0 and perfect["eaurc"] == 0 and perfect["cov_at_risk_05"] == 1


@pytest.mark.parametrize(
    "probs, match",
    [
        (np.zeros((0, 3)), r"val_context\b.*: empty set"),
        (np.array([[0.5, np.nan], [0.5, 0.5]]), r"val_context\b.*: 1 rows with NaN"),
        (np.array([[1.5, -0.5]]), r"val_context\b.*: negative probabilities"),
        (np.array([0.5, 0.5]), r"val_context\b.*: expected N x K"),
    ],
)
def test_bad_input_names_the_set(probs, match):
    good = np.array([[0.7, 0.3]])
    with pytest.raises(ValueError, match=match):
        context_separation(good, probs, name="val_context")
    with pytest.raises(ValueError, match=match):
        selective_metrics(probs, np.zeros(len(probs), dtype=int), name="val_context")
    with pytest.raises(ValueError, match="val: labels outside"):
        selective_metrics(good, np.array([2]), name="val")
