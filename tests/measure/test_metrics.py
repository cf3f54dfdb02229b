"""Metrics on hand-built records whose every number is worked out by hand in the comments.

Times are multiples of 1/8 s so every difference is exact in binary floating point; the expected
values are still compared with ``pytest.approx`` so a harmless rounding change would not fail them.
Conventions checked against vLLM's ``vllm/benchmarks/serve.py::calculate_metrics``: TPOT only for
outputs of ≥ 2 tokens, ITL pooled over requests, ``np.std`` (population) and ``np.percentile``
(linear interpolation), peak output tokens/s in 1 s buckets from the first successful send.
"""

from __future__ import annotations

import math

import pytest

from atomabench.measure.metrics import (
    DEFAULT_PERCENTILES,
    compute_metrics,
    e2el_ms,
    itls_ms,
    peak_output_throughput,
    percentile_key,
    summarize,
    tpot_ms,
    ttft_ms,
    window_s,
)
from atomabench.records import LatencyStats, RequestRecord, ScenarioMetrics


def make_record(
    request_id: str,
    send: float,
    token_times: tuple[float, ...] = (),
    *,
    prompt_tokens: int = 10,
    end: float | None = None,
    error: str | None = None,
) -> RequestRecord:
    """A record whose output token count is the number of token arrival times."""
    return RequestRecord(
        request_id=request_id,
        scenario="hand",
        prompt_tokens=prompt_tokens,
        output_tokens=len(token_times),
        send_time=send,
        first_token_time=token_times[0] if token_times else None,
        token_times=token_times,
        end_time=end if end is not None else (token_times[-1] if token_times else send),
        error=error,
    )


# R1: sent at 0.0, 4 tokens at 0.25 0.5 0.75 1.0 → TTFT 250, E2EL 1000, TPOT 750/3 = 250, ITL 250 ×3
R1 = make_record("r1", 0.0, (0.25, 0.5, 0.75, 1.0), prompt_tokens=10)
# R2: sent at 0.5, 5 tokens at 1.0 1.25 1.5 1.75 2.5 → TTFT 500, E2EL 2000, TPOT 1500/4 = 375,
#     ITL 250 250 250 750
R2 = make_record("r2", 0.5, (1.0, 1.25, 1.5, 1.75, 2.5), prompt_tokens=20)
# R3: sent at 1.0, 1 token at 3.0 → TTFT 2000, E2EL 2000, no TPOT (one token), no ITL
R3 = make_record("r3", 1.0, (3.0,), prompt_tokens=30)
# F: failed, sent at 2.0, gave up at 4.0 → stretches the window to 4.0 s but counts nowhere else
FAILED = make_record("f", 2.0, (), prompt_tokens=40, end=4.0, error="out of memory")
RECORDS = [R1, R2, R3, FAILED]


# ------------------------------------------------------------------------------------- per request


@pytest.mark.parametrize(
    ("record", "ttft", "e2el", "tpot", "itls"),
    [
        (R1, 250.0, 1000.0, 250.0, [250.0, 250.0, 250.0]),
        (R2, 500.0, 2000.0, 375.0, [250.0, 250.0, 250.0, 750.0]),
        (R3, 2000.0, 2000.0, None, []),
        (FAILED, None, None, None, []),
    ],
    ids=["r1", "r2", "r3-one-token", "failed"],
)
def test_per_request_latencies(
    record: RequestRecord, ttft: float | None, e2el: float | None, tpot: float | None, itls: list[float]
) -> None:
    assert ttft_ms(record) == (None if ttft is None else pytest.approx(ttft))
    assert e2el_ms(record) == (None if e2el is None else pytest.approx(e2el))
    assert tpot_ms(record) == (None if tpot is None else pytest.approx(tpot))
    assert itls_ms(record) == pytest.approx(itls)


def test_failed_request_with_token_times_still_gives_no_latencies() -> None:
    # A request that streamed two tokens and then errored is a failure: no TTFT, TPOT, ITL or E2EL.
    broken = make_record("b", 0.0, (0.25, 0.5), error="connection reset")
    assert (ttft_ms(broken), tpot_ms(broken), e2el_ms(broken), itls_ms(broken)) == (None, None, None, [])


