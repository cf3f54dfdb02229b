"""Alembic environment of the results database.

atomabench runs it through :mod:`atomabench.store.migrate` (Alembic's ``Config`` and ``command`` API),
so no ``alembic.ini`` is needed anywhere: ``open_store`` hands over its own connection in
``config.attributes["connection"]``. A developer can also point it at a URL with the
``sqlalchemy.url`` main option, e.g. to autogenerate the next revision (see ``docs/store.md``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from atomabench.store.schema import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as own_connection:
            _run(own_connection)
    finally:
        engine.dispose()


def _run_offline() -> None:
    """``alembic upgrade --sql``: print the DDL for a DBA instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
