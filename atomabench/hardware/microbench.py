"""Measure what this machine delivers: matmul FLOPS per dtype, memory and PCIe bandwidth, launch cost.

Vendor peaks (``hardware_profiles/*.toml``) say what a class of hardware could do; the roofline and the
verdict need what *this* node does. ``run_profile`` times a few standard kernels through torch and
reports each figure next to the matched profile's peak. On a machine no vendor profile knows (a
generic CPU, a new GPU) :func:`measured_profile_toml` turns the measurement into a profile file.

Timing: on a GPU every figure is timed with ``torch.cuda.Event`` pairs around a loop of kernels (so
the host clock and launch jitter stay out of it); on a CPU with ``time.perf_counter``. Either way each
figure is repeated and both the best and the median repeat are kept; the headline is the best, as
STREAM and cuBLAS benchmarks report it. torch is imported only inside :func:`run_profile`.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psutil
from pydantic import Field

from atomabench.errors import UserError
from atomabench.records import HardwareInfo, HardwareProfile, Record

DTYPES: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8")
"""Matmul precisions, in the order they are measured and reported (keys of ``peak_tflops``)."""

DeviceKind = Literal["cpu", "cuda"]


# --------------------------------------------------------------------------------------------------
# Records


class MatmulResult(Record):
    """One square matmul ``C = A @ B`` of size ``size``: 2·size³ FLOPs per call."""

    dtype: str
    size: int | None = None
    repeats: int = 0
    calls_per_repeat: int = 0
    seconds_best: float | None = None
    """Time of one matmul in the fastest repeat."""
    seconds_median: float | None = None
    tflops: float | None = None
    """Achieved TFLOPS from the best repeat (the headline figure)."""
    tflops_median: float | None = None
    peak_tflops: float | None = None
    vs_peak_pct: float | None = None
    skipped_reason: str | None = None

    @property
    def skipped(self) -> bool:
        return self.skipped_reason is not None


class BandwidthResult(Record):
    """One bandwidth figure: ``bytes_moved`` per timed operation over its time."""

    name: str
    method: str
    array_bytes: int
    bytes_moved: int
    repeats: int
    seconds_best: float
    seconds_median: float
    gbs: float
    """GB/s (1e9 bytes per second) from the best repeat."""
    gbs_median: float
    peak_gbs: float | None = None
    vs_peak_pct: float | None = None


class LatencyResult(Record):
    """Launch cost: the GPU time per tiny kernel when kernels are launched back to back."""

    launches: int
    repeats: int
    us_best: float
    us_median: float


class DeviceProfileResult(Record):
    """Everything ``atomabench profile`` measured on one device, with the peaks it was compared to."""

    device: DeviceKind
    device_name: str
    profile_id: str | None = None
    measured_at: datetime
    quick: bool = False
    torch_version: str | None = None
    cpu_threads: int | None = None
    """torch intra-op threads used for the CPU kernels."""
    matmul: tuple[MatmulResult, ...] = ()
    memory_bandwidth: BandwidthResult | None = None
    host_to_device: BandwidthResult | None = None
    device_to_host: BandwidthResult | None = None
    launch_latency: LatencyResult | None = None
    elapsed_s: float = 0.0
    notes: tuple[str, ...] = Field(default=())

    @property
    def memory_bandwidth_gbs(self) -> float | None:
        return None if self.memory_bandwidth is None else self.memory_bandwidth.gbs

    @property
    def launch_latency_us(self) -> float | None:
        return None if self.launch_latency is None else self.launch_latency.us_best

    def peak_tflops(self) -> dict[str, float]:
        """Best achieved TFLOPS per measured dtype, the shape of ``HardwareProfile.peak_tflops``."""
        return {m.dtype: m.tflops for m in self.matmul if m.tflops is not None}

    def as_profile_figures(self) -> dict[str, Any]:
        """The two figures the roofline needs, in the shape ``measure.roofline`` accepts as a profile."""
        return {"memory_bandwidth_gbs": self.memory_bandwidth_gbs, "peak_tflops": self.peak_tflops()}

    def figures(self) -> list[dict[str, Any]]:
        """One row per figure (figure, achieved, unit, peak, vs_peak_pct, detail) for tables and JSON."""
        rows: list[dict[str, Any]] = []
        for result in self.matmul:
            rows.append(
                {
                    "figure": f"matmul {result.dtype}",
                    "achieved": result.tflops,
                    "unit": "TFLOPS",
                    "peak": result.peak_tflops,
                    "vs_peak_pct": result.vs_peak_pct,
                    "detail": result.skipped_reason
                    or f"n={result.size}, best of {result.repeats}"
                    + _median_text(result.tflops_median, "TFLOPS"),
                }
            )
        for bandwidth in (self.memory_bandwidth, self.host_to_device, self.device_to_host):
            if bandwidth is not None:
                rows.append(
                    {
                        "figure": bandwidth.name,
                        "achieved": bandwidth.gbs,
                        "unit": "GB/s",
                        "peak": bandwidth.peak_gbs,
                        "vs_peak_pct": bandwidth.vs_peak_pct,
                        "detail": f"{bandwidth.method}, {bandwidth.array_bytes / 2**20:,.0f} MiB"
                        f"{_median_text(bandwidth.gbs_median, 'GB/s')}",
                    }
                )
        if self.launch_latency is not None:
            rows.append(
                {
                    "figure": "kernel launch",
                    "achieved": self.launch_latency.us_best,
                    "unit": "µs",
                    "peak": None,
                    "vs_peak_pct": None,
                    "detail": f"{self.launch_latency.launches} back-to-back launches, "
                    f"median {self.launch_latency.us_median:.3g} µs",
                }
            )
        return rows


def format_figure(value: float | None, unit: str) -> str:
    """A figure with its unit for people: TFLOPS below 1 are shown as GFLOPS."""
    if value is None:
        return "-"
    if unit == "TFLOPS" and value < 1:
        return f"{value * 1000:,.4g} GFLOPS"
    return f"{value:,.4g} {unit}"


def _median_text(value: float | None, unit: str) -> str:
    return "" if value is None else f", median {format_figure(value, unit)}"


class StoredDeviceProfile(Record):
    """A measurement as the store hands it back, with its row id."""

    id: int
    result: DeviceProfileResult


# --------------------------------------------------------------------------------------------------
# Sizing


@dataclass(frozen=True)
class Sizing:
    """How big and how long each kernel runs; ``quick`` is for tests (well under 5 s on 2 cores)."""

    matmul_sizes: tuple[int, ...]
    """Candidate sizes, smallest first; the first from ``matmul_min_size`` on whose one call takes
    ``matmul_target_s`` is used (the largest otherwise)."""
    matmul_target_s: float
    matmul_min_size: int
    repeats: int
    stream_min_bytes: int
    stream_max_bytes: int
    copy_bytes: int
    pcie_bytes: int
    launches: int
    gpu_repeat_target_s: float


CPU_SIZING = Sizing(
    matmul_sizes=(256, 512, 1024, 2048, 4096),
    matmul_target_s=0.1,
    matmul_min_size=1024,
    repeats=5,
    stream_min_bytes=256 * 2**20,
    stream_max_bytes=512 * 2**20,
    copy_bytes=0,
    pcie_bytes=0,
    launches=0,
    gpu_repeat_target_s=0.0,
)
CPU_QUICK_SIZING = Sizing(
    matmul_sizes=(256, 512),
    matmul_target_s=0.01,
    matmul_min_size=256,
    repeats=3,
    stream_min_bytes=16 * 2**20,
    stream_max_bytes=16 * 2**20,
    copy_bytes=0,
    pcie_bytes=0,
    launches=0,
    gpu_repeat_target_s=0.0,
)
GPU_SIZING = Sizing(
    matmul_sizes=(8192,),
    matmul_target_s=0.0,
    matmul_min_size=8192,
    repeats=5,
    stream_min_bytes=0,
    stream_max_bytes=0,
    copy_bytes=1 * 2**30,
    pcie_bytes=256 * 2**20,
    launches=2000,
    gpu_repeat_target_s=0.1,
)
GPU_QUICK_SIZING = Sizing(
    matmul_sizes=(2048,),
    matmul_target_s=0.0,
    matmul_min_size=2048,
    repeats=3,
    stream_min_bytes=0,
    stream_max_bytes=0,
    copy_bytes=64 * 2**20,
    pcie_bytes=32 * 2**20,
    launches=200,
    gpu_repeat_target_s=0.01,
)


def stream_array_bytes(sizing: Sizing, last_level_cache_bytes: int | None, available_bytes: int) -> int:
    """Bytes per triad array: 4× the last-level cache (STREAM's rule), within the sizing's bounds.

    Never more than an eighth of the available RAM for one array (three arrays are live at once), so
    the benchmark cannot push a small node into swap.
    """
    wanted = max(sizing.stream_min_bytes, 4 * (last_level_cache_bytes or 0))
    return max(1 * 2**20, min(wanted, sizing.stream_max_bytes, available_bytes // 8))


def last_level_cache_bytes() -> int | None:
    """Size of CPU 0's largest cache from Linux sysfs; None where it cannot be read."""
    largest = None
    for size_file in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = size_file.read_text().strip()
        except OSError:
            continue
        match = re.fullmatch(r"(\d+)([KMG]?)", text)
        if match:
            value = int(match.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[match.group(2)]
            largest = value if largest is None else max(largest, value)
    return largest


# --------------------------------------------------------------------------------------------------
# Entry point


def run_profile(
    device: str = "auto",
    *,
    quick: bool = False,
    dtypes: Iterable[str] | None = None,
    torch_module: Any = None,
    hardware: HardwareInfo | None = None,
    profile: HardwareProfile | None = None,
) -> DeviceProfileResult:
    """Measure this machine's ``device`` (``auto``, ``cpu`` or ``cuda``) and compare it to a profile.

    ``profile`` is the one to compare with; without it the device is matched against the bundled
    profiles (probing the machine unless ``hardware`` is given). ``torch_module`` replaces torch
    (tests inject a fake GPU). Precisions the device cannot run are reported skipped, with the reason.
    """
    started = time.perf_counter()
    wanted = _check_dtypes(dtypes)
    if torch_module is None:
        import torch as torch_module
    torch = torch_module
    kind = _resolve_device(device, torch)

    if kind == "cuda":
        device_name = str(torch.cuda.get_device_name(0))
    else:
        if hardware is None and profile is None:
            from atomabench.hardware import probe

            hardware = probe()
        device_name = hardware.cpu_model if hardware is not None else "unknown CPU"
    if profile is None:
        from atomabench.hardware.profiles import match_profile

        profile = match_profile(device_name, "cuda" if kind == "cuda" else "cpu")

    if kind == "cuda":
        sizing = GPU_QUICK_SIZING if quick else GPU_SIZING
        bench: _Bench = _GpuBench(torch, sizing)
    else:
        sizing = CPU_QUICK_SIZING if quick else CPU_SIZING
        bench = _CpuBench(torch, sizing)

    matmul = tuple(_with_peak(bench.matmul(dtype), profile) for dtype in wanted)
    memory = _with_bandwidth_peak(bench.memory_bandwidth(), profile)
    return DeviceProfileResult(
        device=kind,
        device_name=device_name,
        profile_id=profile.id if profile is not None else None,
        measured_at=datetime.now(UTC),
        quick=quick,
        torch_version=str(getattr(torch, "__version__", "")) or None,
        cpu_threads=int(torch.get_num_threads()) if kind == "cpu" else None,
        matmul=matmul,
        memory_bandwidth=memory,
        host_to_device=bench.host_to_device(),
        device_to_host=bench.device_to_host(),
        launch_latency=bench.launch_latency(),
        elapsed_s=time.perf_counter() - started,
        notes=tuple(bench.notes),
    )


def _check_dtypes(dtypes: Iterable[str] | None) -> tuple[str, ...]:
    if dtypes is None:
        return DTYPES
    chosen = tuple(dict.fromkeys(str(d).lower() for d in dtypes))
    unknown = [d for d in chosen if d not in DTYPES]
    if unknown or not chosen:
        raise UserError(
            f"unknown matmul dtype(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(DTYPES)}",
            field="dtypes",
        )
    return chosen


def _resolve_device(device: str, torch: Any) -> DeviceKind:
    cuda_ok = _cuda_available(torch)
    if device == "auto":
        return "cuda" if cuda_ok else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        if not cuda_ok:
            raise UserError("no CUDA/ROCm device is available to torch on this machine", field="device")
        return "cuda"
    raise UserError(f"unknown device {device!r}; choose auto, cpu or cuda", field="device")


def _cuda_available(torch: Any) -> bool:
    try:
        return bool(torch.cuda.is_available())
    except (RuntimeError, AssertionError, AttributeError):
        return False


def _with_peak(result: MatmulResult, profile: HardwareProfile | None) -> MatmulResult:
    peak = profile.peak_tflops.get(result.dtype) if profile is not None else None
    if peak is None or result.tflops is None:
        return result.model_copy(update={"peak_tflops": peak})
    return result.model_copy(update={"peak_tflops": peak, "vs_peak_pct": 100 * result.tflops / peak})


def _with_bandwidth_peak(
    result: BandwidthResult | None, profile: HardwareProfile | None
) -> BandwidthResult | None:
    if result is None or profile is None or profile.memory_bandwidth_gbs is None:
        return result
    peak = profile.memory_bandwidth_gbs
    return result.model_copy(update={"peak_gbs": peak, "vs_peak_pct": 100 * result.gbs / peak})


def _repeat_stats(seconds: Sequence[float]) -> tuple[float, float]:
    return min(seconds), statistics.median(seconds)


# --------------------------------------------------------------------------------------------------
# CPU


class _Bench:
    """One device's kernels; the GPU-only figures are None on a CPU."""

    def __init__(self, torch: Any, sizing: Sizing) -> None:
        self.torch = torch
        self.sizing = sizing
        self.notes: list[str] = []

    def matmul(self, dtype: str) -> MatmulResult:
        raise NotImplementedError

    def memory_bandwidth(self) -> BandwidthResult | None:
        raise NotImplementedError

    def host_to_device(self) -> BandwidthResult | None:
        return None

    def device_to_host(self) -> BandwidthResult | None:
        return None

    def launch_latency(self) -> LatencyResult | None:
        return None


_CPU_SKIPS = {
    "tf32": "tf32 is an NVIDIA tensor-core mode; a CPU computes fp32 matmuls in full fp32",
    "fp8": "torch has no fp8 matmul on CPU",
}


class _CpuBench(_Bench):
    def matmul(self, dtype: str) -> MatmulResult:
        if dtype in _CPU_SKIPS:
            return MatmulResult(dtype=dtype, skipped_reason=_CPU_SKIPS[dtype])
        torch = self.torch
        torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        try:
            size, a, b = self._pick_size(torch_dtype)  # already warm at the chosen size
            out = torch.empty(size, size, dtype=torch_dtype)
            seconds = []
            for _ in range(self.sizing.repeats):
                start = time.perf_counter()
                torch.matmul(a, b, out=out)
                seconds.append(time.perf_counter() - start)
        except (RuntimeError, TypeError) as error:  # a build without a kernel for this dtype
            return MatmulResult(dtype=dtype, skipped_reason=f"torch cannot run it here: {_one_line(error)}")
        return _matmul_result(dtype, size, seconds, calls=1)

    def _pick_size(self, torch_dtype: Any) -> tuple[int, Any, Any]:
        """Grow the matrices until one call takes ``matmul_target_s``: fast CPUs get big sizes.

        Sizes below ``matmul_min_size`` are skipped, so one slow call on a busy machine cannot leave
        the measurement at a size too small to reach the CPU's throughput.
        """
        torch = self.torch
        sizes = [n for n in self.sizing.matmul_sizes if n >= self.sizing.matmul_min_size]
        for size in sizes or self.sizing.matmul_sizes[-1:]:
            a = torch.empty(size, size, dtype=torch_dtype).uniform_(-1.0, 1.0)
            b = torch.empty(size, size, dtype=torch_dtype).uniform_(-1.0, 1.0)
            torch.matmul(a, b)  # first call allocates and packs
            start = time.perf_counter()
            torch.matmul(a, b)
            if time.perf_counter() - start >= self.sizing.matmul_target_s:
                break
        return size, a, b

    def memory_bandwidth(self) -> BandwidthResult:
        """STREAM triad ``a = b + s·c`` over arrays well beyond the last-level cache (3 arrays counted)."""
        torch = self.torch
        array_bytes = stream_array_bytes(
            self.sizing, last_level_cache_bytes(), psutil.virtual_memory().available
        )
        elements = array_bytes // 4
        a = torch.empty(elements, dtype=torch.float32)
        b = torch.empty(elements, dtype=torch.float32).fill_(1.0)  # fill touches every page before timing
        c = torch.empty(elements, dtype=torch.float32).fill_(2.0)
        scalar = 3.0
        torch.add(b, c, alpha=scalar, out=a)
        seconds = []
        for _ in range(max(self.sizing.repeats, 5)):
            start = time.perf_counter()
            torch.add(b, c, alpha=scalar, out=a)
            seconds.append(time.perf_counter() - start)
        if float(a[elements - 1]) != 1.0 + scalar * 2.0:  # pragma: no cover - a broken torch build
            raise RuntimeError("the triad kernel computed a wrong value")
        moved = 3 * elements * 4
        cache = last_level_cache_bytes()
        if cache and array_bytes < 4 * cache:
            self.notes.append(
                f"triad arrays ({array_bytes / 2**20:,.0f} MiB each) are smaller than 4× the reported "
                f"last-level cache ({cache / 2**20:,.0f} MiB); bandwidth may include cache hits"
            )
        return _bandwidth_result(
            "memory bandwidth (triad)", "a = b + s·c, fp32, 3 arrays counted", elements * 4, moved, seconds
        )


# --------------------------------------------------------------------------------------------------
# GPU (CUDA and ROCm builds of torch)


class _GpuBench(_Bench):
    def __init__(self, torch: Any, sizing: Sizing) -> None:
        super().__init__(torch, sizing)
        self.device = "cuda"
        self.capability = tuple(torch.cuda.get_device_capability(0))
        self.rocm = bool(getattr(torch.version, "hip", None))

    def _elapsed_s(self, operation: Callable[[], None], calls: int) -> float:
        """GPU time of ``calls`` back-to-back ``operation()``s, from CUDA events (seconds)."""
        torch = self.torch
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            operation()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0

    def _timed(self, operation: Callable[[], None]) -> tuple[int, list[float]]:
        """Warm up, size the loop so a repeat lasts ``gpu_repeat_target_s``, then time each repeat.

        Returns calls per repeat and the per-call time of each repeat.
        """
        for _ in range(3):
            operation()
        self.torch.cuda.synchronize()
        one = self._elapsed_s(operation, 1)
        calls = max(1, min(1000, math.ceil(self.sizing.gpu_repeat_target_s / one))) if one > 0 else 1
        return calls, [self._elapsed_s(operation, calls) / calls for _ in range(self.sizing.repeats)]

    def matmul(self, dtype: str) -> MatmulResult:
        skip = self._skip_reason(dtype)
        if skip:
            return MatmulResult(dtype=dtype, skipped_reason=skip)
        torch = self.torch
        size = self.sizing.matmul_sizes[-1]
        matmul_backend = torch.backends.cuda.matmul
        saved_tf32 = matmul_backend.allow_tf32
        try:
            matmul_backend.allow_tf32 = dtype == "tf32"
            operation = self._matmul_operation(dtype, size)
            calls, seconds = self._timed(operation)
        except (RuntimeError, TypeError, AttributeError) as error:
            return MatmulResult(dtype=dtype, skipped_reason=f"torch cannot run it here: {_one_line(error)}")
        finally:
            matmul_backend.allow_tf32 = saved_tf32
        return _matmul_result(dtype, size, seconds, calls=calls)

    def _skip_reason(self, dtype: str) -> str | None:
        major_minor = f"{self.capability[0]}.{self.capability[1]}"
        if dtype == "tf32" and not self.rocm and self.capability < (8, 0):
            return f"tf32 needs compute capability 8.0 (Ampere) or newer; this GPU is {major_minor}"
        if dtype == "fp8":
            if self.rocm:
                return "fp8 timing on ROCm is not implemented"
            if self.capability < (8, 9):
                return f"fp8 needs compute capability 8.9 (Ada/Hopper) or newer; this GPU is {major_minor}"
            if not hasattr(self.torch, "float8_e4m3fn") or not hasattr(self.torch, "_scaled_mm"):
                return "this torch build has no float8_e4m3fn / _scaled_mm"
        return None

    def _matmul_operation(self, dtype: str, size: int) -> Callable[[], None]:
        torch = self.torch
        if dtype == "fp8":
            a = torch.randn(size, size, device=self.device, dtype=torch.bfloat16).to(torch.float8_e4m3fn)
            b = torch.randn(size, size, device=self.device, dtype=torch.bfloat16).to(torch.float8_e4m3fn)
            b_column_major = b.t()  # _scaled_mm wants its second operand column-major
            one = torch.tensor(1.0, device=self.device, dtype=torch.float32)

            def fp8_matmul() -> None:
                torch._scaled_mm(a, b_column_major, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)

            return fp8_matmul
        torch_dtype = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16}.get(
            dtype, torch.float16
        )
        a = torch.randn(size, size, device=self.device, dtype=torch_dtype)
        b = torch.randn(size, size, device=self.device, dtype=torch_dtype)
        out = torch.empty(size, size, device=self.device, dtype=torch_dtype)

        def dense_matmul() -> None:
            torch.matmul(a, b, out=out)

        return dense_matmul

    def memory_bandwidth(self) -> BandwidthResult:
        """Device-to-device copy; bytes counted twice (read + write), as CUDA's bandwidthTest does."""
        torch = self.torch
        elements = self.sizing.copy_bytes // 4
        source = torch.empty(elements, device=self.device, dtype=torch.float32)
        target = torch.empty(elements, device=self.device, dtype=torch.float32)
        calls, seconds = self._timed(lambda: target.copy_(source))
        return _bandwidth_result(
            "memory bandwidth (copy)",
            "device-to-device copy, read + write counted",
            elements * 4,
            2 * elements * 4,
            seconds,
            calls=calls,
        )

    def _pcie(self, to_device: bool) -> BandwidthResult:
        torch = self.torch
        elements = self.sizing.pcie_bytes // 4
        host = torch.empty(elements, dtype=torch.float32, pin_memory=True)
        gpu = torch.empty(elements, device=self.device, dtype=torch.float32)
        if to_device:
            calls, seconds = self._timed(lambda: gpu.copy_(host, non_blocking=True))
            name, method = "host to device", "pinned host → device copy"
        else:
            calls, seconds = self._timed(lambda: host.copy_(gpu, non_blocking=True))
            name, method = "device to host", "device → pinned host copy"
        return _bandwidth_result(name, method, elements * 4, elements * 4, seconds, calls=calls)

    def host_to_device(self) -> BandwidthResult:
        return self._pcie(to_device=True)

    def device_to_host(self) -> BandwidthResult:
        return self._pcie(to_device=False)

    def launch_latency(self) -> LatencyResult:
        """GPU time per launch of a one-element kernel launched back to back.

        The kernel itself takes far less than a launch, so the GPU waits on the host between kernels
        and the event-timed span is the launch cost that CUDA graphs exist to remove.
        """
        torch = self.torch
        tiny = torch.zeros(1, device=self.device, dtype=torch.float32)
        launches = self.sizing.launches
        for _ in range(10):
            tiny.add_(1.0)
        torch.cuda.synchronize()
        per_launch = [
            self._elapsed_s(lambda: tiny.add_(1.0), launches) / launches for _ in range(self.sizing.repeats)
        ]
        best, median = _repeat_stats(per_launch)
        return LatencyResult(
            launches=launches, repeats=self.sizing.repeats, us_best=best * 1e6, us_median=median * 1e6
        )


# --------------------------------------------------------------------------------------------------
# Results


def _matmul_result(dtype: str, size: int, seconds: Sequence[float], *, calls: int) -> MatmulResult:
    best, median = _repeat_stats(seconds)
    flops = 2 * size**3
    return MatmulResult(
        dtype=dtype,
        size=size,
        repeats=len(seconds),
        calls_per_repeat=calls,
        seconds_best=best,
        seconds_median=median,
        tflops=flops / best / 1e12,
        tflops_median=flops / median / 1e12,
    )


def _bandwidth_result(
    name: str, method: str, array_bytes: int, moved: int, seconds: Sequence[float], *, calls: int = 1
) -> BandwidthResult:
    best, median = _repeat_stats(seconds)
    return BandwidthResult(
        name=name,
        method=method,
        array_bytes=array_bytes,
        bytes_moved=moved,
        repeats=len(seconds),
        seconds_best=best,
        seconds_median=median,
        gbs=moved / best / 1e9,
        gbs_median=moved / median / 1e9,
    )


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(error).__name__


# --------------------------------------------------------------------------------------------------
# A measured profile for hardware no vendor profile covers


def measured_profile_id(device_name: str) -> str:
    """``measured-<slug of the device name>``: a file stem that cannot clash with a bundled id."""
    slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)", "", device_name.lower())).strip("-")
    return f"measured-{slug or 'device'}"


