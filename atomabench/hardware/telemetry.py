"""Watch the devices while a scenario runs: a background sampler and a summary of what it saw.

``track_telemetry`` is a tracker in optimum-benchmark's sense: a context manager yielding a
:class:`TelemetryReading` that knows how to summarise itself. It never knows which backend ran.

On NVIDIA (pynvml importable and ``nvmlInit`` succeeding) every ``interval_s`` it reads, per GPU:
utilisation, memory used, power, temperature, SM and memory clocks, the clocks-throttle-reasons
bitmask and the compute processes on the device; XID critical errors arrive through an NVML event set
polled without waiting. Energy and uncorrected ECC errors are counters read at the start and at the end
of the window, so their deltas are exact whatever the interval (energy is never integrated from sampled
power). On every machine it also samples the host: system CPU percent and this process's RSS, and on
Linux the RAPL package energy counter where it is readable.

NVML can fail half way through a run (a lost GPU, a query the board does not support); every error is
recorded in the summary and sampling goes on. pynvml is imported only when the tracker starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from atomabench.records import EnergyStats, Record

RAPL_DIR = Path("/sys/class/powercap")
NVML_ENERGY_SOURCE = "nvml-total-energy-counter"
RAPL_ENERGY_SOURCE = "rapl-package-energy-counter"

THROTTLE_REASON_BITS: dict[str, int] = {
    "GpuIdle": 0x1,
    "ApplicationsClocksSetting": 0x2,
    "SwPowerCap": 0x4,
    "HwSlowdown": 0x8,
    "SyncBoost": 0x10,
    "SwThermalSlowdown": 0x20,
    "HwThermalSlowdown": 0x40,
    "HwPowerBrakeSlowdown": 0x80,
    "DisplayClockSetting": 0x100,
}
"""NVML's ``nvmlClocksThrottleReason*`` bits (same values as ``nvmlClocksEventReason*``)."""

_NVML_TEMPERATURE_GPU = 0
_NVML_CLOCK_SM = 1
_NVML_CLOCK_MEM = 2
_NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
_NVML_VOLATILE_ECC = 0
_NVML_ERROR_NOT_SUPPORTED = 3
_NVML_ERROR_TIMEOUT = 10
_NVML_EVENT_TYPE_XID = 0x8
_MAX_EVENTS_PER_POLL = 64


def decode_throttle_reasons(mask: int) -> tuple[str, ...]:
    """Names of the bits set in a clocks-throttle-reasons mask, in bit order; unknown bits as hex."""
    names = [name for name, bit in THROTTLE_REASON_BITS.items() if mask & bit]
    unknown = mask & ~sum(THROTTLE_REASON_BITS.values())
    bit = 1
    while unknown >= bit:
        if unknown & bit:
            names.append(f"0x{bit:x}")
        bit <<= 1
    return tuple(names)


# --------------------------------------------------------------------------------------------------
# Records


class TelemetrySample(Record):
    """One reading of one GPU (``gpu_index`` = NVML index) or of the host (``gpu_index`` None).

    ``t`` is seconds since the tracked window began.
    """

    t: float
    gpu_index: int | None = None
    gpu_util_pct: float | None = None
    memory_util_pct: float | None = None
    memory_used_bytes: int | None = None
    power_w: float | None = None
    temperature_c: float | None = None
    sm_clock_mhz: int | None = None
    memory_clock_mhz: int | None = None
    throttle_reasons: int | None = None
    """Raw NVML bitmask; see :func:`decode_throttle_reasons`."""
    cpu_percent: float | None = None
    rss_bytes: int | None = None


class FieldStats(Record):
    """Mean, min and max of one sampled field over the window."""

    mean: float
    min: float
    max: float
    count: int


class XidEvent(Record):
    gpu_index: int | None
    xid: int
    t: float


class ForeignProcess(Record):
    """A compute process on a watched GPU that is neither this process nor one of its children."""

    gpu_index: int
    pid: int
    name: str | None = None
    used_memory_bytes: int | None = None
    first_seen_t: float


