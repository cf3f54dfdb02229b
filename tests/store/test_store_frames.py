"""DataFrames for economics and reports, and export to CSV, JSON and Parquet."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from atomabench.errors import UserError
from atomabench.store import Store

from .factories import make_hardware, make_run, make_scenario

# Spelled out by hand on purpose: economics and report depend on exactly this list.
EXPECTED_SCENARIO_COLUMNS = [
    "run_id", "suite", "backend", "model", "status", "started_at",
    "device_name", "profile_id", "gpu_count", "accelerator",
    "scenario", "kind", "valid",
    "duration_s", "completed", "failed", "total_input_tokens", "total_output_tokens",
    "request_throughput", "output_throughput", "total_token_throughput", "peak_output_throughput",
    "goodput", "slo_attainment", "peak_concurrency", "mean_concurrency",
    "ttft_ms_mean", "ttft_ms_std", "ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p95", "ttft_ms_p99",
    "tpot_ms_mean", "tpot_ms_std", "tpot_ms_p50", "tpot_ms_p90", "tpot_ms_p95", "tpot_ms_p99",
    "itl_ms_mean", "itl_ms_std", "itl_ms_p50", "itl_ms_p90", "itl_ms_p95", "itl_ms_p99",
    "e2el_ms_mean", "e2el_ms_std", "e2el_ms_p50", "e2el_ms_p90", "e2el_ms_p95", "e2el_ms_p99",
    "peak_device_bytes", "peak_host_rss_bytes", "energy_joules", "average_watts", "joules_per_output_token",
    "determinism_tier",
]  # fmt: skip


@pytest.fixture
def filled(store: Store) -> Store:
    """Two runs: an RTX 4090 run with two scenarios (the second without energy) and an 8x H100 run."""
    store.start_run(make_run("run-4090"))
    store.add_scenario("run-4090", make_scenario("chat"))
    store.add_scenario("run-4090", make_scenario("long", with_energy=False, valid=False))
    h100 = make_hardware("NVIDIA H100 80GB HBM3", "h100-sxm", gpu_count=8)
    store.start_run(make_run("run-h100", hours_after_t0=1, backend="vllm", hardware=h100))
    store.add_scenario("run-h100", make_scenario("chat", output_throughput=2400.0))
    return store


def test_scenarios_frame_has_exactly_the_agreed_columns(filled: Store) -> None:
    frame = filled.scenarios_frame()

    assert list(frame.columns) == EXPECTED_SCENARIO_COLUMNS
    assert len(EXPECTED_SCENARIO_COLUMNS) == 56


def test_scenarios_frame_values(filled: Store) -> None:
    frame = filled.scenarios_frame()

    assert list(zip(frame["run_id"], frame["scenario"], strict=True)) == [
        ("run-4090", "chat"),
        ("run-4090", "long"),
        ("run-h100", "chat"),
    ]
    chat = frame.iloc[0]
    assert (chat["device_name"], chat["profile_id"], chat["gpu_count"], chat["accelerator"]) == (
        "NVIDIA GeForce RTX 4090",
        "rtx-4090",
        1,
        "cuda",
    )
    assert chat["started_at"] == pd.Timestamp("2025-03-01T12:00:00Z")
    assert (chat["completed"], chat["total_input_tokens"], chat["total_output_tokens"]) == (2, 64, 6)
    assert chat["output_throughput"] == 12.0
    assert chat["total_token_throughput"] == 140.0
    # make_latency(2, 125.0): std = 125/8, p90 = 1.5·125, p95 = 1.625·125, p99 = 1.75·125
    assert (chat["ttft_ms_mean"], chat["ttft_ms_std"], chat["ttft_ms_p50"]) == (125.0, 15.625, 125.0)
    assert (chat["ttft_ms_p90"], chat["ttft_ms_p95"], chat["ttft_ms_p99"]) == (187.5, 203.125, 218.75)
    assert math.isnan(chat["tpot_ms_p95"])  # tpot was given no p95
    assert chat["e2el_ms_mean"] == 375.0
    assert math.isnan(chat["e2el_ms_std"])
    assert (chat["peak_device_bytes"], chat["energy_joules"], chat["joules_per_output_token"]) == (
        1.5e9,
        150.0,
        25.0,
    )
    long = frame.iloc[1]
    assert not long["valid"]
    assert math.isnan(long["peak_device_bytes"]) and math.isnan(long["energy_joules"])
    assert long["peak_host_rss_bytes"] == 2e9
    h100 = frame.iloc[2]
    assert (h100["backend"], h100["gpu_count"], h100["output_throughput"]) == ("vllm", 8, 2400.0)


def test_scenarios_frame_dtypes_are_the_same_with_and_without_rows(filled: Store, tmp_path: Path) -> None:
    from atomabench.store import open_store

    with open_store(tmp_path / "empty.db") as empty:
        empty_frame = empty.scenarios_frame()
    full_frame = filled.scenarios_frame()

    assert list(empty_frame.columns) == EXPECTED_SCENARIO_COLUMNS
    assert len(empty_frame) == 0
    numeric = ["gpu_count", "completed", "valid", "output_throughput", "ttft_ms_p99", "peak_device_bytes"]
    assert empty_frame[numeric].dtypes.tolist() == full_frame[numeric].dtypes.tolist()
    assert str(full_frame["started_at"].dtype) == "datetime64[us, UTC]"
    assert str(empty_frame["started_at"].dtype) == "datetime64[us, UTC]"
    assert full_frame["completed"].dtype == "int64"
    assert full_frame["peak_device_bytes"].dtype == "float64"


def test_scenarios_frame_filters_by_run_ids_and_prefixes(filled: Store) -> None:
    assert filled.scenarios_frame(["run-h"])["run_id"].tolist() == ["run-h100"]
    assert filled.scenarios_frame(["run-4090"])["scenario"].tolist() == ["chat", "long"]
    assert len(filled.scenarios_frame([])) == 0
    with pytest.raises(UserError, match="several runs"):
        filled.scenarios_frame(["run-"])
    with pytest.raises(UserError, match="no run matches"):
        filled.scenarios_frame(["run-a100"])


def test_runs_frame(filled: Store) -> None:
    frame = filled.runs_frame()

    assert frame["run_id"].tolist() == ["run-h100", "run-4090"]  # newest first
    assert frame["scenario_count"].tolist() == [1, 2]
    assert frame["best_output_throughput"].tolist() == [2400.0, 12.0]  # "long" is invalid and ignored
    assert frame["gpu_count"].tolist() == [8, 1]
    assert frame["ended_at"].isna().all()


def test_requests_frame_keeps_token_times_as_lists(filled: Store) -> None:
    frame = filled.requests_frame("run-4090")

    assert len(frame) == 4
    assert frame["request_id"].tolist() == ["chat-0", "chat-1", "long-0", "long-1"]
    assert frame["scenario"].tolist() == ["chat", "chat", "long", "long"]
    assert frame["token_times"].iloc[1] == [0.25, 0.375, 0.5]
    assert frame["output_token_ids"].iloc[0] == [11, 12, 13]
    assert frame["first_token_time"].tolist() == [0.125, 0.25, 0.125, 0.25]
    assert len(filled.requests_frame()) == 6


def test_export_scenarios_in_every_format_reads_back(filled: Store, tmp_path: Path) -> None:
    expected = filled.scenarios_frame()

    csv = pd.read_csv(filled.export(tmp_path / "out" / "scenarios.csv", "csv"))
    parquet = pd.read_parquet(filled.export(tmp_path / "scenarios.parquet", "parquet"))
    json_path = filled.export(tmp_path / "scenarios.json", "json")
    from_json = pd.read_json(json_path, orient="records")
    raw = json.loads(json_path.read_text())

    for frame in (csv, parquet, from_json):
        assert list(frame.columns) == EXPECTED_SCENARIO_COLUMNS
        assert frame["output_throughput"].tolist() == [12.0, 12.0, 2400.0]
        assert frame["ttft_ms_p95"].tolist() == [203.125, 203.125, 203.125]
        assert frame["energy_joules"].isna().tolist() == [False, True, False]
    pd.testing.assert_frame_equal(parquet, expected)
    assert raw[0]["started_at"] == "2025-03-01T12:00:00.000000Z"
    assert raw[1]["energy_joules"] is None
    assert raw[0]["valid"] is True


def test_export_requests_and_runs(filled: Store, tmp_path: Path) -> None:
    requests_csv = pd.read_csv(
        filled.export(tmp_path / "requests.csv", "csv", "requests", run_ids=["run-4090"])
    )
    requests_parquet = pd.read_parquet(filled.export(tmp_path / "requests.parquet", "parquet", "requests"))
    runs_json = json.loads(filled.export(tmp_path / "runs.json", "json", "runs").read_text())

    assert json.loads(requests_csv["token_times"].iloc[0]) == [0.125, 0.25, 0.375]
    assert list(requests_parquet["token_times"].iloc[1]) == [0.25, 0.375, 0.5]
    assert len(requests_parquet) == 6
    assert [run["run_id"] for run in runs_json] == ["run-h100", "run-4090"]
    assert runs_json[1]["best_output_throughput"] == 12.0


@pytest.mark.parametrize(
    ("fmt", "table", "field"), [("xlsx", "scenarios", "format"), ("csv", "gpus", "table")]
)
def test_export_refuses_an_unknown_format_or_table(
    filled: Store, tmp_path: Path, fmt: str, table: str, field: str
) -> None:
    with pytest.raises(UserError) as caught:
        filled.export(tmp_path / "out.x", fmt, table)  # type: ignore[arg-type]

    assert caught.value.field == field
    assert not (tmp_path / "out.x").exists()


def test_export_to_an_unwritable_place_is_a_user_error(filled: Store, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")

    with pytest.raises(UserError) as caught:
        filled.export(blocker / "out.csv", "csv")

    assert caught.value.field == "path"
    assert caught.value.path == str(blocker / "out.csv")
