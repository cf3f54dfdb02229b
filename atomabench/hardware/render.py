"""Rich tables for ``atomabench hw`` and ``atomabench profile``: what was found, in human units.

Bytes are shown in GiB (what ``nvidia-smi`` and ``free -g`` show), vendor memory sizes in GB (what
datasheets print), power in W and clocks in MHz. Identical GPUs are shown once with their count, so an
8-GPU node reads as one block rather than eight.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text

from atomabench.records import GpuInfo, HardwareInfo, HardwareProfile

_GIB = 2**30


def hardware_table(hw: HardwareInfo, profile: HardwareProfile | None) -> Table:
    """This machine as the probe found it, followed by the profile it matched."""
    table = _two_column_table("Hardware")
    rows: list[tuple[str, str]] = [
        ("host", hw.hostname),
        ("OS", hw.os),
        ("Python", hw.python_version),
        ("CPU", hw.cpu_model),
        ("CPU cores / threads", f"{hw.cpu_cores} / {hw.cpu_threads}"),
        ("RAM", format_gib(hw.ram_bytes)),
        ("accelerator", hw.accelerator),
    ]
    for indices, gpu in _group_identical_gpus(hw.gpus):
        rows.extend(_gpu_rows(indices, gpu))
    if hw.nvml_error:
        rows.append(("NVML", hw.nvml_error))
    torch = hw.torch_version or "not installed"
    if hw.torch_cuda_version:
        torch += f" (CUDA {hw.torch_cuda_version})"
    rows += [
        ("torch", torch),
        ("transformers", hw.transformers_version or "not installed"),
        ("vllm", hw.vllm_version or "not installed"),
        ("profile", f"{profile.id} ({profile.name})" if profile else hw.profile_id or "no matching profile"),
    ]
    _add_rows(table, rows)
    return table


def profile_table(profile: HardwareProfile) -> Table:
    """A hardware profile's published figures; figures marked uncertain carry "(unc.)"."""
    table = _two_column_table(f"Hardware profile {profile.id}")

    def shown(field: str, text: str | None) -> str:
        if text is None:
            text = "–"
        return f"{text} (unc.)" if field in profile.uncertain else text

    rent = profile.rent_usd_per_hour
    if rent is None:
        rent_text = None
    elif rent[0] == rent[1]:
        rent_text = f"${rent[0]:g}/h"
    else:
        rent_text = f"${rent[0]:g}–{rent[1]:g}/h"
    rows = [
        ("id", profile.id),
        ("name", profile.name),
        ("vendor", profile.vendor),
        ("kind", profile.kind),
        ("measured", "yes" if profile.measured else "no (published figures)"),
        ("memory", shown("memory_gb", _number(profile.memory_gb, "GB"))),
        ("memory bandwidth", shown("memory_bandwidth_gbs", _number(profile.memory_bandwidth_gbs, "GB/s"))),
    ]
    price = f"${profile.price_usd:,.0f}" if profile.price_usd is not None else None
    tflops = ", ".join(f"{dtype} {value:g}" for dtype, value in profile.peak_tflops.items()) or None
    rows += [
        ("peak TFLOPS (dense)", shown("peak_tflops", tflops)),
        ("TDP", shown("tdp_w", _number(profile.tdp_w, "W"))),
        ("price", shown("price_usd", price)),
        ("rent per GPU-hour", shown("rent_usd_per_hour", rent_text)),
        ("matches", ", ".join(profile.match) or "–"),
        ("sources", "\n".join(profile.sources) or "–"),
    ]
    if profile.notes:
        rows.append(("notes", profile.notes))
    _add_rows(table, rows)
    return table


def format_gib(num_bytes: int | None) -> str:
    """Bytes as GiB with one decimal: 85520809984 → "79.6 GiB"."""
    return "–" if num_bytes is None else f"{num_bytes / _GIB:.1f} GiB"


def _number(value: float | None, unit: str) -> str | None:
    return None if value is None else f"{value:g} {unit}"


def _two_column_table(title: str) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("field", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    return table


def _add_rows(table: Table, rows: Iterable[tuple[str, str]]) -> None:
    """Values as plain Text: device names, regexes and notes may contain "[...]", which is not markup."""
    for field, value in rows:
        table.add_row(Text(field), Text(value))


def _group_identical_gpus(gpus: Iterable[GpuInfo]) -> list[tuple[list[int], GpuInfo]]:
    """GPUs that differ only in index and uuid, grouped in order of first appearance (uuids dropped)."""
    groups: dict[tuple, tuple[list[int], GpuInfo]] = {}
    for gpu in gpus:
        key = tuple(gpu.model_dump(exclude={"index", "uuid"}).values())
        groups.setdefault(key, ([], gpu))[0].append(gpu.index)
    return list(groups.values())


def _gpu_rows(indices: list[int], gpu: GpuInfo) -> list[tuple[str, str]]:
    label = f"GPU {indices[0]}" if len(indices) == 1 else f"GPUs {_index_ranges(indices)}"
    count = f"{len(indices)} × " if len(indices) > 1 else ""
    pcie = None
    if gpu.pcie_generation is not None or gpu.pcie_width is not None:
        pcie = f"Gen {gpu.pcie_generation or '?'} ×{gpu.pcie_width or '?'}"
    details = [
        ("memory", format_gib(gpu.memory_total_bytes) if gpu.memory_total_bytes is not None else None),
        ("driver", gpu.driver_version),
        ("CUDA driver" if gpu.vendor == "NVIDIA" else "runtime", gpu.cuda_version),
        ("compute capability", gpu.compute_capability),
        ("power limit", _number(gpu.power_limit_w, "W")),
        ("max SM clock", _number(gpu.sm_clock_max_mhz, "MHz")),
        ("max memory clock", _number(gpu.memory_clock_max_mhz, "MHz")),
        ("PCIe (max)", pcie),
        ("UUID", gpu.uuid if len(indices) == 1 else None),
    ]
    rows = [(label, f"{count}{gpu.name} ({gpu.vendor})")]
    rows += [(f"  {name}", value) for name, value in details if value is not None]
    return rows


def _index_ranges(indices: list[int]) -> str:
    """[0, 1, 2, 3, 5] → "0–3, 5"."""
    ranges: list[list[int]] = []
    for index in sorted(indices):
        if ranges and index == ranges[-1][1] + 1:
            ranges[-1][1] = index
        else:
            ranges.append([index, index])
    return ", ".join(str(low) if low == high else f"{low}–{high}" for low, high in ranges)
