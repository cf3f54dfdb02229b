"""Open a results database and move records in and out of it.

``Store`` takes and returns records from :mod:`atomabench.records` only; the ORM classes never leave
this package. Each scenario is written in one transaction the moment it finishes, so a run that is
killed half way keeps every scenario it completed and can be read back from a fresh process.
"""

from __future__ import annotations

import gc
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict
from pydantic_core import from_json, to_json, to_jsonable_python
from sqlalchemy import (
    Connection,
    Engine,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Subquery

import atomabench
from atomabench.errors import UserError
from atomabench.paths import default_database_url
from atomabench.records import (
    SCHEMA_VERSION,
    DeterminismResult,
    DeterminismSummary,
    EnergyStats,
    HardwareInfo,
    LatencyStats,
    MemoryStats,
    RequestRecord,
    RunInfo,
    RunResult,
    RunStatus,
    ScenarioMetrics,
    ScenarioResult,
)
from atomabench.store.migrate import HEAD_REVISION, VERSION_TABLE, stamp_head
from atomabench.store.schema import (
    LATENCY_METRICS,
    LATENCY_SCALARS,
    Base,
    DeterminismRow,
    HardwareRow,
    LatencyStatRow,
    MetaRow,
    RequestRow,
    RunRow,
    ScenarioRow,
    SubmissionRow,
    TelemetrySampleRow,
)

if TYPE_CHECKING:
    import pandas as pd

    from atomabench.hardware.microbench import DeviceProfileResult, StoredDeviceProfile
    from atomabench.hardware.telemetry import TelemetrySample

ExportFormat = Literal["csv", "json", "parquet"]
ExportTable = Literal["scenarios", "requests", "runs"]

_REQUIRED_METRIC_FLOATS = (
    "duration_s",
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "peak_output_throughput",
)
_METRIC_INTS = ("completed", "failed", "total_input_tokens", "total_output_tokens")
_OPTIONAL_METRIC_FLOATS = ("goodput", "slo_attainment", "peak_concurrency", "mean_concurrency")
"""Serving metrics that are None where they do not apply (no SLO, no load); NULL both ways."""


class RunSummary(BaseModel):
    """One line of ``atomabench runs``: enough to pick a run without loading its requests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    suite: str
    backend: str
    model: str
    device_name: str | None
    profile_id: str | None
    status: RunStatus
    started_at: datetime
    scenario_count: int
    best_output_throughput: float | None
    dtype: str | None = None
    """Precision or quantization the engine ran (e.g. float32, Q4_1), so listings never mix them unawares."""
    """Highest output tokens/s among the run's valid scenarios; None when it has none."""


class Submission(BaseModel):
    """One ingested signed bundle: which run, which node signed it, and the signed bytes themselves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bundle_sha256: str
    """sha256 of the bundle file as received; the same file twice is a duplicate."""
    run_id: str
    public_key: str
    """The node's raw Ed25519 public key, hex."""
    node_id: str
    signed_at: datetime
    ingested_at: datetime
    manifest: str
    """The exact manifest bytes the signature covers (canonical JSON, so text)."""
    signature: str
    """Ed25519 signature over the signed manifest message, hex."""
    environment: dict[str, Any] | None = None
    fingerprint: dict[str, Any] | None = None


class DuplicateSubmission(UserError):
    """The bundle, or the run inside it, is already in the database."""


_RUN_ID_LENGTH = RunRow.__table__.c.run_id.type.length


# --------------------------------------------------------------------------------------------------
# Opening


def open_store(url: str | Path | None = None) -> Store:
    """Open (creating if needed) the results database at ``url``: a file path or a SQLAlchemy URL.

    ``None`` means :func:`atomabench.paths.default_database_url`. Mistakes the user can make (a path
    that cannot be written, a server that does not answer, a database of another schema version) raise
    ``UserError`` with ``field="db"`` or ``field="schema_version"``, and leave nothing behind.
    """
    raw = str(url) if url is not None else default_database_url()
    shown = raw
    try:
        sqlalchemy_url = _to_sqlalchemy_url(raw)
        shown = sqlalchemy_url.render_as_string(hide_password=True) if "://" in raw else raw
    except (SQLAlchemyError, ValueError) as exc:  # make_url lets a bad port through as ValueError
        raise UserError(
            f"not a database path or SQLAlchemy URL ({_one_line(exc)})", path=raw, field="db"
        ) from None

    sqlite_file = _sqlite_file(sqlalchemy_url)
    created_dirs: list[Path] = []
    file_existed = sqlite_file is None or sqlite_file.exists()
    engine: Engine | None = None
    try:
        if sqlite_file is not None:
            created_dirs = _make_parent_dirs(sqlite_file)
        if sqlalchemy_url.get_backend_name() == "sqlite":
            engine = create_engine(sqlalchemy_url, json_serializer=_json_dumps, json_deserializer=from_json)
        else:
            engine = create_engine(
                sqlalchemy_url, json_serializer=_json_dumps_strict, json_deserializer=_json_loads_strict
            )
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        _prepare_schema(engine, shown)
    except (OSError, ImportError, SQLAlchemyError, UserError) as exc:
        if engine is not None:
            engine.dispose()
        if sqlite_file is not None and not file_existed:
            _remove_sqlite_files(sqlite_file)
        for directory in reversed(created_dirs):
            directory.rmdir()
        if isinstance(exc, UserError):
            raise
        hint = ""
        if isinstance(exc, ImportError):
            hint = " (install the database driver: for PostgreSQL `pip install psycopg[binary]`)"
        raise UserError(
            f"cannot open the results database: {_one_line(exc)}{hint}", path=shown, field="db"
        ) from None
    return Store(engine, shown)


def _to_sqlalchemy_url(raw: str) -> URL:
    if "://" in raw:
        return make_url(raw)
    return URL.create("sqlite", database=str(Path(raw).expanduser().absolute()))


def _sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory SQLite and every other database."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.database.startswith("file:"):  # SQLite URI filenames: leave them to SQLite
        return None
    return Path(url.database).expanduser().absolute()


def _make_parent_dirs(file: Path) -> list[Path]:
    """Create the missing parents of ``file``; return those created, outermost first, for cleanup."""
    missing = [parent for parent in file.parents if not parent.exists()]
    created: list[Path] = []
    try:
        for directory in reversed(missing):
            directory.mkdir()
            created.append(directory)
    except OSError:
        for directory in reversed(created):
            directory.rmdir()
        raise
    # SQLite only says "unable to open database file"; name the actual problem instead
    if file.is_dir():
        raise IsADirectoryError(f"{file} is a directory")
    if not file.parent.is_dir():
        raise NotADirectoryError(f"{_first_non_directory(file)} is not a directory")
    if not os.access(file if file.exists() else file.parent, os.W_OK):
        raise PermissionError(f"{file if file.exists() else file.parent} is not writable")
    return created


def _first_non_directory(file: Path) -> Path:
    for parent in reversed(file.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return file.parent


def _remove_sqlite_files(file: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        leftover = file.with_name(file.name + suffix)
        if leftover.is_file():
            leftover.unlink()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets a report read while a benchmark writes; SQLite enforces foreign keys only when asked."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


_PG_SCHEMA_LOCK = 0x61746F6D61  # "atoma": serializes concurrent first opens of one PostgreSQL database


def _prepare_schema(engine: Engine, shown: str) -> None:
    """Bring the database to the current schema, or refuse it with one clear line.

    - nothing of ours yet: ``create_all``, stamp Alembic's head revision, write ``meta`` (no Alembic
      import, so a new SQLite file opens in milliseconds);
    - an Alembic revision: nothing to do at head; an older known one is upgraded to head; an unknown
      one (a newer atomabench migrated it) is refused;
    - our tables but no revision: made by ``create_all`` before migrations existed, or a first open
      that died half way (SQLite's Python driver does not make DDL transactional). With the current
      ``schema_version`` (or none) the missing tables are created and the database is stamped, but
      only if Alembic then finds it identical to ``Base.metadata``; any other version is refused
      (schema 3 and older cannot be converted).
    """
    with engine.connect() as connection:
        if _is_current(connection):  # the common case: a plain read, no lock taken
            return
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Alembic's SQLite batch mode rebuilds a table by DROP + RENAME; with foreign keys on,
            # the DROP would cascade-delete every child row. Set before BEGIN: SQLite ignores it inside.
            _raw_pragma(connection, "PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                if sqlite:
                    # Python's sqlite3 runs DDL outside any transaction (one disk sync per CREATE, and a
                    # crash leaves half a schema); an explicit BEGIN makes it all one atomic commit,
                    # and IMMEDIATE makes concurrent first opens wait for each other (busy timeout)
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                elif connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
                _prepare_on(connection, shown)
        finally:
            if sqlite:
                try:
                    _raw_pragma(connection, "PRAGMA foreign_keys=ON")
                except Exception:  # never hand a connection without foreign keys back to the pool
                    connection.invalidate()


def _is_current(connection: Connection) -> bool:
    """Whether the database is at the head revision with all its ``meta`` rows: nothing to prepare."""
    try:
        with connection.begin():
            revision = connection.scalar(select(VERSION_TABLE.c.version_num))
            meta = {key: value for key, value in connection.execute(select(MetaRow.key, MetaRow.value))}
    except DBAPIError:  # no such table (a new database), or not a database at all: the full path says
        return False
    return (
        revision == HEAD_REVISION
        and meta.get("schema_version") == str(SCHEMA_VERSION)
        and {"created_at", "atomabench_version"} <= meta.keys()
    )


def _raw_pragma(connection: Connection, pragma: str) -> None:
    """A PRAGMA outside any transaction (SQLite ignores ``foreign_keys`` inside one)."""
    connection.exec_driver_sql(pragma)
    connection.commit()  # ends SQLAlchemy's autobegun transaction; pysqlite never sent a BEGIN


def _prepare_on(connection: Connection, shown: str) -> None:
    """The decisions of :func:`_prepare_schema`, inside its transaction."""
    tables = set(inspect(connection).get_table_names())
    revision = None
    if VERSION_TABLE.name in tables:
        revision = connection.scalar(select(VERSION_TABLE.c.version_num))
    found = None
    if MetaRow.__tablename__ in tables:
        found = connection.scalar(select(MetaRow.value).where(MetaRow.key == "schema_version"))

    if revision is not None and revision != HEAD_REVISION:
        from atomabench.store import migrate

        if revision not in migrate.known_revisions():
            raise UserError(
                f"database is at migration {revision}, which atomabench {atomabench.__version__} does "
                "not know (a newer atomabench wrote it); upgrade atomabench or use a new database",
                path=shown,
                field="schema_version",
            )
        migrate.upgrade(connection)
        if (
            connection.dialect.name == "sqlite"
            and connection.exec_driver_sql("PRAGMA foreign_key_check").first()
        ):
            raise UserError(
                f"the migration to {HEAD_REVISION} broke foreign keys; the database was left as it was",
                path=shown,
                field="schema_version",
            )
        connection.execute(
            update(MetaRow).where(MetaRow.key == "schema_version").values(value=str(SCHEMA_VERSION))
        )
    elif found is not None and found != str(SCHEMA_VERSION):
        raise UserError(
            f"database has schema version {found}, but atomabench {atomabench.__version__} reads "
            f"version {SCHEMA_VERSION}; use a new database file or the atomabench that wrote it",
            path=shown,
            field="schema_version",
        )
    elif revision is None:
        ours = tables & set(Base.metadata.tables)
        foreign = tables - set(Base.metadata.tables) - {VERSION_TABLE.name}
        if found is None and foreign:
            raise UserError(
                f"database holds other tables ({', '.join(sorted(foreign)[:3])}) and no atomabench "
                "schema_version; point atomabench at a new database",
                path=shown,
                field="db",
            )
        Base.metadata.create_all(connection)  # creates only what is missing
        if ours:
            _require_current_tables(connection, shown)
        stamp_head(connection)
    _write_meta(connection)


def _require_current_tables(connection: Connection, shown: str) -> None:
    """Refuse to stamp tables that are not exactly the current schema (Alembic compares them)."""
    from atomabench.store import migrate

    differences = migrate.schema_differences(connection)
    if differences:
        raise UserError(
            f"database tables differ from schema version {SCHEMA_VERSION} ({_one_line_diff(differences[0])}"
            f"{f' and {len(differences) - 1} more' if len(differences) > 1 else ''}); use a new database",
            path=shown,
            field="schema_version",
        )


def _one_line_diff(difference: Any) -> str:
    """Alembic's diff tuples name the operation first, then the table or column concerned."""
    parts = difference[0] if isinstance(difference, list) else difference
    name = getattr(parts[-1], "name", None) if len(parts) > 1 else None
    return f"{parts[0]} {name}" if name else str(parts[0])


def _write_meta(connection: Connection) -> None:
    """The ``meta`` rows that are missing (all of them in a new database, or after a bare upgrade)."""
    present = set(connection.scalars(select(MetaRow.key)))
    wanted = {
        "schema_version": str(SCHEMA_VERSION),
        "created_at": datetime.now(UTC).isoformat(),
        "atomabench_version": atomabench.__version__,
    }
    missing = [{"key": key, "value": value} for key, value in wanted.items() if key not in present]
    if missing:
        connection.execute(insert(MetaRow), missing)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while millions of small acyclic objects are made.

    Rebuilding the token times and logprobs of a large run creates millions of tuples and records; each
    full collection walks all of them and finds nothing, which made reading 4x slower. Reference
    counting still frees everything as usual; only the cycle detector waits.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _json_dumps(value: Any) -> str:
    """JSON in Rust: per-token times and logprobs are most of the bytes written.

    Floats are written in their shortest exact form and read back bit-identical (pydantic-core), and
    NaN stays NaN as with Python's ``json``. Records, tuples and dicts are accepted as they are.
    """
    text = to_json(value, inf_nan_mode="constants")
    if b"null" in text:  # see _json_with_nonfinite
        text = to_json(to_jsonable_python(value, inf_nan_mode="constants"), inf_nan_mode="constants")
    return text.decode()


def _json_with_nonfinite(value: Any) -> bytes:
    """``to_json`` that keeps NaN and ±Infinity inside records too.

    A record serialises its non-finite floats as ``null`` whatever ``inf_nan_mode`` says (its own
    config wins), so a -inf logprob would come back as None and fail validation. Output without any
    ``null`` (per-token times and logprobs nearly always) is final after one pass; otherwise the
    value goes through ``to_jsonable_python``, which keeps the floats, and is written again.
    """
    text = to_json(value, inf_nan_mode="constants")
    if b"null" in text:
        text = to_json(to_jsonable_python(value, inf_nan_mode="constants"), inf_nan_mode="constants")
    return text


_NONFINITE = "$nonfinite"
"""Key of the object that stands for NaN or ±Infinity in JSON on databases that validate JSON."""


def _json_dumps_strict(value: Any) -> str:
    """JSON that PostgreSQL accepts: it rejects the NaN and Infinity tokens Python and SQLite allow.

    A non-finite float (a -inf logprob, a NaN in a telemetry summary) becomes ``{"$nonfinite":
    "NaN" | "Infinity" | "-Infinity"}`` and is turned back into the float on reading, so a record
    reads back the same on every database. Values without such floats (nearly all) take one pass.
    """
    text = _json_with_nonfinite(value)
    if b"NaN" not in text and b"Infinity" not in text:  # cheap test; strings may trigger a harmless walk
        return text.decode()
    return to_json(_tag_nonfinite(to_jsonable_python(value, inf_nan_mode="constants"))).decode()


def _json_loads_strict(raw: str | bytes) -> Any:
    value = from_json(raw)
    marker: str | bytes = f'"{_NONFINITE}"' if isinstance(raw, str) else f'"{_NONFINITE}"'.encode()
    return _untag_nonfinite(value) if marker in raw else value


def _tag_nonfinite(value: Any) -> Any:
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {_NONFINITE: "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, dict):
        return {key: _tag_nonfinite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_tag_nonfinite(item) for item in value]
    return value


def _untag_nonfinite(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(_NONFINITE), str):
            return float(value[_NONFINITE])
        return {key: _untag_nonfinite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untag_nonfinite(item) for item in value]
    return value


def _one_line(exc: BaseException) -> str:
    """The driver's own message without SQLAlchemy's SQL echo and background link."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------------
# The store


class Store:
    """Records in, records and DataFrames out. Use :func:`open_store` to make one."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.url = url
        """Where the database is, with any password hidden; for messages."""

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def close(self) -> None:
        """Release every connection; the file is complete and consistent after each commit anyway."""
        self._engine.dispose()

    # ---- writing ---------------------------------------------------------------------------------

    def start_run(self, run: RunInfo) -> None:
        """Record a run and its hardware before the first scenario, so a crash still leaves a trace."""
        with self._sessions.begin() as session:
            self._insert_run(session, run)

    def add_scenario(self, run_id: str, result: ScenarioResult) -> int:
        """Store one finished scenario with all its requests and latency stats; returns its row id.

        Everything goes in one transaction that is committed before returning, so the scenario is
        either fully stored or not at all.
        """
        with self._sessions.begin() as session:
            self._require_run(session, run_id)
            position = session.scalar(
                select(func.coalesce(func.max(ScenarioRow.position) + 1, 0)).where(
                    ScenarioRow.run_id == run_id
                )
            )
            return _insert_scenario(session, run_id, position, result)

    def import_run(self, result: RunResult) -> None:
        """Store a whole run at once, in one transaction, so that ``get_run`` gives back an equal one.

        For runs made elsewhere (a leaderboard ingesting a submission): run, hardware, scenarios,
        requests, latency stats and determinism results, with the run's own status and end time.
        """
        with self._sessions.begin() as session:
            self._import_run(session, result)

    def add_submission(self, result: RunResult, submission: Submission) -> None:
        """Import a verified submitted run and record who signed it, both or neither.

        Raises :class:`DuplicateSubmission` when the bundle or the run is already stored (checked
        first, and again by the unique constraints should two ingests race).
        """
        if submission.run_id != result.run.run_id:
            raise ValueError(f"submission is for run {submission.run_id!r}, not {result.run.run_id!r}")
        try:
            with self._sessions.begin() as session:
                self._refuse_duplicate(session, submission)
                self._import_run(session, result)
                session.add(SubmissionRow(**submission.model_dump()))
        except IntegrityError:
            with self._sessions() as session:
                self._refuse_duplicate(session, submission)
            raise

    def list_submissions(self) -> list[Submission]:
        """Every ingested submission, oldest first."""
        with self._sessions() as session:
            rows = session.scalars(select(SubmissionRow).order_by(SubmissionRow.id)).all()
            return [
                Submission.model_validate({name: getattr(row, name) for name in Submission.model_fields})
                for row in rows
            ]

    def _import_run(self, session: Session, result: RunResult) -> None:
        self._insert_run(session, result.run)
        for position, scenario in enumerate(result.scenarios):
            _insert_scenario(session, result.run.run_id, position, scenario)

    def _refuse_duplicate(self, session: Session, submission: Submission) -> None:
        if session.scalar(
            select(SubmissionRow.run_id).where(SubmissionRow.bundle_sha256 == submission.bundle_sha256)
        ):
            raise DuplicateSubmission(
                f"bundle {submission.bundle_sha256[:16]} was already ingested", path=self.url, field="bundle"
            )
        if session.get(RunRow, submission.run_id) is not None:
            raise DuplicateSubmission(
                f"run {submission.run_id!r} is already stored", path=self.url, field="run_id"
            )

    def _insert_run(self, session: Session, run: RunInfo) -> None:
        if session.get(RunRow, run.run_id) is not None:
            raise UserError(f"run {run.run_id!r} is already stored", path=self.url, field="run_id")
        if not run.run_id or len(run.run_id) > _RUN_ID_LENGTH:
            raise UserError(
                f"a run id must have 1 to {_RUN_ID_LENGTH} characters, not {len(run.run_id)}",
                path=self.url,
                field="run_id",
            )
        hardware = run.hardware
        session.add(
            RunRow(
                run_id=run.run_id,
                suite=run.suite,
                suite_path=run.suite_path,
                backend=run.backend,
                model=run.model,
                backend_settings=to_jsonable_python(run.backend_settings),
                started_at=run.started_at,
                ended_at=run.ended_at,
                status=run.status,
                atomabench_version=run.atomabench_version,
            )
        )
        # no ORM relationships, so nothing orders the two inserts for the foreign key but this flush
        session.flush()
        session.add(
            HardwareRow(
                run_id=run.run_id,
                profile_id=hardware.profile_id,
                device_name=hardware.device_name,
                gpu_count=hardware.gpu_count,
                accelerator=hardware.accelerator,
                cpu_model=hardware.cpu_model,
                info=_jsonable(hardware),
            )
        )
        session.flush()

    def finish_run(self, run_id: str, status: RunStatus, ended_at: datetime) -> None:
        """Mark a run completed, interrupted or failed (the runner calls this from its ``finally``)."""
        if status not in get_args(RunStatus):
            raise ValueError(f"unknown run status {status!r}; expected one of {get_args(RunStatus)}")
        with self._sessions.begin() as session:
            self._require_run(session, run_id)
            session.execute(
                update(RunRow).where(RunRow.run_id == run_id).values(status=status, ended_at=ended_at)
            )

    def delete_run(self, run_id: str) -> str:
        """Delete a run (exact id or unique prefix) with everything under it; returns the full id.

        Its submission record goes too, so a deleted run can be ingested again.
        """
        with self._sessions.begin() as session:
            full_id = self._resolve(session, run_id)
            scenario_ids = select(ScenarioRow.id).where(ScenarioRow.run_id == full_id)
            # explicit, not left to ON DELETE CASCADE: SQLite only cascades with foreign_keys=ON,
            # which a database opened by another tool may not have set
            for table in (RequestRow, LatencyStatRow, DeterminismRow, TelemetrySampleRow):
                session.execute(delete(table).where(table.scenario_id.in_(scenario_ids)))
            session.execute(delete(SubmissionRow).where(SubmissionRow.run_id == full_id))
            session.execute(delete(ScenarioRow).where(ScenarioRow.run_id == full_id))
            session.execute(delete(HardwareRow).where(HardwareRow.run_id == full_id))
            session.execute(delete(RunRow).where(RunRow.run_id == full_id))
        return full_id

    # ---- reading records -------------------------------------------------------------------------

    def resolve_run_id(self, run_id_or_prefix: str) -> str:
        """The full id of the one run whose id is, or starts with, ``run_id_or_prefix``."""
        with self._sessions() as session:
            return self._resolve(session, run_id_or_prefix)

    def get_run(self, run_id_or_prefix: str, *, with_records: bool = True) -> RunResult:
        """Rebuild a run exactly as it was written: run, hardware, scenarios, requests and stats.

        ``with_records=False`` leaves every ``ScenarioResult.records`` empty, for callers that only
        need the aggregates of a large run.
        """
        with self._sessions() as session:
            run_id = self._resolve(session, run_id_or_prefix)
            run_row, hardware_row = session.execute(
                select(RunRow, HardwareRow)
                .join(HardwareRow, HardwareRow.run_id == RunRow.run_id)
                .where(RunRow.run_id == run_id)
            ).one()
            scenario_rows = session.scalars(
                select(ScenarioRow).where(ScenarioRow.run_id == run_id).order_by(ScenarioRow.position)
            ).all()
            stats = _load_latency_stats(session, run_id)
            records = _load_request_records(session, run_id) if with_records else {}
            findings = _load_determinism(session, [row.id for row in scenario_rows])
            scenarios = tuple(
                _scenario_result(
                    row, stats.get(row.id, {}), records.get(row.id, ()), findings.get(row.id, ())
                )
                for row in scenario_rows
            )
            return RunResult(run=_run_info(run_row, hardware_row), scenarios=scenarios)

    def list_runs(self, limit: int | None = None) -> list[RunSummary]:
        """Runs newest first, with their scenario count and best valid output throughput."""
        per_run = scenario_summary()
        statement = (
            select(
                RunRow,
                HardwareRow.device_name,
                HardwareRow.profile_id,
                per_run.c.scenario_count,
                per_run.c.best_output_throughput,
            )
            .outerjoin(HardwareRow, HardwareRow.run_id == RunRow.run_id)
            .outerjoin(per_run, per_run.c.run_id == RunRow.run_id)
            .order_by(RunRow.started_at.desc(), RunRow.run_id.desc())
            .limit(limit)
        )
        with self._sessions() as session:
            return [
                RunSummary(
                    run_id=run.run_id,
                    suite=run.suite,
                    backend=run.backend,
                    model=run.model,
                    device_name=device_name,
                    profile_id=profile_id,
                    status=run.status,
                    started_at=run.started_at,
                    scenario_count=scenario_count or 0,
                    best_output_throughput=best,
                    dtype=(run.backend_settings or {}).get("dtype"),
                )
                for run, device_name, profile_id, scenario_count, best in session.execute(statement)
            ]

    # ---- device profiles and telemetry -----------------------------------------------------------

    def add_device_profile(self, result: DeviceProfileResult) -> int:
        """Store one ``atomabench profile`` measurement; returns its row id."""
        from atomabench.store.schema import DeviceProfileRow

        row = DeviceProfileRow(
            measured_at=result.measured_at,
            device=result.device,
            device_name=result.device_name,
            profile_id=result.profile_id,
            quick=result.quick,
            memory_bandwidth_gbs=result.memory_bandwidth_gbs,
            host_to_device_gbs=None if result.host_to_device is None else result.host_to_device.gbs,
            launch_latency_us=result.launch_latency_us,
            peak_tflops=result.peak_tflops(),
            result=_jsonable(result),
        )
        with self._sessions.begin() as session:
            session.add(row)
            session.flush()
            return row.id

    def list_device_profiles(self) -> list[StoredDeviceProfile]:
        """Every stored profile measurement, newest first, rebuilt exactly as it was written."""
        from atomabench.hardware.microbench import DeviceProfileResult, StoredDeviceProfile
        from atomabench.store.schema import DeviceProfileRow

        statement = select(DeviceProfileRow.id, DeviceProfileRow.result).order_by(
            DeviceProfileRow.measured_at.desc(), DeviceProfileRow.id.desc()
        )
        with self._sessions() as session:
            return [
                StoredDeviceProfile(id=row_id, result=DeviceProfileResult.model_validate(result))
                for row_id, result in session.execute(statement)
            ]

    def add_telemetry(self, scenario_id: int, samples: Sequence[TelemetrySample]) -> int:
        """Store a scenario's telemetry time series (one transaction); returns the number of samples."""
        from atomabench.store.schema import TelemetrySampleRow

        with self._sessions.begin() as session:
            if session.get(ScenarioRow, scenario_id) is None:
                raise UserError(f"no scenario with id {scenario_id}", path=self.url, field="scenario_id")
            if samples:
                session.execute(
                    insert(TelemetrySampleRow),
                    [{"scenario_id": scenario_id, **sample.model_dump()} for sample in samples],
                )
        return len(samples)

    def telemetry_frame(self, run_id: str) -> pd.DataFrame:
        """Every telemetry sample of a run (id or unique prefix), scenarios in order, samples as taken.

        Columns: ``run_id``, ``scenario``, ``scenario_position``, ``t`` and the ``TelemetrySample``
        fields; ``gpu_index`` is NA for host samples, absent readings are NaN/NA.
        """
        import pandas as pd

        from atomabench.hardware.telemetry import TelemetrySample
        from atomabench.store.schema import TelemetrySampleRow

        fields = list(TelemetrySample.model_fields)
        with self._sessions() as session:
            full_id = self._resolve(session, run_id)
            statement = (
                select(
                    ScenarioRow.run_id,
                    ScenarioRow.name.label("scenario"),
                    ScenarioRow.position.label("scenario_position"),
                    *(getattr(TelemetrySampleRow, name) for name in fields),
                )
                .join(ScenarioRow, ScenarioRow.id == TelemetrySampleRow.scenario_id)
                .where(ScenarioRow.run_id == full_id)
                .order_by(ScenarioRow.position, TelemetrySampleRow.id)
            )
            rows = session.execute(statement).mappings().all()
        columns = ["run_id", "scenario", "scenario_position", *fields]
        frame = pd.DataFrame.from_records([dict(row) for row in rows], columns=columns)
        frame["scenario_position"] = frame["scenario_position"].astype("int64")
        for name in fields:
            integer = name in ("gpu_index", "sm_clock_mhz", "memory_clock_mhz")
            # the NVML mask is unsigned 64-bit: bit 63 ("unknown reason") does not fit Int64
            dtype = "UInt64" if name == "throttle_reasons" else "Int64" if integer else "float64"
            frame[name] = frame[name].astype(dtype)
        return frame

    # ---- DataFrames and export -------------------------------------------------------------------

    def runs_frame(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per run (newest first) with its hardware columns and scenario summary."""
        from atomabench.store import frames

        with self._sessions() as session:
            return frames.runs_frame(session, self._resolve_many(session, run_ids))

    def scenarios_frame(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per scenario with the columns in :data:`atomabench.store.frames.SCENARIO_COLUMNS`."""
        from atomabench.store import frames

        with self._sessions() as session:
            return frames.scenarios_frame(session, self._resolve_many(session, run_ids))

    def report_frames(self, run_ids: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
        """Settings, hardware, serving metrics and determinism rows for reports, without records."""
        from atomabench.store import frames

        with self._sessions() as session:
            return frames.report_frames(session, self._resolve_many(session, run_ids))

    def requests_frame(self, run_id: str | Sequence[str] | None = None) -> pd.DataFrame:
        """One row per request of a run (or of several, or of all); token times stay lists."""
        from atomabench.store import frames

        run_ids = [run_id] if isinstance(run_id, str) else run_id
        with self._sessions() as session:
            return frames.requests_frame(session, self._resolve_many(session, run_ids))

    def export(
        self,
        path: str | Path,
        fmt: ExportFormat = "csv",
        table: ExportTable = "scenarios",
        run_ids: Sequence[str] | None = None,
    ) -> Path:
        """Write one table as CSV, JSON (records, ISO dates) or Parquet; returns the path written."""
        from atomabench.store import frames

        frames.check_export_choice(fmt, table)
        builders = {
            "scenarios": self.scenarios_frame,
            "requests": self.requests_frame,
            "runs": self.runs_frame,
        }
        return frames.write_frame(builders[table](run_ids), Path(path), fmt)

    # ---- helpers ---------------------------------------------------------------------------------

    def _require_run(self, session: Session, run_id: str) -> None:
        if session.get(RunRow, run_id) is None:
            raise UserError(f"no run {run_id!r}; call start_run first", path=self.url, field="run_id")

    def _resolve(self, session: Session, run_id_or_prefix: str) -> str:
        if not run_id_or_prefix:
            raise UserError(
                "an empty run id would match every run; give a prefix", path=self.url, field="run_id"
            )
        if session.get(RunRow, run_id_or_prefix) is not None:
            return run_id_or_prefix
        matches = session.scalars(
            select(RunRow.run_id)
            .where(RunRow.run_id.startswith(run_id_or_prefix, autoescape=True))
            .order_by(RunRow.run_id)
            .limit(6)
        ).all()
        if not matches:
            raise UserError(f"no run matches {run_id_or_prefix!r}", path=self.url, field="run_id")
        if len(matches) > 1:
            listed = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise UserError(
                f"{run_id_or_prefix!r} matches several runs ({listed}); give more characters",
                path=self.url,
                field="run_id",
            )
        return matches[0]

    def _resolve_many(self, session: Session, run_ids: Iterable[str] | None) -> list[str] | None:
        if run_ids is None:
            return None
        return list(dict.fromkeys(self._resolve(session, run_id) for run_id in run_ids))


def scenario_summary() -> Subquery:
    """Per run: ``scenario_count`` and ``best_output_throughput`` over its valid scenarios."""
    return (
        select(
            ScenarioRow.run_id,
            func.count().label("scenario_count"),
            func.max(case((ScenarioRow.valid, ScenarioRow.output_throughput))).label(
                "best_output_throughput"
            ),
        )
        .group_by(ScenarioRow.run_id)
        .subquery()
    )


# --------------------------------------------------------------------------------------------------
# Records → rows


def _insert_scenario(session: Session, run_id: str, position: int, result: ScenarioResult) -> int:
    """One scenario with its requests, latency stats and determinism results; returns its row id."""
    row = ScenarioRow(run_id=run_id, position=position, **_scenario_columns(result))
    session.add(row)
    session.flush()
    scenario_id = row.id
    with _gc_paused():
        if result.records:
            session.execute(insert(RequestRow), _request_rows(scenario_id, result.records))
        session.execute(insert(LatencyStatRow), _latency_rows(scenario_id, result.metrics))
        if result.determinism:
            session.execute(insert(DeterminismRow), _determinism_rows(scenario_id, result.determinism))
    return scenario_id


def _scenario_columns(result: ScenarioResult) -> dict[str, Any]:
    metrics, memory, energy = result.metrics, result.memory, result.energy
    return {
        "name": result.name,
        "kind": result.kind,
        "settings": to_jsonable_python(result.settings),
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "valid": result.valid,
        "invalid_reason": result.invalid_reason,
        "peak_device_bytes": memory.peak_device_bytes,
        "peak_host_rss_bytes": memory.peak_host_rss_bytes,
        "device_memory_source": memory.device_memory_source,
        "kv_cache_capacity_tokens": memory.kv_cache_capacity_tokens,
        "energy_joules": None if energy is None else _nan_to_null(energy.joules),
        "average_watts": None if energy is None else _nan_to_null(energy.average_watts),
        "joules_per_output_token": None if energy is None else energy.joules_per_output_token,
        "energy_source": None if energy is None else energy.source,
        **{name: _nan_to_null(getattr(metrics, name)) for name in _REQUIRED_METRIC_FLOATS},
        **{name: getattr(metrics, name) for name in _METRIC_INTS},
        "telemetry_summary": to_jsonable_python(result.telemetry),
        "roofline": to_jsonable_python(result.roofline),
        **{name: _optional_float(getattr(metrics, name)) for name in _OPTIONAL_METRIC_FLOATS},
        "serving": to_jsonable_python(result.serving),
        "determinism_tier": None if result.determinism_summary is None else result.determinism_summary.tier,
        "determinism_summary": (
            None if result.determinism_summary is None else _jsonable(result.determinism_summary)
        ),
    }


_DETERMINISM_FIELDS = tuple(name for name in DeterminismResult.model_fields if name != "position")


def _determinism_rows(scenario_id: int, results: Sequence[DeterminismResult]) -> list[dict[str, Any]]:
    return [
        {
            "scenario_id": scenario_id,
            "position": index,
            "batch_position": result.position,
            **{
                name: _nan_to_null(v) if isinstance(v := getattr(result, name), float) else v
                for name in _DETERMINISM_FIELDS
            },
        }
        for index, result in enumerate(results)
    ]


def _load_determinism(
    session: Session, scenario_ids: Sequence[int]
) -> dict[int, tuple[DeterminismResult, ...]]:
    if not scenario_ids:
        return {}
    rows = session.scalars(
        select(DeterminismRow)
        .where(DeterminismRow.scenario_id.in_(scenario_ids))
        .order_by(DeterminismRow.scenario_id, DeterminismRow.position)
    ).all()
    found: dict[int, list[DeterminismResult]] = defaultdict(list)
    for row in rows:
        found[row.scenario_id].append(
            DeterminismResult(
                position=row.batch_position, **{name: getattr(row, name) for name in _DETERMINISM_FIELDS}
            )
        )
    return {key: tuple(value) for key, value in found.items()}


def _request_rows(scenario_id: int, records: Sequence[RequestRecord]) -> list[dict[str, Any]]:
    return [
        {
            "scenario_id": scenario_id,
            "position": position,
            "request_id": record.request_id,
            "scenario": record.scenario,
            "prompt_tokens": record.prompt_tokens,
            "output_tokens": record.output_tokens,
            "send_time": record.send_time,
            "first_token_time": record.first_token_time,
            "end_time": record.end_time,
            "error": record.error,
            "output_hash": record.output_hash,
            "batch_size": record.batch_size,
            "batch_position": record.batch_position,
            "token_count_source": record.token_count_source,
            # tuples and TokenLogprobs records go to the JSON serializer as they are, no Python copies
            "token_times": record.token_times,
            "output_token_ids": record.output_token_ids,
            "logprobs": record.logprobs,
        }
        for position, record in enumerate(records)
    ]


def _latency_rows(scenario_id: int, metrics: ScenarioMetrics) -> list[dict[str, Any]]:
    """Long-format rows; a statistic that is None gets no row (NaN is kept, stored as NULL)."""
    rows: list[dict[str, Any]] = []
    for metric in LATENCY_METRICS:
        stats: LatencyStats = getattr(metrics, metric)
        clashing = set(stats.percentiles) & set(LATENCY_SCALARS)
        if clashing:
            raise ValueError(f"{metric} percentile keys {sorted(clashing)} clash with LatencyStats fields")
        values: dict[str, float | None] = {name: getattr(stats, name) for name in LATENCY_SCALARS}
        values.update(stats.percentiles)
        rows.extend(
            {"scenario_id": scenario_id, "metric": metric, "stat": stat, "value": _nan_to_null(value)}
            for stat, value in values.items()
            if value is not None
        )
    return rows


def _jsonable(record: BaseModel) -> Any:
    """``model_dump(mode="json")`` but with NaN and ±Infinity kept as floats (records turn them into None)."""
    return to_jsonable_python(record, inf_nan_mode="constants")


def _optional_float(value: float | None) -> float | None:
    return None if value is None else _nan_to_null(value)


def _nan_to_null(value: float) -> float | None:
    """SQLite turns NaN into NULL anyway; doing it here makes every database behave the same."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _null_to_nan(value: float | None) -> float:
    return math.nan if value is None else value


# --------------------------------------------------------------------------------------------------
# Rows → records


def _run_info(run: RunRow, hardware: HardwareRow) -> RunInfo:
    return RunInfo(
        run_id=run.run_id,
        suite=run.suite,
        suite_path=run.suite_path,
        backend=run.backend,
        model=run.model,
        backend_settings=run.backend_settings,
        started_at=run.started_at,
        ended_at=run.ended_at,
        status=run.status,
        atomabench_version=run.atomabench_version,
        hardware=HardwareInfo.model_validate(hardware.info),
    )


def _load_latency_stats(session: Session, run_id: str) -> dict[int, dict[str, dict[str, float]]]:
    """scenario id → metric → stat → value, for every scenario of a run."""
    rows = session.execute(
        select(LatencyStatRow.scenario_id, LatencyStatRow.metric, LatencyStatRow.stat, LatencyStatRow.value)
        .join(ScenarioRow, ScenarioRow.id == LatencyStatRow.scenario_id)
        .where(ScenarioRow.run_id == run_id)
    )
    stats: dict[int, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for scenario_id, metric, stat, value in rows:
        stats[scenario_id][metric][stat] = _null_to_nan(value)
    return stats


def _latency_stats(values: dict[str, float]) -> LatencyStats:
    percentiles = {key: value for key, value in values.items() if key not in LATENCY_SCALARS}
    return LatencyStats(
        count=int(values.get("count", 0)),
        mean=values.get("mean"),
        std=values.get("std"),
        min=values.get("min"),
        max=values.get("max"),
        percentiles=dict(sorted(percentiles.items(), key=lambda item: _percentile_order(item[0]))),
    )


def _percentile_order(key: str) -> tuple[float, str]:
    """p50 < p90 < p99 < p99.9 numerically; keys that are not pNN sort after, by name."""
    try:
        return (float(key.removeprefix("p")), key)
    except ValueError:
        return (math.inf, key)


def _load_request_records(session: Session, run_id: str) -> dict[int, tuple[RequestRecord, ...]]:
    """scenario id → its records in order; pydantic rebuilds the tuples and logprobs from JSON lists."""
    columns = RequestRow.__table__.c
    record_fields = [columns[name] for name in RequestRecord.model_fields]
    statement = (
        select(columns.scenario_id, *record_fields)
        .join(ScenarioRow, ScenarioRow.id == columns.scenario_id)
        .where(ScenarioRow.run_id == run_id)
        .order_by(columns.scenario_id, columns.position)
    )
    grouped: dict[int, list[RequestRecord]] = defaultdict(list)
    with _gc_paused():
        for scenario_id, *values in session.execute(statement):
            fields = dict(zip(RequestRecord.model_fields, values, strict=True))
            grouped[scenario_id].append(RequestRecord.model_validate(fields))
    return {scenario_id: tuple(records) for scenario_id, records in grouped.items()}


def _scenario_result(
    row: ScenarioRow,
    stats: dict[str, dict[str, float]],
    records: tuple[RequestRecord, ...],
    determinism: tuple[DeterminismResult, ...] = (),
) -> ScenarioResult:
    metrics = ScenarioMetrics(
        **{name: _null_to_nan(getattr(row, name)) for name in _REQUIRED_METRIC_FLOATS},
        **{name: getattr(row, name) for name in _METRIC_INTS},
        **{metric: _latency_stats(stats.get(metric, {})) for metric in LATENCY_METRICS},
        **{name: getattr(row, name) for name in _OPTIONAL_METRIC_FLOATS},
    )
    energy = None
    if row.energy_source is not None:
        energy = EnergyStats(
            joules=_null_to_nan(row.energy_joules),
            average_watts=_null_to_nan(row.average_watts),
            joules_per_output_token=row.joules_per_output_token,
            source=row.energy_source,
        )
    return ScenarioResult(
        name=row.name,
        kind=row.kind,
        settings=row.settings,
        started_at=row.started_at,
        ended_at=row.ended_at,
        metrics=metrics,
        memory=MemoryStats(
            peak_device_bytes=row.peak_device_bytes,
            peak_host_rss_bytes=row.peak_host_rss_bytes,
            device_memory_source=row.device_memory_source,
            kv_cache_capacity_tokens=row.kv_cache_capacity_tokens,
        ),
        energy=energy,
        valid=row.valid,
        invalid_reason=row.invalid_reason,
        records=records,
        determinism=determinism,
        telemetry=row.telemetry_summary,
        roofline=row.roofline,
        serving=row.serving,
        determinism_summary=(
            None
            if row.determinism_summary is None
            else DeterminismSummary.model_validate(row.determinism_summary)
        ),
    )
