"""Stored results as pandas DataFrames, and their export to CSV, JSON and Parquet.

Economics and reports work on these frames, so their columns are a contract: ``SCENARIO_COLUMNS`` is
the exact column list of ``Store.scenarios_frame``. Every frame has fixed dtypes whether it has rows
or not (integers ``int64``, measurements ``float64`` with NaN where absent, times UTC), so code that
consumes it never has to special-case an empty database. This module is imported only when a frame is
asked for, which keeps ``import atomabench.store`` free of pandas.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from atomabench.errors import UserError
from atomabench.store.schema import (
    LATENCY_METRICS,
    DeterminismRow,
    HardwareRow,
    LatencyStatRow,
    RequestRow,
    RunRow,
    ScenarioRow,
)
from atomabench.store.store import scenario_summary

FRAME_STATS: tuple[str, ...] = ("mean", "std", "p50", "p90", "p95", "p99")
"""The latency statistics that get a column, as ``f"{metric}_{stat}"``."""

LATENCY_COLUMNS: tuple[str, ...] = tuple(
    f"{metric}_{stat}" for metric in LATENCY_METRICS for stat in FRAME_STATS
)

_RUN_COLUMNS = ("run_id", "suite", "backend", "model", "status", "started_at")
_HARDWARE_COLUMNS = ("device_name", "profile_id", "gpu_count", "accelerator")
_METRIC_COLUMNS = (
    "duration_s",
    "completed",
    "failed",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "peak_output_throughput",
    "goodput",
    "slo_attainment",
    "peak_concurrency",
    "mean_concurrency",
)
_RESOURCE_COLUMNS = (
    "peak_device_bytes",
    "peak_host_rss_bytes",
    "energy_joules",
    "average_watts",
    "joules_per_output_token",
)

SCENARIO_COLUMNS: tuple[str, ...] = (
    *_RUN_COLUMNS,
    *_HARDWARE_COLUMNS,
    "scenario",
    "kind",
    "valid",
    *_METRIC_COLUMNS,
    *LATENCY_COLUMNS,
    *_RESOURCE_COLUMNS,
    "determinism_tier",
)
"""The exact columns of ``Store.scenarios_frame``, in order."""

RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "suite",
    "suite_path",
    "backend",
    "model",
    "status",
    "started_at",
    "ended_at",
    "atomabench_version",
    "device_name",
    "profile_id",
    "gpu_count",
    "accelerator",
    "cpu_model",
    "scenario_count",
    "best_output_throughput",
)

REQUEST_COLUMNS: tuple[str, ...] = (
    "run_id",
    "scenario",
    "scenario_position",
    "request_id",
    "prompt_tokens",
    "output_tokens",
    "send_time",
    "first_token_time",
    "end_time",
    "error",
    "output_hash",
    "batch_size",
    "batch_position",
    "token_count_source",
    "token_times",
    "output_token_ids",
)

_INT_COLUMNS = {
    "gpu_count",
    "completed",
    "failed",
    "total_input_tokens",
    "total_output_tokens",
    "scenario_count",
    "scenario_position",
    "prompt_tokens",
    "output_tokens",
    "batch_size",
    "batch_position",
}
_FLOAT_COLUMNS = {
    "duration_s",
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "peak_output_throughput",
    "goodput",
    "slo_attainment",
    "peak_concurrency",
    "mean_concurrency",
    *LATENCY_COLUMNS,
    # bytes as float64 so that "not measured" is NaN like every other absent measurement
    *_RESOURCE_COLUMNS,
    "best_output_throughput",
    "send_time",
    "first_token_time",
    "end_time",
}
_TIME_COLUMNS = {"started_at", "ended_at"}
_LIST_COLUMNS = {"token_times", "output_token_ids"}

EXPORT_FORMATS = ("csv", "json", "parquet")
EXPORT_TABLES = ("scenarios", "requests", "runs")


def runs_frame(session: Session, run_ids: Sequence[str] | None) -> pd.DataFrame:
    """One row per run, newest first."""
    per_run = scenario_summary()
    statement = (
        select(
            *(
                getattr(RunRow, name)
                for name in ("run_id", "suite", "suite_path", "backend", "model", "status")
            ),
            RunRow.started_at,
            RunRow.ended_at,
            RunRow.atomabench_version,
            *(getattr(HardwareRow, name) for name in (*_HARDWARE_COLUMNS, "cpu_model")),
            func.coalesce(per_run.c.scenario_count, 0).label("scenario_count"),
            per_run.c.best_output_throughput,
        )
        .outerjoin(HardwareRow, HardwareRow.run_id == RunRow.run_id)
        .outerjoin(per_run, per_run.c.run_id == RunRow.run_id)
        .order_by(RunRow.started_at.desc(), RunRow.run_id.desc())
    )
    return _frame(session.execute(_only_runs(statement, run_ids)).mappings().all(), RUN_COLUMNS)


def scenarios_frame(session: Session, run_ids: Sequence[str] | None) -> pd.DataFrame:
    """One row per scenario, runs oldest first and scenarios in the order they ran."""
    statement = (
        select(
            *(getattr(RunRow, name) for name in _RUN_COLUMNS),
            *(getattr(HardwareRow, name) for name in _HARDWARE_COLUMNS),
            ScenarioRow.id.label("scenario_id"),
            ScenarioRow.name.label("scenario"),
            ScenarioRow.kind,
            ScenarioRow.valid,
            *(getattr(ScenarioRow, name) for name in (*_METRIC_COLUMNS, *_RESOURCE_COLUMNS)),
            ScenarioRow.determinism_tier,
        )
        .join(RunRow, RunRow.run_id == ScenarioRow.run_id)
        .outerjoin(HardwareRow, HardwareRow.run_id == ScenarioRow.run_id)
        .order_by(RunRow.started_at, RunRow.run_id, ScenarioRow.position)
    )
    rows = [dict(row) for row in session.execute(_only_runs(statement, run_ids)).mappings()]

    stats_statement = (
        select(LatencyStatRow.scenario_id, LatencyStatRow.metric, LatencyStatRow.stat, LatencyStatRow.value)
        .join(ScenarioRow, ScenarioRow.id == LatencyStatRow.scenario_id)
        .join(RunRow, RunRow.run_id == ScenarioRow.run_id)
        .where(LatencyStatRow.stat.in_(FRAME_STATS))
    )
    latency: dict[int, dict[str, float | None]] = {}
    for scenario_id, metric, stat, value in session.execute(_only_runs(stats_statement, run_ids)):
        latency.setdefault(scenario_id, {})[f"{metric}_{stat}"] = value
    for row in rows:
        row.update(latency.get(row.pop("scenario_id"), {}))
    return _frame(rows, SCENARIO_COLUMNS)


def requests_frame(session: Session, run_ids: Sequence[str] | None) -> pd.DataFrame:
    """One row per request, in the order the scenarios produced them; token times stay lists."""
    statement = (
        select(
            RunRow.run_id,
            ScenarioRow.name.label("scenario"),
            ScenarioRow.position.label("scenario_position"),
            *(getattr(RequestRow, name) for name in REQUEST_COLUMNS[3:]),
        )
        .join(ScenarioRow, ScenarioRow.id == RequestRow.scenario_id)
        .join(RunRow, RunRow.run_id == ScenarioRow.run_id)
        .order_by(RunRow.started_at, RunRow.run_id, ScenarioRow.position, RequestRow.position)
    )
    return _frame(session.execute(_only_runs(statement, run_ids)).mappings().all(), REQUEST_COLUMNS)


REPORT_RUN_COLUMNS: tuple[str, ...] = ("run_id", "backend_settings", "hardware_info")
REPORT_SCENARIO_COLUMNS: tuple[str, ...] = (
    "run_id",
    "position",
    "scenario",
    "settings",
    "invalid_reason",
    "kv_cache_capacity_tokens",
    "device_memory_source",
    "roofline",
    "serving",
)
REPORT_DETERMINISM_COLUMNS: tuple[str, ...] = (
    "run_id",
    "scenario",
    "check",
    "batch_size",
    "exact_match",
    "skipped_reason",
)


def report_frames(session: Session, run_ids: Sequence[str] | None) -> dict[str, pd.DataFrame]:
    """What a leaderboard shows beyond ``runs_frame`` and ``scenarios_frame``: one query per table.

    ``runs``: backend settings and the full hardware description (JSON as dicts); ``scenarios``: the
    settings, invalid reason, roofline and serving details of every scenario, keyed by (run_id, position);
    ``determinism``: one row per stored determinism comparison. Reads only.
    """
    runs = select(RunRow.run_id, RunRow.backend_settings, HardwareRow.info.label("hardware_info")).outerjoin(
        HardwareRow, HardwareRow.run_id == RunRow.run_id
    )
    scenarios = select(
        ScenarioRow.run_id,
        ScenarioRow.position,
        ScenarioRow.name.label("scenario"),
        *(getattr(ScenarioRow, name) for name in REPORT_SCENARIO_COLUMNS[3:]),
    ).join(RunRow, RunRow.run_id == ScenarioRow.run_id)
    determinism = (
        select(
            ScenarioRow.run_id,
            ScenarioRow.name.label("scenario"),
            *(getattr(DeterminismRow, name) for name in REPORT_DETERMINISM_COLUMNS[2:]),
        )
        .join(ScenarioRow, ScenarioRow.id == DeterminismRow.scenario_id)
        .join(RunRow, RunRow.run_id == ScenarioRow.run_id)
    )
    found = {}
    for name, statement, columns in (
        ("runs", runs, REPORT_RUN_COLUMNS),
        ("scenarios", scenarios, REPORT_SCENARIO_COLUMNS),
        ("determinism", determinism, REPORT_DETERMINISM_COLUMNS),
    ):
        rows = session.execute(_only_runs(statement, run_ids)).all()
        found[name] = pd.DataFrame.from_records(rows, columns=list(columns))
    found["scenarios"]["kv_cache_capacity_tokens"] = found["scenarios"]["kv_cache_capacity_tokens"].astype(
        "Int64"
    )
    return found


def check_export_choice(fmt: str, table: str) -> None:
    """Refuse an unknown format or table before any database work is done."""
    if fmt not in EXPORT_FORMATS:
        raise UserError(
            f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}", field="format"
        )
    if table not in EXPORT_TABLES:
        raise UserError(f"unknown table {table!r}; choose one of {', '.join(EXPORT_TABLES)}", field="table")


def write_frame(frame: pd.DataFrame, path: Path, fmt: str) -> Path:
    """Write ``frame`` as CSV (lists as JSON text), JSON records with ISO dates, or Parquet."""
    check_export_choice(fmt, "scenarios")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            _lists_as_json_text(frame).to_csv(path, index=False)
        elif fmt == "json":
            frame.to_json(path, orient="records", date_format="iso", date_unit="us", indent=1)
        else:
            frame.to_parquet(path, engine="pyarrow", index=False)
    except OSError as exc:
        raise UserError(f"cannot write the export: {exc.strerror or exc}", path=path, field="path") from None
    return path


# --------------------------------------------------------------------------------------------------


def _only_runs(statement: Select[Any], run_ids: Sequence[str] | None) -> Select[Any]:
    return statement if run_ids is None else statement.where(RunRow.run_id.in_(run_ids))


def _frame(rows: Sequence[Any], columns: Sequence[str]) -> pd.DataFrame:
    """A frame with exactly ``columns`` in order and the same dtypes whether or not it has rows."""
    frame = pd.DataFrame.from_records([dict(row) for row in rows], columns=list(columns))
    for column in columns:
        if column in _INT_COLUMNS:
            frame[column] = frame[column].astype("int64")
        elif column in _FLOAT_COLUMNS:
            frame[column] = frame[column].astype("float64")
        elif column in _TIME_COLUMNS:
            frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
        elif column == "valid":
            frame[column] = frame[column].astype("bool")
    return frame


def _lists_as_json_text(frame: pd.DataFrame) -> pd.DataFrame:
    """CSV has no lists; JSON text reads back unambiguously (``json.loads``), unlike Python's repr."""
    list_columns = [column for column in frame.columns if column in _LIST_COLUMNS]
    if not list_columns:
        return frame
    frame = frame.copy()
    for column in list_columns:
        frame[column] = frame[column].map(json.dumps)
    return frame
