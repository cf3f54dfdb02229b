"""The ``price``, ``capacity``, ``rewards`` and ``forecast`` commands.

Thin by design: parse options, load parameter files, fetch profiles and stored results at the edge,
call one library function, render its :class:`~atomabench.economics.answer.Answer` as rich tables
plus an assumptions block, or as one JSON document with ``--json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from atomabench.economics.answer import Answer, swept
from atomabench.economics.params import Loaded
from atomabench.records import HardwareProfile

if TYPE_CHECKING:
    from atomabench.economics.rewards import RewardsParams

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
ParamsOption = Annotated[
    Path | None, typer.Option("--params", help="TOML file whose values replace the bundled defaults.")
]
SweepOption = Annotated[
    str | None,
    typer.Option("--sweep", help="Run once per value: NAME=v1,v2,... (NAME is a dotted parameter)."),
]
DbOption = Annotated[
    str | None, typer.Option("--db", help="Results database (path or SQLAlchemy URL) with measured runs.")
]
CensusOption = Annotated[
    Path | None, typer.Option("--census", help="Census TOML of node classes and counts.")
]
ModelsOption = Annotated[
    Path | None, typer.Option("--models", help="Model catalogue TOML merged over the bundled one.")
]


def register(app: typer.Typer) -> None:
    """Add the economics commands to ``app``."""
    app.command("price")(price)
    app.command("capacity")(capacity)
    app.command("rewards")(rewards)
    app.command("forecast")(forecast)


# --------------------------------------------------------------------------------------------------
# Inputs fetched at the edge (tests replace these two)


def load_hardware_profiles() -> dict[str, HardwareProfile]:
    from atomabench.hardware.profiles import load_profiles

    return load_profiles()


def load_results(db: str | None) -> tuple[pd.DataFrame | None, str]:
    """Stored scenarios, or None with the reason (no store module, no database, no runs).

    A database file that does not exist yet is not created: the command answers from estimates.
    """
    import os

    from atomabench.paths import DB_ENV, default_database_url

    url = db if db is not None else (os.environ.get(DB_ENV) or default_database_url())
    if "://" not in url and not Path(url).expanduser().exists():
        return None, f"no results database at {url}: using estimates"
    try:
        from atomabench.store import open_store
    except ImportError:
        return None, "the results store is not available in this installation: using estimates"
    with open_store(url) as store:
        frame = store.scenarios_frame()
    if frame is None or frame.empty:
        return None, f"no stored runs in {url}: using estimates"
    return frame, f"measured results from {url} ({len(frame)} scenarios)"


# --------------------------------------------------------------------------------------------------
# Commands


def price(
    json_output: JsonOption = False,
    params: ParamsOption = None,
    sweep: SweepOption = None,
    db: DbOption = None,
    models: ModelsOption = None,
) -> None:
    """$ per 1M input, output and blended tokens, per run and per hardware class."""
    from atomabench.economics.catalogue import load_catalogue
    from atomabench.economics.pricing import load_pricing_params, price_answer

    loaded = load_pricing_params(params)
    catalogue = load_catalogue(models).params
    profiles = load_hardware_profiles()
    results, results_note = load_results(db)
    answer = swept(loaded, sweep, lambda p: price_answer(profiles, catalogue, p, results))
    _emit(_with_note(answer, results_note), json_output)


def capacity(
    json_output: JsonOption = False,
    params: ParamsOption = None,
    sweep: SweepOption = None,
    db: DbOption = None,
    census: CensusOption = None,
    models: ModelsOption = None,
) -> None:
    """Which models fit on each hardware class, tokens/s at the latency SLO, and network capacity."""
    from atomabench.economics.capacity import capacity_answer, load_capacity_params, load_census
    from atomabench.economics.catalogue import load_catalogue

    loaded = load_capacity_params(params)
    catalogue = load_catalogue(models).params
    census_loaded = load_census(census)
    profiles = load_hardware_profiles()
    results, results_note = load_results(db)
    answer = swept(loaded, sweep, lambda p: capacity_answer(profiles, catalogue, p, census_loaded, results))
    _emit(_with_note(answer, results_note), json_output)


def rewards(
    json_output: JsonOption = False,
    params: ParamsOption = None,
    sweep: SweepOption = None,
    nodes: Annotated[Path | None, typer.Option("--nodes", help="Nodes file (TOML [[nodes]] or CSV).")] = None,
    db: DbOption = None,
    census: CensusOption = None,
    models: ModelsOption = None,
) -> None:
    """Each epoch's emissions and fees split among nodes by verified goodput."""
    from atomabench.economics.capacity import load_capacity_params, load_census
    from atomabench.economics.catalogue import load_catalogue
    from atomabench.economics.rewards import census_epoch, load_nodes, load_rewards_params, rewards_answer

    loaded = load_rewards_params(params)
    if nodes is not None:
        table = load_nodes(nodes)
        answer = swept(loaded, sweep, lambda p: rewards_answer(table, p, str(nodes)))
        _emit(answer, json_output)
        return
    catalogue = load_catalogue(models).params
    capacity_params = load_capacity_params().params
    census_loaded = load_census(census)
    profiles = load_hardware_profiles()
    results, results_note = load_results(db)
    source = f"one epoch synthesised from the census ({census_loaded.files[-1].path.name})"

    def make(p: Loaded[RewardsParams]) -> Answer:
        epoch = census_epoch(profiles, catalogue, capacity_params, census_loaded.params, p.params, results)
        return rewards_answer(epoch, p, source)

    _emit(_with_note(swept(loaded, sweep, make), results_note), json_output)


