"""The probe, fed by fake NVML and torch modules that replay what real machines report."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from types import SimpleNamespace

import psutil
import pytest

from atomabench.hardware import probe
from atomabench.hardware.probe import nvml_gpus, parse_cpuinfo_model

# The package re-exports the function `probe`, which shadows the submodule attribute of the same name.
probe_module = sys.modules["atomabench.hardware.probe"]

# Values NVML returned on a real 8× H100 SXM node (driver 550.54.15). UUIDs are placeholders.
H100_NAME = "NVIDIA H100 80GB HBM3"
H100_MEMORY_BYTES = 85520809984
H100_UUIDS = [f"GPU-00000000-0000-0000-0000-00000000000{index}" for index in range(8)]


class FakeNVMLError(Exception):
    """Stands in for pynvml.NVMLError: the probe catches ``module.NVMLError``."""


class FakeNotSupported(FakeNVMLError):
    def __str__(self) -> str:
        return "Not Supported"


class FakeLibraryNotFound(FakeNVMLError):
    def __str__(self) -> str:
        return "NVML Shared Library Not Found"


class FakeNvml:
    """A pynvml look-alike replaying a recorded node; ``unsupported`` names queries that raise."""

    NVMLError = FakeNVMLError
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2

    def __init__(self, *, device_count=8, init_error=None, unsupported=(), count_error=None):
        self.device_count = device_count
        self.init_error = init_error
        self.count_error = count_error
        self.unsupported = set(unsupported)
        self.shutdown_calls = 0

    def _check(self, query: str) -> None:
        if query in self.unsupported:
            raise FakeNotSupported()

    def nvmlInit(self):
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self):
        self.shutdown_calls += 1

    def nvmlDeviceGetCount(self):
        if self.count_error is not None:
            raise self.count_error
        return self.device_count

    def nvmlSystemGetDriverVersion(self):
        self._check("nvmlSystemGetDriverVersion")
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion_v2(self):
        self._check("nvmlSystemGetCudaDriverVersion_v2")
        return 12040

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("handle", index)

    def nvmlDeviceGetName(self, handle):
        self._check("nvmlDeviceGetName")
        return H100_NAME.encode()  # older pynvml returns bytes; the probe must decode

    def nvmlDeviceGetMemoryInfo(self, handle):
        self._check("nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(total=H100_MEMORY_BYTES, free=84_986_691_584, used=534_118_400)

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        self._check("nvmlDeviceGetCudaComputeCapability")
        return (9, 0)

    def nvmlDeviceGetPowerManagementLimit(self, handle):
        self._check("nvmlDeviceGetPowerManagementLimit")
        return 700000

    def nvmlDeviceGetMaxClockInfo(self, handle, clock_type):
        self._check("nvmlDeviceGetMaxClockInfo")
        return {self.NVML_CLOCK_SM: 1980, self.NVML_CLOCK_MEM: 2619}[clock_type]

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle):
        self._check("nvmlDeviceGetMaxPcieLinkGeneration")
        return 5

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle):
        self._check("nvmlDeviceGetMaxPcieLinkWidth")
        return 16

    def nvmlDeviceGetUUID(self, handle):
        self._check("nvmlDeviceGetUUID")
        return H100_UUIDS[handle[1]]


def fake_torch(*, cuda=None, hip=None, cuda_available=False, mps_available=False, devices=()):
    """A torch look-alike: version strings, cuda.* over ``devices`` (name, properties), backends.mps."""
    return SimpleNamespace(
        version=SimpleNamespace(cuda=cuda, hip=hip),
        cuda=SimpleNamespace(
            is_available=lambda: cuda_available,
            device_count=lambda: len(devices),
            get_device_name=lambda index: devices[index][0],
            get_device_properties=lambda index: devices[index][1],
        ),
        backends=SimpleNamespace(mps=SimpleNamespace(is_available=lambda: mps_available)),
    )


CPU_ONLY_TORCH = fake_torch()


def nvml_library_present() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return False
    pynvml.nvmlShutdown()
    return True


def test_probe_without_nvml_library_is_a_cpu_machine():
    fake = FakeNvml(init_error=FakeLibraryNotFound())
    hw = probe(nvml_module=fake, torch_module=CPU_ONLY_TORCH)
    assert hw.accelerator == "cpu"
    assert hw.gpus == ()
    assert hw.nvml_error == "nvmlInit failed: FakeLibraryNotFound: NVML Shared Library Not Found"
    assert hw.profile_id == "generic-cpu"
    assert hw.device_name == hw.cpu_model
    assert fake.shutdown_calls == 0  # nothing to shut down after a failed init


def test_probe_with_real_pynvml_error_classes():
    pynvml = pytest.importorskip("pynvml")
    fake = FakeNvml(init_error=pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    fake.NVMLError = pynvml.NVMLError
    gpus, error = nvml_gpus(fake)
    assert gpus == ()
    assert error == "nvmlInit failed: NVMLError_LibraryNotFound: NVML Shared Library Not Found"


@pytest.mark.skipif(nvml_library_present() or sys.platform == "darwin", reason="this machine has a GPU")
def test_probe_in_this_real_environment_without_a_gpu():
    hw = probe()
    assert hw.accelerator == "cpu"
    assert hw.gpus == ()
    assert hw.nvml_error is not None and "\n" not in hw.nvml_error
    assert hw.profile_id == "generic-cpu"
    assert hw.hostname == socket.gethostname()
    assert hw.python_version == platform.python_version()
    assert hw.os == platform.platform()
    assert hw.ram_bytes == psutil.virtual_memory().total
    assert hw.cpu_threads == os.cpu_count()
    assert 1 <= hw.cpu_cores <= hw.cpu_threads
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            expected_model = parse_cpuinfo_model(cpuinfo.read())
        if expected_model:
            assert hw.cpu_model == expected_model
    import torch

    assert hw.torch_version == torch.__version__
    assert hw.torch_cuda_version == torch.version.cuda


def test_probe_when_pynvml_is_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    assert nvml_gpus() == ((), "pynvml (nvidia-ml-py) is not installed")


def test_probe_reads_every_field_of_an_8x_h100_sxm_node():
    fake = FakeNvml()
    hw = probe(nvml_module=fake, torch_module=fake_torch(cuda="12.4"))
    assert hw.accelerator == "cuda"
    assert hw.nvml_error is None
    assert hw.gpu_count == 8
    assert hw.profile_id == "h100-sxm"
    assert hw.torch_cuda_version == "12.4"
    assert fake.shutdown_calls == 1
    for index, gpu in enumerate(hw.gpus):
        assert gpu.model_dump() == {
            "index": index,
            "vendor": "NVIDIA",
            "name": "NVIDIA H100 80GB HBM3",
            "memory_total_bytes": 85520809984,
            "driver_version": "550.54.15",
            "cuda_version": "12.4",
            "compute_capability": "9.0",
            "power_limit_w": 700.0,
            "sm_clock_max_mhz": 1980,
            "memory_clock_max_mhz": 2619,
            "pcie_generation": 5,
            "pcie_width": 16,
            "uuid": H100_UUIDS[index],
        }


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("nvmlDeviceGetPowerManagementLimit", {"power_limit_w"}),
        ("nvmlDeviceGetMaxPcieLinkGeneration", {"pcie_generation"}),
        ("nvmlDeviceGetMaxClockInfo", {"sm_clock_max_mhz", "memory_clock_max_mhz"}),
        ("nvmlDeviceGetUUID", {"uuid"}),
        ("nvmlSystemGetCudaDriverVersion_v2", {"cuda_version"}),
    ],
)
def test_a_not_supported_query_leaves_only_its_field_none(query, fields):
    complete, _ = nvml_gpus(FakeNvml(device_count=1))
    partial, error = nvml_gpus(FakeNvml(device_count=1, unsupported={query}))
    assert error is None
    expected = complete[0].model_dump() | dict.fromkeys(fields)
    assert partial[0].model_dump() == expected


def test_unsupported_name_still_gives_a_named_gpu():
    gpus, _ = nvml_gpus(FakeNvml(device_count=1, unsupported={"nvmlDeviceGetName"}))
    assert gpus[0].name == "unknown NVIDIA GPU"


def test_failed_device_count_reports_the_reason_and_still_shuts_nvml_down():
    fake = FakeNvml(count_error=FakeLibraryNotFound())
    assert nvml_gpus(fake) == ((), "nvmlDeviceGetCount failed: NVML Shared Library Not Found")
    assert fake.shutdown_calls == 1


def test_cuda_version_text():
    assert probe_module._cuda_version_text(12040) == "12.4"
    assert probe_module._cuda_version_text(11080) == "11.8"
    assert probe_module._cuda_version_text(12100) == "12.10"
    assert probe_module._cuda_version_text(None) is None


def test_rocm_gpus_come_from_torch():
    mi300x = SimpleNamespace(
        total_memory=206158430208, gcnArchName="gfx942:sramecc+:xnack-", major=9, minor=4
    )
    torch = fake_torch(hip="6.2.41133", cuda_available=True, devices=[("AMD Instinct MI300X", mi300x)] * 2)
    hw = probe(nvml_module=FakeNvml(init_error=FakeLibraryNotFound()), torch_module=torch)
    assert hw.accelerator == "rocm"
    assert hw.profile_id == "mi300x"
    assert [gpu.index for gpu in hw.gpus] == [0, 1]
    assert hw.gpus[0].model_dump(exclude_none=True) == {
        "index": 0,
        "vendor": "AMD",
        "name": "AMD Instinct MI300X",
        "memory_total_bytes": 206158430208,
        "cuda_version": "6.2.41133",
        "compute_capability": "gfx942",
    }


def test_cuda_gpus_come_from_torch_when_nvml_is_missing():
    rtx4090 = SimpleNamespace(total_memory=25756696576, major=8, minor=9)
    torch = fake_torch(cuda="12.4", cuda_available=True, devices=[("NVIDIA GeForce RTX 4090", rtx4090)])
    hw = probe(nvml_module=FakeNvml(init_error=FakeLibraryNotFound()), torch_module=torch)
    assert (hw.accelerator, hw.profile_id, hw.gpu_count) == ("cuda", "rtx-4090", 1)
    assert (hw.gpus[0].compute_capability, hw.gpus[0].memory_total_bytes) == ("8.9", 25756696576)
    assert hw.nvml_error is not None  # still says why NVML gave nothing


def test_apple_mps_names_the_chip_from_sysctl(monkeypatch):
    def fake_run(args, **kwargs):
        assert args == ["sysctl", "-n", "machdep.cpu.brand_string"]
        return subprocess.CompletedProcess(args, 0, stdout="Apple M3 Max\n", stderr="")

    monkeypatch.setattr(probe_module.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(probe_module.subprocess, "run", fake_run)
    hw = probe(
        nvml_module=FakeNvml(init_error=FakeLibraryNotFound()), torch_module=fake_torch(mps_available=True)
    )
    assert hw.accelerator == "mps"
    assert hw.cpu_model == "Apple M3 Max"
    assert hw.profile_id == "m3-max"
    assert hw.gpus[0].model_dump(exclude_none=True) == {
        "index": 0,
        "vendor": "Apple",
        "name": "Apple M3 Max",
        "memory_total_bytes": hw.ram_bytes,
    }


def test_unknown_gpu_gets_no_profile():
    class T4Nvml(FakeNvml):
        def nvmlDeviceGetName(self, handle):
            return "Tesla T4"

    hw = probe(nvml_module=T4Nvml(device_count=1), torch_module=CPU_ONLY_TORCH)
    assert (hw.accelerator, hw.device_name, hw.profile_id) == ("cuda", "Tesla T4", None)


def test_parse_cpuinfo_model():
    text = (
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 143\n"
        "model name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    )
    assert parse_cpuinfo_model(text * 2) == "Intel(R) Xeon(R) Platinum 8480+"
    assert parse_cpuinfo_model("processor\t: 0\nCPU part\t: 0xd40\n") is None
