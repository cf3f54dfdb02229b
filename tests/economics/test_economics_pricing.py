"""Pricing: $/h from rent or TCO, the input/output split, measured runs, roofline estimates."""

from __future__ import annotations

import math

import pytest
from economics_helpers import h100, scenario_row, scenarios_frame, toy_gpu, toy_mac, toy_model

from atomabench.economics.catalogue import Catalogue
from atomabench.economics.pricing import (
    estimate_throughput,
    hourly_cost,
    load_pricing_params,
    price_answer,
    price_table,
    token_prices,
)


def params(**updates: object):
    return load_pricing_params().with_values({"estimate.models": ["toy-1b"], **updates}).params


def test_rental_price_low_mid_high() -> None:
    assert hourly_cost(h100(), 1, params())[0] == pytest.approx((2.69 + 4.29) / 2)  # 3.49
    assert hourly_cost(h100(), 8, params(rent_point="low"))[0] == pytest.approx(8 * 2.69)
    assert hourly_cost(h100(), 2, params(rent_point="high"))[:2] == (pytest.approx(8.58), "rent (high)")


def test_tco_from_capex_power_and_hosting() -> None:
    # $30,000 ÷ (4 y × 8,760 h) = 0.856164; 700 W × 1.3 × $0.10/kWh ÷ 1000 = 0.091; hosting 0.10.
    usd, basis, watts = hourly_cost(h100(), 1, params(hourly_price="tco"))
    assert usd == pytest.approx(30000 / 35040 + 0.091 + 0.10)
    assert basis == "tco, TDP" and watts == 700
    # Measured 500 W replaces the TDP: 500 × 1.3 × 0.1 ÷ 1000 = 0.065.
    usd, basis, _ = hourly_cost(h100(), 1, params(hourly_price="tco"), measured_watts=500)
    assert usd == pytest.approx(30000 / 35040 + 0.065 + 0.10) and basis == "tco, measured W"
    # No rental price: TCO even when rent is asked for. $4,380 ÷ 35,040 h = 0.125; 50 W × 1.3 × 0.1 ÷
    # 1000 = 0.0065; hosting 0.10.
    usd, basis, _ = hourly_cost(toy_mac(), 1, params())
    assert usd == pytest.approx(0.125 + 0.0065 + 0.10) and basis == "tco (no rental price), TDP"


def test_token_prices_split_the_hour_by_the_cost_ratio() -> None:
    # $3.49/h, 4,000 input + 1,000 output tokens/s, ratio 0.25, utilisation 0.5:
    # output-equivalent tokens/s = 0.25 × 4,000 + 1,000 = 2,000; per hour at 50%: 3.6e6.
    # Output $/1M = 3.49 / 3.6e6 × 1e6 = 0.969444; input = 0.25 × that = 0.242361;
    # blended (3:1) = (3 × 0.242361 + 0.969444) / 4 = 0.424132.
    input_price, output_price, blended = token_prices(3.49, 4000, 1000, params())
    assert output_price == pytest.approx(0.9694444, rel=1e-6)
    assert input_price == pytest.approx(0.2423611, rel=1e-6)
    assert blended == pytest.approx(0.4241319, rel=1e-6)
    # The prices pay for the hour exactly: (4,000 × 0.242361 + 1,000 × 0.969444) × 1,800 s / 1e6.
    assert (4000 * input_price + 1000 * output_price) * 1800 / 1e6 == pytest.approx(3.49)
    assert all(math.isnan(v) for v in token_prices(float("nan"), 1, 1, params()))


