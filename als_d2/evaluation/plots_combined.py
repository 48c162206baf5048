"""One reliability diagram with several models on it (the ALS paper's Figure 2 style),
drawn with matplotlib's Agg canvas like :mod:`.plots`; returns H x W x 3 uint8 RGB."""

from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from .plots import _new_figure, figure_to_array

__all__ = ["combined_reliability_diagram", "combined_reliability_figure"]

_COLOURS = ("#3b75af", "#e08a1e", "#2e9e4a", "#c0392b", "#8e44ad", "#7f8c8d")


def combined_reliability_diagram(
    curves: Mapping[str, Tuple[Dict[str, np.ndarray], Optional[Dict[str, float]]]], title: str = ""
) -> np.ndarray:
    """:func:`combined_reliability_figure`, rendered: H x W x 3 uint8 RGB."""
    return figure_to_array(combined_reliability_figure(curves, title))


def combined_reliability_figure(
    curves: Mapping[str, Tuple[Dict[str, np.ndarray], Optional[Dict[str, float]]]], title: str = ""
):
    """Accuracy against confidence for several models in one plot (a matplotlib Figure).

    Args:
        curves: {model name: (bins, metrics)}; ``bins`` are equal-width bin statistics
            (``calibration.bin_statistics``: ``edges``, ``count``, ``accuracy``,
            ``confidence``), ``metrics`` optional (``acc``, ``avg_conf`` and the ECE of
            the same bin count, pycalib's (the paper's) then Guo's, go into the legend).

    Top: per model, the accuracy of each non-empty bin at the bin's mean confidence, joined
    by a line (marker area ~ the bin's share of the samples), and the diagonal of perfect
    calibration: points under it are over-confident, over it under-confident; the legend's
    title says what the marker size means. Bottom: per model, the fraction of samples in
    each confidence bin (step lines).
    """
    fig = _new_figure(6.4, 6.4)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    top.plot([0, 1], [0, 1], "--", color="gray", linewidth=1, label="perfect calibration")
    for i, (name, (bins, metrics)) in enumerate(curves.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        edges = np.asarray(bins["edges"], dtype=np.float64)
        count = np.asarray(bins["count"], dtype=np.float64)
        nonempty = count > 0
        conf = np.asarray(bins["confidence"], dtype=np.float64)[nonempty]
        acc = np.asarray(bins["accuracy"], dtype=np.float64)[nonempty]
        share = count[nonempty] / max(count.sum(), 1.0)
        label = name
        if metrics:
            b = len(count)
            parts = [
                f"{k} {metrics[m]:.3f}"
                for k, m in (
                    ("acc", "acc"),
                    ("conf", "avg_conf"),
                    (f"ECE{b} pycalib", f"paper_ece_{b}"),
                    ("Guo", f"ece_{b}"),
                )
                if m in metrics and metrics[m] is not None and np.isfinite(metrics[m])
            ]
            label += " (" + ", ".join(parts) + ")" if parts else ""
        top.plot(conf, acc, "-", color=colour, linewidth=1.5, label=label)
        top.scatter(
            conf,
            acc,
            s=10 + 300 * share,
            color=colour,
            edgecolors="white",
            linewidths=0.5,
            zorder=3,
        )
        bottom.stairs(count / max(count.sum(), 1.0), edges, color=colour, linewidth=1.5)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.set_ylabel("accuracy")
    top.legend(
        loc="upper left",
        fontsize=7,
        title="marker area ~ the bin's share of the model's samples",
        title_fontsize=7,
    )
    if title:
        top.set_title(title, fontsize=9)
    bottom.set_xlabel("confidence (max probability)")
    bottom.set_ylabel("fraction of samples")
    fig.tight_layout()
    return fig