class GpuTelemetry(Record):
    index: int
    gpu_util_pct: FieldStats | None = None
    memory_util_pct: FieldStats | None = None
    memory_used_bytes: FieldStats | None = None
    power_w: FieldStats | None = None
    temperature_c: FieldStats | None = None
    sm_clock_mhz: FieldStats | None = None
    memory_clock_mhz: FieldStats | None = None
    throttle_reasons: tuple[str, ...] = ()
    energy_joules: float | None = None
    ecc_uncorrected_delta: int | None = None


class TelemetrySummary(Record):
    """What the sampler saw over one window; ``valid`` decisions are made from it in ``measure.validity``."""

    source: Literal["nvml", "psutil"]
    interval_s: float
    duration_s: float
    sample_count: int
    """Sampling ticks (each reads the host and every watched GPU once)."""
    gpus: tuple[GpuTelemetry, ...] = ()
    cpu_percent: FieldStats | None = None
    rss_bytes: FieldStats | None = None
    throttle_reasons: tuple[str, ...] = ()
    """Every throttle reason seen on any watched GPU, in bit order."""
    xid_monitored: bool = False
    xid_events: tuple[XidEvent, ...] = ()
    ecc_uncorrected_delta: int | None = None
    foreign_processes: tuple[ForeignProcess, ...] = ()
    energy_joules: float | None = None
    average_watts: float | None = None
    energy_source: str | None = None
    nvml_error: str | None = None
    """Why NVML was not used (not installed, no driver), on a machine without NVIDIA GPUs."""
    errors: tuple[str, ...] = ()
    """Problems met while sampling, each once, with a count when repeated."""


# --------------------------------------------------------------------------------------------------
# The tracker


@contextmanager
def track_telemetry(
    interval_s: float = 0.5,
    *,
    nvml_module: Any = None,
    gpu_indices: Sequence[int] | None = None,
    own_pids: Iterable[int] = (),
    rapl_dir: Path = RAPL_DIR,
    cpu_energy: bool = True,
) -> Iterator[TelemetryReading]:
    """Sample the devices every ``interval_s`` seconds on a daemon thread while the block runs.

    ``nvml_module`` replaces pynvml (tests replay a recorded node); ``gpu_indices`` limits the GPUs
    watched (NVML indices, default all); ``own_pids`` are extra process ids that belong to this run
    (an inference server started separately), besides this process and its children. ``cpu_energy``
    False skips RAPL: on a GPU node without NVML, CPU package energy is not the node's energy.
    """
    if interval_s <= 0:
        raise ValueError(f"interval_s must be positive, got {interval_s}")
    reading = TelemetryReading(
        interval_s,
        nvml_module=nvml_module,
        gpu_indices=gpu_indices,
        own_pids=own_pids,
        rapl_dir=rapl_dir,
        cpu_energy=cpu_energy,
    )
    try:
        reading._start()
        yield reading
    finally:
        reading._stop()  # also after a failed start: NVML is always shut down again


class TelemetryReading:
    """Samples collected so far and, once the block exits, the counters' deltas over the window."""

    def __init__(
        self,
        interval_s: float,
        *,
        nvml_module: Any = None,
        gpu_indices: Sequence[int] | None = None,
        own_pids: Iterable[int] = (),
        rapl_dir: Path = RAPL_DIR,
        cpu_energy: bool = True,
    ) -> None:
        self.interval_s = interval_s
        self._errors = _ErrorLog()
        self._lock = threading.Lock()
        self._samples: list[TelemetrySample] = []
        self._ticks = 0
        self._origin = 0.0
        self._end: float | None = None
        self._nvml_error: str | None = None
        self._nvml = _NvmlWatcher.open(nvml_module, gpu_indices, set(own_pids), self._errors)
        if isinstance(self._nvml, str):
            self._nvml_error, self._nvml = self._nvml, None
        self._process = psutil.Process(os.getpid())
        self._rapl = _Rapl(rapl_dir) if self._nvml is None and cpu_energy else None
        self._thread: _SamplerThread | None = None

    # ---- public ------------------------------------------------------------------------------------

    @property
    def samples(self) -> list[TelemetrySample]:
        """Every sample so far, in the order taken (host sample first in each tick, then each GPU)."""
        with self._lock:
            return list(self._samples)

    def sample_now(self) -> None:
        """Take one sample immediately, in the caller's thread (e.g. at a phase boundary)."""
        self._tick()

    def summary(self) -> TelemetrySummary:
        """Means and extremes per field, events and counter deltas; partial while the block still runs."""
        with self._lock:
            samples = list(self._samples)
            ticks = self._ticks
            nvml = self._nvml
            xids = tuple(nvml.xid_events) if nvml is not None else ()
            foreign = tuple(nvml.foreign.values()) if nvml is not None else ()
            errors = self._errors.lines()
        end = self._end if self._end is not None else time.perf_counter()
        duration = end - self._origin
        host = [s for s in samples if s.gpu_index is None]
        gpus: tuple[GpuTelemetry, ...] = ()
        energy, energy_source, ecc = None, None, None
        if nvml is not None:
            gpus = nvml.gpu_summaries(samples)
            energies = [gpu.energy_joules for gpu in gpus if gpu.energy_joules is not None]
            if gpus and len(energies) == len(gpus):
                energy, energy_source = sum(energies), NVML_ENERGY_SOURCE
            eccs = [gpu.ecc_uncorrected_delta for gpu in gpus if gpu.ecc_uncorrected_delta is not None]
            ecc = sum(eccs) if eccs else None
        elif self._rapl is not None and self._rapl.joules is not None:
            energy, energy_source = self._rapl.joules, RAPL_ENERGY_SOURCE
        seen = {name for gpu in gpus for name in gpu.throttle_reasons}
        reasons = [name for name in THROTTLE_REASON_BITS if name in seen]
        reasons += sorted(seen - set(THROTTLE_REASON_BITS))  # unknown bits, as hex
        return TelemetrySummary(
            source="nvml" if self._nvml is not None else "psutil",
            interval_s=self.interval_s,
            duration_s=duration,
            sample_count=ticks,
            gpus=gpus,
            cpu_percent=_field_stats(s.cpu_percent for s in host),
            rss_bytes=_field_stats(s.rss_bytes for s in host),
            throttle_reasons=tuple(reasons),
            xid_monitored=nvml.xid_monitored if nvml is not None else False,
            xid_events=xids,
            ecc_uncorrected_delta=ecc,
            foreign_processes=foreign,
            energy_joules=energy,
            average_watts=energy / duration if energy is not None and duration > 0 else None,
            energy_source=energy_source,
            nvml_error=self._nvml_error,
            errors=errors,
        )

    def energy(self, output_tokens: int) -> EnergyStats | None:
        """Energy over the window from the hardware counter, per output token; None where unreadable."""
        summary = self.summary()
        if summary.energy_joules is None or summary.average_watts is None or summary.energy_source is None:
            return None
        return EnergyStats(
            joules=summary.energy_joules,
            average_watts=summary.average_watts,
            joules_per_output_token=summary.energy_joules / output_tokens if output_tokens > 0 else None,
            source=summary.energy_source,
        )

    # ---- lifecycle ---------------------------------------------------------------------------------

    def _start(self) -> None:
        psutil.cpu_percent(interval=None)  # the first call only sets psutil's reference point
        if self._nvml is not None:
            self._nvml.read_counters(start=True)
        if self._rapl is not None:
            self._rapl.start()
        self._origin = time.perf_counter()
        self._tick()
        self._thread = _SamplerThread(self.interval_s, self._tick)
        self._thread.start()

    def _stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
        self._tick()
        self._end = time.perf_counter()
        if self._nvml is not None:
            self._nvml.read_counters(start=False)
            self._nvml.close()
        if self._rapl is not None:
            self._rapl.stop(self._errors)

    def _tick(self) -> None:
        """One sample of the host and every GPU; never raises, so the sampler thread never dies."""
        with self._lock:
            t = time.perf_counter() - self._origin
            try:
                self._samples.append(self._host_sample(t))
                if self._nvml is not None:
                    self._samples.extend(self._nvml.sample(t))
                    self._nvml.poll_events(t)
            except Exception as error:  # a sampler that dies would silently stop telemetry
                self._errors.add(f"sampler: {type(error).__name__}: {error}")
            self._ticks += 1

    def _host_sample(self, t: float) -> TelemetrySample:
        rss = None
        try:
            rss = self._process.memory_info().rss
        except psutil.Error as error:
            self._errors.add(f"host: RSS: {error}")
        return TelemetrySample(t=t, cpu_percent=psutil.cpu_percent(interval=None), rss_bytes=rss)


class _SamplerThread(threading.Thread):
    """Calls ``tick`` every interval; a daemon so an interrupt never waits on it."""

    def __init__(self, interval_s: float, tick: Callable[[], None]) -> None:
        super().__init__(name="atomabench-telemetry", daemon=True)
        self._interval = interval_s
        self._tick = tick
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            self._tick()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=max(1.0, 2 * self._interval))


# --------------------------------------------------------------------------------------------------
# NVML


@dataclass
class _ErrorLog:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, message: str) -> None:
        message = " ".join(message.split())
        self.counts[message] = self.counts.get(message, 0) + 1

    def lines(self) -> tuple[str, ...]:
        return tuple(m if n == 1 else f"{m} (×{n})" for m, n in self.counts.items())


class _NvmlWatcher:
    """The NVML side of the tracker: handles, counters, the XID event set, foreign processes."""

    def __init__(self, nvml: Any, handles: dict[int, Any], own_pids: set[int], errors: _ErrorLog) -> None:
        self.nvml = nvml
        self.handles = handles
        self.errors = errors
        self.own_pids = own_pids | {os.getpid()}
        self.unsupported: set[tuple[int, str]] = set()
        self.energy_mj: dict[int, list[int | None]] = {index: [None, None] for index in handles}
        self.ecc: dict[int, list[int | None]] = {index: [None, None] for index in handles}
        self.xid_events: list[XidEvent] = []
        self.foreign: dict[tuple[int, int], ForeignProcess] = {}
        self.event_set: Any = None
        self.xid_monitored = False
        self._open_event_set()

    @classmethod
    def open(
        cls, nvml: Any, gpu_indices: Sequence[int] | None, own_pids: set[int], errors: _ErrorLog
    ) -> _NvmlWatcher | str:
        """A watcher over the requested GPUs, or one line saying why NVML cannot be used."""
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError:
                return "pynvml (nvidia-ml-py) is not installed"
        try:
            nvml.nvmlInit()
        except Exception as error:  # LibraryNotFound, DriverNotLoaded, OSError: all mean "no NVML"
            return " ".join(f"nvmlInit failed: {type(error).__name__}: {error}".split())
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as error:
            with contextlib.suppress(Exception):
                nvml.nvmlShutdown()
            return f"nvmlDeviceGetCount failed: {error}"
        handles = {}
        for index in range(count) if gpu_indices is None else gpu_indices:
            try:
                handles[index] = nvml.nvmlDeviceGetHandleByIndex(index)
            except nvml.NVMLError as error:
                errors.add(f"GPU {index}: nvmlDeviceGetHandleByIndex: {error}")
        if not handles:
            with contextlib.suppress(Exception):
                nvml.nvmlShutdown()
            return "NVML found no GPU to watch"
        return cls(nvml, handles, own_pids, errors)

    # ---- queries -----------------------------------------------------------------------------------

    def _query(self, index: int, name: str, *args: Any) -> Any:
        """One NVML call for one GPU; an error is recorded and gives None, Not Supported only once."""
        if (index, name) in self.unsupported:
            return None
        function = getattr(self.nvml, name, None)
        if function is None:
            self.unsupported.add((index, name))
            self.errors.add(f"GPU {index}: {name}: not in this pynvml")
            return None
        try:
            return function(self.handles[index], *args)
        except self.nvml.NVMLError as error:
            if _nvml_error_code(self.nvml, error, "NVML_ERROR_NOT_SUPPORTED", _NVML_ERROR_NOT_SUPPORTED):
                self.unsupported.add((index, name))
            self.errors.add(f"GPU {index}: {name}: {error}")
            return None

    def sample(self, t: float) -> list[TelemetrySample]:
        samples = []
        for index in self.handles:
            utilisation = self._query(index, "nvmlDeviceGetUtilizationRates")
            memory = self._query(index, "nvmlDeviceGetMemoryInfo")
            power_mw = self._query(index, "nvmlDeviceGetPowerUsage")
            reasons = self._throttle_reasons(index)
            samples.append(
                TelemetrySample(
                    t=t,
                    gpu_index=index,
                    gpu_util_pct=None if utilisation is None else utilisation.gpu,
                    memory_util_pct=None if utilisation is None else utilisation.memory,
                    memory_used_bytes=None if memory is None else memory.used,
                    power_w=None if power_mw is None else power_mw / 1000,
                    temperature_c=self._query(
                        index,
                        "nvmlDeviceGetTemperature",
                        getattr(self.nvml, "NVML_TEMPERATURE_GPU", _NVML_TEMPERATURE_GPU),
                    ),
                    sm_clock_mhz=self._query(
                        index, "nvmlDeviceGetClockInfo", getattr(self.nvml, "NVML_CLOCK_SM", _NVML_CLOCK_SM)
                    ),
                    memory_clock_mhz=self._query(
                        index, "nvmlDeviceGetClockInfo", getattr(self.nvml, "NVML_CLOCK_MEM", _NVML_CLOCK_MEM)
                    ),
                    throttle_reasons=reasons,
                )
            )
            self._check_processes(index, t)
        return samples

    def _throttle_reasons(self, index: int) -> int | None:
        """The deprecated name first: older drivers' pynvml has only that one; newer has both."""
        if hasattr(self.nvml, "nvmlDeviceGetCurrentClocksThrottleReasons"):
            return self._query(index, "nvmlDeviceGetCurrentClocksThrottleReasons")
        return self._query(index, "nvmlDeviceGetCurrentClocksEventReasons")

    def _check_processes(self, index: int, t: float) -> None:
        processes = self._query(index, "nvmlDeviceGetComputeRunningProcesses")
        for process in processes or ():
            pid = int(process.pid)
            used = getattr(process, "usedGpuMemory", None)
            known = self.foreign.get((index, pid))
            if known is None and (pid in self.own_pids or not self._is_foreign(pid)):
                continue
            if known is None:
                self.foreign[(index, pid)] = ForeignProcess(
                    gpu_index=index, pid=pid, name=_process_name(pid), used_memory_bytes=used, first_seen_t=t
                )
            elif used is not None and (known.used_memory_bytes or 0) < used:
                self.foreign[(index, pid)] = known.model_copy(update={"used_memory_bytes": used})

    def _is_foreign(self, pid: int) -> bool:
        """Not a child of ours (vLLM's engine runs in one); the children are re-read for unknown pids."""
        try:
            children = {child.pid for child in psutil.Process(os.getpid()).children(recursive=True)}
        except psutil.Error:
            children = set()
        self.own_pids |= children
        return pid not in self.own_pids

    # ---- counters and events -----------------------------------------------------------------------

    def read_counters(self, *, start: bool) -> None:
        """Energy (mJ) and volatile uncorrected ECC counts, at the start or the end of the window."""
        slot = 0 if start else 1
        for index in self.handles:
            self.energy_mj[index][slot] = self._query(index, "nvmlDeviceGetTotalEnergyConsumption")
            self.ecc[index][slot] = self._query(
                index,
                "nvmlDeviceGetTotalErrorCount",
                getattr(self.nvml, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED", _NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
                getattr(self.nvml, "NVML_VOLATILE_ECC", _NVML_VOLATILE_ECC),
            )

    def _open_event_set(self) -> None:
        """Register every watched GPU for XID critical errors; a GPU that refuses is recorded."""
        xid_type = getattr(self.nvml, "nvmlEventTypeXidCriticalError", _NVML_EVENT_TYPE_XID)
        try:
            self.event_set = self.nvml.nvmlEventSetCreate()
        except Exception as error:
            self.errors.add(f"XID events: nvmlEventSetCreate: {error}")
            return
        registered = 0
        for index, handle in self.handles.items():
            try:
                self.nvml.nvmlDeviceRegisterEvents(handle, xid_type, self.event_set)
                registered += 1
            except Exception as error:
                self.errors.add(f"GPU {index}: XID events: nvmlDeviceRegisterEvents: {error}")
        self.xid_monitored = registered == len(self.handles)

    def poll_events(self, t: float) -> None:
        """Drain pending XID events without waiting (``nvmlEventSetWait`` with a 0 ms timeout)."""
        if self.event_set is None:
            return
        xid_type = getattr(self.nvml, "nvmlEventTypeXidCriticalError", _NVML_EVENT_TYPE_XID)
        for _ in range(_MAX_EVENTS_PER_POLL):
            try:
                event = self.nvml.nvmlEventSetWait(self.event_set, 0)
            except self.nvml.NVMLError as error:
                if not _nvml_error_code(self.nvml, error, "NVML_ERROR_TIMEOUT", _NVML_ERROR_TIMEOUT):
                    self.errors.add(f"XID events: nvmlEventSetWait: {error}")
                return
            if int(event.eventType) & xid_type:
                self.xid_events.append(
                    XidEvent(gpu_index=self._event_gpu(event), xid=int(event.eventData), t=t)
                )

    def _event_gpu(self, event: Any) -> int | None:
        try:
            return int(self.nvml.nvmlDeviceGetIndex(event.device))
        except Exception:
            return next((index for index, handle in self.handles.items() if handle is event.device), None)

    def close(self) -> None:
        if self.event_set is not None:
            with contextlib.suppress(Exception):
                self.nvml.nvmlEventSetFree(self.event_set)
            self.event_set = None
        with contextlib.suppress(Exception):
            self.nvml.nvmlShutdown()

    # ---- summary -----------------------------------------------------------------------------------

    def gpu_summaries(self, samples: Sequence[TelemetrySample]) -> tuple[GpuTelemetry, ...]:
        summaries = []
        for index in self.handles:
            mine = [s for s in samples if s.gpu_index == index]
            mask = 0
            for sample in mine:
                mask |= sample.throttle_reasons or 0
            summaries.append(
                GpuTelemetry(
                    index=index,
                    **{
                        name: _field_stats(getattr(s, name) for s in mine)
                        for name in (
                            "gpu_util_pct",
                            "memory_util_pct",
                            "memory_used_bytes",
                            "power_w",
                            "temperature_c",
                            "sm_clock_mhz",
                            "memory_clock_mhz",
                        )
                    },
                    throttle_reasons=decode_throttle_reasons(mask),
                    energy_joules=self._energy_joules(index),
                    ecc_uncorrected_delta=_delta(self.ecc[index]),
                )
            )
        return tuple(summaries)

    def _energy_joules(self, index: int) -> float | None:
        delta = _delta(self.energy_mj[index])
        if delta is None:
            return None
        if delta < 0:  # the counter restarted (driver reload): no honest figure for this window
            self.errors.add(f"GPU {index}: energy counter went backwards")
            return None
        return delta / 1000


def _nvml_error_code(nvml: Any, error: BaseException, constant: str, default: int) -> bool:
    return getattr(error, "value", None) == getattr(nvml, constant, default)


def _delta(pair: Sequence[int | None]) -> int | None:
    start, end = pair
    return None if start is None or end is None else end - start


def _process_name(pid: int) -> str | None:
    """The name when the pid is visible here (in a container NVML may report host pids)."""
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return None


# --------------------------------------------------------------------------------------------------
# Host energy through Linux RAPL


class _Rapl:
    """The package energy counters (``intel-rapl:N/energy_uj``), summed over sockets.

    Often readable only by root (since CVE-2020-8694); then the energy is None, not a guess.
    """

    def __init__(self, root: Path) -> None:
        self.zones = sorted(p for p in root.glob("intel-rapl:*") if re.fullmatch(r"intel-rapl:\d+", p.name))
        self.start_uj: dict[Path, int] = {}
        self.joules: float | None = None

    def start(self) -> None:
        for zone in self.zones:
            value = _read_int(zone / "energy_uj")
            if value is None:
                self.start_uj.clear()
                return
            self.start_uj[zone] = value

    def stop(self, errors: _ErrorLog) -> None:
        if not self.zones or len(self.start_uj) != len(self.zones):
            return
        total_uj = 0
        for zone, start in self.start_uj.items():
            end = _read_int(zone / "energy_uj")
            if end is None:
                errors.add(f"RAPL: {zone.name}/energy_uj became unreadable")
                return
            if end < start:  # the counter wrapped at max_energy_range_uj
                wrap = _read_int(zone / "max_energy_range_uj")
                if wrap is None:
                    errors.add(f"RAPL: {zone.name} wrapped and max_energy_range_uj is unreadable")
                    return
                end += wrap
            total_uj += end - start
        self.joules = total_uj / 1e6


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------


def _field_stats(values: Iterable[float | int | None]) -> FieldStats | None:
    present = [float(v) for v in values if v is not None]
    if not present:
        return None
    return FieldStats(mean=statistics.fmean(present), min=min(present), max=max(present), count=len(present))
