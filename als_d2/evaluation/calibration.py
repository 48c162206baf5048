"""Calibration metrics of a classifier (paper section 4.2), vectorised numpy.

Notation: for sample i with probability row ``P[i]`` (K classes) and label ``y[i]``,
``p[i] = max_k P[i, k]`` is the confidence and ``argmax_k P[i, k]`` the prediction
(numpy's argmax: the first maximal class on ties).

Keys of :func:`calibration_metrics` (all python floats, fractions in [0, 1] unless noted):

==================  =========================================================================
``acc``             mean of ``argmax == y``
``top5``            fraction with ``y`` among the 5 (or K if K < 5) most probable classes;
                    counted as ``#{k: P[i, k] > P[i, y]} < 5`` (ties favour the true class)
``avg_conf``        mean ``p``
``over_conf``       mean ``p`` over wrong predictions (Mund et al. 2015; Wenger et al. 2020)
``under_conf``      mean ``1 - p`` over right predictions
``ece_B``           Guo et al. (2017) expected calibration error (as torchmetrics / netcal),
                    B equal-width bins on [0, 1], B in (15, 100): bin of ``p`` =
                    ``min(floor(p * B), B - 1)`` (so p = 1 is in the last bin);
                    ``sum_b n_b / N * |acc_b - conf_b|`` over non-empty bins, ``conf_b`` the
                    bin's mean ``p``
``mce_B``           Guo et al.: ``max_b |acc_b - conf_b|`` over non-empty bins
``paper_ece_B``     the estimator of the ALS paper's Table 2: Wenger et al. (2020), pycalib's
                    ``scoring.expected_calibration_error(y, P, B, n_classes=K)``. B
                    equal-width bins on [1/K, 1], K = the model's class count (P's columns;
                    pycalib counts distinct labels and predictions when not given K):
                    edges ``e = linspace(1/K, 1, B+1)``, bin b = [e_b, e_{b+1}) (an interior
                    edge belongs to the upper bin), the last bin [e_{B-1}, 1] (as
                    ``np.histogram``); ``p`` outside
                    [1/K, 1] is in no bin and left out of the weights too. Each bin's
                    accuracy is compared with a fixed reference
                    ``r = linspace(1/K + 1/(2B), 1 - 1/(2B), B)`` (not its mean ``p``):
                    ``sum_b n_b |acc_b - r_b| / sum_b n_b`` over non-empty bins; NaN when no
                    ``p`` is in range. Only with K known (:func:`metrics_from_stats`'s
                    ``num_classes``; :func:`calibration_metrics` always)
``paper_mce_B``     Wenger et al. / pycalib with ``p=inf``: ``max_b |acc_b - r_b|`` over
                    non-empty bins
``adaptive_ece_15`` ECE with 15 equal-mass bins: samples sorted by ``p`` (ties: wrong before
                    right), split into 15 contiguous chunks of sizes as ``np.array_split``
                    (the first ``N % 15`` chunks hold one more); empty chunks (N < 15) skipped
``nll``             mean ``-log P[i, y]`` (nats); +inf if some ``P[i, y]`` is exactly 0
                    (the evaluator computes it from logits, where it stays finite)
``brier``           mean over samples of ``sum_k (P[i, k] - [k == y])**2``, in [0, 2]
``num_samples``     N (an int)
``aurc`` ...        selective prediction by ``p``: ``aurc``, ``eaurc``, ``augrc``,
                    ``risk_at_cov_80/90/95``, ``cov_at_risk_05/10`` (conventions in
                    :mod:`als_d2.evaluation.thresholds`)
==================  =========================================================================

With ``objectness`` (N floats in [0, 1], NaN = unknown), also:
``mean_objectness`` (mean over known), ``objectness_deviation`` (mean ``|p - objectness|``
over known; the paper's "mean objectness deviation"), ``objectness_samples`` (how many
are known, an int) and ``conf_objectness_spearman`` (rank correlation of ``p`` and
objectness over known: the paper's "peaks proportional to the object").

Edge cases: a mean over an empty set is NaN. So with N = 0 every metric is NaN (counts are
0); the ``paper_`` ones are NaN also when no ``p`` is in [1/K, 1] and for K < 2 (a
degenerate range; pycalib raises in both cases); ``over_conf`` is NaN when no prediction is
wrong, ``under_conf`` when none is right, the objectness metrics when no objectness is known.
Empty bins contribute nothing to ECE and are not considered by MCE (they are reported with
count 0 and NaN accuracy and confidence by :func:`bin_statistics`, NaN accuracy by
:func:`paper_bin_statistics`).
"""

