"""The typed records that cross rooms: suite → backend → records → metrics → store → report.

Every room talks to the next only through these models. They are frozen pydantic models so that a
stored or exported result round-trips through JSON unchanged (``Model.model_validate_json``).
Times inside a ``RequestRecord`` are seconds on one monotonic clock; only differences between them
carry meaning, and the runner rebases them so that 0.0 is the start of the measured window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 4
"""Bumped whenever a stored record changes shape; the store refuses a database it does not know."""


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------------------------------
# Hardware


class GpuInfo(Record):
    """One accelerator as the driver reports it (NVML for NVIDIA, torch for Apple MPS)."""

    index: int
    vendor: str
    name: str
    memory_total_bytes: int | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    compute_capability: str | None = None
    power_limit_w: float | None = None
    sm_clock_max_mhz: int | None = None
    memory_clock_max_mhz: int | None = None
    pcie_generation: int | None = None
    pcie_width: int | None = None
    uuid: str | None = None


class HardwareProfile(Record):
    """Published figures for one hardware class, read from ``hardware_profiles/*.toml``."""

    id: str
    name: str
    vendor: str
    kind: Literal["gpu", "apple", "cpu"]
    match: tuple[str, ...] = ()
    memory_gb: float | None = None
    memory_bandwidth_gbs: float | None = None
    peak_tflops: dict[str, float] = Field(default_factory=dict)
    tdp_w: float | None = None
    price_usd: float | None = None
    rent_usd_per_hour: tuple[float, float] | None = None
    measured: bool = False
    uncertain: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    notes: str = ""


class HardwareInfo(Record):
    """What the probe found on this machine, and which profile it matched."""

    hostname: str
    os: str
    python_version: str
    cpu_model: str
    cpu_cores: int
    cpu_threads: int
    ram_bytes: int
    accelerator: Literal["cuda", "rocm", "mps", "cpu"]
    gpus: tuple[GpuInfo, ...] = ()
    nvml_error: str | None = None
    torch_version: str | None = None
    torch_cuda_version: str | None = None
    transformers_version: str | None = None
    vllm_version: str | None = None
    profile_id: str | None = None

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    @property
    def device_name(self) -> str:
        """The name that identifies the hardware class: first GPU, else the CPU model."""
        return self.gpus[0].name if self.gpus else self.cpu_model


# --------------------------------------------------------------------------------------------------
# Requests


class SamplingSettings(Record):
    """How tokens are chosen. temperature 0 means greedy decoding."""

    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    seed: int = 0
    logprobs: int = Field(default=0, ge=0, le=20, description="top-k logprobs per token; 0 = off")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class RequestSpec(Record):
    """One request a scenario plans: exact prompt token ids and an output budget."""

    request_id: str
    scenario: str
    prompt_token_ids: tuple[int, ...]
    prompt_text: str | None = None
    max_tokens: int = Field(ge=1)
    ignore_eos: bool = True
    warmup: bool = False

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)


class ScheduledRequest(Record):
    """A request and when the load generator sends it: seconds after the load starts.

    Arrival processes (``atomabench.workloads.arrivals``) produce these; serving backends send each
    request no earlier than its ``arrival_s`` and record the actual send time in the record.
    """

    spec: RequestSpec
    arrival_s: float = Field(ge=0.0)


TokenCountSource = Literal["engine", "usage", "tokenizer"]
"""Where ``RequestRecord.output_tokens`` came from: the engine's own token ids, the server's ``usage``
block, or (labelled fallback) re-tokenizing the streamed text with the local tokenizer."""


class TokenLogprobs(Record):
    """Logprob of the chosen token and the top-k alternatives at one decoding step."""

    logprob: float
    top: tuple[tuple[int, float], ...] = ()


class RequestRecord(Record):
    """What happened to one request, with every token's arrival time (DESIGN: RequestRecord)."""

    request_id: str
    scenario: str
    prompt_tokens: int
    output_tokens: int
    send_time: float
    first_token_time: float | None
    token_times: tuple[float, ...] = ()
    end_time: float
    error: str | None = None
    output_token_ids: tuple[int, ...] = ()
    output_hash: str = ""
    logprobs: tuple[TokenLogprobs, ...] | None = None
    batch_size: int = 1
    batch_position: int = 0
    token_count_source: TokenCountSource = "engine"

    @property
    def ok(self) -> bool:
        return self.error is None

    def shifted(self, origin: float) -> RequestRecord:
        """The same record with every time expressed relative to ``origin``."""
        return self.model_copy(
            update={
                "send_time": self.send_time - origin,
                "first_token_time": None if self.first_token_time is None else self.first_token_time - origin,
                "token_times": tuple(t - origin for t in self.token_times),
                "end_time": self.end_time - origin,
            }
        )


def hash_token_ids(token_ids: Sequence[int]) -> str:
    """A stable sha256 of output token ids, for cheap comparison between runs and nodes."""
    return hashlib.sha256(",".join(map(str, token_ids)).encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Results


class LatencyStats(Record):
    """Summary of one latency distribution, in milliseconds."""

    count: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    percentiles: dict[str, float] = Field(default_factory=dict)


class MemoryStats(Record):
    peak_device_bytes: int | None = None
    peak_host_rss_bytes: int | None = None
    device_memory_source: str | None = None
    kv_cache_capacity_tokens: int | None = None


class EnergyStats(Record):
    joules: float
    average_watts: float
    joules_per_output_token: float | None = None
    source: str = "nvml-total-energy-counter"


class ScenarioMetrics(Record):
    """Aggregate metrics over the successful requests of one scenario (vLLM bench serve meanings)."""

    duration_s: float
    completed: int
    failed: int
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    peak_output_throughput: float
    ttft_ms: LatencyStats
    tpot_ms: LatencyStats
    itl_ms: LatencyStats
    e2el_ms: LatencyStats
    goodput: float | None = None
    """Requests/s that met every SLO of the scenario (failures count as misses); None without an SLO."""
    slo_attainment: float | None = None
    """Share of all requests (failures included) that met every SLO; None without an SLO."""
    peak_concurrency: float | None = None
    """Most requests in flight (sent, not yet finished) at any instant of the window."""
    mean_concurrency: float | None = None
    """Effective concurrency: summed request latency over the window length (Little's law)."""


class ScenarioResult(Record):
    """One finished scenario: its settings, metrics and the per-request records behind them."""

    name: str
    kind: str
    settings: dict
    started_at: datetime
    ended_at: datetime
    metrics: ScenarioMetrics
    memory: MemoryStats
    energy: EnergyStats | None = None
    valid: bool = True
    invalid_reason: str | None = None
    records: tuple[RequestRecord, ...] = ()
    determinism: tuple[DeterminismResult, ...] = ()
    determinism_summary: DeterminismSummary | None = None
    telemetry: dict | None = None
    """The telemetry summary of the window (``atomabench.hardware.telemetry.TelemetrySummary`` as JSON)."""
    roofline: dict | None = None
    """MBU (decode) and MFU (prefill) against the hardware profile, with reasons where not computable."""
    serving: dict | None = None
    """Server and sweep scenarios: arrival process, target vs achieved rate, SLO, warm-up/cool-down
    exclusions and, for a sweep, every point and the highest rate that still met the SLO."""


RunStatus = Literal["running", "completed", "interrupted", "failed"]


class RunInfo(Record):
    """One invocation of a suite on one backend and model."""

    run_id: str
    suite: str
    suite_path: str | None = None
    backend: str
    model: str
    backend_settings: dict = Field(default_factory=dict)
    started_at: datetime
    ended_at: datetime | None = None
    status: RunStatus = "running"
    atomabench_version: str
    hardware: HardwareInfo


class RunResult(Record):
    """A run with its finished scenarios, as the store hands it back."""

    run: RunInfo
    scenarios: tuple[ScenarioResult, ...] = ()


class DeterminismResult(Record):
    """Determinism under batching for one prompt in one setting (DESIGN: determinism protocol).

    ``check`` is R (same prompt at batch 1, repeated), B (a needle prompt inside batches of other
    sizes, at a position), P (prefix cache cold vs warm) or U (N identical concurrent requests).
    Every comparison is against the batch-1 reference of the same prompt.
    """

    check: Literal["R", "B", "P", "U"]
    prompt_id: str
    batch_size: int
    position: int = 0
    repeat: int = 0
    exact_match: bool
    first_divergence: int | None = None
    margin_at_divergence: float | None = None
    """Smaller of the two runs' top-1/top-2 logprob margins at the first differing token (nats)."""
    max_abs_logprob_delta: float | None = None
    """Largest |Δ logprob| of the chosen token over the positions both runs agree on."""
    top_overlap: float | None = None
    """Mean share of top-k token ids shared by both runs over the agreeing positions."""
    length_delta: int = 0
    unique_completions: int | None = None
    samples: int | None = None
    most_common_share: float | None = None
    skipped_reason: str | None = None


DeterminismTier = Literal["A", "B", "fail", "incomplete"]


class DeterminismSummary(Record):
    """The tier a node earns and why; thresholds are copied from the suite so the verdict is auditable."""

    tier: DeterminismTier
    reason: str
    near_tie_margin: float
    comparisons: int
    exact: int
    near_tie_flips: int
    wide_flips: int
    repeat_mismatches: int
    unique_completions_max: int | None = None
    skipped: tuple[str, ...] = ()
