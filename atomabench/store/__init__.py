"""The results database: the only place in atomabench that speaks SQL.

Open one with :func:`open_store` (a file path or any SQLAlchemy URL, SQLite by default, PostgreSQL for a
shared leaderboard) and move records in and out of it through :class:`Store`. Everything handed out is
a record from :mod:`atomabench.records`, a :class:`RunSummary` or a pandas DataFrame; the tables are
described in ``docs/store.md``.
"""

from atomabench.store.store import (
    DuplicateSubmission,
    ExportFormat,
    ExportTable,
    RunSummary,
    Store,
    Submission,
    open_store,
)

__all__ = [
    "DuplicateSubmission",
    "ExportFormat",
    "ExportTable",
    "RunSummary",
    "Store",
    "Submission",
    "open_store",
]