from typing import Dict, Optional, Sequence

import numpy as np

from .confidence_objectness import conf_objectness_spearman
from .thresholds import (
    SELECTIVE_KEYS,
    risk_coverage_from_confidence,
    selective_metrics_from_curve,
)

__all__ = [
    "ECE_BINS",
    "ADAPTIVE_BINS",
    "sample_stats",
    "sample_stats_from_logits",
    "metrics_from_stats",
    "calibration_metrics",
    "bin_statistics",
    "adaptive_bin_statistics",
    "paper_bin_statistics",
    "paper_ece_mce",
]

ECE_BINS = (15, 100)
ADAPTIVE_BINS = 15
_CHUNK = 4096  # rows converted to float64 at a time

STAT_KEYS = ("confidence", "correct", "top5", "nll", "brier", "neg_entropy")


def _check(labels: np.ndarray, n: int, k: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels has shape {labels.shape}, expected ({n},)")
    labels = labels.astype(np.int64, copy=False)
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must be in [0, {k}), got range [{labels.min()}, {labels.max()}]")
    return labels


def _empty_stats() -> Dict[str, np.ndarray]:
    return {
        "confidence": np.zeros(0),
        "correct": np.zeros(0, dtype=bool),
        "top5": np.zeros(0, dtype=bool),
        "nll": np.zeros(0),
        "brier": np.zeros(0),
        "neg_entropy": np.zeros(0),
    }


def _stats_of_chunk(
    probs: np.ndarray, labels: np.ndarray, log_true: Optional[np.ndarray]
) -> Dict[str, np.ndarray]:
    rows = np.arange(len(labels))
    true_p = probs[rows, labels]
    k = min(5, probs.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        nll = -np.log(true_p) if log_true is None else -log_true
        log_p = np.log(probs, out=np.zeros_like(probs), where=probs > 0)  # 0 ln 0 = 0
    return {
        "confidence": probs.max(axis=1),
        "correct": probs.argmax(axis=1) == labels,
        "top5": (probs > true_p[:, None]).sum(axis=1) < k,
        "nll": nll,
        "brier": np.einsum("ij,ij->i", probs, probs) - 2.0 * true_p + 1.0,
        "neg_entropy": np.einsum("ij,ij->i", probs, log_p),
    }


def _concat(parts) -> Dict[str, np.ndarray]:
    if not parts:
        return _empty_stats()
    return {key: np.concatenate([p[key] for p in parts]) for key in STAT_KEYS}


def sample_stats(probs, labels) -> Dict[str, np.ndarray]:
    """Per-sample summaries of an N x K probability array (float64 arithmetic).

    Returns ``confidence`` (N float64), ``correct`` and ``top5`` (N bool), ``nll``,
    ``brier`` and ``neg_entropy`` (``sum_k P ln P``, nats; N float64): everything
    :func:`metrics_from_stats` and the threshold metrics need, so callers that see the
    predictions in batches keep N x 6 numbers instead of N x K.
    """
    return _chunked(probs, labels, "probs", lambda p, y: _stats_of_chunk(p, y, None))


def _chunked(scores, labels, name: str, stats_of_chunk) -> Dict[str, np.ndarray]:
    """``stats_of_chunk(float64 chunk of scores, its labels)`` over chunks of ``_CHUNK`` rows
    of an N x K array, concatenated; shapes and label range checked first."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"{name} must be N x K, got shape {scores.shape}")
    labels = _check(labels, scores.shape[0], scores.shape[1])
    parts = [
        stats_of_chunk(scores[s : s + _CHUNK].astype(np.float64), labels[s : s + _CHUNK])
        for s in range(0, scores.shape[0], _CHUNK)
    ]
    return _concat(parts)


def sample_stats_from_logits(logits, labels, temperature: float = 1.0) -> Dict[str, np.ndarray]:
    """:func:`sample_stats` of ``softmax(logits / temperature)`` (N x K), with ``nll``
    from the log-softmax (finite even where the probability underflows)."""

    def stats_of_chunk(z: np.ndarray, y: np.ndarray) -> Dict[str, np.ndarray]:
        z = z / temperature
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return _stats_of_chunk(np.exp(log_p), y, log_p[np.arange(len(y)), y])

    return _chunked(logits, labels, "logits", stats_of_chunk)


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else float("nan")


def bin_statistics(confidence, correct, num_bins: int) -> Dict[str, np.ndarray]:
    """Equal-width confidence bins on [0, 1]: ``edges`` (B+1), ``count`` (B ints),
    ``accuracy`` and ``confidence`` (B floats, mean per bin; NaN for empty bins)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    index = np.minimum(np.floor(confidence * num_bins).astype(np.int64), num_bins - 1)
    index = np.maximum(index, 0)
    count = np.bincount(index, minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(index, weights=correct, minlength=num_bins) / count
        conf = np.bincount(index, weights=confidence, minlength=num_bins) / count
    return {
        "edges": np.linspace(0.0, 1.0, num_bins + 1),
        "count": count,
        "accuracy": acc,
        "confidence": conf,
    }


def adaptive_bin_statistics(confidence, correct, num_bins: int) -> Dict[str, np.ndarray]:
    """Equal-mass bins (see the module docstring): ``count``, ``accuracy``,
    ``confidence`` (B each, NaN for empty bins) and ``lower``/``upper`` confidence bounds."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    n = confidence.size
    order = np.lexsort((correct, confidence))
    conf_s, corr_s = confidence[order], correct[order]
    count = n // num_bins + (np.arange(num_bins) < n % num_bins).astype(
        np.int64
    )  # np.array_split's sizes
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])
    nonempty = count > 0
    acc = np.full(num_bins, np.nan)
    conf = np.full(num_bins, np.nan)
    lower = np.full(num_bins, np.nan)
    upper = np.full(num_bins, np.nan)
    if n:
        s = starts[nonempty]
        acc[nonempty] = np.add.reduceat(corr_s, s) / count[nonempty]
        conf[nonempty] = np.add.reduceat(conf_s, s) / count[nonempty]
        lower[nonempty] = conf_s[s]
        upper[nonempty] = conf_s[s + count[nonempty] - 1]
    return {"count": count, "accuracy": acc, "confidence": conf, "lower": lower, "upper": upper}


def paper_bin_statistics(
    confidence, correct, num_bins: int, num_classes: int
) -> Dict[str, np.ndarray]:
    """Wenger et al. (2020) / pycalib bins: B equal-width bins on [1/K, 1] (module docstring).

    Args:
        confidence: N max-probabilities; correct: N bools; num_bins: B >= 1;
        num_classes: K >= 2, the model's class count.

    Returns:
        ``edges`` (B+1), ``count`` (B ints; samples outside [1/K, 1] are in no bin),
        ``accuracy`` (B, NaN for empty bins), ``reference`` (B, the fixed value each
        bin's accuracy is compared with).
    """
    if num_bins < 1 or num_classes < 2:
        raise ValueError(f"need num_bins >= 1 and num_classes >= 2, got {num_bins}, {num_classes}")
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(1.0 / num_classes, 1.0, num_bins + 1)
    index = np.searchsorted(edges, confidence, side="right") - 1  # e_b <= p < e_{b+1}; NaN -> B
    index[confidence == edges[-1]] = num_bins - 1  # the last bin is closed
    inside = (index >= 0) & (index < num_bins)
    count = np.bincount(index[inside], minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(index[inside], weights=correct[inside], minlength=num_bins) / count
    half = 1.0 / (2 * num_bins)
    reference = np.linspace(1.0 / num_classes + half, 1.0 - half, num_bins)
    return {"edges": edges, "count": count, "accuracy": acc, "reference": reference}


def _paper_ece_mce(bins: Dict[str, np.ndarray]):
    nonempty = bins["count"] > 0
    if not nonempty.any():
        return float("nan"), float("nan")
    weight = bins["count"][nonempty]
    gap = np.abs(bins["accuracy"][nonempty] - bins["reference"][nonempty])
    return float((weight * gap).sum() / weight.sum()), float(gap.max())


def paper_ece_mce(confidence, correct, num_bins: int, num_classes: int):
    """(ECE, MCE) of Wenger et al. (2020) / pycalib (``p=1`` and ``p=inf``) over
    :func:`paper_bin_statistics`; (NaN, NaN) when no confidence lies in [1/K, 1]."""
    return _paper_ece_mce(paper_bin_statistics(confidence, correct, num_bins, num_classes))


def _ece_mce(bins: Dict[str, np.ndarray], n: int):
    nonempty = bins["count"] > 0
    if n == 0:
        return float("nan"), float("nan")
    gap = np.abs(bins["accuracy"][nonempty] - bins["confidence"][nonempty])
    return float((bins["count"][nonempty] / n * gap).sum()), float(gap.max())


def metrics_from_stats(
    stats: Dict[str, np.ndarray], objectness=None, num_classes: Optional[int] = None
) -> Dict[str, float]:
    """The metrics of the module docstring from per-sample summaries (:func:`sample_stats`);
    the ``paper_`` ECE/MCE only with ``num_classes`` (K, the model's class count)."""
    conf = np.asarray(stats["confidence"], dtype=np.float64)
    correct = np.asarray(stats["correct"], dtype=bool)
    n = conf.size
    out: Dict[str, float] = {
        "acc": _mean(correct.astype(np.float64)),
        "top5": _mean(np.asarray(stats["top5"], dtype=np.float64)),
    }
    equal_width = {b: _ece_mce(bin_statistics(conf, correct, b), n) for b in ECE_BINS}
    for b in ECE_BINS:
        out[f"ece_{b}"] = equal_width[b][0]
    for b in ECE_BINS:
        out[f"mce_{b}"] = equal_width[b][1]
    if num_classes is not None:
        nan2 = (float("nan"), float("nan"))
        paper = {
            b: paper_ece_mce(conf, correct, b, num_classes) if num_classes >= 2 else nan2
            for b in ECE_BINS
        }
        for b in ECE_BINS:
            out[f"paper_ece_{b}"] = paper[b][0]
        for b in ECE_BINS:
            out[f"paper_mce_{b}"] = paper[b][1]
    out[f"adaptive_ece_{ADAPTIVE_BINS}"] = _ece_mce(
        adaptive_bin_statistics(conf, correct, ADAPTIVE_BINS), n
    )[0]
    out["over_conf"] = _mean(conf[~correct])
    out["under_conf"] = _mean(1.0 - conf[correct])
    out["avg_conf"] = _mean(conf)
    out["nll"] = _mean(np.asarray(stats["nll"], dtype=np.float64))
    out["brier"] = _mean(np.asarray(stats["brier"], dtype=np.float64))
    out["num_samples"] = int(n)
    if n:  # selective prediction by confidence (als_d2.evaluation.thresholds)
        out.update(selective_metrics_from_curve(risk_coverage_from_confidence(conf, correct)))
    else:
        out.update(dict.fromkeys(SELECTIVE_KEYS, float("nan")))
    if objectness is not None:
        obj = np.asarray(objectness, dtype=np.float64)
        if obj.shape != (n,):
            raise ValueError(f"objectness has shape {obj.shape}, expected ({n},)")
        known = ~np.isnan(obj)
        out["mean_objectness"] = _mean(obj[known])
        out["objectness_deviation"] = _mean(np.abs(conf[known] - obj[known]))
        out["objectness_samples"] = int(known.sum())
        out["conf_objectness_spearman"] = conf_objectness_spearman(conf, obj)
    return out


def calibration_metrics(
    probs, labels, objectness: Optional[Sequence[float]] = None
) -> Dict[str, float]:
    """Accuracy and calibration metrics of N x K probabilities against N labels.

    Args:
        probs: N x K array, rows are probability distributions (any float dtype).
        labels: N ints in [0, K).
        objectness: optional N floats in [0, 1], NaN where unknown.

    Returns:
        dict of floats, keys and conventions in the module docstring (``paper_`` keys
        with K = ``probs.shape[1]``).
    """
    probs = np.asarray(probs)
    stats = sample_stats(probs, labels)
    return metrics_from_stats(stats, objectness, num_classes=probs.shape[1])
