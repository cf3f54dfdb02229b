"""Command-line options every room's commands share, declared once so they read the same everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", envvar="ATOMABENCH_DB", help="SQLite path or SQLAlchemy URL (default: per-user SQLite)."
    ),
]
