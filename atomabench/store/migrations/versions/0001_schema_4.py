"""Schema 4: every table of the results database, as atomabench 0.1 defines it.

Written out as explicit ``create_table`` calls so that this revision never changes when
``atomabench/store/schema.py`` does; later schema changes are new revisions on top of it.
``tests/store/test_migrations.py`` checks that upgrading an empty database to head gives exactly
``Base.metadata``.

Revision ID: 0001
Revises:
Created: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# BIGINT on PostgreSQL; INTEGER on SQLite, where only INTEGER PRIMARY KEY auto-increments
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_TABLES = (
    "telemetry_samples",
    "requests",
    "latency_stats",
    "determinism_results",
    "submissions",
    "scenarios",
    "hardware",
    "runs",
    "meta",
    "device_profiles",
)
"""Dependent tables first: the order in which ``downgrade`` drops them."""


def upgrade() -> None:
    op.create_table(
        "device_profiles",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device", sa.String(length=16), nullable=False),
        sa.Column("device_name", sa.String(), nullable=False),
        sa.Column("profile_id", sa.String(length=128), nullable=True),
        sa.Column("quick", sa.Boolean(), nullable=False),
        sa.Column("memory_bandwidth_gbs", sa.Double(), nullable=True),
        sa.Column("host_to_device_gbs", sa.Double(), nullable=True),
        sa.Column("launch_latency_us", sa.Double(), nullable=True),
        sa.Column("peak_tflops", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_device_profiles_measured_at", "device_profiles", ["measured_at"])
    op.create_index("ix_device_profiles_profile_id", "device_profiles", ["profile_id"])

    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("suite", sa.String(), nullable=False),
        sa.Column("suite_path", sa.Text(), nullable=True),
        sa.Column("backend", sa.String(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("backend_settings", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("atomabench_version", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])

    op.create_table(
        "hardware",
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("profile_id", sa.String(length=128), nullable=True),
        sa.Column("device_name", sa.String(), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("accelerator", sa.String(length=16), nullable=False),
        sa.Column("cpu_model", sa.String(), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index("ix_hardware_profile_id", "hardware", ["profile_id"])

    op.create_table(
        "scenarios",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("invalid_reason", sa.Text(), nullable=True),
        sa.Column("peak_device_bytes", sa.BigInteger(), nullable=True),
        sa.Column("peak_host_rss_bytes", sa.BigInteger(), nullable=True),
        sa.Column("device_memory_source", sa.String(), nullable=True),
        sa.Column("kv_cache_capacity_tokens", sa.BigInteger(), nullable=True),
        sa.Column("energy_joules", sa.Double(), nullable=True),
        sa.Column("average_watts", sa.Double(), nullable=True),
        sa.Column("joules_per_output_token", sa.Double(), nullable=True),
        sa.Column("energy_source", sa.String(), nullable=True),
        sa.Column("duration_s", sa.Double(), nullable=True),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("total_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("request_throughput", sa.Double(), nullable=True),
        sa.Column("output_throughput", sa.Double(), nullable=True),
        sa.Column("total_token_throughput", sa.Double(), nullable=True),
        sa.Column("peak_output_throughput", sa.Double(), nullable=True),
        sa.Column("goodput", sa.Double(), nullable=True),
        sa.Column("slo_attainment", sa.Double(), nullable=True),
        sa.Column("peak_concurrency", sa.Double(), nullable=True),
        sa.Column("mean_concurrency", sa.Double(), nullable=True),
        sa.Column("serving", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("determinism_tier", sa.String(length=16), nullable=True),
        sa.Column("determinism_summary", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("telemetry_summary", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("roofline", sa.JSON(none_as_null=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "position", name="uq_scenarios_run_position"),
    )
    op.create_index("ix_scenarios_run_id", "scenarios", ["run_id"])

    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bundle_sha256", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("environment", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("fingerprint", sa.JSON(none_as_null=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("bundle_sha256"),
        sa.UniqueConstraint("run_id"),
    )
    op.create_index("ix_submissions_node_id", "submissions", ["node_id"])

    op.create_table(
        "determinism_results",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("scenario_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("check", sa.String(length=1), nullable=False),
        sa.Column("prompt_id", sa.String(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("batch_position", sa.Integer(), nullable=False),
        sa.Column("repeat", sa.Integer(), nullable=False),
        sa.Column("exact_match", sa.Boolean(), nullable=False),
        sa.Column("first_divergence", sa.Integer(), nullable=True),
        sa.Column("margin_at_divergence", sa.Double(), nullable=True),
        sa.Column("max_abs_logprob_delta", sa.Double(), nullable=True),
        sa.Column("top_overlap", sa.Double(), nullable=True),
        sa.Column("length_delta", sa.Integer(), nullable=False),
        sa.Column("unique_completions", sa.Integer(), nullable=True),
        sa.Column("samples", sa.Integer(), nullable=True),
        sa.Column("most_common_share", sa.Double(), nullable=True),
        sa.Column("skipped_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["scenario_id"], ["scenarios.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_determinism_scenario_id_position", "determinism_results", ["scenario_id", "position"])

    op.create_table(
        "latency_stats",
        sa.Column("scenario_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("stat", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["scenario_id"], ["scenarios.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("scenario_id", "metric", "stat"),
    )
    op.create_table(
        "requests",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("scenario_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("scenario", sa.String(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("send_time", sa.Double(), nullable=False),
        sa.Column("first_token_time", sa.Double(), nullable=True),
        sa.Column("end_time", sa.Double(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("output_hash", sa.String(length=128), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("batch_position", sa.Integer(), nullable=False),
        sa.Column("token_count_source", sa.String(length=16), nullable=False),
        sa.Column("token_times", sa.JSON(), nullable=False),
        sa.Column("output_token_ids", sa.JSON(), nullable=False),
        sa.Column("logprobs", sa.JSON(none_as_null=True), nullable=True),
        sa.ForeignKeyConstraint(["scenario_id"], ["scenarios.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_requests_scenario_id_position", "requests", ["scenario_id", "position"])

    op.create_table(
        "telemetry_samples",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("scenario_id", sa.Integer(), nullable=False),
        sa.Column("t", sa.Double(), nullable=False),
        sa.Column("gpu_index", sa.Integer(), nullable=True),
        sa.Column("gpu_util_pct", sa.Double(), nullable=True),
        sa.Column("memory_util_pct", sa.Double(), nullable=True),
        sa.Column("memory_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("power_w", sa.Double(), nullable=True),
        sa.Column("temperature_c", sa.Double(), nullable=True),
        sa.Column("sm_clock_mhz", sa.Integer(), nullable=True),
        sa.Column("memory_clock_mhz", sa.Integer(), nullable=True),
        sa.Column("throttle_reasons", sa.BigInteger(), nullable=True),
        sa.Column("cpu_percent", sa.Double(), nullable=True),
        sa.Column("rss_bytes", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["scenario_id"], ["scenarios.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_telemetry_samples_scenario_id", "telemetry_samples", ["scenario_id"])


def downgrade() -> None:
    for table in _TABLES:
        op.drop_table(table)
