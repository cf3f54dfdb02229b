"""The ``report`` command: build the leaderboard site (or its Markdown table) from a results database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atomabench.cli_options import DbOption
from atomabench.errors import UserError

FORMATS = ("html", "markdown")


def report(
    db: DbOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="html: folder for the site (default reports/site); markdown: file (default: stdout).",
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="html (static site) or markdown (one table).")
    ] = "html",
    json_output: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary instead of text.")
    ] = False,
) -> None:
    """Build the static leaderboard site from stored runs (works from file:// and any static host)."""
    from atomabench import console
    from atomabench.report import DEFAULT_OUT, build_markdown, build_site
    from atomabench.store import open_store

    if fmt not in FORMATS:
        raise UserError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}", field="format")
    _require_existing(db)
    with open_store(db) as store:
        if fmt == "html":
            summary = build_site(store, out if out is not None else DEFAULT_OUT)
            if json_output:
                console.print_json({"format": fmt, "database": store.url, **summary.to_json_dict()})
            else:
                console.stdout.print(f"wrote the leaderboard site to {summary.index}")
                console.stdout.print(summary.one_line(), highlight=False)
            return
        table = build_markdown(store)
        url = store.url
    rows = max(table.count("\n") - 2, 0)
    if out is None:
        if json_output:
            console.print_json({"format": fmt, "database": url, "path": None, "markdown": table})
        else:
            print(table, end="")
        return
    path = out / "leaderboard.md" if out.is_dir() else out
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(table, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the table: {exc.strerror or exc}", path=path, field="out") from None
    if json_output:
        console.print_json({"format": fmt, "database": url, "path": str(path), "rows": rows})
    else:
        console.stdout.print(f"wrote the leaderboard table to {path} ({rows} runs)", highlight=False)


def _require_existing(db: str | None) -> None:
    """A report reads results: a database file that does not exist is a typo, not a new empty store."""
    from atomabench.paths import default_database_url

    url = db if db is not None else default_database_url()
    if "://" not in url and not Path(url).expanduser().exists():
        raise UserError(
            "no results database here; run `atomabench run` first or pass --db", path=url, field="db"
        )


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""
    app.command("report")(report)
