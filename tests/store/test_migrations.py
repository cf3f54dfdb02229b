"""Alembic migrations: revision 0001 is exactly ``Base.metadata``, and ``open_store`` upgrades or refuses."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from atomabench.errors import UserError
from atomabench.records import SCHEMA_VERSION
from atomabench.store import migrate, open_store

from .factories import make_run, make_scenario
from .sql import fetch_all

_EXTRA_REVISION = '''
"""A test-only revision on top of head: adds a column to runs, which SQLite batch mode rebuilds."""
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def _recreate():
    # on SQLite rebuild the table (copy, DROP, RENAME), the case that can cascade into child rows
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade():
    with op.batch_alter_table("runs", recreate=_recreate()) as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("runs", recreate=_recreate()) as batch:
        batch.drop_column("note")
'''


def test_head_revision_constant_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migrate.alembic_config())

    assert scripts.get_heads() == [migrate.HEAD_REVISION]
    assert migrate.known_revisions() == {"0001"}


def test_upgrading_an_empty_database_to_head_gives_exactly_the_metadata(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        with engine.begin() as connection:
            migrate.upgrade(connection)
        with engine.connect() as connection:
            assert migrate.schema_differences(connection) == []
            assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0001"
    finally:
        engine.dispose()

    # atomabench then uses it as it is, adding only its meta rows
    with open_store(store_url) as store:
        store.start_run(make_run())
        store.add_scenario("run-0001", make_scenario())
        assert store.get_run("run-0001").scenarios[0].name == "chat"
        assert dict(fetch_all(store, "SELECT key, value FROM meta"))["schema_version"] == str(SCHEMA_VERSION)


def test_a_new_database_made_by_open_store_matches_the_migrations(store_url: str) -> None:
    with open_store(store_url) as store, store._engine.connect() as connection:
        assert migrate.schema_differences(connection) == []
        assert fetch_all(store, "SELECT version_num FROM alembic_version") == [("0001",)]


def test_downgrade_to_base_removes_every_table(store_url: str) -> None:
    open_store(store_url).close()
    engine = create_engine(store_url)
    try:
        with engine.begin() as connection:
            from alembic import command

            command.downgrade(migrate.alembic_config(connection=connection), "base")
        with engine.connect() as connection:
            from sqlalchemy import inspect

            assert set(inspect(connection).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()

    with open_store(store_url) as reopened:  # an empty database again: created afresh
        reopened.start_run(make_run())


def test_a_database_at_an_older_revision_is_upgraded_on_open(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plays the next release: a revision 9999 on top of today's head, and a database at 0001."""
    with open_store(store_url) as store:
        store.start_run(make_run())
        store.add_scenario("run-0001", make_scenario())
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "9999_test.py").write_text(_EXTRA_REVISION.format(head=migrate.HEAD_REVISION))
    plain_config = migrate.alembic_config

    def with_extra_revision(*args: object, **kwargs: object) -> object:
        config = plain_config(*args, **kwargs)  # type: ignore[arg-type]
        config.set_main_option("version_locations", f"{migrate.MIGRATIONS_DIR / 'versions'} {versions}")
        config.set_main_option("path_separator", "space")
        return config

    monkeypatch.setattr(migrate, "alembic_config", with_extra_revision)
    monkeypatch.setattr("atomabench.store.store.HEAD_REVISION", "9999")

    with open_store(store_url) as upgraded:
        assert fetch_all(upgraded, "SELECT version_num FROM alembic_version") == [("9999",)]
        assert fetch_all(upgraded, "SELECT count(note) FROM runs") == [(0,)]
        # rebuilding the parent table must not have cascaded into its children
        assert upgraded.get_run("run-0001").scenarios == (make_scenario(),)
        with upgraded._engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
            if connection.dialect.name == "sqlite":  # and foreign keys are on again afterwards
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_a_revision_this_atomabench_does_not_know_is_refused(store_url: str) -> None:
    with open_store(store_url) as store, store._engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))

    with pytest.raises(UserError) as caught:
        open_store(store_url)

    assert caught.value.field == "schema_version"
    assert "database is at migration ffff, which atomabench 0.1.0 does not know" in str(caught.value)


def test_a_schema_3_database_from_the_previous_release_is_refused(db_path: Path) -> None:
    """The previous release used create_all and no Alembic; its databases cannot be converted."""
    open_store(db_path).close()
    with sqlite3.connect(db_path) as connection:
        connection.execute("DROP TABLE alembic_version")
        connection.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")

    with pytest.raises(
        UserError, match=f"schema version 3, but atomabench 0.1.0 reads version {SCHEMA_VERSION}"
    ):
        open_store(db_path)

    with sqlite3.connect(db_path) as connection:  # refused, not stamped
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "alembic_version" not in tables


def test_unstamped_tables_that_differ_from_the_schema_are_refused(db_path: Path) -> None:
    open_store(db_path).close()
    with sqlite3.connect(db_path) as connection:
        connection.execute("DROP TABLE alembic_version")
        connection.execute("ALTER TABLE runs ADD COLUMN colour TEXT")

    with pytest.raises(UserError) as caught:
        open_store(db_path)

    assert caught.value.field == "schema_version"
    assert "database tables differ from schema version 4 (remove_column colour)" in str(caught.value)


def test_opening_a_new_or_current_sqlite_file_never_imports_alembic(tmp_path: Path) -> None:
    """Alembic takes ~0.4 s to import; the test suite and every CLI call open stores all the time."""
    script = textwrap.dedent(
        f"""
        import sys
        from atomabench.store import open_store
        open_store({str(tmp_path / "new.db")!r}).close()
        open_store({str(tmp_path / "new.db")!r}).close()
        print("alembic" in sys.modules)
        """
    )

    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert completed.stdout.strip() == "False"


def test_migrations_ship_inside_the_package() -> None:
    """The wheel takes the whole ``atomabench`` folder; env.py and the revisions must be plain files in it."""
    import atomabench

    folder = Path(atomabench.__file__).parent / "store" / "migrations"

    assert (folder / "env.py").is_file()
    assert (folder / "versions" / "0001_schema_4.py").is_file()
    assert folder.resolve() == migrate.MIGRATIONS_DIR
