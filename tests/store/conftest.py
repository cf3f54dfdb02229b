"""Store fixtures: every test that takes ``store`` (or ``store_url``) runs on SQLite and on PostgreSQL.

PostgreSQL is used when ``ATOMABENCH_TEST_PG_URL`` names a server (``source .ci/postgres.sh`` starts
one); each test gets a schema of its own, dropped afterwards. Without the URL the PostgreSQL cases
are skipped, except under CI (``CI`` set), where they fail so that CI can never skip them silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from atomabench.store import Store, open_store

from .sql import postgres_schema_url


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, db_path: Path) -> Iterator[str]:
    """A database URL for a new, empty results database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{db_path}"
        return
    yield from postgres_schema_url()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened
