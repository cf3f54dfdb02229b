"""The telemetry tracker fed by a fake NVML replaying a recorded H100, and by fake RAPL files.

Samples are taken at the start, at each ``sample_now()`` and at the end; the interval is an hour so the
background thread never adds one, which makes every count and mean exact.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from atomabench.hardware.telemetry import (
    NVML_ENERGY_SOURCE,
    RAPL_ENERGY_SOURCE,
    FieldStats,
    decode_throttle_reasons,
    track_telemetry,
)
from atomabench.measure.validity import assess

NEVER = 3600.0
FOREIGN_PID = 3_999_999  # above the pid of any process a test machine is likely to have


class FakeNVMLError(Exception):
    """pynvml.NVMLError look-alike: ``value`` is the NVML return code."""

    value = 999
    text = "Unknown Error"

    def __str__(self) -> str:
        return self.text


class FakeNotSupported(FakeNVMLError):
    value, text = 3, "Not Supported"


class FakeTimeout(FakeNVMLError):
    value, text = 10, "Timeout"


class FakeGpuIsLost(FakeNVMLError):
    value, text = 15, "GPU is lost"


class FakeLibraryNotFound(FakeNVMLError):
    value, text = 12, "NVML Shared Library Not Found"


# Values read from one H100 80GB HBM3 (driver 550.54.15) over a decode run that heated it up: idle at
# the start, full load, then HW and SW thermal slowdown as the SM clock falls from 1980 to 1410 MHz.
H100_RECORDING = {
    "utilisation": [(0, 0), (100, 43), (100, 45), (100, 44), (98, 40)],
    "memory_used": [540_999_680, 79_129_444_352, 79_129_444_352, 79_129_444_352, 79_129_444_352],
    "power_mw": [69_812, 688_905, 699_120, 701_334, 655_002],
    "temperature": [33, 62, 71, 84, 86],
    "sm_clock": [1980, 1980, 1980, 1755, 1410],
    "memory_clock": [2619, 2619, 2619, 2619, 2619],
    "throttle": [0x1, 0x0, 0x0, 0x40, 0x60],  # GpuIdle, -, -, HwThermalSlowdown, +SwThermalSlowdown
    "energy_mj": [1_234_567_890, 1_234_617_890],  # 50 J over the window
    "ecc": [0, 0],
}


class FakeNvml:
    """A pynvml replaying ``recording`` per GPU: each query returns its next value, then its last."""

    NVMLError = FakeNVMLError
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
    NVML_VOLATILE_ECC = 0
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_TIMEOUT = 10
    nvmlEventTypeXidCriticalError = 0x8

    def __init__(self, recordings=None, *, init_error=None, failures=None):
        self.recordings = recordings or [H100_RECORDING]
        self.init_error = init_error
        self.failures = failures or {}
        """(gpu, query) -> {call number: exception}; a call number of "*" fails every call."""
        self.calls: dict[tuple[int, str], int] = {}
        self.processes: list[list[SimpleNamespace]] = [[] for _ in self.recordings]
        self.pending_events: list[SimpleNamespace] = []
        self.initialised = 0
        self.event_set_freed = False

    # ---- replay
    def _next(self, handle, query, series):
        gpu = handle[1]
        number = self.calls.get((gpu, query), 0)
        self.calls[(gpu, query)] = number + 1
        failure = self.failures.get((gpu, query), {})
        error = failure.get(number, failure.get("*"))
        if error is not None:
            raise error()
        values = self.recordings[gpu][series]
        return values[min(number, len(values) - 1)]

    # ---- library
    def nvmlInit(self):
        if self.init_error is not None:
            raise self.init_error()
        self.initialised += 1

    def nvmlShutdown(self):
        self.initialised -= 1

    def nvmlDeviceGetCount(self):
        return len(self.recordings)

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("handle", index)

    def nvmlDeviceGetIndex(self, handle):
        return handle[1]

    def nvmlDeviceGetUtilizationRates(self, handle):
        gpu, memory = self._next(handle, "utilisation", "utilisation")
        return SimpleNamespace(gpu=gpu, memory=memory)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=self._next(handle, "memory", "memory_used"), total=85_520_809_984)

    def nvmlDeviceGetPowerUsage(self, handle):
        return self._next(handle, "power", "power_mw")

    def nvmlDeviceGetTemperature(self, handle, sensor):
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._next(handle, "temperature", "temperature")

    def nvmlDeviceGetClockInfo(self, handle, clock):
        if clock == self.NVML_CLOCK_SM:
            return self._next(handle, "sm_clock", "sm_clock")
        return self._next(handle, "memory_clock", "memory_clock")

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):
        return self._next(handle, "throttle", "throttle")

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self._next(handle, "energy", "energy_mj")

    def nvmlDeviceGetTotalErrorCount(self, handle, error_type, counter_type):
        assert (error_type, counter_type) == (1, 0)  # uncorrected, volatile
        return self._next(handle, "ecc", "ecc")

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        self._next(handle, "processes", "ecc")  # counts the call, may fail
        return list(self.processes[handle[1]])

    def nvmlEventSetCreate(self):
        return "event-set"

    def nvmlDeviceRegisterEvents(self, handle, event_types, event_set):
        assert event_types == self.nvmlEventTypeXidCriticalError and event_set == "event-set"
        self._next(handle, "register_events", "ecc")

    def nvmlEventSetWait(self, event_set, timeout_ms):
        assert timeout_ms == 0  # polled, never blocking the sampler
        if not self.pending_events:
            raise FakeTimeout()
        return self.pending_events.pop(0)

    def nvmlEventSetFree(self, event_set):
        self.event_set_freed = True

    # ---- what happens on the node
    def xid(self, gpu: int, code: int) -> None:
        self.pending_events.append(SimpleNamespace(device=("handle", gpu), eventType=0x8, eventData=code))

    def start_process(self, gpu: int, pid: int, used_bytes: int) -> None:
        self.processes[gpu].append(SimpleNamespace(pid=pid, usedGpuMemory=used_bytes))


def test_h100_thermal_throttling_xid_and_a_foreign_process() -> None:
    nvml = FakeNvml()
    nvml.start_process(0, os.getpid(), 70_000_000_000)  # this process: never foreign

    with track_telemetry(NEVER, nvml_module=nvml) as reading:  # sample 1 at the start
        reading.sample_now()  # 2
        nvml.xid(0, 79)  # the GPU fell off the bus
        nvml.start_process(0, FOREIGN_PID, 1_073_741_824)
        reading.sample_now()  # 3: sees the XID and the foreign process
        reading.sample_now()  # 4
    # sample 5 at the end

    summary = reading.summary()
    assert summary.source == "nvml" and summary.sample_count == 5 and summary.nvml_error is None
    assert len(reading.samples) == 10  # per tick: the host, then GPU 0
    gpu_samples = [s for s in reading.samples if s.gpu_index == 0]
    assert [s.power_w for s in gpu_samples] == [69.812, 688.905, 699.12, 701.334, 655.002]
    assert [s.throttle_reasons for s in gpu_samples] == [1, 0, 0, 64, 96]
    times = [s.t for s in gpu_samples]
    assert times == sorted(times) and 0 <= times[0] < 0.5  # seconds since the window began

    (gpu,) = summary.gpus
    assert gpu.power_w is not None
    assert gpu.power_w.mean == pytest.approx(2814.173 / 5, rel=1e-12)
    assert (gpu.power_w.min, gpu.power_w.max, gpu.power_w.count) == (69.812, 701.334, 5)
    assert gpu.temperature_c == FieldStats(mean=67.2, min=33, max=86, count=5)
    assert gpu.sm_clock_mhz == FieldStats(mean=1821.0, min=1410, max=1980, count=5)
    assert gpu.memory_clock_mhz == FieldStats(mean=2619.0, min=2619, max=2619, count=5)
    assert gpu.gpu_util_pct == FieldStats(mean=79.6, min=0, max=100, count=5)
    assert gpu.memory_util_pct == FieldStats(mean=34.4, min=0, max=45, count=5)
    assert gpu.memory_used_bytes is not None and gpu.memory_used_bytes.max == 79_129_444_352
    assert gpu.throttle_reasons == ("GpuIdle", "SwThermalSlowdown", "HwThermalSlowdown")
    assert summary.throttle_reasons == ("GpuIdle", "SwThermalSlowdown", "HwThermalSlowdown")
    assert gpu.energy_joules == 50.0 and gpu.ecc_uncorrected_delta == 0

    assert summary.xid_monitored
    assert [(e.gpu_index, e.xid) for e in summary.xid_events] == [(0, 79)]
    assert [(p.gpu_index, p.pid, p.used_memory_bytes) for p in summary.foreign_processes] == [
        (0, FOREIGN_PID, 1_073_741_824)
    ]
    assert summary.foreign_processes[0].first_seen_t == summary.xid_events[0].t

    assert summary.energy_joules == 50.0 and summary.energy_source == NVML_ENERGY_SOURCE
    assert summary.average_watts == 50.0 / summary.duration_s
    energy = reading.energy(output_tokens=1000)
    assert energy is not None
    assert (energy.joules, energy.joules_per_output_token, energy.source) == (50.0, 0.05, NVML_ENERGY_SOURCE)
    assert energy.average_watts == summary.average_watts
    assert reading.energy(output_tokens=0).joules_per_output_token is None
    assert summary.errors == ()
    assert nvml.initialised == 0 and nvml.event_set_freed  # NVML shut down again

    assert assess(summary, duration_s=12.0, completed=16, min_duration_s=10, min_requests=8) == (
        False,
        "XID 79 on GPU 0; thermal throttling (SwThermalSlowdown, HwThermalSlowdown) during the window; "
        f"another process (pid {FOREIGN_PID}) used GPU 0",
    )


def test_energy_not_supported_gives_no_energy_and_one_recorded_error() -> None:
    nvml = FakeNvml(failures={(0, "energy"): {"*": FakeNotSupported}})

    with track_telemetry(NEVER, nvml_module=nvml) as reading:
        reading.sample_now()

    summary = reading.summary()
    assert summary.energy_joules is None and summary.average_watts is None and summary.energy_source is None
    assert summary.gpus[0].energy_joules is None
    assert reading.energy(output_tokens=100) is None
    assert summary.errors == ("GPU 0: nvmlDeviceGetTotalEnergyConsumption: Not Supported",)
    assert nvml.calls[(0, "energy")] == 1  # a query the board does not support is not asked again
    assert summary.gpus[0].power_w is not None  # everything else still sampled


def test_one_gpu_without_energy_counter_means_no_total() -> None:
    nvml = FakeNvml([H100_RECORDING, H100_RECORDING], failures={(1, "energy"): {"*": FakeNotSupported}})

    with track_telemetry(NEVER, nvml_module=nvml) as reading:
        pass

    summary = reading.summary()
    assert [gpu.energy_joules for gpu in summary.gpus] == [50.0, None]
    assert summary.energy_joules is None  # half a machine's energy would look like a better node


def test_gpu_indices_limit_what_is_watched() -> None:
    nvml = FakeNvml([H100_RECORDING, H100_RECORDING])
    nvml.start_process(0, FOREIGN_PID, 1)  # another tenant on GPU 0, which this run does not use

    with track_telemetry(NEVER, nvml_module=nvml, gpu_indices=[1]) as reading:
        pass

    summary = reading.summary()
    assert [gpu.index for gpu in summary.gpus] == [1]
    assert summary.foreign_processes == ()
    assert summary.energy_joules == 50.0


def test_own_pids_and_children_are_not_foreign() -> None:
    nvml = FakeNvml()
    nvml.start_process(0, FOREIGN_PID, 1)

    with track_telemetry(NEVER, nvml_module=nvml, own_pids=[FOREIGN_PID]) as reading:
        pass

    assert reading.summary().foreign_processes == ()


def test_nvml_errors_mid_run_are_recorded_and_sampling_goes_on() -> None:
    # call 2 of the power query fails once; from call 3 on the GPU is lost for every query
    failures = {(0, "power"): {2: FakeNVMLError}}
    for query in (
        "utilisation",
        "memory",
        "temperature",
        "sm_clock",
        "memory_clock",
        "throttle",
        "processes",
    ):
        failures.setdefault((0, query), {}).update({3: FakeGpuIsLost, 4: FakeGpuIsLost})
    nvml = FakeNvml(failures=failures)

    with track_telemetry(NEVER, nvml_module=nvml) as reading:
        reading.sample_now()
        reading.sample_now()
        reading.sample_now()

    summary = reading.summary()
    assert summary.sample_count == 5
    gpu_samples = [s for s in reading.samples if s.gpu_index == 0]
    assert [s.power_w for s in gpu_samples] == [69.812, 688.905, None, 701.334, 655.002]  # one reading lost
    assert [s.temperature_c for s in gpu_samples] == [33, 62, 71, None, None]
    assert summary.gpus[0].temperature_c == FieldStats(mean=166 / 3, min=33, max=71, count=3)
    assert "GPU 0: nvmlDeviceGetPowerUsage: Unknown Error" in summary.errors
    assert "GPU 0: nvmlDeviceGetTemperature: GPU is lost (×2)" in summary.errors
    assert "GPU 0: nvmlDeviceGetClockInfo: GPU is lost (×4)" in summary.errors  # SM and memory clocks


def test_xid_registration_refused_is_recorded_and_not_monitored() -> None:
    nvml = FakeNvml(failures={(0, "register_events"): {0: FakeNotSupported}})

    with track_telemetry(NEVER, nvml_module=nvml) as reading:
        pass

    summary = reading.summary()
    assert not summary.xid_monitored
    assert summary.errors == ("GPU 0: XID events: nvmlDeviceRegisterEvents: Not Supported",)


def test_uncorrected_ecc_delta() -> None:
    nvml = FakeNvml([{**H100_RECORDING, "ecc": [4, 6]}])

    with track_telemetry(NEVER, nvml_module=nvml) as reading:
        pass

    summary = reading.summary()
    assert summary.gpus[0].ecc_uncorrected_delta == 2 and summary.ecc_uncorrected_delta == 2


def test_sampler_thread_takes_one_sample_per_interval_and_stops() -> None:
    nvml = FakeNvml()

    with track_telemetry(0.01, nvml_module=nvml) as reading:
        time.sleep(0.15)

    count = reading.summary().sample_count
    assert 5 <= count <= 17  # start + end + about 15 ticks, with slack for a busy machine
    assert not any(thread.name == "atomabench-telemetry" for thread in threading.enumerate())
    assert len(reading.samples) == 2 * count


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s must be positive"), track_telemetry(0):
        pass


# --------------------------------------------------------------------------------------------------
# Without NVML: psutil and RAPL


def rapl_zone(root: Path, energy_uj: int, max_range_uj: int = 262_143_328_850) -> Path:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    (root / "intel-rapl:0:0").mkdir(exist_ok=True)  # a subzone (core), not summed
    return zone


def test_cpu_path_samples_host_and_reads_rapl_energy(tmp_path: Path) -> None:
    zone = rapl_zone(tmp_path, 1_000_000)
    nvml = FakeNvml(init_error=FakeLibraryNotFound)

    with track_telemetry(NEVER, nvml_module=nvml, rapl_dir=tmp_path) as reading:
        (zone / "energy_uj").write_text("3500000\n")  # 2.5 J used by the package meanwhile

    summary = reading.summary()
    assert summary.source == "psutil"
    assert summary.nvml_error == "nvmlInit failed: FakeLibraryNotFound: NVML Shared Library Not Found"
    assert summary.gpus == () and not summary.xid_monitored
    assert summary.sample_count == 2 and all(s.gpu_index is None for s in reading.samples)
    assert summary.rss_bytes is not None and summary.rss_bytes.min > 0
    assert summary.cpu_percent is not None and 0 <= summary.cpu_percent.max <= 100
    assert summary.energy_joules == 2.5 and summary.energy_source == RAPL_ENERGY_SOURCE
    energy = reading.energy(output_tokens=10)
    assert (
        energy is not None and energy.joules_per_output_token == 0.25 and energy.source == RAPL_ENERGY_SOURCE
    )


def test_rapl_wraparound(tmp_path: Path) -> None:
    zone = rapl_zone(tmp_path, 262_143_000_000)

    with track_telemetry(
        NEVER, nvml_module=FakeNvml(init_error=FakeLibraryNotFound), rapl_dir=tmp_path
    ) as reading:
        (zone / "energy_uj").write_text("671150\n")

    # 671150 + 262143328850 - 262143000000 = 1000000 µJ
    assert reading.summary().energy_joules == 1.0


def test_unreadable_rapl_means_no_energy(tmp_path: Path) -> None:
    with track_telemetry(
        NEVER, nvml_module=FakeNvml(init_error=FakeLibraryNotFound), rapl_dir=tmp_path
    ) as reading:
        pass

    assert reading.summary().energy_joules is None
    assert reading.energy(output_tokens=10) is None


def test_decode_throttle_reasons() -> None:
    assert decode_throttle_reasons(0) == ()
    assert decode_throttle_reasons(0x4 | 0x40) == ("SwPowerCap", "HwThermalSlowdown")
    assert decode_throttle_reasons(0x1 | 0x800) == ("GpuIdle", "0x800")
