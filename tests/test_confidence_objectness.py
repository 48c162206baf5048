"""Confidence by objectness decile and its rank correlation, against scipy and by hand."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from als_d2.evaluation.confidence_objectness import (
    conf_objectness_spearman,
    objectness_deciles,
    spearman,
)


@pytest.mark.parametrize("ties", [False, True])
def test_spearman_matches_scipy(ties):
    rng = np.random.default_rng(0)
    x = rng.random(500)
    y = x + rng.normal(scale=0.3, size=500)
    if ties:
        x, y = np.round(x, 1), np.round(y, 1)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


def test_unknown_objectness_is_left_out():
    conf = np.array([0.2, 0.5, 0.9, 0.99])
    obj = np.array([0.1, 0.4, 0.8, np.nan])
    assert conf_objectness_spearman(conf, obj) == pytest.approx(1.0)
    assert np.isnan(spearman([1.0], [2.0])) and np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_deciles_by_hand():
    """23 samples (one unknown): 22 known -> chunks of 3, 3, 2, ... (np.array_split)."""
    obj = np.r_[np.linspace(0, 1, 22), np.nan]
    conf = np.r_[np.linspace(0.1, 0.9, 22), 0.5]
    correct = np.r_[np.arange(22) % 2 == 0, True]
    rows = objectness_deciles(conf, correct, obj)
    assert [r["count"] for r in rows] == [3, 3, 2, 2, 2, 2, 2, 2, 2, 2]
    first = rows[0]
    assert first["mean_objectness"] == pytest.approx(obj[:3].mean())
    assert first["mean_confidence"] == pytest.approx(conf[:3].mean())
    assert first["accuracy"] == pytest.approx(2 / 3)
    assert (first["objectness_min"], first["objectness_max"]) == (0.0, obj[2])
    assert rows[-1]["objectness_max"] == 1.0
    assert len(objectness_deciles(conf[:4], correct[:4], obj[:4])) == 4  # empty chunks left out
