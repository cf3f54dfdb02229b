"""``atomabench report`` as a user runs it: where the site went, a JSON summary, Markdown, mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atomabench.cli import app, main
from atomabench.store import open_store

from .conftest import fill_small_store

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "results.db"
    with open_store(path) as store:
        fill_small_store(store)
    return str(path)


def test_report_html_prints_where_and_a_summary(db: str, tmp_path: Path) -> None:
    out = tmp_path / "site"
    result = runner.invoke(app, ["report", "--db", db, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote the leaderboard site to {out / 'index.html'}" in result.output.replace("\n", "")
    assert "3 runs (6 scenarios, 3 hardware classes), 3 run pages" in result.output
    assert (out / "runs" / "run-a.html").is_file()


def test_report_json_summary(db: str, tmp_path: Path) -> None:
    out = tmp_path / "site"
    result = runner.invoke(app, ["report", "--db", db, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["format"] == "html"
    assert summary["index"] == str(out / "index.html")
    assert (summary["runs"], summary["run_pages"], summary["skipped_runs"]) == (3, 3, 1)
    assert summary["seconds"] >= 0


def test_report_default_out_dir_is_reports_site(db: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["report", "--db", db])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "site" / "index.html").is_file()


def test_report_markdown_to_stdout_and_file(db: str, tmp_path: Path) -> None:
    printed = runner.invoke(app, ["report", "--db", db, "--format", "markdown"])
    assert printed.exit_code == 0, printed.output
    assert printed.output.startswith("| Hardware class |")
    assert len(printed.output.splitlines()) == 5
    target = tmp_path / "table.md"
    written = runner.invoke(app, ["report", "--db", db, "-f", "markdown", "-o", str(target), "--json"])
    assert written.exit_code == 0, written.output
    assert json.loads(written.output) == {
        "format": "markdown",
        "database": db,
        "path": str(target),
        "rows": 3,
    }
    assert target.read_text() == printed.output


def test_unknown_format_is_one_line_exit_2(db: str, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["atomabench", "report", "--db", db, "--format", "pdf"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.strip() == "atomabench: error: format: unknown report format 'pdf'; choose one of html, markdown"
    )


def test_missing_database_is_an_error_not_a_new_file(tmp_path: Path, capsys, monkeypatch) -> None:
    missing = tmp_path / "typo.db"
    monkeypatch.setattr("sys.argv", ["atomabench", "report", "--db", str(missing)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert "no results database here" in capsys.readouterr().err
    assert not missing.exists()
