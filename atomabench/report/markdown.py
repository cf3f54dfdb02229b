"""The leaderboard as a Markdown table, for READMEs and issue comments.

Cells are HTML-escaped and pipes are escaped, so a model named ``<script>`` or ``a|b`` renders as text
in one cell on any Markdown host.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from atomabench.report.data import collect
from atomabench.report.site import COLUMNS, _bytes

if TYPE_CHECKING:
    from atomabench.records import HardwareProfile
    from atomabench.store import Store


def markdown_cell(value: Any, kind: str) -> str:
    """One cell: formatted like the site, '–' when absent, safe inside a Markdown table."""
    if value is None:
        return "–"
    if kind == "bytes":
        text = _bytes(float(value))
    elif kind == "usd":
        text = f"${value:.3g}"
    elif kind == "g3":
        text = f"{value:.3g}"
    elif kind in ("f1", "f2"):
        text = f"{value:,.{int(kind[1:])}f}"
    else:
        text = str(value)
    return escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def build_markdown(
    store: Store, *, limit: int | None = None, profiles: dict[str, HardwareProfile] | None = None
) -> str:
    """The leaderboard, fastest output throughput first (runs without one last); ``limit`` rows at most."""
    rows = collect(store, profiles).rows
    rows.sort(key=lambda row: (row["output_tok_s"] is None, -(row["output_tok_s"] or 0.0), row["run_id"]))
    shown = rows if limit is None else rows[:limit]
    lines = [
        "| " + " | ".join(column.label for column in COLUMNS) + " |",
        "|" + "|".join("---:" if column.kind != "text" else "---" for column in COLUMNS) + "|",
    ]
    lines.extend(
        "| " + " | ".join(markdown_cell(row[column.key], column.kind) for column in COLUMNS) + " |"
        for row in shown
    )
    if len(shown) < len(rows):
        lines.append("")
        lines.append(f"{len(shown)} of {len(rows)} runs shown.")
    return "\n".join(lines) + "\n"
