"""Validity verdicts and their exact reasons, from hand-built telemetry summaries."""

from __future__ import annotations

import pytest

from atomabench.hardware.telemetry import ForeignProcess, GpuTelemetry, TelemetrySummary, XidEvent
from atomabench.measure.validity import assess


def summary(**fields) -> TelemetrySummary:
    base = {
        "source": "nvml",
        "interval_s": 0.5,
        "duration_s": 12.0,
        "sample_count": 25,
        "xid_monitored": True,
    }
    return TelemetrySummary(**{**base, **fields})


def check(telemetry: TelemetrySummary | None, **overrides) -> tuple[bool, str | None]:
    arguments = {"duration_s": 12.0, "completed": 16, "min_duration_s": 10.0, "min_requests": 8}
    return assess(telemetry, **{**arguments, **overrides})


def test_a_clean_window_is_valid() -> None:
    assert check(summary(throttle_reasons=("GpuIdle", "SyncBoost"))) == (True, None)
    assert check(None) == (True, None)


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (("HwThermalSlowdown",), "thermal throttling (HwThermalSlowdown) during the window"),
        (
            ("GpuIdle", "SwThermalSlowdown", "HwThermalSlowdown"),
            "thermal throttling (SwThermalSlowdown, HwThermalSlowdown) during the window",
        ),
        (("SwPowerCap",), "power throttling (SwPowerCap) during the window"),
        (("HwPowerBrakeSlowdown",), "power throttling (HwPowerBrakeSlowdown) during the window"),
        (("HwSlowdown",), "hardware slowdown (HwSlowdown) during the window"),
        (
            ("SwPowerCap", "HwThermalSlowdown"),
            "thermal throttling (HwThermalSlowdown) during the window; "
            "power throttling (SwPowerCap) during the window",
        ),
    ],
)
def test_throttling_for_heat_or_power_invalidates(reasons, expected) -> None:
    assert check(summary(throttle_reasons=reasons)) == (False, expected)


def test_a_suite_may_tolerate_the_power_cap() -> None:
    tolerant = frozenset({"HwThermalSlowdown", "SwThermalSlowdown", "HwSlowdown", "HwPowerBrakeSlowdown"})

    assert check(summary(throttle_reasons=("SwPowerCap",)), invalidating_reasons=tolerant) == (True, None)


def test_xid_events_each_named_once() -> None:
    events = (
        XidEvent(gpu_index=0, xid=79, t=3.5),
        XidEvent(gpu_index=0, xid=79, t=3.5),
        XidEvent(gpu_index=1, xid=48, t=4.0),
        XidEvent(gpu_index=None, xid=13, t=5.0),
    )

    assert check(summary(xid_events=events)) == (False, "XID 79 on GPU 0; XID 48 on GPU 1; XID 13 on a GPU")


def test_uncorrected_ecc_errors_invalidate() -> None:
    gpus = (GpuTelemetry(index=0, ecc_uncorrected_delta=0), GpuTelemetry(index=1, ecc_uncorrected_delta=2))

    assert check(summary(gpus=gpus)) == (False, "2 uncorrected ECC errors on GPU 1")


def test_foreign_processes_grouped_per_gpu() -> None:
    processes = (
        ForeignProcess(gpu_index=0, pid=1234, first_seen_t=1.0),
        ForeignProcess(gpu_index=1, pid=5678, first_seen_t=2.0),
        ForeignProcess(gpu_index=1, pid=4321, first_seen_t=2.5),
    )

    assert check(summary(foreign_processes=processes)) == (
        False,
        "another process (pid 1234) used GPU 0; other processes (pids 4321, 5678) used GPU 1",
    )


def test_too_short_and_too_few() -> None:
    assert check(None, duration_s=3.2) == (False, "ran 3.2 s < minimum 10 s")
    assert check(None, duration_s=9.96) == (False, "ran 9.96 s < minimum 10 s")  # never "10.0 < 10"
    assert check(None, completed=3) == (False, "completed 3 requests < minimum 8")
    assert check(None, completed=1, duration_s=0.25) == (
        False,
        "completed 1 request < minimum 8; ran 0.2 s < minimum 10 s",
    )
    assert check(None, completed=0) == (False, "no request completed")


def test_minimums_are_optional() -> None:
    assert assess(None, duration_s=0.1, completed=1) == (True, None)
    assert assess(None, duration_s=0.1, completed=0) == (False, "no request completed")


def test_every_reason_in_order_of_severity() -> None:
    telemetry = summary(
        throttle_reasons=("HwThermalSlowdown",),
        xid_events=(XidEvent(gpu_index=0, xid=79, t=3.5),),
        foreign_processes=(ForeignProcess(gpu_index=0, pid=1234, first_seen_t=1.0),),
    )

    assert check(telemetry, duration_s=3.2) == (
        False,
        "XID 79 on GPU 0; thermal throttling (HwThermalSlowdown) during the window; "
        "another process (pid 1234) used GPU 0; ran 3.2 s < minimum 10 s",
    )
