"""Markdown tables, the one printer of ``tools/eval_cls.py``, ``tools/compare_transfer.py``
and ``tools/demo.py``: cells are strings the caller formats (with :func:`format_value`)."""

import math
from typing import Optional, Sequence, Tuple

MISSING = "n/a"


def format_value(value, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals; :data:`MISSING` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:.{digits}f}"


def format_spread(mean, spread: Optional[Tuple[float, float]], digits: int = 3) -> str:
    """``"mean (min-max)"`` over seeds; just the mean when there is no spread (one seed)."""
    if spread is None or spread[0] == spread[1] or MISSING in map(format_value, spread):
        return format_value(mean, digits)
    low, high = (format_value(v, digits) for v in spread)
    return f"{format_value(mean, digits)} ({low}-{high})"


def markdown_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    title: Optional[str] = None,
    note: Optional[str] = None,
    align: Optional[Sequence[str]] = None,
) -> str:
    """A GitHub markdown table: ``header`` (C strings), ``rows`` (lists of C strings), an
    optional bold ``title`` above and ``note`` paragraph below; ``align`` per column:
    ``"left"``, ``"right"`` or None (the renderer's default)."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells for {len(header)} columns: {row}")
    rule = {"left": ":---", "right": "---:", None: "---"}
    aligns = list(align) if align is not None else [None] * len(header)
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(rule[a] for a in aligns) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if note:
        lines += ["", note]
    return "\n".join(lines)