def test_successful_request_without_tokens_has_e2el_but_no_ttft() -> None:
    # ok but empty: 0.0 → 0.5; E2EL 500 ms, nothing streamed so no TTFT (vLLM would record 0.0 here)
    empty = make_record("e", 0.0, (), end=0.5)
    assert ttft_ms(empty) is None
    assert e2el_ms(empty) == pytest.approx(500.0)
    metrics = compute_metrics([empty])
    assert (metrics.completed, metrics.ttft_ms.count, metrics.e2el_ms.count) == (1, 0, 1)


# --------------------------------------------------------------------------------------- aggregates


@pytest.fixture(scope="module")
def metrics() -> ScenarioMetrics:
    return compute_metrics(RECORDS, percentiles=(50.0, 90.0, 99.0))


def test_counts_and_window(metrics: ScenarioMetrics) -> None:
    # window: first send 0.0 (R1) → last end 4.0 (the failed request) = 4.0 s
    assert window_s(RECORDS) == pytest.approx(4.0)
    assert metrics.duration_s == pytest.approx(4.0)
    assert (metrics.completed, metrics.failed) == (3, 1)
    assert metrics.total_input_tokens == 60  # 10 + 20 + 30; the failed request's 40 is not counted
    assert metrics.total_output_tokens == 10  # 4 + 5 + 1


def test_throughputs_use_the_whole_window(metrics: ScenarioMetrics) -> None:
    assert metrics.request_throughput == pytest.approx(0.75)  # 3 requests / 4 s
    assert metrics.output_throughput == pytest.approx(2.5)  # 10 tokens / 4 s
    assert metrics.total_token_throughput == pytest.approx(17.5)  # (60 + 10) / 4 s


def test_peak_output_throughput_in_one_second_buckets(metrics: ScenarioMetrics) -> None:
    # bucket = floor(t − 0.0): [0,1) R1 .25 .5 .75 → 3; [1,2) R1 1.0, R2 1.0 1.25 1.5 1.75 → 5;
    # [2,3) R2 2.5 → 1; [3,4) R3 3.0 → 1. A token at exactly 1.0 s falls in bucket 1 (vLLM: int()).
    assert metrics.peak_output_throughput == pytest.approx(5.0)
    assert peak_output_throughput(RECORDS) == pytest.approx(5.0)


def test_ttft_stats(metrics: ScenarioMetrics) -> None:
    # values 250, 500, 2000; mean 2750/3; population variance: (×3, minus 2750) −2000, −1250, 3250
    # → (4e6 + 1.5625e6 + 10.5625e6)/9/3 = 16.125e6/27.
    # Linear percentiles on n=3 sorted values: rank = p/100 · 2.
    # p50 → rank 1 → 500; p90 → rank 1.8 → 500 + 0.8·1500 = 1700; p99 → rank 1.98 → 500 + 0.98·1500 = 1970
    stats = metrics.ttft_ms
    assert stats.count == 3
    assert stats.mean == pytest.approx(2750 / 3)
    assert stats.std == pytest.approx(math.sqrt(16.125e6 / 27))  # ≈ 772.80
    assert (stats.min, stats.max) == (pytest.approx(250.0), pytest.approx(2000.0))
    assert stats.percentiles == pytest.approx({"p50": 500.0, "p90": 1700.0, "p99": 1970.0})


def test_tpot_excludes_one_token_outputs(metrics: ScenarioMetrics) -> None:
    # R3 (1 token) has no TPOT; values 250, 375: mean 312.5, population std 62.5.
    # n=2: rank = p/100. p50 → 312.5; p90 → 250 + 0.9·125 = 362.5; p99 → 250 + 0.99·125 = 373.75
    stats = metrics.tpot_ms
    assert stats.count == 2
    assert stats.mean == pytest.approx(312.5)
    assert stats.std == pytest.approx(62.5)
    assert stats.percentiles == pytest.approx({"p50": 312.5, "p90": 362.5, "p99": 373.75})


