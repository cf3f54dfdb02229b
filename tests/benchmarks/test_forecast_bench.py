"""The issue's budget: a Monte Carlo of 10,000 draws × 20 years × 3 chains in under 5 s on 2 cores."""

from __future__ import annotations

import time

from atomabench.economics.forecast import load_forecast_params, monte_carlo

BUDGET_S = 5.0


def test_monte_carlo_10k_draws_20_years_3_chains(benchmark) -> None:
    params = load_forecast_params().params
    assert (params.years, len(params.chains), params.monte_carlo.draws) == (20, 3, 10_000)

    started = time.perf_counter()
    result = benchmark.pedantic(monte_carlo, args=(params,), rounds=3, iterations=1)
    mean_s = (time.perf_counter() - started) / 3  # measured here too, in case of --benchmark-disable

    assert result.draws == 10_000
    assert len(result.bands) == 20 * 3
    assert mean_s < BUDGET_S
    if benchmark.stats is not None:
        assert benchmark.stats.stats.max < BUDGET_S
