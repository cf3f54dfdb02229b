"""Hand-built records with round numbers, for store tests and for any room that needs a stored run.

Every value is chosen so a test can state the expected result by hand: times are multiples of 1/8 s
(exact in binary floating point), throughputs follow from token counts over a 0.5 s window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from atomabench.records import (
    EnergyStats,
    GpuInfo,
    HardwareInfo,
    LatencyStats,
    MemoryStats,
    RequestRecord,
    RunInfo,
    ScenarioMetrics,
    ScenarioResult,
    TokenLogprobs,
    hash_token_ids,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
"""Start of the first run; later runs in the tests start a whole hour after each other."""


def make_hardware(
    gpu_name: str = "NVIDIA GeForce RTX 4090", profile_id: str | None = "rtx-4090", gpu_count: int = 1
) -> HardwareInfo:
    gpus = tuple(
        GpuInfo(
            index=index,
            vendor="nvidia",
            name=gpu_name,
            memory_total_bytes=25_757_220_864,
            driver_version="550.54.14",
            cuda_version="12.4",
            compute_capability="8.9",
            power_limit_w=450.0,
            pcie_generation=4,
            pcie_width=16,
            uuid=f"GPU-{index:04d}",
        )
        for index in range(gpu_count)
    )
    return HardwareInfo(
        hostname="node-7",
        os="Linux-6.8",
        python_version="3.11.9",
        cpu_model="AMD Ryzen 9 7950X",
        cpu_cores=16,
        cpu_threads=32,
        ram_bytes=68_719_476_736,
        accelerator="cuda" if gpus else "cpu",
        gpus=gpus,
        torch_version="2.5.1",
        torch_cuda_version="12.4",
        transformers_version="4.57.0",
        profile_id=profile_id,
    )


def make_run(
    run_id: str = "run-0001",
    *,
    hours_after_t0: int = 0,
    suite: str = "smoke",
    backend: str = "transformers",
    model: str = "smollm2-135m",
    hardware: HardwareInfo | None = None,
) -> RunInfo:
    return RunInfo(
        run_id=run_id,
        suite=suite,
        suite_path=f"suites/{suite}.toml",
        backend=backend,
        model=model,
        backend_settings={"dtype": "bfloat16", "device": "cuda:0", "threads": None, "batch_sizes": [1, 4]},
        started_at=T0 + timedelta(hours=hours_after_t0),
        status="running",
        atomabench_version="0.1.0",
        hardware=hardware or make_hardware(),
    )


def make_request(
    index: int,
    *,
    scenario: str = "chat",
    output_token_ids: tuple[int, ...] = (11, 12, 13),
    with_logprobs: bool = False,
    error: str | None = None,
) -> RequestRecord:
    """Request ``index`` is sent at index/8 s; its tokens arrive 1/8 s apart after a 1/8 s TTFT."""
    send = index / 8
    token_times = () if error else tuple(send + (step + 1) / 8 for step in range(len(output_token_ids)))
    logprobs = None
    if with_logprobs and not error:
        logprobs = tuple(
            TokenLogprobs(logprob=-0.125 * (step + 1), top=((token, -0.125 * (step + 1)), (token + 1, -2.5)))
            for step, token in enumerate(output_token_ids)
        )
    ids = () if error else output_token_ids
    return RequestRecord(
        request_id=f"{scenario}-{index}",
        scenario=scenario,
        prompt_tokens=32,
        output_tokens=len(ids),
        send_time=send,
        first_token_time=token_times[0] if token_times else None,
        token_times=token_times,
        end_time=token_times[-1] if token_times else send + 0.25,
        error=error,
        output_token_ids=ids,
        output_hash=hash_token_ids(ids),
        logprobs=logprobs,
        batch_size=2,
        batch_position=index % 2,
    )


def make_latency(count: int, base_ms: float, *, p95: bool = True) -> LatencyStats:
    """A distribution whose statistics are base, base/8 (std), base/2 .. 2·base (min .. max)."""
    percentiles = {"p50": base_ms, "p90": base_ms * 1.5, "p99": base_ms * 1.75}
    if p95:
        percentiles["p95"] = base_ms * 1.625
    return LatencyStats(
        count=count, mean=base_ms, std=base_ms / 8, min=base_ms / 2, max=base_ms * 2, percentiles=percentiles
    )


def make_metrics(*, completed: int = 2, failed: int = 0, output_throughput: float = 12.0) -> ScenarioMetrics:
    """Two requests of 32 prompt + 3 output tokens over 0.5 s unless told otherwise."""
    return ScenarioMetrics(
        duration_s=0.5,
        completed=completed,
        failed=failed,
        total_input_tokens=32 * completed,
        total_output_tokens=3 * completed,
        request_throughput=completed / 0.5,
        output_throughput=output_throughput,
        total_token_throughput=35 * completed / 0.5,
        peak_output_throughput=16.0,
        ttft_ms=make_latency(completed, 125.0),
        tpot_ms=make_latency(completed, 125.0, p95=False),
        itl_ms=make_latency(2 * completed, 125.0),
        e2el_ms=LatencyStats(count=completed, mean=375.0),
    )


def make_scenario(
    name: str = "chat",
    *,
    records: tuple[RequestRecord, ...] | None = None,
    output_throughput: float = 12.0,
    valid: bool = True,
    with_energy: bool = True,
    minutes_after_t0: int = 1,
) -> ScenarioResult:
    if records is None:
        records = (make_request(0, scenario=name, with_logprobs=True), make_request(1, scenario=name))
    started = T0 + timedelta(minutes=minutes_after_t0)
    return ScenarioResult(
        name=name,
        kind="batch",
        settings={"batch_size": 2, "max_tokens": 3, "prompt": {"dataset": "sharegpt", "tokens": 32}},
        started_at=started,
        ended_at=started + timedelta(seconds=30),
        metrics=make_metrics(
            completed=sum(record.ok for record in records),
            failed=sum(not record.ok for record in records),
            output_throughput=output_throughput,
        ),
        memory=MemoryStats(
            peak_device_bytes=1_500_000_000 if with_energy else None,
            peak_host_rss_bytes=2_000_000_000,
            device_memory_source="torch.cuda.max_memory_allocated" if with_energy else None,
        ),
        energy=EnergyStats(joules=150.0, average_watts=300.0, joules_per_output_token=25.0)
        if with_energy
        else None,
        valid=valid,
        invalid_reason=None if valid else "thermal throttling during the window",
        records=records,
    )
