"""The tables of the results database, as typed SQLAlchemy 2.0 declarative models.

Only ``atomabench.store`` sees these classes; every other room gets records or DataFrames. The layout
keeps the numbers a leaderboard filters and sorts on (throughput, token counts, device name) in real
columns, and the nested parts (settings, the full hardware description, per-token times) as JSON, so
the same schema works on SQLite and PostgreSQL without dialect-specific types.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

LATENCY_METRICS: tuple[str, ...] = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")
"""The ``ScenarioMetrics`` fields stored in ``latency_stats``, in this order."""

LATENCY_SCALARS: tuple[str, ...] = ("count", "mean", "std", "min", "max")
"""``LatencyStats`` fields stored as ``stat`` rows; every other ``stat`` is a key of ``percentiles``."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and handed back timezone-aware.

    SQLite has no timezone type and SQLAlchemy would silently drop the offset, so every value is
    converted to UTC before it is written. A naive datetime is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return utc if dialect.name == "postgresql" else utc.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSON NULL and SQL NULL are different things; store a Python None as SQL NULL so "no logprobs"
# stays distinguishable from an empty list and is queryable with IS NULL.
NullableJson = JSON(none_as_null=True)


class UInt64(TypeDecorator[int]):
    """An unsigned 64-bit integer (an NVML bitmask) in a signed BIGINT column.

    NVML sets bit 63 for "unknown reason", which neither SQLite nor PostgreSQL can store in a signed
    64-bit integer; the value is kept as its two's complement and turned back on the way out.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if not 0 <= value < 1 << 64:
            raise ValueError(f"{value} is not an unsigned 64-bit integer")
        return value - (1 << 64) if value >= 1 << 63 else value

    def process_result_value(self, value: int | None, dialect: Dialect) -> int | None:
        return None if value is None else value & ((1 << 64) - 1)


# Row ids of the tables that grow with every request or sample: BIGINT on PostgreSQL (a shared
# leaderboard can pass 2**31 rows), but INTEGER on SQLite, where only INTEGER PRIMARY KEY is the
# auto-incrementing rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute by name
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
        # unbounded VARCHAR: free-form names (scenarios, request ids, device names) must fit on
        # PostgreSQL, which enforces lengths, exactly as they do on SQLite, which does not
        str: String(),
        int: Integer,
        float: Double,
        bool: Boolean,
    }


class MetaRow(Base):
    """Facts about the database itself: ``schema_version``, ``created_at``, ``atomabench_version``."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunRow(Base):
    """One invocation of a suite (``RunInfo`` without its hardware)."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_started_at", "started_at"),)

    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    suite: Mapped[str]
    suite_path: Mapped[str | None] = mapped_column(Text)
    backend: Mapped[str]
    model: Mapped[str] = mapped_column(Text)
    backend_settings: Mapped[dict[str, Any]]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(32))
    atomabench_version: Mapped[str] = mapped_column(String(64))


class HardwareRow(Base):
    """The machine a run used: the columns people filter on, plus the full ``HardwareInfo`` as JSON."""

    __tablename__ = "hardware"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    profile_id: Mapped[str | None] = mapped_column(String(128), index=True)
    device_name: Mapped[str]
    gpu_count: Mapped[int]
    accelerator: Mapped[str] = mapped_column(String(16))
    cpu_model: Mapped[str]
    info: Mapped[dict[str, Any]]


class ScenarioRow(Base):
    """One finished scenario: settings, validity, memory, energy and the scalar metrics as columns."""

    __tablename__ = "scenarios"
    __table_args__ = (UniqueConstraint("run_id", "position", name="uq_scenarios_run_position"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    name: Mapped[str]
    kind: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    valid: Mapped[bool]
    invalid_reason: Mapped[str | None] = mapped_column(Text)

    peak_device_bytes: Mapped[int | None] = mapped_column(BigInteger)
    peak_host_rss_bytes: Mapped[int | None] = mapped_column(BigInteger)
    device_memory_source: Mapped[str | None]
    kv_cache_capacity_tokens: Mapped[int | None] = mapped_column(BigInteger)

    energy_joules: Mapped[float | None]
    average_watts: Mapped[float | None]
    joules_per_output_token: Mapped[float | None]
    energy_source: Mapped[str | None]

    # The float metrics are NULL only where the metric code produced NaN (SQLite cannot store NaN);
    # the store reads NULL back as NaN so a bad number never costs the scenario it belongs to.
    duration_s: Mapped[float | None]
    completed: Mapped[int]
    failed: Mapped[int]
    total_input_tokens: Mapped[int] = mapped_column(BigInteger)
    total_output_tokens: Mapped[int] = mapped_column(BigInteger)
    request_throughput: Mapped[float | None]
    output_throughput: Mapped[float | None]
    total_token_throughput: Mapped[float | None]
    peak_output_throughput: Mapped[float | None]
    # server / sweep scenarios (schema 4): NULL where the scenario had no SLO or no serving load
    goodput: Mapped[float | None]
    slo_attainment: Mapped[float | None]
    peak_concurrency: Mapped[float | None]
    mean_concurrency: Mapped[float | None]
    serving: Mapped[dict[str, Any] | None] = mapped_column(NullableJson)

    # determinism scenarios only: the tier as a column (leaderboards filter on it) and the full summary
    determinism_tier: Mapped[str | None] = mapped_column(String(16))
    determinism_summary: Mapped[dict[str, Any] | None] = mapped_column(NullableJson)
    telemetry_summary: Mapped[dict[str, Any] | None] = mapped_column(NullableJson)
    roofline: Mapped[dict[str, Any] | None] = mapped_column(NullableJson)


class DeterminismRow(Base):
    """One ``DeterminismResult``: a needle's output compared with its batch-1 reference."""

    __tablename__ = "determinism_results"
    __table_args__ = (Index("ix_determinism_scenario_id_position", "scenario_id", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenarios.id", ondelete="CASCADE"))
    position: Mapped[int]
    check: Mapped[str] = mapped_column(String(1))
    prompt_id: Mapped[str]
    batch_size: Mapped[int]
    batch_position: Mapped[int]
    repeat: Mapped[int]
    exact_match: Mapped[bool]
    first_divergence: Mapped[int | None]
    margin_at_divergence: Mapped[float | None]
    max_abs_logprob_delta: Mapped[float | None]
    top_overlap: Mapped[float | None]
    length_delta: Mapped[int]
    unique_completions: Mapped[int | None]
    samples: Mapped[int | None]
    most_common_share: Mapped[float | None]
    skipped_reason: Mapped[str | None] = mapped_column(Text)


class RequestRow(Base):
    """One ``RequestRecord``; ``position`` keeps the order the scenario produced them in."""

    __tablename__ = "requests"
    __table_args__ = (Index("ix_requests_scenario_id_position", "scenario_id", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenarios.id", ondelete="CASCADE"))
    position: Mapped[int]
    request_id: Mapped[str]
    scenario: Mapped[str]
    prompt_tokens: Mapped[int]
    output_tokens: Mapped[int]
    send_time: Mapped[float]
    first_token_time: Mapped[float | None]
    end_time: Mapped[float]
    error: Mapped[str | None] = mapped_column(Text)
    output_hash: Mapped[str] = mapped_column(String(128))
    batch_size: Mapped[int]
    batch_position: Mapped[int]
    token_count_source: Mapped[str] = mapped_column(String(16), default="engine")
    token_times: Mapped[list[Any]]
    output_token_ids: Mapped[list[Any]]
    logprobs: Mapped[list[Any] | None] = mapped_column(NullableJson)


class LatencyStatRow(Base):
    """One summary statistic of one latency distribution, in long format (``metric``, ``stat``, ``value``)."""

    __tablename__ = "latency_stats"

    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenarios.id", ondelete="CASCADE"), primary_key=True)
    metric: Mapped[str] = mapped_column(String(16), primary_key=True)
    stat: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float | None]  # NULL stands for NaN; a statistic that is None has no row at all


class DeviceProfileRow(Base):
    """One ``atomabench profile`` measurement: headline figures as columns, the full result as JSON.

    Not tied to a run: a node is profiled once and the figures serve every later roofline.
    """

    __tablename__ = "device_profiles"
    __table_args__ = (Index("ix_device_profiles_measured_at", "measured_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    measured_at: Mapped[datetime]
    device: Mapped[str] = mapped_column(String(16))
    device_name: Mapped[str]
    profile_id: Mapped[str | None] = mapped_column(String(128), index=True)
    quick: Mapped[bool]
    memory_bandwidth_gbs: Mapped[float | None]
    host_to_device_gbs: Mapped[float | None]
    launch_latency_us: Mapped[float | None]
    peak_tflops: Mapped[dict[str, Any]]  # best achieved TFLOPS per measured dtype
    result: Mapped[dict[str, Any]]  # the whole DeviceProfileResult


class TelemetrySampleRow(Base):
    """One telemetry sample of one scenario: a GPU (``gpu_index``) or the host (``gpu_index`` NULL)."""

    __tablename__ = "telemetry_samples"
    __table_args__ = (Index("ix_telemetry_samples_scenario_id", "scenario_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenarios.id", ondelete="CASCADE"))
    t: Mapped[float]  # seconds since the scenario's measured window began
    gpu_index: Mapped[int | None]
    gpu_util_pct: Mapped[float | None]
    memory_util_pct: Mapped[float | None]
    memory_used_bytes: Mapped[int | None] = mapped_column(BigInteger)
    power_w: Mapped[float | None]
    temperature_c: Mapped[float | None]
    sm_clock_mhz: Mapped[int | None]
    memory_clock_mhz: Mapped[int | None]
    throttle_reasons: Mapped[int | None] = mapped_column(UInt64)  # NVML bitmask, bit 63 included
    cpu_percent: Mapped[float | None]
    rss_bytes: Mapped[int | None] = mapped_column(BigInteger)


class SubmissionRow(Base):
    """One ingested signed bundle (``atomabench leaderboard ingest``): who signed which run, and when.

    ``manifest`` keeps the exact signed bytes and ``signature`` the Ed25519 signature over them, so a
    leaderboard can re-verify every stored run later without the original file.
    """

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    bundle_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    run_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("runs.run_id", ondelete="CASCADE"), unique=True
    )
    public_key: Mapped[str] = mapped_column(String(64))  # raw Ed25519 public key, hex
    node_id: Mapped[str] = mapped_column(String(64), index=True)
    signed_at: Mapped[datetime]
    ingested_at: Mapped[datetime]
    manifest: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(128))  # hex
    environment: Mapped[dict[str, Any] | None] = mapped_column(NullableJson)
    fingerprint: Mapped[dict[str, Any] | None] = mapped_column(NullableJson)
