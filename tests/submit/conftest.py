"""Ingest tests run on SQLite and, with ``ATOMABENCH_TEST_PG_URL`` set, on PostgreSQL (see tests/store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.sql import postgres_schema_url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'leaderboard.db'}"
        return
    yield from postgres_schema_url()


@pytest.fixture(autouse=True)
def _private_key_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keys made by tests go to a temporary folder, never the real per-user config dir."""
    folder = tmp_path / "keys"
    monkeypatch.setenv("ATOMABENCH_KEY_DIR", str(folder))
    return folder
