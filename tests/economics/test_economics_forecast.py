"""Block-space forecast: a hand-worked two-chain case, scenarios, the Monte Carlo, the plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atomabench.economics.forecast import (
    ForecastParams,
    forecast_answer,
    forecast_table,
    load_forecast_params,
    monte_carlo,
    plot_forecast,
    saturation_table,
    simulate,
)
from atomabench.economics.params import Loaded
from atomabench.errors import UserError


def toy(**overrides: object) -> ForecastParams:
    """Year 0: 8.64e9 tokens/day × 50% ÷ 86,400 s ÷ 100 tokens = 500 requests/s, doubling yearly."""
    data = {
        "start_year": 2030,
        "years": 3,
        "saturation_threshold": 1.0,
        "demand": {
            "start_tokens_per_day": 8.64e9,
            "growth_per_year": 2.0,
            "growth_decay": 0.0,
            "share_start": 0.5,
            "share_growth_per_year": 1.0,
            "share_cap": 1.0,
            "tokens_per_request": 100,
        },
        "settlement": {
            "batching": "stack",
            "requests_per_stack": 10,
            "epoch_seconds": 100,
            "node_requests_per_s": 1,
            "bytes_per_request": 32,
        },
        "chains": {
            # 80 tx/s, 1 MB/s; a tx holds floor((400 − 80) / 32) = 10 requests: the stack fits.
            "a": {
                "name": "A",
                "tx_per_s": 80,
                "bytes_per_s": 1e6,
                "tx_overhead_bytes": 80,
                "max_tx_bytes": 400,
            },
            # Gas-bound; a tx holds floor(200 / 32) = 6 requests, so a stack needs more transactions.
            "b": {
                "name": "B",
                "gas_per_s": 1e5,
                "gas_per_tx": 1000,
                "gas_per_request": 100,
                "max_tx_bytes": 200,
            },
        },
        "monte_carlo": {"draws": 100, "seed": 1, "percentiles": [5, 50, 95]},
    }
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if name:
            data[section][name] = value
        else:
            data[key] = value
    return ForecastParams.model_validate(data)


def test_hand_worked_chains() -> None:
    table = forecast_table(toy())
    a = table[table["chain"] == "A"]
    b = table[table["chain"] == "B"]
    assert list(a["requests_per_s"]) == pytest.approx([500, 1000, 2000])
    # Chain A: 10 requests per tx → 50, 100, 200 tx/s against 80 → 0.625, 1.25, 2.5.
    # Bytes: (80 + 10 × 32) = 400 B per tx → 20,000 B/s in year 0, 2% of 1 MB/s: tx/s binds.
    assert list(a["tx_per_s"]) == pytest.approx([50, 100, 200])
    assert list(a["bytes_per_s"]) == pytest.approx([20_000, 40_000, 80_000])
    assert list(a["utilisation"]) == pytest.approx([0.625, 1.25, 2.5])
    assert set(a["binding"]) == {"tx/s"}
    # Chain B: 6 requests per tx → 83.33 tx/s × (1,000 + 6 × 100) gas = 133,333 gas/s ÷ 1e5 = 1.333.
    assert list(b["requests_per_tx"]) == [6, 6, 6]
    assert b["gas_per_s"].iloc[0] == pytest.approx(500 / 6 * 1600)
    assert list(b["utilisation"]) == pytest.approx([4 / 3, 8 / 3, 16 / 3])
    saturation = saturation_table(table, 1.0).set_index("chain")
    assert saturation.loc["A", "saturation_year"] == 2031
    assert saturation.loc["B", "saturation_year"] == 2030 and saturation.loc["B", "binding"] == "gas/s"


def test_batching_modes_and_growth_decay() -> None:
    per_request = forecast_table(toy(**{"settlement.batching": "request"}))
    # One tx per request: 500 tx/s against 80 → 6.25.
    assert per_request[per_request["chain"] == "A"]["utilisation"].iloc[0] == pytest.approx(6.25)
    epoch = forecast_table(toy(**{"settlement.batching": "epoch"}))
    # 1 request/s per node × 100 s epoch = 100 requests wanted, capped at 10 by A's tx size.
    assert epoch[epoch["chain"] == "A"]["requests_per_tx"].iloc[0] == 10
    decayed = simulate(toy(**{"demand.growth_decay": 0.5}))
    # Yearly growth 2^(0.5^t): ×2 then ×√2 → 1, 2, 2.828 × 8.64e9 tokens/day.
    assert decayed.tokens_per_day[0] == pytest.approx([8.64e9, 1.728e10, 8.64e9 * 2 * 2**0.5])


def test_shares_ramp_to_their_cap() -> None:
    sim = simulate(
        toy(**{"demand.share_start": 0.1, "demand.share_growth_per_year": 3.0, "demand.share_cap": 0.5})
    )
    assert sim.share[0] == pytest.approx([0.1, 0.3, 0.5])


def test_scenarios_replace_base_values() -> None:
    params = load_forecast_params().params
    table = forecast_table(params)
    assert list(dict.fromkeys(table["scenario"])) == ["base", "seed-trend", "low", "high", "per-request"]
    seed = table[(table["scenario"] == "seed-trend") & (table["chain_id"] == "sui")]
    # Constant 3× growth from 5e13 tokens/day: year 4 has 5e13 × 81.
    assert seed["tokens_per_day"].iloc[4] == pytest.approx(5e13 * 81)
    # The 2026 Ethereum figure by hand: 5e13 tokens/day × 0.001 ÷ 86,400 s = 578,704 tokens/s ÷ 2,000
    # = 289.35 requests/s; 100 per stack → 2.894 tx/s × 3,200 B = 9,259 B/s ÷ 152,917 B/s = 0.0606.
    eth = table[(table["scenario"] == "base") & (table["chain_id"] == "ethereum")].iloc[0]
    assert eth["requests_per_s"] == pytest.approx(5e13 * 0.001 / 86400 / 2000)
    assert eth["utilisation"] == pytest.approx(5e13 * 0.001 / 86400 / 2000 / 100 * 3200 / (14 * 131072 / 12))


def test_bad_scenario_is_a_user_error(tmp_path: Path) -> None:
    user = tmp_path / "s.toml"
    user.write_text("[scenarios.odd]\ndemand = { growth_per_yaer = 3.0 }\n")
    with pytest.raises(UserError) as caught:
        load_forecast_params(user)
    assert caught.value.field == "scenarios.odd" and "growth_per_yaer" in caught.value.message


def test_monte_carlo_with_a_fixed_range_equals_the_deterministic_run() -> None:
    pinned = toy(
        **{
            "monte_carlo.uncertain": [
                {"name": "demand.growth_per_year", "dist": "uniform", "low": 2.0, "high": 2.0},
            ]
        }
    )
    result = monte_carlo(pinned)
    a = result.bands[result.bands["chain"] == "A"]
    assert list(a["p5"]) == pytest.approx([0.625, 1.25, 2.5])
    assert list(a["p95"]) == pytest.approx([0.625, 1.25, 2.5])
    assert list(a["p_saturated"]) == [0.0, 1.0, 1.0]
    saturation = result.saturation.set_index("chain")
    assert saturation.loc["A", "year_p50"] == 2031 and saturation.loc["A", "p_within_horizon"] == 1.0


def test_monte_carlo_is_reproducible_and_banded() -> None:
    params = load_forecast_params().params
    first = monte_carlo(params, draws=500, seed=7)
    second = monte_carlo(params, draws=500, seed=7)
    assert first.bands.equals(second.bands)
    assert len(first.bands) == 20 * 3 and first.draws == 500
    assert (first.bands["p5"] <= first.bands["p50"]).all() and (
        first.bands["p50"] <= first.bands["p95"]
    ).all()
    assert first.bands["p_saturated"].between(0, 1).all()
    # Saturation probability can only grow with the years.
    for _, chain in first.bands.groupby("chain"):
        assert np.all(np.diff(chain["p_saturated"].to_numpy()) >= 0)


def test_plot_is_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    answer = forecast_answer(Loaded(params=toy(), files=()), draws=50)
    path = plot_forecast(answer.tables["forecast"], answer.tables["monte_carlo_bands"], tmp_path / "f.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