def test_itl_pools_every_gap(metrics: ScenarioMetrics) -> None:
    # R1 gives 250 ×3, R2 250 ×3 and 750: [250 ×6, 750]; mean 2250/7.
    # variance: six gaps at −500/7, one at +3000/7 → (6·250000 + 9e6)/49/7 = 1.5e6/49 → std √1.5e6 / 7
    # n=7: rank = p/100 · 6. p50 → rank 3 → 250; p90 → rank 5.4 → 250 + 0.4·500 = 450;
    # p99 → rank 5.94 → 250 + 0.94·500 = 720
    stats = metrics.itl_ms
    assert stats.count == 7
    assert stats.mean == pytest.approx(2250 / 7)
    assert stats.std == pytest.approx(math.sqrt(1.5e6) / 7)  # ≈ 174.96
    assert (stats.min, stats.max) == (pytest.approx(250.0), pytest.approx(750.0))
    assert stats.percentiles == pytest.approx({"p50": 250.0, "p90": 450.0, "p99": 720.0})


def test_e2el_stats(metrics: ScenarioMetrics) -> None:
    # values 1000, 2000, 2000 (failed request excluded): mean 5000/3;
    # variance: (×3, minus 5000) −2000, 1000, 1000 → 6e6/9/3 = 6e6/27.
    # p50 → rank 1 → 2000; p90 → rank 1.8 → 2000; p99 → 2000
    stats = metrics.e2el_ms
    assert stats.count == 3
    assert stats.mean == pytest.approx(5000 / 3)
    assert stats.std == pytest.approx(math.sqrt(6e6 / 27))  # ≈ 471.40
    assert stats.percentiles == pytest.approx({"p50": 2000.0, "p90": 2000.0, "p99": 2000.0})


def test_custom_percentiles_and_their_keys() -> None:
    # TTFT 250, 500, 2000 again: p10 → rank 0.2 → 250 + 0.2·250 = 300; p99.9 → rank 1.998 → 1997
    metrics = compute_metrics(RECORDS, percentiles=(10.0, 99.9))
    assert metrics.ttft_ms.percentiles == pytest.approx({"p10": 300.0, "p99.9": 1997.0})
    assert [percentile_key(p) for p in (50.0, 99.9, 12.5, 99.99)] == ["p50", "p99.9", "p12.5", "p99.99"]


def test_default_percentiles() -> None:
    assert DEFAULT_PERCENTILES == (50.0, 90.0, 95.0, 99.0)
    # TTFT p95 → rank 1.9 → 500 + 0.9·1500 = 1850
    stats = compute_metrics(RECORDS).ttft_ms
    assert stats.percentiles == pytest.approx({"p50": 500.0, "p90": 1700.0, "p95": 1850.0, "p99": 1970.0})


def test_summarize_uses_population_std_and_linear_percentiles() -> None:
    # [1, 3]: mean 2, population std 1 (the sample std would be √2); p25 → rank 0.25 → 1.5
    stats = summarize([1.0, 3.0], percentiles=(25.0,))
    assert stats == LatencyStats(count=2, mean=2.0, std=1.0, min=1.0, max=3.0, percentiles={"p25": 1.5})


def test_summarize_nothing() -> None:
    assert summarize([]) == LatencyStats(count=0)


# ------------------------------------------------------------------------------------- edge cases


def test_no_records_at_all() -> None:
    metrics = compute_metrics([])
    empty = LatencyStats(count=0)
    assert metrics == ScenarioMetrics(
        duration_s=0.0,
        completed=0,
        failed=0,
        total_input_tokens=0,
        total_output_tokens=0,
        request_throughput=0.0,
        output_throughput=0.0,
        total_token_throughput=0.0,
        peak_output_throughput=0.0,
        ttft_ms=empty,
        tpot_ms=empty,
        itl_ms=empty,
        e2el_ms=empty,
    )
    assert window_s([]) == 0.0


