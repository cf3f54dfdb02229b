"""Economics on a real ``Store.scenarios_frame()``: one run written to SQLite, priced by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from economics_helpers import h100

from atomabench.economics.catalogue import load_catalogue
from atomabench.economics.pricing import load_pricing_params, price_table
from atomabench.records import (
    GpuInfo,
    HardwareInfo,
    LatencyStats,
    MemoryStats,
    RunInfo,
    ScenarioMetrics,
    ScenarioResult,
)

store_module = pytest.importorskip("atomabench.store")


def latency(p99: float) -> LatencyStats:
    return LatencyStats(
        count=100, mean=p99 / 2, percentiles={"p50": p99 / 2, "p90": p99, "p95": p99, "p99": p99}
    )


def test_price_of_a_stored_run(tmp_path: Path) -> None:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    hardware = HardwareInfo(
        hostname="node",
        os="Linux",
        python_version="3.11",
        cpu_model="cpu",
        cpu_cores=16,
        cpu_threads=32,
        ram_bytes=2**37,
        accelerator="cuda",
        gpus=(GpuInfo(index=0, vendor="NVIDIA", name="NVIDIA H100 80GB HBM3"),),
        profile_id="h100-sxm",
    )
    run = RunInfo(
        run_id="run-1",
        suite="serving",
        backend="vllm",
        model="meta-llama/Llama-3.1-8B-Instruct",
        started_at=started,
        atomabench_version="0.1.0",
        hardware=hardware,
    )
    metrics = ScenarioMetrics(
        duration_s=60.0,
        completed=100,
        failed=0,
        total_input_tokens=240_000,
        total_output_tokens=60_000,
        request_throughput=100 / 60,
        output_throughput=1000.0,
        total_token_throughput=5000.0,
        peak_output_throughput=1200.0,
        ttft_ms=latency(500.0),
        tpot_ms=latency(40.0),
        itl_ms=latency(40.0),
        e2el_ms=latency(3000.0),
    )
    scenario = ScenarioResult(
        name="c16",
        kind="serving",
        settings={},
        started_at=started,
        ended_at=started,
        metrics=metrics,
        memory=MemoryStats(),
    )
    with store_module.open_store(tmp_path / "results.db") as store:
        store.start_run(run)
        store.add_scenario("run-1", scenario)
        store.finish_run("run-1", "completed", started)
        frame = store.scenarios_frame()
    params = load_pricing_params().params
    table = price_table({"h100-sxm": h100()}, load_catalogue().params, params, frame)
    row = table[table["level"] == "run"].iloc[0]
    # 240,000 prompt tokens in 60 s = 4,000/s and 1,000 output/s at $3.49/h, ratio 0.25, 50% utilised:
    # $3.49 ÷ (2,000 × 0.5 × 3,600) × 1e6 = $0.9694 per 1M output tokens.
    assert row["model"] == "llama-3.1-8b" and row["basis"] == "measured goodput at SLO"
    assert row["usd_per_1m_output"] == pytest.approx(0.9694444, rel=1e-6)