def forecast(
    json_output: JsonOption = False,
    params: ParamsOption = None,
    sweep: SweepOption = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG of utilisation per year.")] = None,
    draws: Annotated[int | None, typer.Option("--draws", min=0, help="Monte Carlo draws (0 = none).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Monte Carlo random seed.")] = None,
) -> None:
    """Settlement demand against Sui, Ethereum L1 (blobs) and Solana capacity, year by year."""
    from atomabench.economics.forecast import forecast_answer, load_forecast_params, plot_forecast

    loaded = load_forecast_params(params)
    answer = swept(loaded, sweep, lambda p: forecast_answer(p, draws, seed))
    if plot is not None:
        table = answer.tables["forecast"]
        if sweep is not None:
            table = table.assign(scenario=table["sweep"] + " " + table["scenario"])
        bands = answer.tables.get("monte_carlo_bands") if sweep is None else None
        plot_forecast(table, bands, plot, loaded.params.saturation_threshold)
        answer = _with_note(answer, f"plot written to {plot}")
    _emit(answer, json_output)


# --------------------------------------------------------------------------------------------------
# Rendering


def _with_note(answer: Answer, note: str) -> Answer:
    return dataclasses.replace(answer, notes=(*answer.notes, note))


def _emit(answer: Answer, json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps(answer.to_json_dict(), indent=2, ensure_ascii=False))
        return
    console = Console(width=max(Console().width, 160))
    for name, columns in answer.display.items():
        console.print(_rich_table(answer.tables[name], columns, title=name.replace("_", " ")))
    marker = (
        "ESTIMATED (roofline or parameters, not measured)"
        if answer.estimated
        else "from measured or given data, no estimates"
    )
    console.print(f"[bold]{answer.command}[/bold]: {marker}")
    for note in answer.notes:
        console.print(f"  • {note}")
    console.print(_rich_table(answer.assumptions, ["name", "value", "source"], title="assumptions"))


def _rich_table(frame: pd.DataFrame, columns: list[str], title: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    shown = [c for c in columns if c in frame.columns]
    for column in shown:
        table.add_column(str(column), justify="right" if _numeric(frame[column]) else "left")
    for row in frame[shown].itertuples(index=False):
        table.add_row(
            *(format_cell(value, "year" in column) for value, column in zip(row, shown, strict=True))
        )
    return table


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def format_cell(value: Any, plain_integers: bool = False) -> str:
    """Short, readable cells: 4 significant figures, thousands separators, '–' for missing.

    ``plain_integers`` drops the separators (years read 2031, not 2,031).
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 1e9:
        value = int(value)
    if isinstance(value, int):
        return str(value) if plain_integers else f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if abs(value) >= 1e9 or abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