def measured_profile_toml(
    result: DeviceProfileResult, hardware: HardwareInfo, *, profile_id: str | None = None
) -> str:
    """A ``hardware_profiles`` TOML holding what ``result`` measured, for ``load_profile_file``.

    Its ``match`` regex is the exact device name, so the probe picks it for this machine from then on;
    its id (and so its file stem) defaults to :func:`measured_profile_id`.
    """
    profile_id = profile_id or measured_profile_id(result.device_name)
    kind = "gpu" if result.device == "cuda" else "cpu"
    if kind == "gpu":
        gpu = hardware.gpus[0] if hardware.gpus else None
        vendor = gpu.vendor if gpu is not None else "unknown"
        memory_bytes = gpu.memory_total_bytes if gpu is not None else None
    else:
        vendor = _cpu_vendor(result.device_name)
        memory_bytes = hardware.ram_bytes
    date = result.measured_at.date().isoformat()
    lines = [
        f"# Hardware profile measured by `atomabench profile` on {date} ({hardware.hostname}).",
        "# Every figure is what this machine achieved, not a vendor peak; re-run to refresh it.",
        "",
        f"id = {_toml_string(profile_id)}",
        f"name = {_toml_string(result.device_name)}",
        f"vendor = {_toml_string(vendor)}",
        f"kind = {_toml_string(kind)}",
        f"match = [{_toml_string(_exact_name_regex(result.device_name))}]",
    ]
    if memory_bytes:
        lines.append(f"memory_gb = {_toml_float(memory_bytes / 1e9)}")
    if result.memory_bandwidth_gbs is not None:
        lines.append(f"memory_bandwidth_gbs = {_toml_float(result.memory_bandwidth_gbs)}")
    threads = f", {result.cpu_threads} torch threads" if result.cpu_threads else ""
    lines += [
        "measured = true",
        "uncertain = []",
        f"sources = [{_toml_string(f'measured by atomabench profile on {date}')}]",
        f"notes = {_toml_string(_measurement_note(result) + threads)}",
        "",
        "[peak_tflops]  # best achieved dense matmul TFLOPS per dtype",
    ]
    lines += [f"{dtype} = {_toml_float(tflops)}" for dtype, tflops in result.peak_tflops().items()]
    return "\n".join(lines) + "\n"


def _measurement_note(result: DeviceProfileResult) -> str:
    parts = [f"{m.dtype} n={m.size}" for m in result.matmul if m.tflops is not None]
    note = f"matmul sizes: {', '.join(parts) or 'none'}"
    if result.memory_bandwidth is not None:
        note += f"; bandwidth: {result.memory_bandwidth.method}"
    if result.quick:
        note += "; QUICK mode (small sizes, figures are rough)"
    return note


def _exact_name_regex(name: str) -> str:
    """``^name$`` with the regex metacharacters escaped; spaces stay readable."""
    return "^" + re.escape(name).replace("\\ ", " ") + "$"


def _cpu_vendor(cpu_model: str) -> str:
    lowered = cpu_model.lower()
    for needle, vendor in (("intel", "Intel"), ("amd", "AMD"), ("apple", "Apple"), ("ampere", "Ampere")):
        if needle in lowered:
            return vendor
    return "unknown"


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes (\\", \\\\, \\n, \\uXXXX) are all valid TOML."""
    return json.dumps(value)


def _toml_float(value: float) -> str:
    return repr(float(round(value, 4)))
