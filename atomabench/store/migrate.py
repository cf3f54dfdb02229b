"""Alembic migrations of the results database, driven from code (no ``alembic.ini`` in any cwd).

``open_store`` only imports this module when a database has to change: Alembic itself takes about
0.4 s to import, so a brand-new database is created with ``Base.metadata.create_all`` and stamped
with :data:`HEAD_REVISION` directly (a test checks that this is exactly what upgrading gives), and
an up-to-date one is recognised by reading ``alembic_version``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, MetaData, PrimaryKeyConstraint, String, Table, insert

from atomabench.store.schema import Base

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

HEAD_REVISION = "0001"
"""The newest revision in ``migrations/versions``; ``tests/store/test_migrations.py`` keeps it honest."""

VERSION_TABLE = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
"""Alembic's own bookkeeping table, defined the way Alembic creates it."""


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Any:
    """An Alembic ``Config`` for our migrations: on an open ``connection``, else on ``url``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def known_revisions() -> set[str]:
    """Every revision id this atomabench has a migration for."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    return {script.revision for script in scripts.walk_revisions()}


def upgrade(connection: Connection, target: str = "head") -> None:
    """Run every migration from the database's revision to ``target`` on ``connection``."""
    from alembic import command

    command.upgrade(alembic_config(connection=connection), target)


def stamp_head(connection: Connection) -> None:
    """Record that the tables already are at :data:`HEAD_REVISION` (after ``create_all``)."""
    VERSION_TABLE.create(connection, checkfirst=True)
    connection.execute(insert(VERSION_TABLE).values(version_num=HEAD_REVISION))


def schema_differences(connection: Connection) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match ``Base.metadata``."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)
