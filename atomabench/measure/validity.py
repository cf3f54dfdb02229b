"""Is a scenario's measurement trustworthy? A pure verdict from its telemetry and its size.

A number measured while the GPU throttled, shared the device with another job or hit a hardware error
describes that accident, not the node; a window too short or with too few requests describes noise.
Such a scenario is kept and shown, marked invalid with every reason, and verdicts ignore it.
"""

from __future__ import annotations

from collections import defaultdict

from atomabench.hardware.telemetry import TelemetrySummary

THERMAL_THROTTLE_REASONS: tuple[str, ...] = ("HwThermalSlowdown", "SwThermalSlowdown")
POWER_THROTTLE_REASONS: tuple[str, ...] = ("SwPowerCap", "HwPowerBrakeSlowdown")
HARDWARE_SLOWDOWN_REASONS: tuple[str, ...] = ("HwSlowdown",)
"""NVML's HW slowdown halves the clocks for heat, a power brake or over-current: its cause is not told."""

INVALIDATING_THROTTLE_REASONS: frozenset[str] = frozenset(
    THERMAL_THROTTLE_REASONS + POWER_THROTTLE_REASONS + HARDWARE_SLOWDOWN_REASONS
)
"""Throttle reasons that make a window invalid; GpuIdle, SyncBoost and clock settings do not."""


def assess(
    summary: TelemetrySummary | None,
    *,
    duration_s: float,
    completed: int,
    min_duration_s: float | None = None,
    min_requests: int | None = None,
    invalidating_reasons: frozenset[str] = INVALIDATING_THROTTLE_REASONS,
) -> tuple[bool, str | None]:
    """``(valid, reason)``: reason joins every problem found with "; ", in order of severity.

    ``summary`` None (no telemetry) checks only the size of the window. ``invalidating_reasons`` lets a
    suite tolerate, say, ``SwPowerCap`` on boards that always run at their power limit.
    """
    reasons: list[str] = []
    if summary is not None:
        reasons += _hardware_errors(summary)
        reasons += _throttling(summary.throttle_reasons, invalidating_reasons)
        reasons += _foreign_processes(summary)
    if completed <= 0:
        reasons.append("no request completed")
    elif min_requests is not None and completed < min_requests:
        reasons.append(
            f"completed {completed} request{'s' if completed != 1 else ''} < minimum {min_requests}"
        )
    if min_duration_s is not None and duration_s < min_duration_s:
        shown, minimum = _distinct(duration_s, min_duration_s)
        reasons.append(f"ran {shown} s < minimum {minimum} s")
    return (not reasons, "; ".join(reasons) or None)


def _hardware_errors(summary: TelemetrySummary) -> list[str]:
    reasons = []
    for event in summary.xid_events:
        where = f"GPU {event.gpu_index}" if event.gpu_index is not None else "a GPU"
        reason = f"XID {event.xid} on {where}"
        if reason not in reasons:
            reasons.append(reason)
    for gpu in summary.gpus:
        if gpu.ecc_uncorrected_delta:
            plural = "s" if gpu.ecc_uncorrected_delta != 1 else ""
            reasons.append(f"{gpu.ecc_uncorrected_delta} uncorrected ECC error{plural} on GPU {gpu.index}")
    return reasons


def _throttling(seen: tuple[str, ...], invalidating: frozenset[str]) -> list[str]:
    reasons = []
    for label, group in (
        ("thermal throttling", THERMAL_THROTTLE_REASONS),
        ("power throttling", POWER_THROTTLE_REASONS),
        ("hardware slowdown", HARDWARE_SLOWDOWN_REASONS),
    ):
        names = [name for name in seen if name in group and name in invalidating]
        if names:
            reasons.append(f"{label} ({', '.join(names)}) during the window")
    others = [
        name
        for name in seen
        if name in invalidating
        and name not in THERMAL_THROTTLE_REASONS + POWER_THROTTLE_REASONS + HARDWARE_SLOWDOWN_REASONS
    ]
    if others:
        reasons.append(f"clock throttling ({', '.join(others)}) during the window")
    return reasons


def _foreign_processes(summary: TelemetrySummary) -> list[str]:
    pids_by_gpu: dict[int, list[int]] = defaultdict(list)
    for process in summary.foreign_processes:
        if process.pid not in pids_by_gpu[process.gpu_index]:
            pids_by_gpu[process.gpu_index].append(process.pid)
    reasons = []
    for gpu_index in sorted(pids_by_gpu):
        pids = sorted(pids_by_gpu[gpu_index])
        if len(pids) == 1:
            reasons.append(f"another process (pid {pids[0]}) used GPU {gpu_index}")
        else:
            reasons.append(f"other processes (pids {', '.join(map(str, pids))}) used GPU {gpu_index}")
    return reasons


def _distinct(value: float, minimum: float) -> tuple[str, str]:
    """Both numbers at the fewest decimals (at least one for the value) that tell them apart."""
    shown_minimum = f"{minimum:g}"
    for decimals in range(1, 7):
        shown = f"{value:.{decimals}f}"
        if float(shown) < minimum:
            return shown, shown_minimum
    return repr(value), repr(minimum)
