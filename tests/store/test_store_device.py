"""Device profile measurements and telemetry time series in the results database."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from atomabench.errors import UserError
from atomabench.hardware.microbench import (
    BandwidthResult,
    DeviceProfileResult,
    LatencyResult,
    MatmulResult,
    StoredDeviceProfile,
)
from atomabench.hardware.telemetry import TelemetrySample
from atomabench.store import Store, open_store

from .factories import make_run, make_scenario
from .sql import fetch_all, row_count


def make_profile_result(hour: int = 12, *, device_name: str = "NVIDIA H100 80GB HBM3") -> DeviceProfileResult:
    return DeviceProfileResult(
        device="cuda",
        device_name=device_name,
        profile_id="h100-sxm",
        measured_at=datetime(2025, 3, 1, hour, 0, tzinfo=UTC),
        torch_version="2.5.1+cu124",
        matmul=(
            MatmulResult(
                dtype="bf16", size=8192, repeats=5, calls_per_repeat=60, tflops=700.0, tflops_median=690.0
            ),
            MatmulResult(dtype="fp8", size=8192, repeats=5, calls_per_repeat=100, tflops=1400.0),
            MatmulResult(dtype="tf32", skipped_reason="not asked"),
        ),
        memory_bandwidth=BandwidthResult(
            name="memory bandwidth (copy)",
            method="device-to-device copy, read + write counted",
            array_bytes=2**30,
            bytes_moved=2**31,
            repeats=5,
            seconds_best=0.00076695,
            seconds_median=0.000768,
            gbs=2800.0,
            gbs_median=2796.0,
            peak_gbs=3350.0,
            vs_peak_pct=100 * 2800 / 3350,
        ),
        host_to_device=BandwidthResult(
            name="host to device",
            method="pinned host → device copy",
            array_bytes=2**28,
            bytes_moved=2**28,
            repeats=5,
            seconds_best=0.0107,
            seconds_median=0.0108,
            gbs=25.0,
            gbs_median=24.9,
        ),
        launch_latency=LatencyResult(launches=2000, repeats=5, us_best=4.0, us_median=4.25),
    )


def test_device_profiles_round_trip_newest_first(store: Store) -> None:
    older, newer = make_profile_result(12), make_profile_result(13, device_name="NVIDIA H100 PCIe")

    first_id = store.add_device_profile(older)
    second_id = store.add_device_profile(newer)

    assert store.list_device_profiles() == [
        StoredDeviceProfile(id=second_id, result=newer),
        StoredDeviceProfile(id=first_id, result=older),
    ]
    [row] = fetch_all(
        store,
        "SELECT device, device_name, profile_id, quick, memory_bandwidth_gbs, host_to_device_gbs, "
        "launch_latency_us, CAST(peak_tflops AS TEXT) FROM device_profiles WHERE id = :id",
        id=first_id,
    )
    assert row == (
        "cuda",
        "NVIDIA H100 80GB HBM3",
        "h100-sxm",
        False,
        2800.0,
        25.0,
        4.0,
        '{"bf16":700.0,"fp8":1400.0}',
    )


def test_no_device_profiles_yet(store: Store) -> None:
    assert store.list_device_profiles() == []


def samples() -> list[TelemetrySample]:
    """Two ticks of a one-GPU node: the host sample, then GPU 0, as the tracker takes them."""
    return [
        TelemetrySample(t=0.0, cpu_percent=12.5, rss_bytes=2_000_000_000),
        TelemetrySample(
            t=0.0,
            gpu_index=0,
            gpu_util_pct=0,
            memory_util_pct=0,
            memory_used_bytes=540_999_680,
            power_w=69.812,
            temperature_c=33,
            sm_clock_mhz=1980,
            memory_clock_mhz=2619,
            throttle_reasons=1,
        ),
        TelemetrySample(t=0.5, cpu_percent=50.0, rss_bytes=2_100_000_000),
        TelemetrySample(
            t=0.5,
            gpu_index=0,
            gpu_util_pct=100,
            memory_util_pct=43,
            memory_used_bytes=79_129_444_352,
            power_w=None,  # a failed reading stays missing
            temperature_c=62,
            sm_clock_mhz=1755,
            memory_clock_mhz=2619,
            throttle_reasons=64,
        ),
    ]


def test_telemetry_frame_holds_every_sample_in_order(store: Store) -> None:
    run = make_run()
    store.start_run(run)
    chat_id = store.add_scenario(run.run_id, make_scenario("chat"))
    long_id = store.add_scenario(run.run_id, make_scenario("long", minutes_after_t0=2))

    assert store.add_telemetry(long_id, samples()[2:]) == 2
    assert store.add_telemetry(chat_id, samples()) == 4
    assert store.add_telemetry(chat_id, []) == 0

    frame = store.telemetry_frame(run.run_id[:5])

    assert list(frame.columns) == [
        "run_id", "scenario", "scenario_position", "t", "gpu_index", "gpu_util_pct", "memory_util_pct",
        "memory_used_bytes", "power_w", "temperature_c", "sm_clock_mhz", "memory_clock_mhz",
        "throttle_reasons", "cpu_percent", "rss_bytes",
    ]  # fmt: skip
    assert list(frame["scenario"]) == ["chat"] * 4 + ["long"] * 2
    assert list(frame["scenario_position"]) == [0, 0, 0, 0, 1, 1]
    assert list(frame["t"]) == [0.0, 0.0, 0.5, 0.5, 0.5, 0.5]
    assert frame["gpu_index"].tolist() == [pd.NA, 0, pd.NA, 0, pd.NA, 0]
    assert frame["throttle_reasons"].tolist() == [pd.NA, 1, pd.NA, 64, pd.NA, 64]
    assert frame.loc[1, "power_w"] == 69.812 and pd.isna(frame.loc[3, "power_w"])
    assert frame.loc[3, "memory_used_bytes"] == 79_129_444_352
    assert frame.loc[2, "rss_bytes"] == 2_100_000_000
    assert frame.dtypes["gpu_index"] == "Int64" and frame.dtypes["power_w"] == "float64"
    rebuilt = [
        TelemetrySample(**{k: (None if pd.isna(v) else v) for k, v in row.items()})
        for row in frame.iloc[:4, 3:].to_dict("records")
    ]
    assert rebuilt == samples()


def test_empty_telemetry_frame_has_the_same_columns_and_dtypes(store: Store) -> None:
    run = make_run()
    store.start_run(run)
    store.add_scenario(run.run_id, make_scenario())

    frame = store.telemetry_frame(run.run_id)

    assert len(frame) == 0 and len(frame.columns) == 15
    assert frame.dtypes["t"] == "float64" and frame.dtypes["throttle_reasons"] == "UInt64"


def test_telemetry_needs_a_stored_scenario_and_a_known_run(store: Store) -> None:
    with pytest.raises(UserError, match="no scenario with id 42") as error:
        store.add_telemetry(42, samples())
    assert error.value.field == "scenario_id"
    with pytest.raises(UserError, match="no run matches"):
        store.telemetry_frame("nope")


def test_deleting_a_run_deletes_its_telemetry(store: Store) -> None:
    run = make_run()
    store.start_run(run)
    store.add_telemetry(store.add_scenario(run.run_id, make_scenario()), samples())

    store.delete_run(run.run_id)

    assert row_count(store, "telemetry_samples") == 0


def test_a_schema_4_database_from_before_migrations_gains_the_new_tables_on_open(db_path: Path) -> None:
    """``create_all`` without ``alembic_version``, tables added later within schema 4: completed, stamped."""
    with open_store(db_path) as store:
        store.start_run(make_run())
    with sqlite3.connect(db_path) as connection:
        connection.execute("DROP TABLE alembic_version")
        connection.execute("DROP TABLE device_profiles")
        connection.execute("DROP TABLE telemetry_samples")

    with open_store(db_path) as reopened:
        assert reopened.add_device_profile(make_profile_result()) == 1
        assert reopened.list_runs()[0].run_id == "run-0001"
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]
