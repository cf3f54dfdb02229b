"""One registry of every metric atomabench reports: name, unit, definition, formula and source.

The leaderboard's methodology page is rendered from this list and docs cite it, so a definition is
written once. ``source`` names the code that computes the value; ``reference`` the public definition
it follows (vLLM ``bench serve`` for latencies, so numbers compare across harnesses).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricDefinition:
    """How one reported number is defined and where it is computed."""

    key: str
    """The column or field name it is stored and exported under."""
    name: str
    unit: str
    group: str
    definition: str
    formula: str
    source: str
    reference: str = ""


_VLLM = "vLLM bench serve (vllm/benchmarks/serve.py, calculate_metrics)"
_METRICS = "atomabench/measure/metrics.py"

METRICS: tuple[MetricDefinition, ...] = (
    MetricDefinition(
        "ttft_ms",
        "TTFT (time to first token)",
        "ms",
        "latency",
        "Time from handing a request to the engine to the first non-empty streamed token.",
        "first_token_time − send_time, successful requests with at least one token",
        _METRICS,
        _VLLM,
    ),
    MetricDefinition(
        "tpot_ms",
        "TPOT (time per output token)",
        "ms",
        "latency",
        "Mean decode step time of one request after its first token; aggregated over requests.",
        "(E2EL − TTFT) / (output_tokens − 1), successful requests with ≥ 2 output tokens",
        _METRICS,
        _VLLM,
    ),
    MetricDefinition(
        "itl_ms",
        "ITL (inter-token latency)",
        "ms",
        "latency",
        "Every gap between consecutive streamed tokens (or chunks), pooled over all requests.",
        "token_times[i+1] − token_times[i] for every gap of every successful request",
        _METRICS,
        _VLLM,
    ),
    MetricDefinition(
        "e2el_ms",
        "E2EL (end-to-end latency)",
        "ms",
        "latency",
        "Time from handing a request to the engine to its last token.",
        "end_time − send_time, successful requests",
        _METRICS,
        _VLLM,
    ),
    MetricDefinition(
        "p50 / p90 / p95 / p99",
        "Percentiles of a latency distribution",
        "ms",
        "latency",
        "Percentiles with linear interpolation between the closest ranks (numpy's default); p99 is "
        "always computed because SLOs, the verdict and pricing are defined on it.",
        "sorted values x, rank r = p/100 · (n − 1), value = x[⌊r⌋] + (r − ⌊r⌋) · (x[⌈r⌉] − x[⌊r⌋])",
        _METRICS + " (summarize)",
        _VLLM,
    ),
    MetricDefinition(
        "duration_s",
        "Measured window",
        "s",
        "throughput",
        "Wall time of the measured requests, failures included, warm-up excluded.",
        "max(end_time) − min(send_time) over all records of the scenario",
        _METRICS + " (window_s)",
        _VLLM,
    ),
    MetricDefinition(
        "request_throughput",
        "Request throughput",
        "req/s",
        "throughput",
        "Successful requests per second of the measured window.",
        "completed / duration_s",
        _METRICS,
        _VLLM,
    ),
    MetricDefinition(
        "output_throughput",
        "Output throughput",
        "tok/s",
        "throughput",
        "Generated tokens of successful requests per second; the leaderboard's throughput is the "
        "highest of a run's valid serving or batch scenarios.",
        "total_output_tokens / duration_s",
        _METRICS,
        _VLLM,
    ),
    MetricDefinition(
        "total_token_throughput",
        "Total token throughput",
        "tok/s",
        "throughput",
        "Prompt plus generated tokens of successful requests per second.",
        "(total_input_tokens + total_output_tokens) / duration_s",
        _METRICS,
        _VLLM,
    ),
    MetricDefinition(
        "peak_output_throughput",
        "Peak output tokens/s",
        "tok/s",
        "throughput",
        "The most token arrivals in any one 1-second bucket of the window (the steady decode rate).",
        "max over buckets ⌊t − t0⌋ of the count of token times t of successful requests",
        _METRICS + " (peak_output_throughput)",
        _VLLM + ", max_output_tokens_per_s",
    ),
    MetricDefinition(
        "goodput",
        "Goodput at the SLO",
        "req/s",
        "serving",
        "Requests per second that met every SLO of the scenario (TTFT, TPOT, E2EL); failed requests "
        "count as misses. Empty for scenarios without an SLO.",
        "count(successful requests within every set limit; no TPOT with one token) / duration_s",
        _METRICS,
        "DistServe goodput; vLLM bench serve --goodput",
    ),
    MetricDefinition(
        "slo_attainment",
        "SLO attainment",
        "share",
        "serving",
        "Share of all requests, failures included, that met every SLO.",
        "count(requests meeting every SLO) / (completed + failed)",
        _METRICS,
    ),
    MetricDefinition(
        "peak_concurrency",
        "Peak concurrency",
        "requests",
        "serving",
        "Most requests in flight (sent, not yet finished) at any instant of the window.",
        "max over t of #{requests with send_time ≤ t < end_time}",
        _METRICS,
    ),
    MetricDefinition(
        "mean_concurrency",
        "Mean (effective) concurrency",
        "requests",
        "serving",
        "Average number of requests in flight over the window (Little's law).",
        "Σ (end_time − send_time) over all requests, failures included / duration_s",
        _METRICS,
    ),
    MetricDefinition(
        "peak_device_bytes",
        "Peak device memory",
        "bytes",
        "resources",
        "Most bytes held by tensors on the accelerator during the window (CUDA: torch allocator "
        "peak; MPS: driver allocation after the window). The source is stored with each value.",
        "torch.cuda.max_memory_allocated() after reset_peak_memory_stats() at the window start",
        "atomabench/measure/trackers.py (track_memory) + backend",
    ),
    MetricDefinition(
        "peak_host_rss_bytes",
        "Peak host RSS",
        "bytes",
        "resources",
        "Largest resident set size of the benchmark process, sampled every 50 ms in the window.",
        "max(psutil.Process().memory_info().rss) over the samples",
        "atomabench/measure/trackers.py (track_memory)",
    ),
    MetricDefinition(
        "energy_joules",
        "Energy",
        "J",
        "resources",
        "Energy used over the window: the delta of the NVML total-energy counter (GPUs) or of RAPL "
        "package energy (CPUs), never integrated sampled power.",
        "counter(end) − counter(start)",
        "atomabench/hardware/telemetry.py",
    ),
    MetricDefinition(
        "average_watts",
        "Average power",
        "W",
        "resources",
        "Mean power over the window.",
        "energy_joules / duration of the window",
        "atomabench/hardware/telemetry.py",
    ),
    MetricDefinition(
        "joules_per_output_token",
        "Energy per output token",
        "J/token",
        "resources",
        "Energy of the window divided by the tokens it generated.",
        "energy_joules / total_output_tokens",
        "atomabench/hardware/telemetry.py",
    ),
    MetricDefinition(
        "mbu",
        "MBU (decode)",
        "share",
        "roofline",
        "Model bandwidth utilisation: bytes a decode step must read over the time it took, against the "
        "hardware profile's peak memory bandwidth.",
        "(weight bytes + KV bytes per step) / TPOT / peak bandwidth",
        "atomabench/measure/roofline.py (decode_mbu)",
    ),
    MetricDefinition(
        "mfu",
        "MFU (prefill)",
        "share",
        "roofline",
        "Model FLOPs utilisation of the prefill against the profile's peak FLOPS at the compute dtype.",
        "2 · params · prompt_tokens / TTFT / peak FLOPS",
        "atomabench/measure/roofline.py (prefill_mfu)",
    ),
    MetricDefinition(
        "determinism_tier",
        "Determinism tier",
        "A / B / fail",
        "determinism",
        "A: outputs bit-identical at every batch size and position; B: they differ only where the "
        "top-1 and top-2 candidates were within the near-tie margin; fail: a repeat at batch 1 "
        "differed or a token flipped at a wide margin.",
        "from the comparisons against the batch-1 reference of each prompt",
        "atomabench/determinism/analyze.py (summarize)",
    ),
    MetricDefinition(
        "exact_match_share",
        "Exact-match share by batch size",
        "share",
        "determinism",
        "Share of the stored determinism comparisons at one batch size whose output token ids equal "
        "the batch-1 reference (skipped comparisons left out).",
        "count(exact_match) / count(comparisons) per batch size",
        "atomabench/determinism/analyze.py (compare); counted by atomabench/report",
    ),
    MetricDefinition(
        "usd_per_1m_blended",
        "$ per 1M tokens (blended)",
        "$",
        "economics",
        "Price at which a run's measured tokens pay for the GPU-hour, at the pricing parameters' "
        "utilisation; input and output tokens blended 3:1. The scenario priced is the fastest one "
        "meeting the pricing SLO (p99 TTFT and TPOT), else the fastest.",
        "output: $/h ÷ ((r · input tok/s + output tok/s) · utilisation · 3600) · 1e6; input: r × output; "
        "blended (3 · input + output) / 4",
        "atomabench/economics/pricing.py (price_table)",
        "Artificial Analysis 3:1 blend",
    ),
    MetricDefinition(
        "block_space_utilisation",
        "Block-space utilisation",
        "share",
        "economics",
        "Settlement demand of decentralized inference over a chain's capacity, per year: a projection "
        "from parameters alone, no measured result enters it.",
        "max(tx/s ÷ tx capacity, bytes/s ÷ byte capacity, gas/s ÷ gas capacity) ÷ available share",
        "atomabench/economics/forecast.py (forecast_table)",
    ),
)
"""Every metric, grouped in the order the methodology page shows them."""

BY_KEY: dict[str, MetricDefinition] = {metric.key: metric for metric in METRICS}


def get(key: str) -> MetricDefinition:
    """The definition stored under ``key`` (KeyError names the known keys)."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise KeyError(f"no metric {key!r}; known: {', '.join(BY_KEY)}") from None
