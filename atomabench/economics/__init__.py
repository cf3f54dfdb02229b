"""Economics of a decentralized inference network: pricing, capacity, rewards, block-space forecast.

Every model is a pure function of pandas DataFrames and parameter objects; parameters come from TOML
files (``atomabench/data/economics``) whose comments name each value's source. Nothing here opens the
results database or runs a model: measured results arrive as ``Store.scenarios_frame()`` DataFrames.

Typical use::

    from atomabench import economics as eco
    params = eco.load_pricing_params().params
    prices = eco.price_table(profiles, eco.load_catalogue().params, params, results_frame)
"""

from atomabench.economics.answer import Answer
from atomabench.economics.capacity import (
    CapacityParams,
    Census,
    capacity_answer,
    census_capacity,
    fit_table,
    gpus_needed,
    load_capacity_params,
    load_census,
    memory_needed_bytes,
    network_capacity,
    roofline_at_slo,
    seed_checks,
    slo_throughput,
)
from atomabench.economics.catalogue import BYTES_PER_VALUE, Catalogue, ModelSpec, load_catalogue
from atomabench.economics.forecast import (
    ForecastParams,
    MonteCarloResult,
    forecast_answer,
    forecast_table,
    load_forecast_params,
    monte_carlo,
    plot_forecast,
    saturation_table,
    simulate,
)
from atomabench.economics.params import Loaded, load, parse_sweep, read_toml
from atomabench.economics.pricing import (
    PricingParams,
    estimate_throughput,
    hourly_cost,
    load_pricing_params,
    price_answer,
    price_table,
    token_prices,
)
from atomabench.economics.rewards import (
    RewardsParams,
    RewardsResult,
    census_epoch,
    load_nodes,
    load_rewards_params,
    monotone_shares,
    nodes_from_census,
    rewards_answer,
    split_rewards,
)

__all__ = [
    "BYTES_PER_VALUE",
    "Answer",
    "CapacityParams",
    "Catalogue",
    "Census",
    "ForecastParams",
    "Loaded",
    "ModelSpec",
    "MonteCarloResult",
    "PricingParams",
    "RewardsParams",
    "RewardsResult",
    "capacity_answer",
    "census_capacity",
    "census_epoch",
    "estimate_throughput",
    "fit_table",
    "forecast_answer",
    "forecast_table",
    "gpus_needed",
    "hourly_cost",
    "load",
    "load_capacity_params",
    "load_catalogue",
    "load_census",
    "load_forecast_params",
    "load_nodes",
    "load_pricing_params",
    "load_rewards_params",
    "memory_needed_bytes",
    "monotone_shares",
    "monte_carlo",
    "network_capacity",
    "nodes_from_census",
    "parse_sweep",
    "plot_forecast",
    "price_answer",
    "price_table",
    "read_toml",
    "rewards_answer",
    "roofline_at_slo",
    "saturation_table",
    "seed_checks",
    "simulate",
    "slo_throughput",
    "split_rewards",
    "token_prices",
]
