"""Goodput, SLO attainment and concurrency on hand-built records with answers worked out by hand."""

from __future__ import annotations

import pytest

from atomabench.measure.metrics import compute_metrics, concurrency, meets_slo, slo_holds
from atomabench.records import RequestRecord
from atomabench.workloads.suite import Slo


def request(
    send: float, first: float, end: float, tokens: int = 5, error: str | None = None
) -> RequestRecord:
    gap = (end - first) / (tokens - 1)
    return RequestRecord(
        request_id=f"r{send}",
        scenario="s",
        prompt_tokens=10,
        output_tokens=0 if error else tokens,
        send_time=send,
        first_token_time=None if error else first,
        token_times=() if error else tuple(first + i * gap for i in range(tokens)),
        end_time=end,
        error=error,
    )


# TTFT 0.25 s, 0.75 s, 0.25 s, failed;  TPOT (E2EL - TTFT) / 4: 0.125 s, 0.125 s, 0.5 s
RECORDS = [
    request(0.0, 0.25, 0.75),
    request(0.25, 1.0, 1.5),
    request(0.5, 0.75, 2.75),
    request(1.0, 1.0, 4.0, error="HTTP 500"),
]


def test_a_request_meets_the_slo_only_if_every_limit_holds():
    slo = Slo(ttft_ms=500, tpot_ms=200)
    assert [meets_slo(r, slo) for r in RECORDS] == [True, False, False, False]
    assert [meets_slo(r, Slo(e2el_ms=1300)) for r in RECORDS] == [True, True, False, False]


def test_goodput_counts_good_requests_per_second_and_failures_as_misses():
    metrics = compute_metrics(RECORDS, slo=Slo(ttft_ms=500, tpot_ms=200))
    assert metrics.duration_s == 4.0  # first send 0.0 → last end 4.0
    assert metrics.goodput == pytest.approx(1 / 4.0)
    assert metrics.slo_attainment == pytest.approx(1 / 4)  # of all 4 requests, the failure included
    no_slo = compute_metrics(RECORDS)
    assert no_slo.goodput is None and no_slo.slo_attainment is None


def test_concurrency_peak_and_littles_law_mean():
    peak, mean = concurrency(RECORDS)
    # in flight: [0,.75] [.25,1.5] [.5,2.75] [1,4] → at 1.0: requests 2, 3, 4 (request 1 ended at .75)
    assert peak == 3.0
    assert mean == pytest.approx((0.75 + 1.25 + 2.25 + 3.0) / 4.0)
    back_to_back = [request(0.0, 0.25, 1.0), request(1.0, 1.25, 2.0)]
    assert concurrency(back_to_back)[0] == 1.0  # an end and a send at one instant do not overlap


def test_a_scenario_holds_the_slo_at_its_percentile():
    good = compute_metrics(RECORDS[:1] * 3, slo=Slo(ttft_ms=300, tpot_ms=150))
    assert slo_holds(good, Slo(ttft_ms=300, tpot_ms=150)) == (True, "met")
    slow = compute_metrics(RECORDS[:3], percentiles=(50.0, 99.0))
    held, reason = slo_holds(slow, Slo(ttft_ms=500))
    assert not held and reason.startswith("p99 TTFT 740.0 ms > 500 ms")
    failing = compute_metrics(RECORDS)
    assert slo_holds(failing, Slo(ttft_ms=5000)) == (False, "1 of 4 requests failed")
    assert slo_holds(failing, Slo(ttft_ms=5000, max_failed_fraction=0.25))[0]
