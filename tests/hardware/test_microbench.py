"""Microbenchmarks: a quick run on this CPU, a fake GPU of known speed, the measured TOML, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
import typer
from typer.testing import CliRunner

from atomabench import paths
from atomabench.errors import UserError
from atomabench.hardware import profile_cli
from atomabench.hardware.microbench import (
    BandwidthResult,
    DeviceProfileResult,
    MatmulResult,
    measured_profile_id,
    measured_profile_toml,
    run_profile,
)
from atomabench.hardware.profiles import get_profile, load_profile_file, match_profile
from atomabench.records import GpuInfo, HardwareInfo, HardwareProfile
from atomabench.store import open_store

CPU_NAME = "Intel(R) Xeon(R) Platinum 8480+"


def cpu_hardware(name: str = CPU_NAME) -> HardwareInfo:
    return HardwareInfo(
        hostname="node-7",
        os="Linux-6.8",
        python_version="3.11.9",
        cpu_model=name,
        cpu_cores=2,
        cpu_threads=2,
        ram_bytes=25_276_500_000,
        accelerator="cpu",
    )


@pytest.fixture(scope="module")
def quick_cpu() -> DeviceProfileResult:
    """One real quick run on this machine's CPU, shared by the tests that read it."""
    return run_profile("cpu", quick=True, hardware=cpu_hardware(), profile=get_profile("generic-cpu"))


# --------------------------------------------------------------------------------------------------
# A real run on this CPU


def test_quick_cpu_run_measures_real_flops_and_bandwidth(quick_cpu: DeviceProfileResult) -> None:
    by_dtype = {m.dtype: m for m in quick_cpu.matmul}
    assert list(by_dtype) == ["fp32", "tf32", "bf16", "fp16", "fp8"]

    fp32 = by_dtype["fp32"]
    assert fp32.tflops is not None and fp32.tflops > 0
    assert fp32.size in (256, 512) and fp32.repeats == 3
    assert fp32.seconds_best <= fp32.seconds_median
    assert fp32.tflops == pytest.approx(2 * fp32.size**3 / fp32.seconds_best / 1e12, rel=1e-12)
    assert by_dtype["fp8"].skipped_reason == "torch has no fp8 matmul on CPU"
    assert by_dtype["tf32"].skipped_reason.startswith("tf32 is an NVIDIA tensor-core mode")

    bandwidth = quick_cpu.memory_bandwidth
    assert bandwidth is not None and bandwidth.gbs > 0.1
    assert bandwidth.bytes_moved == 3 * bandwidth.array_bytes  # a, b and c of the triad
    assert bandwidth.gbs == pytest.approx(bandwidth.bytes_moved / bandwidth.seconds_best / 1e9, rel=1e-12)

    assert quick_cpu.device == "cpu" and quick_cpu.device_name == CPU_NAME
    assert quick_cpu.profile_id == "generic-cpu" and quick_cpu.quick
    assert quick_cpu.host_to_device is None and quick_cpu.launch_latency is None  # GPU-only figures
    assert fp32.vs_peak_pct is None and bandwidth.vs_peak_pct is None  # generic-cpu has no peaks


def test_achieved_share_of_a_profile_peak() -> None:
    profile = HardwareProfile(
        id="test-cpu",
        name="test",
        vendor="x",
        kind="cpu",
        memory_bandwidth_gbs=100.0,
        peak_tflops={"fp32": 2.0},
    )

    result = run_profile("cpu", quick=True, dtypes=["FP32"], hardware=cpu_hardware(), profile=profile)

    (fp32,) = result.matmul
    assert fp32.peak_tflops == 2.0 and fp32.vs_peak_pct == 100 * fp32.tflops / 2.0
    assert result.memory_bandwidth.peak_gbs == 100.0
    assert result.memory_bandwidth.vs_peak_pct == pytest.approx(
        result.memory_bandwidth.gbs, rel=1e-12
    )  # x/100·100


def test_bad_choices_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown matmul dtype") as error:
        run_profile("cpu", dtypes=["fp64"], hardware=cpu_hardware())
    assert error.value.field == "dtypes"

    no_gpu = SimpleNamespace(cuda=SimpleNamespace(is_available=lambda: False))
    with pytest.raises(UserError, match="no CUDA/ROCm device") as error:
        run_profile("cuda", torch_module=no_gpu)
    assert error.value.field == "device"
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        run_profile("tpu", torch_module=no_gpu)


