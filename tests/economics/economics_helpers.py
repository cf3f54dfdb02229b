"""Hand-built profiles, models and result frames with round numbers, so every expected value in the
economics tests can be worked out on paper (the working is written next to each assertion)."""

from __future__ import annotations

import math

import pandas as pd

from atomabench.economics.catalogue import ModelSpec
from atomabench.records import HardwareProfile


def h100() -> HardwareProfile:
    return HardwareProfile(
        id="h100-sxm",
        name="NVIDIA H100 SXM",
        vendor="NVIDIA",
        kind="gpu",
        memory_gb=80,
        memory_bandwidth_gbs=3350,
        peak_tflops={"bf16": 989, "fp8": 1979},
        tdp_w=700,
        price_usd=30000,
        rent_usd_per_hour=(2.69, 4.29),
    )


def toy_gpu() -> HardwareProfile:
    """10 GB, 1 TB/s, 100 TFLOPS bf16, 100 W, $8,760 (= $1 per hour-year), rents for $1–3/h."""
    return HardwareProfile(
        id="toy-gpu",
        name="Toy GPU",
        vendor="Test",
        kind="gpu",
        memory_gb=10,
        memory_bandwidth_gbs=1000,
        peak_tflops={"bf16": 100},
        tdp_w=100,
        price_usd=8760,
        rent_usd_per_hour=(1.0, 3.0),
    )


def toy_mac() -> HardwareProfile:
    """No rental price: pricing must fall back to TCO."""
    return HardwareProfile(
        id="toy-mac",
        name="Toy Mac",
        vendor="Apple",
        kind="apple",
        memory_gb=64,
        memory_bandwidth_gbs=400,
        peak_tflops={"bf16": 10},
        tdp_w=50,
        price_usd=4380,
    )


def toy_model() -> ModelSpec:
    """1e9 parameters (2 GB at bf16); KV = 2 · 10 layers · 1 head · 100 dims · 2 B = 4,000 B/token."""
    return ModelSpec(id="toy-1b", name="Toy 1B", params=1e9, layers=10, kv_heads=1, head_dim=100)


def toy_moe() -> ModelSpec:
    """10e9 total, 3e9 active, 8 experts, 2 per token: 7e9/6 per expert, 2e9/3 shared."""
    return ModelSpec(
        id="toy-moe",
        name="Toy MoE",
        params=10e9,
        active_params=3e9,
        layers=10,
        kv_heads=1,
        head_dim=100,
        experts=8,
        experts_per_token=2,
    )


SCENARIO_COLUMNS = [
    "run_id",
    "suite",
    "backend",
    "model",
    "status",
    "started_at",
    "device_name",
    "profile_id",
    "gpu_count",
    "accelerator",
    "scenario",
    "kind",
    "valid",
    "duration_s",
    "completed",
    "failed",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "peak_output_throughput",
    *[
        f"{m}_{s}"
        for m in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")
        for s in ("mean", "std", "p50", "p90", "p95", "p99")
    ],
    "peak_device_bytes",
    "peak_host_rss_bytes",
    "energy_joules",
    "average_watts",
    "joules_per_output_token",
]


def scenario_row(**values: object) -> dict:
    """One ``scenarios_frame`` row: every column present (NaN unless given)."""
    row: dict = dict.fromkeys(SCENARIO_COLUMNS, math.nan)
    row.update(
        suite="serving",
        backend="vllm",
        status="completed",
        valid=True,
        accelerator="cuda",
        kind="serving",
        gpu_count=1,
        device_name="NVIDIA H100 80GB HBM3",
    )
    row.update(values)
    return row


def scenarios_frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=SCENARIO_COLUMNS)
