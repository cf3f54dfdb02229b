"""Where atomabench finds its bundled data and keeps its per-user files.

Suites and hardware profiles sit at the top of a checkout and inside the package in a wheel
(``atomabench/_data``); both layouts are searched so the same code works installed or from source.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir, user_data_dir

_PACKAGE_DIR = Path(__file__).resolve().parent

CACHE_ENV = "ATOMABENCH_CACHE_DIR"
DB_ENV = "ATOMABENCH_DB"


def _bundled_dir(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bundled directory {name!r} is missing from this installation")


def suites_dir() -> Path:
    return _bundled_dir("suites")


def hardware_profiles_dir() -> Path:
    return _bundled_dir("hardware_profiles")


def package_data(name: str) -> Path:
    """A file shipped inside the package (``atomabench/data``)."""
    return _PACKAGE_DIR / "data" / name


def cache_dir() -> Path:
    """Per-user cache for converted models; ``ATOMABENCH_CACHE_DIR`` overrides it."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path(user_cache_dir("atomabench"))


def data_dir() -> Path:
    return Path(user_data_dir("atomabench"))


def default_database_url() -> str:
    """``ATOMABENCH_DB`` (a path or SQLAlchemy URL) or a SQLite file in the per-user data dir."""
    override = os.environ.get(DB_ENV)
    if override:
        return override
    return str(data_dir() / "results.db")
