"""Block-space forecast: how fast settling decentralized inference would fill each chain.

Per year t (0 = ``start_year``):

- tokens/day = start · Π growth, with yearly growth G_t = G₀^((1 − decay)^t) (decay 0 = constant);
- share served by decentralized networks = min(cap, share_start · share_growth^t);
- requests/s = tokens/day · share ÷ 86400 ÷ tokens per request;
- requests per settlement tx from the batching mode (one per request, per stack, or per node per
  epoch), capped by what fits in one transaction on each chain;
- tx/s = requests/s ÷ requests per tx; bytes/s = tx/s · (overhead + bytes per request · requests per
  tx); gas/s = tx/s · (gas per tx + gas per request · requests per tx);
- utilisation = the largest of tx/s, bytes/s and gas/s over the chain's capacity (× the share of
  that capacity available); the chain saturates the first year utilisation reaches the threshold.

The same vectorised function serves the deterministic scenarios (one draw) and the Monte Carlo
(draws × years × chains in one numpy pass), which is what makes 10,000 draws take milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, model_validator

from atomabench.economics.answer import Answer
from atomabench.economics.params import Loaded, Params, dotted_loc, load, set_dotted
from atomabench.errors import UserError

SECONDS_PER_DAY = 86_400.0


class DemandParams(Params):
    start_tokens_per_day: float = Field(gt=0)
    growth_per_year: float = Field(gt=0)
    growth_decay: float = Field(ge=0, le=1)
    share_start: float = Field(ge=0, le=1)
    share_growth_per_year: float = Field(gt=0)
    share_cap: float = Field(ge=0, le=1)
    tokens_per_request: float = Field(gt=0)


class SettlementParams(Params):
    batching: Literal["request", "stack", "epoch"]
    requests_per_stack: float = Field(ge=1)
    epoch_seconds: float = Field(gt=0)
    node_requests_per_s: float = Field(gt=0)
    bytes_per_request: float = Field(ge=0)


class ChainParams(Params):
    """One settlement chain: capacity limits (absent = not binding) and what a settlement tx uses."""

    name: str
    tx_per_s: float | None = Field(default=None, gt=0)
    bytes_per_s: float | None = Field(default=None, gt=0)
    gas_per_s: float | None = Field(default=None, gt=0)
    gas_per_tx: float = Field(default=0.0, ge=0)
    gas_per_request: float = Field(default=0.0, ge=0)
    tx_overhead_bytes: float = Field(default=0.0, ge=0)
    max_tx_bytes: float | None = Field(default=None, gt=0)
    available_share: float = Field(default=1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _some_limit(self) -> ChainParams:
        if self.tx_per_s is None and self.bytes_per_s is None and self.gas_per_s is None:
            raise ValueError("a chain needs at least one of tx_per_s, bytes_per_s, gas_per_s")
        if self.gas_per_s is not None and self.gas_per_tx + self.gas_per_request <= 0:
            raise ValueError("gas_per_s is set but a settlement uses no gas (gas_per_tx, gas_per_request)")
        return self


class Uncertain(Params):
    """A parameter drawn in the Monte Carlo: ``name`` is a dotted name such as ``demand.growth_per_year``."""

    name: str
    dist: Literal["uniform", "loguniform", "triangular"]
    low: float
    high: float
    mode: float | None = None
    source: str = ""

    @model_validator(mode="after")
    def _range(self) -> Uncertain:
        if not self.low <= self.high:
            raise ValueError("low must not exceed high")
        if self.dist == "loguniform" and self.low <= 0:
            raise ValueError("a loguniform range must be positive")
        if self.dist == "triangular" and (self.mode is None or not self.low <= self.mode <= self.high):
            raise ValueError("a triangular distribution needs low ≤ mode ≤ high")
        return self


class MonteCarloParams(Params):
    draws: int = Field(ge=1)
    seed: int
    percentiles: tuple[float, ...]
    uncertain: tuple[Uncertain, ...] = ()


class Scenario(Params):
    """A named demand scenario: values that replace the base ones (``demand`` and ``settlement``)."""

    description: str = ""
    demand: dict[str, float] = Field(default_factory=dict)
    settlement: dict[str, Any] = Field(default_factory=dict)


class ForecastParams(Params):
    start_year: int
    years: int = Field(ge=1, le=200)
    saturation_threshold: float = Field(gt=0)
    demand: DemandParams
    settlement: SettlementParams
    chains: dict[str, ChainParams]
    scenarios: dict[str, Scenario] = Field(default_factory=dict)
    monte_carlo: MonteCarloParams

    @model_validator(mode="after")
    def _check(self) -> ForecastParams:
        if not self.chains:
            raise ValueError("at least one chain is needed")
        numeric = set(_numeric_names(self))
        for index, item in enumerate(self.monte_carlo.uncertain):
            if item.name not in numeric:
                raise ValueError(
                    f"monte_carlo.uncertain.{index}.name: {item.name!r} is not a numeric forecast parameter"
                )
        for name in self.scenarios:
            try:
                scenario_params(self, name)
            except UserError as exc:
                raise ValueError(f"scenarios.{name}: {exc.message}") from None
        return self


def load_forecast_params(path: str | Path | None = None) -> Loaded[ForecastParams]:
    return load(ForecastParams, "forecast.toml", path)


def _numeric_names(params: ForecastParams) -> list[str]:
    names = [f"demand.{k}" for k in DemandParams.model_fields]
    names += [
        f"settlement.{k}" for k, v in params.settlement.model_dump().items() if isinstance(v, float | int)
    ]
    for chain_id in params.chains:
        names += [f"chains.{chain_id}.{k}" for k in ChainParams.model_fields if k != "name"]
    return names


def scenario_params(params: ForecastParams, name: str) -> ForecastParams:
    """The base parameters with scenario ``name``'s values in place (no scenarios inside)."""
    scenario = params.scenarios[name]
    data = params.model_dump(mode="python")
    data["scenarios"] = {}
    for section, values in (("demand", scenario.demand), ("settlement", scenario.settlement)):
        for key, value in values.items():
            data = set_dotted(data, f"{section}.{key}", value)
    try:
        return ForecastParams.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise UserError(f"{dotted_loc(error['loc'])}: {error['msg']}", field=f"scenarios.{name}") from None


