"""Opening a database: paths and URLs, SQLite settings, schema version, and refusing what cannot work."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from atomabench.errors import UserError
from atomabench.paths import DB_ENV
from atomabench.records import SCHEMA_VERSION
from atomabench.store import Store, open_store

from .factories import make_run, make_scenario
from .sql import fetch_all


def _files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def test_a_file_database_is_in_wal_mode_with_foreign_keys_on(db_path: Path) -> None:
    with open_store(db_path) as store, sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        with store._engine.connect() as pooled:  # every pooled connection gets both pragmas
            assert pooled.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert pooled.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "results.db"

    with open_store(path) as opened:
        opened.start_run(make_run())

    assert path.is_file()


def test_a_sqlalchemy_url_and_a_plain_path_open_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "results.db"
    with open_store(f"sqlite:///{path}") as by_url:
        by_url.start_run(make_run())

    with open_store(str(path)) as by_path:
        assert [summary.run_id for summary in by_path.list_runs()] == ["run-0001"]


def test_no_url_means_the_default_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "from-env.db"
    monkeypatch.setenv(DB_ENV, str(path))

    with open_store() as opened:
        opened.start_run(make_run())

    assert path.is_file()
    assert opened.url == str(path)


def test_in_memory_sqlite_works() -> None:
    with open_store("sqlite://") as opened:
        opened.start_run(make_run())
        opened.add_scenario("run-0001", make_scenario())
        assert opened.get_run("run-0001").scenarios[0].name == "chat"


def test_a_new_database_records_its_schema_version(store: Store) -> None:
    meta = dict(fetch_all(store, "SELECT key, value FROM meta"))

    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert meta["atomabench_version"] == "0.1.0"
    assert meta["created_at"].startswith("20")


def test_tables_and_indexes(store: Store) -> None:
    inspector = inspect(store._engine)
    indexed = {
        table: {tuple(index["column_names"]) for index in inspector.get_indexes(table)}
        | {tuple(inspector.get_pk_constraint(table)["constrained_columns"])}
        for table in inspector.get_table_names()
    }

    assert {
        "meta",
        "runs",
        "hardware",
        "scenarios",
        "requests",
        "latency_stats",
        "determinism_results",
    } <= set(indexed)
    assert ("scenario_id", "position") in indexed["determinism_results"]
    assert ("started_at",) in indexed["runs"]
    assert ("run_id",) in indexed["hardware"]
    assert ("run_id",) in indexed["scenarios"]
    assert ("scenario_id", "position") in indexed["requests"]
    assert ("scenario_id", "metric", "stat") in indexed["latency_stats"]
    scenario_columns = {column["name"] for column in inspector.get_columns("scenarios")}
    assert {"output_throughput", "peak_device_bytes", "energy_joules", "invalid_reason"} <= scenario_columns


def test_reopening_keeps_the_data(db_path: Path) -> None:
    with open_store(db_path) as first:
        first.start_run(make_run())
    with open_store(db_path) as second:
        assert second.get_run("run-0001").run.suite == "smoke"


def test_a_different_schema_version_is_refused(db_path: Path) -> None:
    open_store(db_path).close()
    with sqlite3.connect(db_path) as connection:
        connection.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")

    with pytest.raises(UserError) as caught:
        open_store(db_path)

    assert caught.value.field == "schema_version"
    assert caught.value.path == str(db_path)
    assert f"schema version 999, but atomabench 0.1.0 reads version {SCHEMA_VERSION}" in str(caught.value)
    assert db_path.exists()  # refused, not removed


def test_a_database_of_another_program_is_refused(db_path: Path) -> None:
    with sqlite3.connect(db_path) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")

    with pytest.raises(UserError, match=r"other tables \(invoices\)"):
        open_store(db_path)

    with sqlite3.connect(db_path) as connection:
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("invoices",)]


@pytest.mark.parametrize("below_the_file", ["results.db", "sub/dir/results.db"])
def test_a_path_under_a_regular_file_is_a_user_error_and_creates_nothing(
    tmp_path: Path, below_the_file: str
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("plain file")
    path = blocker / below_the_file

    with pytest.raises(UserError) as caught:
        open_store(path)

    assert caught.value.field == "db"
    assert caught.value.path == str(path)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"{path}: db: cannot open the results database: ")
    assert _files_under(tmp_path) == ["not-a-dir"]
    assert blocker.read_text() == "plain file"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_read_only_directory_is_a_user_error_and_creates_nothing(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for path in (locked / "results.db", locked / "new" / "results.db"):
            with pytest.raises(UserError) as caught:
                open_store(path)
            assert caught.value.field == "db"
        assert _files_under(tmp_path) == ["locked"]
    finally:
        locked.chmod(0o755)


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        open_store(tmp_path)

    assert caught.value.field == "db"
    assert _files_under(tmp_path) == []


def test_a_file_that_is_not_a_database_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("this is not SQLite " * 20)

    with pytest.raises(UserError, match="file is not a database"):
        open_store(path)

    assert _files_under(tmp_path) == ["notes.db"]


@pytest.mark.parametrize(
    "url",
    [
        "nosuchdialect://host/db",
        "postgresql://bench:s3cret@127.0.0.1:1/atomabench",  # no driver installed, or nothing listening
    ],
)
def test_a_url_that_cannot_connect_is_one_line_without_the_password(url: str) -> None:
    with pytest.raises(UserError) as caught:
        open_store(url)

    message = str(caught.value)
    assert caught.value.field == "db"
    assert "\n" not in message
    assert "s3cret" not in message
    assert "cannot open the results database" in message


def test_a_malformed_url_is_a_user_error() -> None:
    with pytest.raises(UserError) as caught:
        open_store("postgresql://bench@host:notaport/db")

    assert caught.value.field == "db"
    assert "not a database path or SQLAlchemy URL" in str(caught.value)


def test_store_is_a_context_manager(db_path: Path) -> None:
    with open_store(db_path) as opened:
        assert isinstance(opened, Store)
        opened.start_run(make_run())

    assert repr(opened) == f"Store({str(db_path)!r})"
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("SELECT run_id, status FROM runs").fetchall() == [("run-0001", "running")]


def test_a_first_open_that_died_before_writing_meta_is_finished(db_path: Path) -> None:
    """Before migrations a first open ran its DDL outside a transaction and could die half way."""
    open_store(db_path).close()
    with sqlite3.connect(db_path) as connection:
        connection.execute("DELETE FROM meta")
        connection.execute("DROP TABLE alembic_version")
        connection.execute("DROP TABLE latency_stats")

    with open_store(db_path) as reopened:
        reopened.start_run(make_run())
        reopened.add_scenario("run-0001", make_scenario())

    with sqlite3.connect(db_path) as connection:
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
    assert meta["schema_version"] == str(SCHEMA_VERSION)


def test_the_schema_compiles_for_postgresql() -> None:
    """The DDL renders with the intended types even where no server runs (tests/store runs on one too)."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    from atomabench.store.schema import Base

    ddl = {
        name: str(CreateTable(table).compile(dialect=postgresql.dialect()))
        for name, table in Base.metadata.tables.items()
    }

    assert "started_at TIMESTAMP WITH TIME ZONE NOT NULL" in ddl["runs"]
    assert "backend_settings JSON NOT NULL" in ddl["runs"]
    assert "output_throughput DOUBLE PRECISION" in ddl["scenarios"]
    assert "peak_device_bytes BIGINT" in ddl["scenarios"]
    assert "logprobs JSON," in ddl["requests"]
    assert "token_times JSON NOT NULL" in ddl["requests"]
    assert "FOREIGN KEY(scenario_id) REFERENCES scenarios (id) ON DELETE CASCADE" in ddl["latency_stats"]
