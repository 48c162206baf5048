"""Figures of the evaluation, drawn with matplotlib's Agg canvas (no display, no pyplot
state): reliability diagrams and confidence-vs-objectness scatter plots.

Each function returns the figure as an H x W x 3 uint8 RGB array; :func:`save_png`
writes such an array through PathManager and :func:`to_chw_float` turns it into what
``EventStorage.put_image`` expects (3 x H x W float32 in [0, 1]).
"""

import io
from typing import Dict, Optional, Sequence

import numpy as np
from detectron2.utils.file_io import PathManager

__all__ = [
    "reliability_diagram",
    "reliability_figure",
    "objectness_scatter",
    "save_png",
    "to_chw_float",
    "figure_to_array",
]


def _new_figure(width: float, height: float, dpi: int = 100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def figure_to_array(fig) -> np.ndarray:
    """Render a matplotlib figure (Agg canvas) to an H x W x 3 uint8 RGB array."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def reliability_diagram(
    bins: Dict[str, np.ndarray], metrics: Optional[Dict[str, float]] = None, title: str = ""
) -> np.ndarray:
    """Reliability diagram over a confidence histogram (:func:`reliability_figure`),
    rendered: H x W x 3 uint8."""
    return figure_to_array(reliability_figure(bins, metrics, title))


def reliability_figure(
    bins: Dict[str, np.ndarray], metrics: Optional[Dict[str, float]] = None, title: str = ""
):
    """The matplotlib Figure of :func:`reliability_diagram`.

    Args:
        bins: equal-width bin statistics (``calibration.bin_statistics``): ``edges``,
            ``count``, ``accuracy``, ``confidence``.
        metrics: optional ``calibration_metrics`` dict; acc, avg_conf, and ECE and MCE of
            the same bin count, pycalib's (the paper's, the tables' lead) then Guo's, are
            written in a box (gid ``"stats"``).

    Top: accuracy per bin (blue bars), gap to the bin's mean confidence (red, hatched),
    the diagonal of perfect calibration. Bottom: fraction of samples per bin, with the
    accuracy and the average confidence as vertical lines. The legends and the stats box
    sit in a column right of the plots, where no bar can be: bars fill any corner (an
    under-confident model's reach the top left, an over-confident one's the bottom right).
    """
    edges = np.asarray(bins["edges"], dtype=np.float64)
    count = np.asarray(bins["count"])
    nonempty = count > 0
    acc = np.where(nonempty, bins["accuracy"], 0.0)
    conf = np.where(nonempty, bins["confidence"], 0.0)
    left, width = edges[:-1], np.diff(edges)
    centre = left + width / 2
    b = len(count)
    outside = {
        "loc": "upper left",
        "bbox_to_anchor": (1.03, 1.0),
        "borderaxespad": 0.0,
        "fontsize": 7,
    }

    fig = _new_figure(6.4, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    top.bar(
        left,
        acc,
        width=width,
        align="edge",
        color="#3b75af",
        edgecolor="#1f3f60",
        linewidth=0.5,
        label="accuracy",
    )
    gap_lo, gap_hi = np.minimum(acc, conf), np.maximum(acc, conf)
    top.bar(
        left[nonempty],
        (gap_hi - gap_lo)[nonempty],
        bottom=gap_lo[nonempty],
        width=width[nonempty],
        align="edge",
        facecolor="none",
        edgecolor="#d03030",
        hatch="///",
        linewidth=0.8,
        label="gap to confidence",
    )
    top.plot(centre[nonempty], conf[nonempty], "k.", markersize=3, label="mean confidence")
    top.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(**outside)
    if metrics:
        lines = [f"N = {metrics.get('num_samples', int(count.sum()))}"]
        for key, label in (
            ("acc", "acc"),
            ("avg_conf", "avg conf"),
            (f"paper_ece_{b}", f"ECE({b}) pycalib"),
            (f"paper_mce_{b}", f"MCE({b}) pycalib"),
            (f"ece_{b}", f"ECE({b}) Guo"),
            (f"mce_{b}", f"MCE({b}) Guo"),
        ):
            if key in metrics:
                lines.append(f"{label} = {metrics[key]:.4f}")
        top.text(
            1.03,
            0.0,
            "\n".join(lines),
            transform=top.transAxes,
            ha="left",
            va="bottom",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "#c0c0c0"},
            gid="stats",
        )
    if title:
        top.set_title(title, fontsize=9)

    frac = count / max(int(count.sum()), 1)
    bottom.bar(
        left, frac, width=width, align="edge", color="#808080", edgecolor="#404040", linewidth=0.5
    )
    if metrics:
        if np.isfinite(metrics.get("acc", np.nan)):
            bottom.axvline(
                metrics["acc"], color="#3b75af", linestyle="-", linewidth=1.2, label="accuracy"
            )
        if np.isfinite(metrics.get("avg_conf", np.nan)):
            bottom.axvline(
                metrics["avg_conf"],
                color="#e0504a",
                linestyle="--",
                linewidth=1.2,
                label="avg confidence",
            )
        if bottom.get_legend_handles_labels()[0]:
            bottom.legend(**outside)
    bottom.set_xlabel("confidence (max probability)")
    bottom.set_ylabel("fraction of samples")
    fig.tight_layout()
    return fig


def objectness_scatter(
    panels: Sequence[Dict[str, np.ndarray]],
    titles: Sequence[str],
    max_points: int = 5000,
    seed: int = 0,
) -> np.ndarray:
    """Confidence vs objectness, one panel per model.

    Args:
        panels: per model ``{"confidence": N, "objectness": N (NaN = unknown),
            "correct": N bool}``; samples with unknown objectness are left out.
        titles: one per panel.
        max_points: at most this many points per panel (a seeded subsample).

    Right predictions are blue, wrong ones red; the diagonal is confidence =
    objectness, and the title carries the mean |confidence - objectness|.
    """
    n = max(len(panels), 1)
    fig = _new_figure(3.4 * n, 3.6)
    axes = np.atleast_1d(fig.subplots(1, n, squeeze=False)[0])
    rng = np.random.default_rng(seed)
    for ax, panel, title in zip(axes, panels, titles):
        conf = np.asarray(panel["confidence"], dtype=np.float64)
        obj = np.asarray(panel["objectness"], dtype=np.float64)
        correct = np.asarray(panel["correct"], dtype=bool)
        known = np.flatnonzero(~np.isnan(obj))
        if known.size > max_points:
            known = np.sort(rng.choice(known, max_points, replace=False))
        for mask, colour, label in (
            (correct[known], "#3b75af", "right"),
            (~correct[known], "#e0504a", "wrong"),
        ):
            idx = known[mask]
            ax.scatter(obj[idx], conf[idx], s=6, c=colour, alpha=0.6, linewidths=0, label=label)
        ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("objectness")
        ax.set_ylabel("confidence")
        dev = float(np.abs(conf[known] - obj[known]).mean()) if known.size else float("nan")
        ax.set_title(f"{title}\nmean |conf - obj| = {dev:.3f}", fontsize=8)
        ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return figure_to_array(fig)


def threshold_curves(
    risk_coverage: Dict[str, Dict[str, np.ndarray]],
    roc: Dict[str, Dict[str, np.ndarray]],
    deciles: Optional[Dict[str, Sequence[Dict]]] = None,
) -> np.ndarray:
    """Selective risk against coverage (``risk_coverage``: label -> ``{"coverage", "risk"}``,
    :func:`~als_d2.evaluation.thresholds.risk_coverage_points`), the ROC of images with
    objects against their context-only versions by maximum softmax (``roc``: label ->
    ``{"fpr", "tpr"}``, ``thresholds.roc_points``) and, with ``deciles`` (label -> rows of
    :func:`~als_d2.evaluation.confidence_objectness.objectness_deciles`), mean confidence
    against mean objectness per decile."""
    fig = _new_figure(13.5 if deciles else 9.0, 3.8)
    axes = fig.subplots(1, 3 if deciles else 2)
    ax_rc, ax_roc = axes[0], axes[1]
    if deciles:
        ax_dec = axes[2]
        for label, rows in deciles.items():
            x = [r["mean_objectness"] for r in rows]
            ax_dec.plot(x, [r["mean_confidence"] for r in rows], marker="o", ms=3, label=label)
        ax_dec.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
        ax_dec.set(xlabel="mean objectness (decile)", ylabel="mean confidence (max softmax)")
        ax_dec.set(xlim=(0, 1), ylim=(0, 1), title="Confidence by objectness decile")
        ax_dec.legend(fontsize=7, loc="best")
    for label, c in risk_coverage.items():
        ax_rc.step(c["coverage"], c["risk"], where="pre", label=label)
    ax_rc.set(xlabel="coverage (accepted / all)", ylabel="selective risk (errors / accepted)")
    ax_rc.set(xlim=(0, 1), ylim=(0, 1), title="Risk-coverage (max softmax)")
    for label, c in roc.items():
        ax_roc.plot(c["fpr"], c["tpr"], label=label)
    ax_roc.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
    ax_roc.set(xlabel="context-only images accepted (FPR)", ylabel="images with objects (TPR)")
    ax_roc.set(xlim=(0, 1), ylim=(0, 1), title="With objects vs context-only (max softmax)")
    for ax, curves in ((ax_rc, risk_coverage), (ax_roc, roc)):
        if curves:
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "no set / pair", ha="center", va="center", color="0.5")
    fig.tight_layout()
    return figure_to_array(fig)


def save_png(image: np.ndarray, path: str) -> None:
    """Write an H x W x 3 uint8 array as a PNG (through PathManager)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    with PathManager.open(path, "wb") as f:
        f.write(buf.getvalue())


def to_chw_float(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 -> 3 x H x W float32 in [0, 1] (``EventStorage.put_image``)."""
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0