# --------------------------------------------------------------------------------------------------
# The vectorised core


@dataclass(frozen=True)
class Simulation:
    """Arrays over (draws, years) for demand and (draws, years, chains) for the chains."""

    years: np.ndarray
    chains: tuple[str, ...]
    tokens_per_day: np.ndarray
    share: np.ndarray
    requests_per_s: np.ndarray
    requests_per_tx: np.ndarray
    tx_per_s: np.ndarray
    bytes_per_s: np.ndarray
    gas_per_s: np.ndarray
    utilisation: np.ndarray
    binding: np.ndarray


def _column(values: dict[str, np.ndarray], name: str, default: float, draws: int) -> np.ndarray:
    """A parameter as an array of shape (draws,): its drawn values, or the point value repeated."""
    if name in values:
        return np.asarray(values[name], dtype=float).reshape(-1)
    return np.full(draws, default, dtype=float)


def simulate(params: ForecastParams, draws: dict[str, np.ndarray] | None = None) -> Simulation:
    """Run the forecast for every draw at once; parameters not in ``draws`` take their point value."""
    draws = draws or {}
    count = max((np.size(v) for v in draws.values()), default=1)
    demand, settlement = params.demand, params.settlement

    def col(name: str, default: float | None) -> np.ndarray:
        return _column(draws, name, math.inf if default is None else default, count)

    t = np.arange(params.years, dtype=float)[None, :]
    start = col("demand.start_tokens_per_day", demand.start_tokens_per_day)[:, None]
    growth = col("demand.growth_per_year", demand.growth_per_year)[:, None]
    keep = 1.0 - col("demand.growth_decay", demand.growth_decay)[:, None]
    # log tokens_t = log start + log G₀ · Σ_{s<t} (1 − decay)^s
    powers = keep**t
    log_tokens = np.log(start) + np.log(growth) * (np.cumsum(powers, axis=1) - powers)
    tokens_per_day = np.exp(log_tokens)
    share = np.minimum(
        col("demand.share_cap", demand.share_cap)[:, None],
        col("demand.share_start", demand.share_start)[:, None]
        * col("demand.share_growth_per_year", demand.share_growth_per_year)[:, None] ** t,
    )
    requests_per_s = (
        tokens_per_day
        * share
        / SECONDS_PER_DAY
        / col("demand.tokens_per_request", demand.tokens_per_request)[:, None]
    )

    bytes_per_request = col("settlement.bytes_per_request", settlement.bytes_per_request)
    if settlement.batching == "request":
        wanted = np.ones(count)
    elif settlement.batching == "stack":
        wanted = col("settlement.requests_per_stack", settlement.requests_per_stack)
    else:
        wanted = col("settlement.node_requests_per_s", settlement.node_requests_per_s) * col(
            "settlement.epoch_seconds", settlement.epoch_seconds
        )

    chain_ids = tuple(params.chains)

    def chain_col(field: str) -> np.ndarray:
        """Shape (draws, 1, chains)."""
        columns = [col(f"chains.{cid}.{field}", getattr(params.chains[cid], field)) for cid in chain_ids]
        return np.stack(columns, axis=-1)[:, None, :]

    overhead = chain_col("tx_overhead_bytes")
    max_tx = chain_col("max_tx_bytes")
    per_request = bytes_per_request[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        fit = np.where(per_request > 0, np.floor((max_tx - overhead) / per_request), np.inf)
    requests_per_tx = np.maximum(1.0, np.minimum(wanted[:, None, None], fit))
    tx_per_s = requests_per_s[:, :, None] / requests_per_tx
    bytes_per_s = tx_per_s * (overhead + per_request * requests_per_tx)
    gas_per_s = tx_per_s * (chain_col("gas_per_tx") + chain_col("gas_per_request") * requests_per_tx)
    available = chain_col("available_share")
    ratios = np.stack(
        [
            tx_per_s / (chain_col("tx_per_s") * available),
            bytes_per_s / (chain_col("bytes_per_s") * available),
            gas_per_s / (chain_col("gas_per_s") * available),
        ]
    )
    binding = np.argmax(ratios, axis=0)
    utilisation = np.max(ratios, axis=0)
    return Simulation(
        years=params.start_year + np.arange(params.years),
        chains=chain_ids,
        tokens_per_day=tokens_per_day,
        share=share,
        requests_per_s=requests_per_s,
        requests_per_tx=np.broadcast_to(requests_per_tx, tx_per_s.shape),
        tx_per_s=tx_per_s,
        bytes_per_s=bytes_per_s,
        gas_per_s=gas_per_s,
        utilisation=utilisation,
        binding=binding,
    )


LIMITS = ("tx/s", "bytes/s", "gas/s")


def saturation_index(utilisation: np.ndarray, threshold: float) -> np.ndarray:
    """Index of the first year at or above ``threshold`` along axis 1; -1 where it never happens."""
    reached = utilisation >= threshold
    first = np.argmax(reached, axis=1)
    return np.where(reached.any(axis=1), first, -1)


# --------------------------------------------------------------------------------------------------
# Tables


def forecast_table(params: ForecastParams, scenarios: list[str] | None = None) -> pd.DataFrame:
    """Deterministic forecast, one row per scenario, year and chain (``base`` = the base values)."""
    names = ["base", *params.scenarios] if scenarios is None else scenarios
    frames = []
    for name in names:
        scenario = (
            params if name == "base" and "base" not in params.scenarios else scenario_params(params, name)
        )
        sim = simulate(scenario)
        years, chains = len(sim.years), len(sim.chains)
        frames.append(
            pd.DataFrame(
                {
                    "scenario": name,
                    "year": np.repeat(sim.years, chains),
                    "chain": np.tile([params.chains[c].name for c in sim.chains], years),
                    "chain_id": np.tile(sim.chains, years),
                    "tokens_per_day": np.repeat(sim.tokens_per_day[0], chains),
                    "decentralized_share": np.repeat(sim.share[0], chains),
                    "requests_per_s": np.repeat(sim.requests_per_s[0], chains),
                    "requests_per_tx": sim.requests_per_tx[0].reshape(-1),
                    "tx_per_s": sim.tx_per_s[0].reshape(-1),
                    "bytes_per_s": sim.bytes_per_s[0].reshape(-1),
                    "gas_per_s": sim.gas_per_s[0].reshape(-1),
                    "utilisation": sim.utilisation[0].reshape(-1),
                    "binding": np.asarray(LIMITS)[sim.binding[0].reshape(-1)],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def saturation_table(table: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """First year each chain reaches ``threshold`` utilisation per scenario (NaN: not within the horizon)."""
    rows = []
    for (scenario, chain), group in table.groupby(["scenario", "chain"], sort=False):
        reached = group[group["utilisation"] >= threshold]
        first = reached.iloc[0] if not reached.empty else None
        rows.append(
            {
                "scenario": scenario,
                "chain": chain,
                "saturation_year": int(first["year"]) if first is not None else pd.NA,
                "binding": first["binding"] if first is not None else None,
                "utilisation_first_year": float(group["utilisation"].iloc[0]),
                "utilisation_last_year": float(group["utilisation"].iloc[-1]),
            }
        )
    table = pd.DataFrame(rows)
    table["saturation_year"] = table["saturation_year"].astype("Int64")
    return table


def draw_uncertain(
    params: ForecastParams, draws: int | None = None, seed: int | None = None
) -> dict[str, np.ndarray]:
    """One array of draws per uncertain parameter (numpy's PCG64 seeded from ``monte_carlo.seed``)."""
    mc = params.monte_carlo
    count = draws if draws is not None else mc.draws
    rng = np.random.default_rng(mc.seed if seed is None else seed)
    values: dict[str, np.ndarray] = {}
    for item in mc.uncertain:
        if item.dist == "uniform":
            values[item.name] = rng.uniform(item.low, item.high, count)
        elif item.dist == "loguniform":
            values[item.name] = np.exp(rng.uniform(math.log(item.low), math.log(item.high), count))
        elif item.low == item.high:
            values[item.name] = np.full(count, item.low)
        else:
            values[item.name] = rng.triangular(item.low, item.mode, item.high, count)
    return values


@dataclass(frozen=True)
class MonteCarloResult:
    """Percentile bands of utilisation per year and chain, and the spread of saturation years."""

    bands: pd.DataFrame
    saturation: pd.DataFrame
    draws: int


def monte_carlo(
    params: ForecastParams, draws: int | None = None, seed: int | None = None
) -> MonteCarloResult:
    """Draw every uncertain parameter, run all draws at once, and summarise them."""
    values = draw_uncertain(params, draws, seed)
    count = draws if draws is not None else params.monte_carlo.draws
    if not values:
        values = {"demand.start_tokens_per_day": np.full(count, params.demand.start_tokens_per_day)}
    sim = simulate(params, values)
    percentiles = np.asarray(params.monte_carlo.percentiles, dtype=float)
    quantiles = np.percentile(sim.utilisation, percentiles, axis=0)  # (percentiles, years, chains)
    reached = np.maximum.accumulate(sim.utilisation >= params.saturation_threshold, axis=1)
    p_saturated = reached.mean(axis=0)  # (years, chains)
    years, chains = len(sim.years), len(sim.chains)
    bands = pd.DataFrame(
        {
            "year": np.repeat(sim.years, chains),
            "chain": np.tile([params.chains[c].name for c in sim.chains], years),
            **{_pname(p): quantiles[i].reshape(-1) for i, p in enumerate(percentiles)},
            "p_saturated": p_saturated.reshape(-1),
        }
    )
    first = saturation_index(sim.utilisation, params.saturation_threshold).astype(float)  # (draws, chains)
    first_year = np.where(first >= 0, params.start_year + first, np.inf)
    with np.errstate(invalid="ignore"):  # inf − inf between two draws beyond the horizon
        year_quantiles = np.percentile(first_year, percentiles, axis=0)
    saturation = pd.DataFrame(
        {
            "chain": [params.chains[c].name for c in sim.chains],
            **{
                f"year_{_pname(p)}": [None if not np.isfinite(v) else float(v) for v in year_quantiles[i]]
                for i, p in enumerate(percentiles)
            },
            "p_within_horizon": (first >= 0).mean(axis=0),
        }
    )
    return MonteCarloResult(bands=bands, saturation=saturation, draws=int(sim.utilisation.shape[0]))


def _pname(percentile: float) -> str:
    return f"p{percentile:g}"


def plot_forecast(
    table: pd.DataFrame, bands: pd.DataFrame | None, path: str | Path, threshold: float = 1.0
) -> Path:
    """Utilisation per year (log scale): one panel per chain, a line per scenario, the Monte Carlo band."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise UserError("plotting needs matplotlib: pip install matplotlib", field="--plot") from None
    chains = list(dict.fromkeys(table["chain"]))
    figure, axes = plt.subplots(1, len(chains), figsize=(5 * len(chains), 4), sharey=True, squeeze=False)
    for axis, chain in zip(axes[0], chains, strict=True):
        if bands is not None and not bands.empty:
            band = bands[bands["chain"] == chain]
            low, high = _outer_band(band)
            if low and high:
                axis.fill_between(
                    band["year"], band[low], band[high], alpha=0.2, label=f"Monte Carlo {low}–{high}"
                )
            if "p50" in band:
                axis.plot(
                    band["year"], band["p50"], linestyle="--", color="black", label="Monte Carlo median"
                )
        for scenario, group in table[table["chain"] == chain].groupby("scenario", sort=False):
            axis.plot(group["year"], group["utilisation"], label=str(scenario))
        axis.axhline(threshold, color="black", linestyle=":", linewidth=1.5, label="saturation")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_yscale("log")
        axis.set_title(chain)
        axis.set_xlabel("year")
        axis.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("share of block space used")
    axes[0][-1].legend(fontsize="small")
    figure.tight_layout()
    path = Path(path)
    try:
        figure.savefig(path, dpi=120, format="png")  # always PNG, whatever the suffix says
    except OSError as exc:
        raise UserError(f"cannot write the plot: {exc.strerror}", path=path, field="--plot") from None
    finally:
        plt.close(figure)
    return path


def _outer_band(band: pd.DataFrame) -> tuple[str | None, str | None]:
    names = sorted(
        (c for c in band.columns if c.startswith("p") and c[1:].replace(".", "").isdigit()),
        key=lambda c: float(c[1:]),
    )
    return (names[0], names[-1]) if len(names) >= 2 else (None, None)


def forecast_answer(
    params: Loaded[ForecastParams], draws: int | None = None, seed: int | None = None
) -> Answer:
    """Deterministic scenarios plus the Monte Carlo (``draws`` = 0 skips it), with assumptions."""
    p = params.params
    table = forecast_table(p)
    saturation = saturation_table(table, p.saturation_threshold)
    base = table[table["scenario"] == "base"]
    utilisation = base.pivot_table(
        index="year", columns="chain", values="utilisation", sort=False
    ).reset_index()
    tables = {"saturation": saturation, "utilisation_base": utilisation, "forecast": table}
    display = {
        "saturation": ["scenario", "chain", "saturation_year", "binding", "utilisation_first_year"],
        "utilisation_base": list(utilisation.columns),
    }
    notes = [
        "a projection from parameters alone: no measured result enters this model",
        f"utilisation = settlement demand ÷ capacity; saturated at ≥ {p.saturation_threshold:g}",
    ]
    count = p.monte_carlo.draws if draws is None else draws
    if count > 0:
        mc = monte_carlo(p, count, seed)
        tables["monte_carlo_saturation"] = mc.saturation
        tables["monte_carlo_bands"] = mc.bands
        display["monte_carlo_saturation"] = list(mc.saturation.columns)
        names = ", ".join(u.name for u in p.monte_carlo.uncertain)
        notes.append(
            f"Monte Carlo: {mc.draws} draws of {names}; "
            "saturation-year percentiles blank = beyond the horizon"
        )
    return Answer(
        command="forecast",
        tables=tables,
        assumptions=params.assumptions(),
        estimated=True,
        notes=tuple(notes),
        display=display,
    )