# --------------------------------------------------------------------------------------------------
# A fake GPU whose every kernel takes a known time on a fake clock read by the CUDA events


class FakeTensor:
    def __init__(self, gpu: FakeGpuTorch, shape: tuple[int, ...], dtype: str, device: str) -> None:
        self.gpu, self.shape, self.dtype, self.device = gpu, shape, dtype, device

    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count

    def to(self, dtype: str) -> FakeTensor:
        return FakeTensor(self.gpu, self.shape, dtype, self.device)

    def t(self) -> FakeTensor:
        return FakeTensor(self.gpu, self.shape[::-1], self.dtype, self.device)

    def copy_(self, source: FakeTensor, non_blocking: bool = False) -> FakeTensor:
        route = (source.device, self.device)
        rate = {("cuda", "cuda"): 2.8e12 / 2, ("cpu", "cuda"): 25e9, ("cuda", "cpu"): 26e9}[route]
        self.gpu.clock += 4 * self.numel() / rate  # a D2D copy reads and writes: 2.8 TB/s counted twice
        return self

    def add_(self, value: float) -> FakeTensor:
        self.gpu.clock += 4e-6  # one launch
        return self


class FakeEvent:
    def __init__(self, gpu: FakeGpuTorch) -> None:
        self.gpu, self.time = gpu, None

    def record(self) -> None:
        self.time = self.gpu.clock

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: FakeEvent) -> float:
        return (end.time - self.time) * 1000


class FakeGpuTorch:
    """The few torch calls ``run_profile`` makes on a GPU, for an H100 with known throughputs."""

    float32, bfloat16, float16, float8_e4m3fn = "float32", "bfloat16", "float16", "float8_e4m3fn"
    __version__ = "2.5.1+cu124"
    TFLOPS: ClassVar[dict[str, float]] = {
        "float32": 50.0,
        "tf32": 400.0,
        "bfloat16": 700.0,
        "float16": 650.0,
        "float8_e4m3fn": 1400.0,
    }

    def __init__(self, name: str = "NVIDIA H100 80GB HBM3", capability: tuple[int, int] = (9, 0)) -> None:
        self.clock = 0.0
        self.version = SimpleNamespace(cuda="12.4", hip=None)
        self.backends = SimpleNamespace(cuda=SimpleNamespace(matmul=SimpleNamespace(allow_tf32=False)))
        self.cuda = SimpleNamespace(
            is_available=lambda: True,
            get_device_name=lambda index=0: name,
            get_device_capability=lambda index=0: capability,
            synchronize=lambda: None,
            Event=lambda enable_timing=False: FakeEvent(self),
        )

    def _tensor(self, *shape, device="cpu", dtype="float32", **_: object) -> FakeTensor:
        return FakeTensor(self, tuple(shape), dtype, device)

    randn = empty = zeros = _tensor

    def tensor(self, value, device="cpu", dtype="float32") -> FakeTensor:
        return FakeTensor(self, (), dtype, device)

    def matmul(self, a: FakeTensor, b: FakeTensor, out: FakeTensor | None = None) -> FakeTensor:
        kind = "tf32" if a.dtype == "float32" and self.backends.cuda.matmul.allow_tf32 else a.dtype
        self.clock += 2 * a.shape[0] * a.shape[1] * b.shape[1] / (self.TFLOPS[kind] * 1e12)
        return out

    def _scaled_mm(self, a, b, scale_a, scale_b, out_dtype) -> FakeTensor:
        self.clock += 2 * a.shape[0] * a.shape[1] * b.shape[1] / (self.TFLOPS["float8_e4m3fn"] * 1e12)
        return FakeTensor(self, (a.shape[0], b.shape[1]), out_dtype, "cuda")

    def get_num_threads(self) -> int:
        return 16