def test_measured_runs_use_goodput_at_the_slo() -> None:
    frame = scenarios_frame(
        # Meets the SLO (p99 TTFT 500 ≤ 2,000 ms, p99 TPOT 40 ≤ 50 ms): 240,000 prompt tokens in 60 s.
        scenario_row(
            run_id="r1",
            model="toy-1b",
            profile_id="h100-sxm",
            scenario="c16",
            duration_s=60.0,
            total_input_tokens=240_000,
            output_throughput=1000.0,
            ttft_ms_p99=500.0,
            tpot_ms_p99=40.0,
        ),
        # More throughput but misses the TPOT SLO: not used.
        scenario_row(
            run_id="r1",
            model="toy-1b",
            profile_id="h100-sxm",
            scenario="c128",
            duration_s=60.0,
            total_input_tokens=900_000,
            output_throughput=3000.0,
            ttft_ms_p99=900.0,
            tpot_ms_p99=120.0,
        ),
        # A failed run and an invalid scenario never count.
        scenario_row(
            run_id="r2",
            model="toy-1b",
            profile_id="h100-sxm",
            scenario="c1",
            status="failed",
            duration_s=1.0,
            total_input_tokens=1,
            output_throughput=1e9,
            ttft_ms_p99=1,
            tpot_ms_p99=1,
        ),
        scenario_row(
            run_id="r3",
            model="toy-1b",
            profile_id="h100-sxm",
            scenario="c1",
            valid=False,
            duration_s=1.0,
            total_input_tokens=1,
            output_throughput=1e9,
            ttft_ms_p99=1,
            tpot_ms_p99=1,
        ),
    )
    table = price_table({"h100-sxm": h100()}, Catalogue(models=(toy_model(),)), params(), frame)
    runs = table[table["level"] == "run"]
    assert list(runs["run_id"]) == ["r1"]
    run = runs.iloc[0]
    assert run["scenario"] == "c16" and run["basis"] == "measured goodput at SLO"
    # Same figures as the hand-worked split above: 4,000 in / 1,000 out tokens/s at $3.49/h.
    assert (run["input_tps"], run["output_tps"], run["usd_per_hour"]) == pytest.approx((4000, 1000, 3.49))
    assert run["usd_per_1m_output"] == pytest.approx(0.9694444, rel=1e-6)
    assert run["usd_per_1m_blended"] == pytest.approx(0.4241319, rel=1e-6)
    classes = table[(table["level"] == "class") & ~table["estimated"]]
    assert len(classes) == 1 and classes.iloc[0]["n_runs"] == 1
    # The measured class replaces the roofline estimate for (toy-1b, h100-sxm).
    assert table[table["estimated"] & (table["profile_id"] == "h100-sxm")].empty


def test_run_without_any_scenario_meeting_the_slo_is_flagged() -> None:
    frame = scenarios_frame(
        scenario_row(
            run_id="r1",
            model="toy-1b",
            profile_id="h100-sxm",
            scenario="c128",
            duration_s=10.0,
            total_input_tokens=0,
            output_throughput=2000.0,
            ttft_ms_p99=9000.0,
            tpot_ms_p99=120.0,
        ),
    )
    run = price_table({"h100-sxm": h100()}, Catalogue(models=(toy_model(),)), params(), frame).iloc[0]
    # 3.49 / (2,000 × 0.5 × 3,600) × 1e6 = 0.969444 per 1M output tokens (no input tokens).
    assert run["basis"] == "measured throughput (SLO not met)"
    assert run["usd_per_1m_output"] == pytest.approx(0.9694444, rel=1e-6)


def test_roofline_estimate_for_a_toy_model() -> None:
    estimate = params(
        **{
            "estimate.batch": 1,
            "estimate.prompt_tokens": 1000,
            "estimate.output_tokens": 100,
            "estimate.mbu": 0.5,
            "estimate.mfu": 0.5,
            "estimate.usable_memory_fraction": 0.9,
        }
    ).estimate
    output_tps, input_tps, batch = estimate_throughput(toy_model(), toy_gpu(), 1, estimate)
    # Prefill: 1 × 1,000 tokens × 2 × 1e9 FLOPs ÷ (100e12 × 0.5) = 0.04 s.
    # Decode: 100 steps × (2e9 + 4,000 B × 1,050 mean context) ÷ (1e12 × 0.5) = 0.40084 s.
    # 100 output tokens / 0.44084 s = 226.84 tokens/s; 1,000 input / 0.44084 = 2,268.4.
    assert batch == 1
    assert output_tps == pytest.approx(100 / 0.44084)
    assert input_tps == pytest.approx(1000 / 0.44084)


def test_without_runs_every_row_is_an_estimate(profiles, catalogue) -> None:
    loaded = load_pricing_params().with_values({"estimate.models": ["toy-1b"]})
    answer = price_answer(profiles, catalogue, loaded)
    table = answer.tables["prices"]
    assert answer.estimated and table["estimated"].all()
    assert set(table["profile_id"]) == {"h100-sxm", "toy-gpu", "toy-mac"}
    assert "no stored runs" in answer.notes[0]
    mac = table[table["profile_id"] == "toy-mac"].iloc[0]
    assert mac["hourly_basis"] == "tco (no rental price), TDP"
