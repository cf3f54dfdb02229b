"""The `atomabench hw` tables: fields in human units, identical GPUs shown once."""

from __future__ import annotations

from rich.console import Console

from atomabench.hardware import get_profile
from atomabench.hardware.render import format_gib, hardware_table, profile_table
from atomabench.records import GpuInfo, HardwareInfo


def rendered(table) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def rows(table) -> dict[str, str]:
    fields, values = (list(column.cells) for column in table.columns)
    return {str(field): str(value) for field, value in zip(fields, values, strict=True)}


def h100_node(gpu_count: int = 8) -> HardwareInfo:
    gpus = tuple(
        GpuInfo(
            index=index,
            vendor="NVIDIA",
            name="NVIDIA H100 80GB HBM3",
            memory_total_bytes=85520809984,
            driver_version="550.54.15",
            cuda_version="12.4",
            compute_capability="9.0",
            power_limit_w=700.0,
            sm_clock_max_mhz=1980,
            memory_clock_max_mhz=2619,
            pcie_generation=5,
            pcie_width=16,
            uuid=f"GPU-{index}",
        )
        for index in range(gpu_count)
    )
    return HardwareInfo(
        hostname="node-7",
        os="Linux-5.15.0-x86_64-with-glibc2.35",
        python_version="3.11.7",
        cpu_model="Intel(R) Xeon(R) Platinum 8480+",
        cpu_cores=112,
        cpu_threads=224,
        ram_bytes=2164663517184,
        accelerator="cuda",
        gpus=gpus,
        torch_version="2.5.1",
        torch_cuda_version="12.4",
        transformers_version="4.57.0",
        profile_id="h100-sxm",
    )


def test_format_gib():
    assert format_gib(85520809984) == "79.6 GiB"  # 85520809984 / 2**30 = 79.65
    assert format_gib(2**30 * 24) == "24.0 GiB"
    assert format_gib(None) == "–"


def test_hardware_table_groups_eight_identical_gpus():
    table = hardware_table(h100_node(), get_profile("h100-sxm"))
    assert [column.header for column in table.columns] == ["field", "value"]
    values = rows(table)
    assert values["GPUs 0–7"] == "8 × NVIDIA H100 80GB HBM3 (NVIDIA)"
    assert values["  memory"] == "79.6 GiB"
    assert values["  driver"] == "550.54.15"
    assert values["  CUDA driver"] == "12.4"
    assert values["  compute capability"] == "9.0"
    assert values["  power limit"] == "700 W"
    assert values["  max SM clock"] == "1980 MHz"
    assert values["  max memory clock"] == "2619 MHz"
    assert values["  PCIe (max)"] == "Gen 5 ×16"
    assert "  UUID" not in values  # eight uuids are noise in a summary
    assert values["RAM"] == "2016.0 GiB"  # 2164663517184 / 2**30
    assert values["CPU cores / threads"] == "112 / 224"
    assert values["torch"] == "2.5.1 (CUDA 12.4)"
    assert values["vllm"] == "not installed"
    assert values["profile"] == "h100-sxm (NVIDIA H100 SXM)"
    assert "NVML" not in values


def test_hardware_table_for_one_gpu_shows_its_uuid_and_a_cpu_machine_its_nvml_reason():
    assert rows(hardware_table(h100_node(1), None))["  UUID"] == "GPU-0"
    cpu_only = h100_node(0).model_copy(
        update={
            "accelerator": "cpu",
            "nvml_error": "nvmlInit failed: NVML Shared Library Not Found",
            "profile_id": "generic-cpu",
        }
    )
    values = rows(hardware_table(cpu_only, None))
    assert values["accelerator"] == "cpu"
    assert values["NVML"] == "nvmlInit failed: NVML Shared Library Not Found"
    assert values["profile"] == "generic-cpu"
    assert not any(field.startswith("GPU") for field in values)


def test_brackets_in_values_are_shown_not_read_as_markup():
    odd = h100_node(0).model_copy(update={"cpu_model": "Virtual CPU [kvm] [bold]"})
    assert "Virtual CPU [kvm] [bold]" in rendered(hardware_table(odd, None))


def test_profile_table_marks_uncertain_figures():
    values = rows(profile_table(get_profile("a10g")))
    assert values["peak TFLOPS (dense)"] == "bf16 70, fp16 70 (unc.)"
    assert values["TDP"] == "300 W (unc.)"
    assert values["memory bandwidth"] == "600 GB/s"
    assert values["price"] == "–"
    assert values["rent per GPU-hour"] == "$1/h"
    text = rendered(profile_table(get_profile("h100-sxm")))
    assert "$30,000" in text
    assert "$2.69–4.29/h" in text
    assert "bf16 989, fp16 989, fp8 1979" in text
    assert "huggingface.co/hardware/h100" in text