def test_only_failures() -> None:
    # the window still spans the failure (2.0 → 4.0) but nothing completed, so every rate is 0
    metrics = compute_metrics([FAILED])
    assert (metrics.duration_s, metrics.completed, metrics.failed) == (pytest.approx(2.0), 0, 1)
    assert (metrics.total_input_tokens, metrics.total_output_tokens) == (0, 0)
    assert metrics.request_throughput == metrics.output_throughput == metrics.peak_output_throughput == 0.0
    assert metrics.ttft_ms == metrics.e2el_ms == LatencyStats(count=0)


def test_peak_buckets_start_at_the_first_successful_send() -> None:
    # ok request sent at 0.5, tokens at 0.75 1.25 1.375 → offsets 0.25 0.75 0.875: all in bucket 0 → 3.
    # A failed request sent earlier (0.0) must not move the bucket edges (vLLM uses successful
    # requests only); counted from 0.0 the tokens would split 1 + 2 and the peak would read 2.
    ok = make_record("ok", 0.5, (0.75, 1.25, 1.375))
    early_failure = make_record("f", 0.0, (), end=0.25, error="boom")
    assert peak_output_throughput([early_failure, ok]) == pytest.approx(3.0)
    assert peak_output_throughput([early_failure]) == 0.0
    assert peak_output_throughput([]) == 0.0


def test_offline_batch_rows_share_step_times() -> None:
    # An offline batch of 2 from the transformers backend: one send time, one timestamp per decoding
    # step shared by every row. Row b stops after 2 of the 3 steps.
    # a: TTFT 500, E2EL 1000, TPOT 500/2 = 250, ITL 250 250; b: TTFT 500, E2EL 750, TPOT 250, ITL 250.
    a = make_record("a", 0.0, (0.5, 0.75, 1.0))
    b = make_record("b", 0.0, (0.5, 0.75))
    metrics = compute_metrics([a, b])
    assert metrics.ttft_ms.mean == pytest.approx(500.0)
    assert metrics.ttft_ms.std == pytest.approx(0.0)
    assert metrics.tpot_ms.mean == pytest.approx(250.0)
    assert metrics.itl_ms.count == 3
    assert metrics.e2el_ms.mean == pytest.approx(875.0)
    # window 0 → 1.0 s: 2 req/s, 5 tok/s; bucket [0,1) holds 0.5 0.75 0.5 0.75 → 4, [1,2) holds 1.0
    assert (metrics.request_throughput, metrics.output_throughput) == (pytest.approx(2.0), pytest.approx(5.0))
    assert metrics.peak_output_throughput == pytest.approx(4.0)


# ----------------------------------------------------------------------------------------- shifting


def test_shifted_moves_every_time() -> None:
    record = make_record("s", 8.0, (8.25, 8.5, 9.0), end=9.125)
    moved = record.shifted(8.0)
    assert moved.send_time == 0.0
    assert moved.first_token_time == 0.25
    assert moved.token_times == (0.25, 0.5, 1.0)
    assert moved.end_time == 1.125
    assert moved.model_dump(exclude={"send_time", "first_token_time", "token_times", "end_time"}) == (
        record.model_dump(exclude={"send_time", "first_token_time", "token_times", "end_time"})
    )
    assert record.send_time == 8.0  # the original is untouched (records are frozen)


def test_shifted_keeps_a_missing_first_token() -> None:
    moved = make_record("f", 5.0, (), end=6.5, error="boom").shifted(4.0)
    assert (moved.send_time, moved.first_token_time, moved.end_time) == (1.0, None, 2.5)
    assert moved.token_times == ()


def test_metrics_do_not_depend_on_the_clock_origin() -> None:
    # every time in RECORDS moved by +8 s, then shifted back: identical metrics
    later = [
        r.model_copy(
            update={
                "send_time": r.send_time + 8.0,
                "first_token_time": None if r.first_token_time is None else r.first_token_time + 8.0,
                "token_times": tuple(t + 8.0 for t in r.token_times),
                "end_time": r.end_time + 8.0,
            }
        )
        for r in RECORDS
    ]
    assert compute_metrics(later) == compute_metrics(RECORDS)
    assert compute_metrics([r.shifted(8.0) for r in later]) == compute_metrics(RECORDS)
