"""Confidence you can threshold (issue 25): does a threshold on the confidence separate the
images that show the object from their context-only versions, and how does accuracy trade
against coverage when low-confidence predictions are rejected?

Inputs are probability rows (N x K softmax outputs, numpy or torch). The score of a
sample is its maximum softmax probability ``msp = max_k P[k]`` or its negative entropy
``-H = sum_k P[k] ln P[k]`` (nats; ``0 ln 0 = 0``); higher means "more confident".

:func:`context_separation` (out-of-distribution detection, OpenOOD's conventions): images
with objects are the positives ("in"), their context-only versions the negatives ("out").

- ``ood_auroc_<s>``: area under the ROC curve of the in-vs-out decision by score ``s``,
  ``P(s_in > s_out) + P(s_in == s_out) / 2`` (scikit-learn's ``roc_auc_score``);
- ``ood_aupr_in_<s>``: average precision with "in" positive and score ``s``;
  ``ood_aupr_out_<s>``: "out" positive and score ``-s``. Average precision is the
  step-wise sum of scikit-learn's ``average_precision_score``,
  ``sum_n (R_n - R_{n-1}) P_n`` over the distinct thresholds (tied scores form one step),
  not the trapezoid under the precision-recall curve that some OOD code integrates;
- ``ood_fpr95_<s>``: the fraction of context-only images accepted (score >= t) at the
  highest threshold t that accepts at least 95% of the images with objects: OpenOOD's
  ``fpr_recall`` (the first ROC point with TPR >= 0.95). Lower is better. pytorch-ood and
  torch-uncertainty take the out-of-distribution set as the positives instead (their
  FPR95 is this one only when the scores are negated and the roles swapped).

:func:`selective_metrics` (selective prediction; Geifman & El-Yaniv 2017, Traub et al.
2024): accept the predictions whose confidence (``msp``) is at least a threshold t.
Coverage ``c(t)`` = accepted / N, selective risk ``r(t)`` = errors among the accepted /
accepted, generalized risk ``g(t)`` = errors among the accepted / N. Ties: samples of equal
confidence are accepted or rejected together (no threshold separates them), so the curves
have one point per distinct confidence, from the highest down. Areas are step-wise sums
over those points, ``sum_k (c_k - c_{k-1}) r_k``; without ties they equal the per-sample
means of Geifman et al. (``(1/N) sum_i r(top i)``).

- ``aurc``: area under the risk-coverage curve;
- ``eaurc``: ``aurc`` minus the optimal AURC at the same error rate ``e``,
  ``e + (1 - e) ln(1 - e)`` (Geifman et al.'s closed form; 0 at e = 0);
- ``augrc``: area under the generalized risk-coverage curve (Traub et al. 2024);
- ``risk_at_cov_80/90/95``: the selective risk at the smallest coverage >= 0.80 / 0.90 /
  0.95;
- ``cov_at_risk_05/10``: the largest coverage whose selective risk is <= 0.05 / 0.10
  (0 when none is).

All values are python floats in [0, 1]. Bad input (an empty set, NaN or negative
probabilities, rows of another width, labels out of range) raises ``ValueError`` naming the
set (``name``).
"""

import logging
from typing import Dict, List, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "SELECTIVE_KEYS",
    "SEPARATION_KEYS",
    "context_separation",
    "context_pairs",
    "pair_separation",
    "separation_from_scores",
    "selective_metrics",
    "selective_metrics_from_curve",
    "risk_coverage_points",
    "risk_coverage_from_confidence",
    "roc_points",
    "scores",
]

FPR_RECALL = 0.95
CONTEXT_SUFFIX = "_context"  # X_context: the context-only twin of the set X
RISK_AT_COVERAGE = {"risk_at_cov_80": 0.80, "risk_at_cov_90": 0.90, "risk_at_cov_95": 0.95}
COVERAGE_AT_RISK = {"cov_at_risk_05": 0.05, "cov_at_risk_10": 0.10}
SELECTIVE_KEYS = ("aurc", "eaurc", "augrc", *RISK_AT_COVERAGE, *COVERAGE_AT_RISK)
SEPARATION_KEYS = tuple(
    f"ood_{m}_{s}" for s in ("msp", "entropy") for m in ("auroc", "aupr_in", "aupr_out", "fpr95")
)


