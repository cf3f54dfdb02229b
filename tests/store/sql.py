"""Raw SQL on whatever database a ``Store`` opened, for tests that look under the records."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text

from atomabench.store import Store

PG_URL_ENV = "ATOMABENCH_TEST_PG_URL"


def fetch_all(store: Store, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with store._engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql), params)]


def row_count(store: Store, table: str) -> int:
    return fetch_all(store, f"SELECT count(*) FROM {table}")[0][0]


def postgres_schema_url() -> Iterator[str]:
    """A URL whose ``search_path`` is a fresh schema on the test server; the schema is dropped after."""
    server = os.environ.get(PG_URL_ENV)
    if not server:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {PG_URL_ENV} is not: source .ci/postgres.sh before the tests")
        pytest.skip(f"PostgreSQL tests need {PG_URL_ENV} (source .ci/postgres.sh)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server)
    try:
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        url = make_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()