def test_fake_h100_figures_come_out_of_the_cuda_event_timing() -> None:
    torch = FakeGpuTorch()

    result = run_profile("auto", quick=True, torch_module=torch)

    assert result.device == "cuda" and result.device_name == "NVIDIA H100 80GB HBM3"
    assert result.profile_id == "h100-sxm"  # matched through the bundled profiles
    achieved = {m.dtype: m.tflops for m in result.matmul}
    assert achieved == pytest.approx(
        {"fp32": 50.0, "tf32": 400.0, "bf16": 700.0, "fp16": 650.0, "fp8": 1400.0}
    )
    bf16 = next(m for m in result.matmul if m.dtype == "bf16")
    assert bf16.size == 2048 and bf16.peak_tflops == 989
    assert bf16.vs_peak_pct == pytest.approx(100 * 700 / 989)
    # 2·2048³ FLOPs at 700 TFLOPS = 24.5 µs per call; a 10 ms repeat needs ceil(10 ms / 24.5 µs) calls
    assert bf16.calls_per_repeat == 408
    assert next(m for m in result.matmul if m.dtype == "fp32").peak_tflops is None  # h100-sxm lists none
    assert torch.backends.cuda.matmul.allow_tf32 is False  # restored after the tf32 run

    assert result.memory_bandwidth.gbs == pytest.approx(2800.0)
    assert result.memory_bandwidth.bytes_moved == 2 * 64 * 2**20  # read + write of 64 MiB
    assert result.memory_bandwidth.vs_peak_pct == pytest.approx(100 * 2800 / 3350)
    assert result.host_to_device.gbs == pytest.approx(25.0)
    assert result.device_to_host.gbs == pytest.approx(26.0)
    assert result.launch_latency.us_best == pytest.approx(4.0)
    assert result.launch_latency.launches == 200


def test_fp8_and_tf32_skipped_where_the_gpu_lacks_them() -> None:
    result = run_profile("cuda", quick=True, torch_module=FakeGpuTorch("Tesla V100-SXM2-16GB", (7, 0)))

    skipped = {m.dtype: m.skipped_reason for m in result.matmul if m.skipped}
    assert skipped == {
        "tf32": "tf32 needs compute capability 8.0 (Ampere) or newer; this GPU is 7.0",
        "fp8": "fp8 needs compute capability 8.9 (Ada/Hopper) or newer; this GPU is 7.0",
    }
    assert result.profile_id is None  # no bundled profile for a V100: no peaks, no borrowed figures


# --------------------------------------------------------------------------------------------------
# The measured profile TOML


def hand_made_result(device: str = "cpu", name: str = CPU_NAME) -> DeviceProfileResult:
    return DeviceProfileResult(
        device=device,
        device_name=name,
        profile_id="generic-cpu" if device == "cpu" else None,
        measured_at=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        cpu_threads=2 if device == "cpu" else None,
        matmul=(
            MatmulResult(dtype="fp32", size=2048, repeats=5, tflops=0.3125, seconds_best=0.05497558138880001),
            MatmulResult(dtype="bf16", size=4096, repeats=5, tflops=1.8),
            MatmulResult(dtype="fp8", skipped_reason="torch has no fp8 matmul on CPU"),
        ),
        memory_bandwidth=BandwidthResult(
            name="memory bandwidth (triad)",
            method="a = b + s·c, fp32, 3 arrays counted",
            array_bytes=512 * 2**20,
            bytes_moved=3 * 512 * 2**20,
            repeats=5,
            seconds_best=0.1,
            seconds_median=0.11,
            gbs=16.10612736,
            gbs_median=14.64,
        ),
    )


def test_measured_profile_id() -> None:
    assert measured_profile_id(CPU_NAME) == "measured-intel-xeon-platinum-8480"
    assert measured_profile_id("NVIDIA RTX PRO 6000 Blackwell") == "measured-nvidia-rtx-pro-6000-blackwell"