def _probabilities(probs, name: str) -> np.ndarray:
    """``probs`` as an N x K float64 array, checked (N >= 1, finite, non-negative)."""
    if hasattr(probs, "detach"):
        probs = probs.detach().cpu().double().numpy()
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"{name}: expected N x K probabilities (K >= 2), got shape {p.shape}")
    if p.shape[0] == 0:
        raise ValueError(f"{name}: empty set (no image), nothing to threshold")
    if not np.isfinite(p).all():
        raise ValueError(f"{name}: {int((~np.isfinite(p)).any(1).sum())} rows with NaN or inf")
    if (p < 0).any():
        raise ValueError(f"{name}: negative probabilities (pass softmax outputs, not logits)")
    return p


def scores(probs: np.ndarray) -> Dict[str, np.ndarray]:
    """``{"msp": max_k P[k], "entropy": sum_k P[k] ln P[k]}`` per row (higher: surer)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(probs > 0, probs * np.log(probs), 0.0)
    return {"msp": probs.max(1), "entropy": plogp.sum(1)}


def _descending_steps(score: np.ndarray, *counted: np.ndarray) -> Tuple[np.ndarray, ...]:
    """For each distinct score from the highest down, the cumulative sums of ``counted``
    (arrays aligned with ``score``) over the samples with a score >= it."""
    order = np.argsort(-score, kind="mergesort")
    s = score[order]
    last_of_group = np.r_[s[1:] != s[:-1], True]
    return tuple(np.cumsum(c[order])[last_of_group] for c in counted)


def roc_points(score_in: np.ndarray, score_out: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` of "in" (positive) against "out" at every distinct threshold, from the
    highest down, starting at (0, 0)."""
    score = np.concatenate([score_in, score_out])
    positive = np.r_[np.ones(len(score_in)), np.zeros(len(score_out))]
    tp, fp = _descending_steps(score, positive, 1.0 - positive)
    return np.r_[0.0, fp / len(score_out)], np.r_[0.0, tp / len(score_in)]


def _average_precision(score_pos: np.ndarray, score_neg: np.ndarray) -> float:
    """scikit-learn's step-wise average precision, ``sum_n (R_n - R_{n-1}) P_n``."""
    score = np.concatenate([score_pos, score_neg])
    positive = np.r_[np.ones(len(score_pos)), np.zeros(len(score_neg))]
    tp, accepted = _descending_steps(score, positive, np.ones_like(positive))
    recall = tp / len(score_pos)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * tp / accepted))


def context_separation(probs_in, probs_out, name: str = "context pair") -> Dict[str, float]:
    """Separation of images with objects (``probs_in``, N x K) from their context-only
    versions (``probs_out``, M x K) by each score; keys in the module docstring."""
    p_in = _probabilities(probs_in, f"{name} (images with objects)")
    p_out = _probabilities(probs_out, f"{name} (context-only images)")
    if p_in.shape[1] != p_out.shape[1]:
        raise ValueError(f"{name}: {p_in.shape[1]} classes with objects, {p_out.shape[1]} without")
    return separation_from_scores(scores(p_in), scores(p_out))


def separation_from_scores(
    scores_in: Dict, scores_out: Dict, name: str = "context pair"
) -> Dict[str, float]:
    """:func:`context_separation` from per-sample scores (``{"msp": (N,), "entropy": (N,)}``
    of each set, as :func:`scores` gives them), for evaluators that keep scores only."""
    for what, sc in (("images with objects", scores_in), ("context-only images", scores_out)):
        if len(sc["msp"]) == 0:
            raise ValueError(f"{name} ({what}): empty set (no image), nothing to threshold")
    out = {}
    for s in ("msp", "entropy"):
        s_in = np.asarray(scores_in[s], dtype=np.float64)
        s_out = np.asarray(scores_out[s], dtype=np.float64)
        fpr, tpr = roc_points(s_in, s_out)
        out[f"ood_auroc_{s}"] = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        out[f"ood_aupr_in_{s}"] = _average_precision(s_in, s_out)
        out[f"ood_aupr_out_{s}"] = _average_precision(-s_out, -s_in)
        out[f"ood_fpr95_{s}"] = float(fpr[np.argmax(tpr >= FPR_RECALL)])
    return out


