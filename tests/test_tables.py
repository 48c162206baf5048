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
