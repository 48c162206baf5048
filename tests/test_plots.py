"""The reliability diagram's stats box and legends never cover a bar: checked on the
rendered figure (window extents from its renderer) for bars in every corner."""

import numpy as np
import pytest
from matplotlib.patches import Rectangle

from als_d2.evaluation.calibration import bin_statistics, calibration_metrics
from als_d2.evaluation.plots import reliability_diagram, reliability_figure


def _bins(kind: str, b: int = 15):
    """Bin statistics whose bars fill a corner: 'under' = accurate at low confidence (bars
    up to 1 at the top left), 'over' = confident and wrong, 'full' = every bin at 1."""
    edges = np.linspace(0.0, 1.0, b + 1)
    count = np.full(b, 10)
    conf = (edges[:-1] + edges[1:]) / 2
    acc = {"under": np.ones(b), "over": np.linspace(1.0, 0.0, b) ** 0.2, "full": np.ones(b)}[kind]
    if kind == "over":
        count = np.r_[
            np.ones(b - 1, int), 1000
        ]  # the bottom histogram's last bar reaches the top right
    return {"edges": edges, "count": count, "accuracy": acc, "confidence": conf}


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("kind", ["under", "over", "full"])
def test_stats_box_and_legends_cover_no_bar(kind):
    metrics = {"num_samples": 150, "acc": 0.93, "avg_conf": 0.41, "ece_15": 0.52, "mce_15": 0.93}
    metrics.update(paper_ece_15=0.55, paper_mce_15=0.95)
    fig = reliability_figure(_bins(kind), metrics, title=f"{kind}-confident")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (stats,) = [t for t in fig.findobj() if getattr(t, "get_gid", lambda: None)() == "stats"]
    boxes = [stats.get_bbox_patch().get_window_extent(renderer)]
    boxes += [ax.get_legend().get_window_extent(renderer) for ax in fig.axes]
    bars = [
        p.get_window_extent(renderer)
        for ax in fig.axes
        for p in ax.patches
        if isinstance(p, Rectangle) and p.get_height() > 0
    ]
    assert len(bars) >= 15
    width, height = fig.canvas.get_width_height()
    for box in boxes:
        assert not any(_overlap(box, bar) for bar in bars), (kind, box)
        assert 0 <= box.x0 and box.x1 <= width and 0 <= box.y0 and box.y1 <= height  # on the figure
    # the estimators named, the paper's (pycalib, the tables' lead) first
    assert stats.get_text().split("\n") == [
        "N = 150",
        "acc = 0.9300",
        "avg conf = 0.4100",
        "ECE(15) pycalib = 0.5500",
        "MCE(15) pycalib = 0.9500",
        "ECE(15) Guo = 0.5200",
        "MCE(15) Guo = 0.9300",
    ]


def test_reliability_diagram_renders_real_statistics():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(5, 0.3), size=400)
    labels = rng.integers(0, 5, 400)
    bins = bin_statistics(probs.max(axis=1), probs.argmax(axis=1) == labels, 15)
    image = reliability_diagram(bins, calibration_metrics(probs, labels), title="t")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[1] > image.shape[0] * 0.9  # room for the column right of the plots
    assert image.min() < 64 and image.max() == 255  # drawn, not blank