def risk_coverage_points(probs, labels, name: str = "set") -> Dict[str, np.ndarray]:
    """The risk-coverage curve of ``probs`` (N x K) and ``labels`` (N,):
    :func:`risk_coverage_from_confidence` of the maximum softmax and its correctness."""
    p = _probabilities(probs, name)
    y = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).astype(np.int64)
    if y.shape != (len(p),):
        raise ValueError(f"{name}: {len(p)} probability rows but labels of shape {y.shape}")
    if ((y < 0) | (y >= p.shape[1])).any():
        raise ValueError(f"{name}: labels outside 0..{p.shape[1] - 1}")
    return risk_coverage_from_confidence(p.max(1), p.argmax(1) == y, name)


def risk_coverage_from_confidence(confidence, correct, name: str = "set") -> Dict[str, np.ndarray]:
    """``coverage``, ``risk`` (selective) and ``generalized_risk`` at every distinct
    confidence from the highest down (ties accepted together), and the ``threshold`` of
    each point. ``confidence`` (N,) in [0, 1], ``correct`` (N,) bool."""
    conf = np.asarray(confidence, dtype=np.float64)
    if len(conf) == 0:
        raise ValueError(f"{name}: empty set (no image), nothing to threshold")
    if not np.isfinite(conf).all():
        raise ValueError(f"{name}: {int((~np.isfinite(conf)).sum())} NaN or inf confidences")
    wrong = 1.0 - np.asarray(correct, dtype=np.float64)
    errors, accepted = _descending_steps(conf, wrong, np.ones_like(wrong))
    return {
        "threshold": np.unique(conf)[::-1],
        "coverage": accepted / len(conf),
        "risk": errors / accepted,
        "generalized_risk": errors / len(conf),
    }


def selective_metrics(probs, labels, name: str = "set") -> Dict[str, float]:
    """Selective prediction by maximum softmax probability; keys in the module docstring."""
    return selective_metrics_from_curve(risk_coverage_points(probs, labels, name))


def selective_metrics_from_curve(curve: Dict[str, np.ndarray]) -> Dict[str, float]:
    """:func:`selective_metrics` from a risk-coverage curve (:func:`risk_coverage_points`,
    :func:`risk_coverage_from_confidence`)."""
    cov, risk = curve["coverage"], curve["risk"]
    steps = np.diff(np.r_[0.0, cov])
    error_rate = float(risk[-1])  # everything accepted
    optimal = error_rate + (1 - error_rate) * np.log1p(-error_rate) if error_rate < 1 else 1.0
    out = {
        "aurc": float(np.sum(steps * risk)),
        "augrc": float(np.sum(steps * curve["generalized_risk"])),
    }
    out["eaurc"] = out["aurc"] - float(optimal)
    for key, c in RISK_AT_COVERAGE.items():
        out[key] = float(risk[np.argmax(cov >= c - 1e-12)])
    for key, r in COVERAGE_AT_RISK.items():
        ok = risk <= r + 1e-12
        out[key] = float(cov[ok].max()) if ok.any() else 0.0
    return out


def context_pairs(datasets: Sequence[str]) -> List[Tuple[str, str]]:
    """``(X, X_context)`` for every set whose context-only twin is evaluated too."""
    return [(d, d + CONTEXT_SUFFIX) for d in datasets if d + CONTEXT_SUFFIX in datasets]


def pair_separation(scores_in: Dict, scores_out: Dict, pair: str) -> Tuple[Dict, Dict]:
    """``(metrics, roc)``: :func:`separation_from_scores` of the samples of ``scores_in``
    (``{"key", "msp", "entropy"}`` per sample, as ``ClassificationEvaluator.sample_scores``)
    whose key has a context-only version in ``scores_out`` (all of them when no key
    matches, with a warning), against ``scores_out``, plus ``ood_pairs`` (how many images
    with objects were matched); ``roc``: ``{"fpr", "tpr"}`` by maximum softmax."""
    out_keys = set(scores_out["key"])
    keep = np.array([k in out_keys for k in scores_in["key"]], dtype=bool)
    if not keep.any():
        logger.warning(f"{pair}: no image id in common; all images of both sets compared")
        keep[:] = True
    kept = {s: np.asarray(scores_in[s])[keep] for s in ("msp", "entropy")}
    result = separation_from_scores(kept, scores_out, pair)
    result["ood_pairs"] = int(keep.sum())
    fpr, tpr = roc_points(kept["msp"], np.asarray(scores_out["msp"]))
    return result, {"fpr": fpr, "tpr": tpr}