def test_measured_toml_loads_and_matches_this_machine(tmp_path: Path) -> None:
    result = hand_made_result()
    path = tmp_path / f"{measured_profile_id(CPU_NAME)}.toml"
    path.write_text(measured_profile_toml(result, cpu_hardware()), encoding="utf-8")

    profile = load_profile_file(path)

    assert profile.id == "measured-intel-xeon-platinum-8480"
    assert (profile.name, profile.vendor, profile.kind, profile.measured) == (CPU_NAME, "Intel", "cpu", True)
    assert profile.peak_tflops == {"fp32": 0.3125, "bf16": 1.8}  # skipped fp8 left out
    assert profile.memory_bandwidth_gbs == 16.1061
    assert profile.memory_gb == 25.2765
    assert profile.sources == ("measured by atomabench profile on 2025-03-01",)
    assert profile.match == (r"^Intel\(R\) Xeon\(R\) Platinum 8480\+$",)
    # the probe now picks it for this CPU rather than generic-cpu, and for no other CPU
    profiles = {"generic-cpu": get_profile("generic-cpu"), profile.id: profile}
    assert match_profile(CPU_NAME, "cpu", profiles) == profile
    assert match_profile("Intel(R) Xeon(R) Platinum 8480", "cpu", profiles).id == "generic-cpu"


def test_measured_gpu_toml(tmp_path: Path) -> None:
    name = "NVIDIA RTX PRO 6000 Blackwell"
    hardware = cpu_hardware().model_copy(
        update={
            "accelerator": "cuda",
            "gpus": (GpuInfo(index=0, vendor="NVIDIA", name=name, memory_total_bytes=102_000_000_000),),
        }
    )
    path = tmp_path / "rtx-pro.toml"
    path.write_text(
        measured_profile_toml(hand_made_result("cuda", name), hardware, profile_id="rtx-pro"),
        encoding="utf-8",
    )

    profile = load_profile_file(path)

    assert (profile.id, profile.kind, profile.vendor, profile.memory_gb) == (
        "rtx-pro",
        "gpu",
        "NVIDIA",
        102.0,
    )
    assert match_profile(name, "cuda", {profile.id: profile}) == profile


# --------------------------------------------------------------------------------------------------
# atomabench profile


@pytest.fixture
def profile_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> typer.Typer:
    """The command registered on a bare app, with the probe and the benchmark replaced."""
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        pass

    profile_cli.register(app)
    monkeypatch.setattr(profile_cli, "probe", cpu_hardware)
    monkeypatch.setattr(profile_cli, "run_profile", lambda device, *, quick, hardware: hand_made_result())
    monkeypatch.setattr(paths, "data_dir", lambda: tmp_path / "data")
    return app


def test_profile_command_stores_and_writes_a_profile_for_an_unmatched_cpu(
    profile_app: typer.Typer, tmp_path: Path
) -> None:
    db = tmp_path / "results.db"

    outcome = CliRunner().invoke(profile_app, ["profile", "--db", str(db), "--json"])

    assert outcome.exit_code == 0, outcome.output
    document = json.loads(outcome.output)
    written = tmp_path / "data" / "hardware_profiles" / "measured-intel-xeon-platinum-8480.toml"
    assert document["profile_written"] == str(written)
    assert load_profile_file(written).peak_tflops == {"fp32": 0.3125, "bf16": 1.8}
    assert document["stored_id"] == 1
    assert [row["figure"] for row in document["figures"]] == [
        "matmul fp32",
        "matmul bf16",
        "matmul fp8",
        "memory bandwidth (triad)",
    ]
    with open_store(db) as store:
        (stored,) = store.list_device_profiles()
    assert stored.id == 1 and stored.result == hand_made_result()


def test_profile_command_table_and_explicit_path(profile_app: typer.Typer, tmp_path: Path) -> None:
    target = tmp_path / "mine" / "my-node.toml"

    outcome = CliRunner().invoke(
        profile_app,
        ["profile", "--quick", "--db", str(tmp_path / "r.db"), "--write-profile", str(target)],
        env={"COLUMNS": "200"},
    )

    assert outcome.exit_code == 0, outcome.output
    assert "matmul fp32" in outcome.output and "312.5 GFLOPS" in outcome.output
    assert "16.11 GB/s" in outcome.output
    assert f"wrote measured hardware profile {target}" in outcome.output
    assert load_profile_file(target).id == "my-node"


def test_quick_profile_of_an_unmatched_cpu_writes_no_toml(profile_app: typer.Typer, tmp_path: Path) -> None:
    outcome = CliRunner().invoke(profile_app, ["profile", "--quick", "--db", str(tmp_path / "r.db")])

    assert outcome.exit_code == 0, outcome.output
    assert "too rough for a profile" in outcome.output
    assert not (tmp_path / "data" / "hardware_profiles").exists()
