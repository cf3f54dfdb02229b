"""Metrics as pure functions of ``RequestRecord``s, with vLLM ``bench serve``'s definitions.

- TTFT: send → first streamed token.               - E2EL: send → last token.
- TPOT: per request (E2EL − TTFT) / (output_tokens − 1), requests with ≥ 2 output tokens only.
- ITL: every gap between consecutive token arrivals, pooled over requests.
- Throughputs use successful requests over the whole window (first send → last end, failures included
  in the window, as vLLM's benchmark duration is wall time).
- Goodput (with an SLO): requests meeting every per-request SLO (TTFT, TPOT, E2EL) per second of the
  window; SLO attainment is their share of all requests, failures counted as misses (vLLM's
  ``--goodput``).
- Concurrency: peak = most requests in flight (sent, not yet ended) at any instant; mean (effective)
  = summed request latency / window length, Little's law L = λ·W.
- std is the population standard deviation and percentiles interpolate linearly (numpy defaults, as
  vLLM). Latencies are reported in milliseconds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from atomabench.records import LatencyStats, RequestRecord, ScenarioMetrics

if TYPE_CHECKING:
    from atomabench.workloads.suite import Slo

DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)


def percentile_key(p: float) -> str:
    """'p50', 'p99', 'p99.9': the key a percentile is stored and exported under."""
    return f"p{p:g}"


def summarize(values_ms: Iterable[float], percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> LatencyStats:
    array = np.asarray(list(values_ms), dtype=np.float64)
    if array.size == 0:
        return LatencyStats(count=0)
    return LatencyStats(
        count=int(array.size),
        mean=float(array.mean()),
        std=float(array.std()),
        min=float(array.min()),
        max=float(array.max()),
        percentiles={percentile_key(p): float(np.percentile(array, p)) for p in percentiles},
    )


def ttft_ms(record: RequestRecord) -> float | None:
    if not record.ok or record.first_token_time is None:
        return None
    return (record.first_token_time - record.send_time) * 1000.0


def e2el_ms(record: RequestRecord) -> float | None:
    return (record.end_time - record.send_time) * 1000.0 if record.ok else None


def tpot_ms(record: RequestRecord) -> float | None:
    ttft, e2el = ttft_ms(record), e2el_ms(record)
    if ttft is None or e2el is None or record.output_tokens < 2:
        return None
    return (e2el - ttft) / (record.output_tokens - 1)


def itls_ms(record: RequestRecord) -> list[float]:
    if not record.ok:
        return []
    times = record.token_times
    return [(later - earlier) * 1000.0 for earlier, later in itertools.pairwise(times)]


def window_s(records: Sequence[RequestRecord]) -> float:
    """First send to last end over all records: the wall time the scenario kept the engine busy."""
    if not records:
        return 0.0
    return max(r.end_time for r in records) - min(r.send_time for r in records)


def peak_output_throughput(records: Sequence[RequestRecord]) -> float:
    """Most tokens that arrived within any one 1-second bucket counted from the first successful send.

    Buckets start at the first *successful* send, as vLLM's ``max_output_tokens_per_s`` does, so a
    failed batch sent earlier does not shift the bucket edges.
    """
    ok = [r for r in records if r.ok]
    if not ok:
        return 0.0
    origin = min(r.send_time for r in ok)
    buckets: dict[int, int] = {}
    for record in ok:
        for t in record.token_times:
            bucket = math.floor(t - origin)
            buckets[bucket] = buckets.get(bucket, 0) + 1
    return float(max(buckets.values(), default=0))


def meets_slo(record: RequestRecord, slo: Slo) -> bool:
    """Whether one request met every limit of ``slo`` (a failed request never does).

    A request with one output token has no TPOT; it meets a TPOT limit vacuously, as in vLLM.
    """
    if not record.ok:
        return False
    tpot = tpot_ms(record)
    checks = (
        (slo.ttft_ms, ttft_ms(record)),
        (slo.tpot_ms, 0.0 if tpot is None else tpot),  # one output token: no TPOT to miss
        (slo.e2el_ms, e2el_ms(record)),
    )
    return all(limit is None or (value is not None and value <= limit) for limit, value in checks)


def concurrency(records: Sequence[RequestRecord]) -> tuple[float, float]:
    """(peak, mean) requests in flight over the window; an end and a send at the same instant do
    not overlap."""
    if not records:
        return 0.0, 0.0
    events = sorted([(r.send_time, 1) for r in records] + [(r.end_time, -1) for r in records])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    duration = window_s(records)
    busy = sum(r.end_time - r.send_time for r in records)
    return float(peak), (busy / duration if duration > 0 else float(peak))


def slo_holds(metrics: ScenarioMetrics, slo: Slo) -> tuple[bool, str]:
    """Whether a scenario as a whole met ``slo`` at its percentile, with the reason when not."""
    key = percentile_key(slo.percentile)
    total = metrics.completed + metrics.failed
    if total == 0 or metrics.completed == 0:
        return False, "no request completed"
    if metrics.failed / total > slo.max_failed_fraction:
        return False, f"{metrics.failed} of {total} requests failed"
    for name, limit, stats in (
        ("TTFT", slo.ttft_ms, metrics.ttft_ms),
        ("TPOT", slo.tpot_ms, metrics.tpot_ms),
    ):
        if limit is None:
            continue
        value = stats.percentiles.get(key)
        if value is None:
            if name == "TPOT" and stats.count == 0:
                continue
            return False, f"{key} {name} was not computed"
        if value > limit:
            return False, f"{key} {name} {value:,.1f} ms > {limit:g} ms"
    return True, "met"


def compute_metrics(
    records: Sequence[RequestRecord],
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    slo: Slo | None = None,
) -> ScenarioMetrics:
    ok = [r for r in records if r.ok]
    duration = window_s(records)
    input_tokens = sum(r.prompt_tokens for r in ok)
    output_tokens = sum(r.output_tokens for r in ok)

    def rate(amount: float) -> float:
        return amount / duration if duration > 0 else 0.0

    peak, mean = concurrency(records) if records else (None, None)
    good = None if slo is None else sum(meets_slo(r, slo) for r in records)

    return ScenarioMetrics(
        duration_s=duration,
        completed=len(ok),
        failed=len(records) - len(ok),
        total_input_tokens=input_tokens,
        total_output_tokens=output_tokens,
        request_throughput=rate(len(ok)),
        output_throughput=rate(output_tokens),
        total_token_throughput=rate(input_tokens + output_tokens),
        peak_output_throughput=peak_output_throughput(records),
        ttft_ms=summarize(_present(ttft_ms(r) for r in ok), percentiles),
        tpot_ms=summarize(_present(tpot_ms(r) for r in ok), percentiles),
        itl_ms=summarize((gap for r in ok for gap in itls_ms(r)), percentiles),
        e2el_ms=summarize(_present(e2el_ms(r) for r in ok), percentiles),
        goodput=None if good is None else rate(good),
        slo_attainment=None if good is None or not records else good / len(records),
        peak_concurrency=peak,
        mean_concurrency=mean,
    )


def _present(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None]
