"""The shared markdown table printer (als_d2/evaluation/tables.py), checked against tables
written out by hand."""

import math

import pytest

from als_d2.evaluation.tables import format_spread, format_value, markdown_table


def test_table_with_title_note_and_alignment():
    text = markdown_table(
        ["Method", "AP"],
        [["hard", "0.312"], ["als", "**0.333**"]],
        title="Table 4",
        note="AP in fractions.",
        align=["left", "right"],
    )
    assert text == (
        "**Table 4**\n\n"
        "| Method | AP |\n"
        "|:---|---:|\n"
        "| hard | 0.312 |\n"
        "| als | **0.333** |\n\n"
        "AP in fractions."
    )


def test_table_without_title_has_default_rules():
    assert markdown_table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_a_row_of_the_wrong_width_is_an_error():
    with pytest.raises(ValueError, match="1 cells for 2 columns"):
        markdown_table(["a", "b"], [["1"]])


def test_values_and_spreads():
    assert format_value(0.123456) == "0.1235"
    assert format_value(0.5, digits=1) == "0.5"
    assert format_value(None) == format_value(math.nan) == "n/a"
    assert format_spread(0.25, (0.2, 0.3)) == "0.250 (0.200-0.300)"
    assert format_spread(0.25, (0.25, 0.25)) == "0.250"  # one seed
    assert format_spread(0.25, None) == "0.250"
    assert format_spread(0.25, (math.nan, 0.3)) == "0.250"


def _table(text: str, title: str):
    """The rows of the markdown table under ``**title...**`` in ``text``: [{header: cell}]."""
    block = text.split(f"**{title}")[1].split("\n\n")[1]
    lines = [line.strip("|").split("|") for line in block.splitlines()]
    header = [h.strip() for h in lines[0]]
    return [dict(zip(header, (c.strip() for c in cells))) for cells in lines[2:]]


def test_eval_cls_tables_put_each_metric_under_its_header():
    """tools/eval_cls.py's Table 1 and Table 2 of known predictions: each cell against the
    paper's definitions computed here (section 4.2; als_d2/evaluation/calibration.py):
    O.conf = mean confidence of the wrong predictions, U.conf = mean (1 - confidence) of the
    right ones, A.conf = mean confidence, ACC = fraction right. The predictions make the
    four values far apart, so a swapped column cannot pass."""
    import numpy as np

    from als_d2.evaluation.calibration import calibration_metrics
    from tiny_data import load_tool

    rng = np.random.default_rng(0)
    n, k = 200, 4
    labels = rng.integers(0, k, n)
    right = np.arange(n) < 150  # 75 % right, at confidence ~0.55; wrong at ~0.9
    conf = np.where(right, rng.uniform(0.5, 0.6, n), rng.uniform(0.85, 0.95, n))
    predicted = np.where(right, labels, (labels + 1 + rng.integers(0, k - 1, n)) % k)
    probs = np.tile(((1 - conf) / (k - 1))[:, None], (1, k))
    probs[np.arange(n), predicted] = conf
    expected = {
        "ACC": right.mean(),
        "O.conf": conf[~right].mean(),
        "U.conf": (1 - conf[right]).mean(),
        "A.conf": conf.mean(),
    }
    assert min(abs(a - b) for a in expected.values() for b in expected.values() if a != b) > 0.05

    metrics = calibration_metrics(probs, labels)
    results = {("hard", "val_context"): metrics, ("hard", "val"): metrics}
    text = load_tool("eval_cls").format_tables(results, ["val_context"])
    (table1,) = _table(text, "Table 1")
    (table2,) = _table(text, "Table 2")
    assert table1["Val"] == "val_context" and table2["Val"] == "val"
    for table in (table1, table2):
        for header, value in expected.items():
            assert float(table[header]) == pytest.approx(value, abs=5e-5), header
