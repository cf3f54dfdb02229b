"""Shared test setup: offline hub, the --runslow switch, and the tiny model and suite fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may come from a model hub, ever
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

TEST_DATA = Path(__file__).parent / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow (real model)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow real-model test: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _private_user_data(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read or write the real per-user data dir (measured profiles, default database)."""
    from atomabench import paths

    private = tmp_path_factory.mktemp("user-data")
    monkeypatch.setattr(paths, "data_dir", lambda: private)


@pytest.fixture(scope="session")
def tiny_backend():
    """The tiny random llama, loaded once per session on CPU."""
    from atomabench.backends import BackendConfig, create_backend

    backend = create_backend(BackendConfig(model="tiny-random-llama", device="cpu"))
    backend.load()
    yield backend
    backend.close()


@pytest.fixture
def tiny_suite_path() -> Path:
    return TEST_DATA / "tiny.toml"


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "results.db")
