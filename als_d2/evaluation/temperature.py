"""Temperature scaling (Guo et al. 2017) as a post-hoc calibration baseline.

One scalar T > 0 divides the logits; T is fitted by minimising the mean NLL of
``softmax(logits / T)`` on held-out predictions. Predictions (argmax, top-5) do not
change, only the confidences.

With ``s = 1 / T``, ``NLL(s) = mean_i [logsumexp(s z_i) - s z_iy]`` is convex in s, with
``NLL'(s) = mean_i [E_{p_s}(z_i) - z_iy]`` and ``NLL''(s) = mean_i Var_{p_s}(z_i) >= 0``.
:func:`fit_temperature` finds the root of ``NLL'`` by Newton steps kept inside a
bracket (geometric bisection when a step would leave it), a 1-D optimisation over
log T in [log T_min, log T_max] that needs ~10 passes over the logits.
"""

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .calibration import metrics_from_stats, sample_stats_from_logits

__all__ = ["nll_at_temperature", "fit_temperature", "held_out_split", "temperature_scaling_report"]

_CHUNK = 4096
T_MIN, T_MAX = 0.01, 100.0  # fit_temperature's bounds


def _moments(logits: np.ndarray, labels: np.ndarray, s: float) -> Tuple[float, float, float]:
    """(NLL, dNLL/ds, d2NLL/ds2) at inverse temperature s, means over samples."""
    nll = grad = curv = 0.0
    for i in range(0, logits.shape[0], _CHUNK):
        z = logits[i : i + _CHUNK].astype(np.float64)
        y = labels[i : i + _CHUNK]
        zy = z[np.arange(len(y)), y]
        a = s * z
        m = a.max(axis=1, keepdims=True)
        e = np.exp(a - m)
        tot = e.sum(axis=1)
        p = e / tot[:, None]
        mean_z = np.einsum("ij,ij->i", p, z)
        var_z = np.einsum("ij,ij->i", p, z * z) - mean_z**2
        nll += float((np.log(tot) + m[:, 0] - s * zy).sum())
        grad += float((mean_z - zy).sum())
        curv += float(np.maximum(var_z, 0.0).sum())
    n = max(logits.shape[0], 1)
    return nll / n, grad / n, curv / n


def nll_at_temperature(logits, labels, temperature: float) -> float:
    """Mean NLL (nats) of ``softmax(logits / temperature)``; logits N x K, labels N."""
    return _moments(np.asarray(logits), np.asarray(labels, dtype=np.int64), 1.0 / temperature)[0]


def fit_temperature(
    logits,
    labels,
    *,
    t_min: float = T_MIN,
    t_max: float = T_MAX,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> float:
    """The T in [t_min, t_max] minimising the mean NLL of ``softmax(logits / T)``.

    Args:
        logits: N x K array (N >= 1); labels: N ints in [0, K).
        tol: stop when the relative change of T (or the bracket) is below ``tol``.

    Returns:
        T (python float); ``t_max`` or ``t_min`` when the optimum lies beyond them
        (e.g. T -> 0 when every prediction is right with separable logits).
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or logits.shape[0] == 0 or labels.shape != (logits.shape[0],):
        raise ValueError(
            "fit_temperature needs N x K logits with N >= 1 and N labels, "
            f"got {logits.shape}, {labels.shape}"
        )
    lo, hi = 1.0 / t_max, 1.0 / t_min  # bracket on s = 1 / T
    if _moments(logits, labels, lo)[1] >= 0:
        return t_max
    if _moments(logits, labels, hi)[1] <= 0:
        return t_min
    s = min(max(1.0, lo), hi)
    for _ in range(max_iter):
        _, g, h = _moments(logits, labels, s)
        if g == 0:
            break
        if g > 0:
            hi = s
        else:
            lo = s
        step = s - g / h if h > 0 else -1.0
        new = step if lo < step < hi else float(np.sqrt(lo * hi))
        if abs(new - s) <= tol * s or hi / lo - 1.0 <= tol:
            s = new
            break
        s = new
    return 1.0 / s


def held_out_split(n: int, keys: Optional[Sequence] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Indices (fit, evaluate) of a deterministic 50/50 split of n predictions.

    Samples are ordered by ``str(key)`` when every key is known (so the split does not
    depend on the order in which processes gathered them; stable for duplicates), else
    kept in the given order; even positions fit T, odd positions evaluate it.
    """
    if keys is not None and len(keys) == n and all(k is not None for k in keys):
        order = np.array(sorted(range(n), key=lambda i: str(keys[i])), dtype=np.int64)
    else:
        order = np.arange(n, dtype=np.int64)
    return order[0::2], order[1::2]


def bound_warning(temperature: float, fit_acc: float, num_classes: int) -> Optional[str]:
    """Why a fitted T sits at a bound of :func:`fit_temperature` (None when it does not):
    there the NLL keeps falling towards T -> infinity (the fit half's predictions are no
    better than uniform) or T -> 0 (every fit prediction right with separable logits), so
    the scaled metrics describe a degenerate set, not a calibration."""
    if temperature >= T_MAX:
        return (
            f"temperature scaling hit its bound T = {T_MAX:g}: the NLL keeps falling towards "
            f"uniform confidences (fit-half accuracy {fit_acc:.3f}, chance {1 / num_classes:.3f}): "
            "the predictions carry no usable confidence (an untrained model, a context-only "
            "set, wrong labels?); the ts_ metrics are not a calibration"
        )
    if temperature <= T_MIN:
        return (
            f"temperature scaling hit its bound T = {T_MIN:g}: every fit-half prediction is "
            f"right with separable logits (fit-half accuracy {fit_acc:.3f}): too few or too "
            "easy samples to fit T; the ts_ metrics are not a calibration"
        )
    return None


def temperature_scaling_report(
    logits, labels, objectness=None, keys: Optional[Sequence] = None
) -> Dict:
    """Fit T on one half of the predictions (:func:`held_out_split`) and report the
    :func:`~als_d2.evaluation.calibration.metrics_from_stats` metrics of the other half
    before and after scaling (with the ``paper_`` keys, K = the logits' width).

    Returns:
        ``{"temperature": T, "fit_samples": int, "eval_samples": int, "before": {...},
        "after": {...}}``, plus ``"warning"`` (:func:`bound_warning`) when T is at a bound;
        with fewer than 2 predictions T is NaN and the metric dicts are empty.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels, dtype=np.int64)
    fit, held = held_out_split(len(labels), keys)
    report = {
        "temperature": float("nan"),
        "fit_samples": int(fit.size),
        "eval_samples": int(held.size),
    }
    if fit.size == 0 or held.size == 0:
        report.update(before={}, after={})
        return report
    t = fit_temperature(logits[fit], labels[fit])
    obj = None if objectness is None else np.asarray(objectness, dtype=np.float64)[held]
    report["temperature"] = float(t)
    k = logits.shape[1]
    fit_acc = float((logits[fit].argmax(axis=1) == labels[fit]).mean())
    warning = bound_warning(t, fit_acc, k)
    if warning:
        report["warning"] = warning
    report["before"] = metrics_from_stats(
        sample_stats_from_logits(logits[held], labels[held]), obj, k
    )
    report["after"] = metrics_from_stats(
        sample_stats_from_logits(logits[held], labels[held], t), obj, k
    )
    return report
