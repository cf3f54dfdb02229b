"""Everything the leaderboard shows, gathered from the store in a handful of queries.

Reports never compute a metric the store does not hold: each cell is a stored value of one chosen
scenario (which one is stated per column in ``docs/report.md``), a count of stored rows, or comes from
``atomabench.economics`` (prices, the block-space forecast). Runs that are still running or failed
are left out; completed and interrupted runs count, as in economics.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from hashlib import sha256
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from atomabench.records import HardwareProfile
    from atomabench.store import Store

LISTED_STATUSES = ("completed", "interrupted")
_RUN_LEVEL_COLUMNS = frozenset(
    (
        "suite",
        "backend",
        "model",
        "status",
        "started_at",
        "device_name",
        "profile_id",
        "gpu_count",
        "accelerator",
    )
)
_TIER_RANK = {"A": 0, "B": 1, "incomplete": 2, "fail": 3}
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

LEADERBOARD_COLUMNS: tuple[str, ...] = (
    "run_id",
    "page",
    "hardware_class",
    "profile_id",
    "gpu_count",
    "node",
    "model",
    "backend",
    "dtype",
    "suite",
    "status",
    "scenario",
    "output_tok_s",
    "goodput_req_s",
    "goodput_scenario",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "tpot_p50_ms",
    "tpot_p99_ms",
    "peak_memory_bytes",
    "peak_memory_source",
    "joules_per_token",
    "usd_per_1m_blended",
    "usd_per_1m_input",
    "usd_per_1m_output",
    "price_basis",
    "determinism_tier",
    "date",
    "started_at",
)
"""Fields of one leaderboard row, in the order of ``leaderboard.csv`` and ``leaderboard.json``."""


@dataclass
class SiteData:
    """The leaderboard rows, what each run page shows, and the frames behind the charts."""

    rows: list[dict[str, Any]]
    scenarios: dict[str, list[dict[str, Any]]]
    runs: dict[str, dict[str, Any]]
    points: pd.DataFrame
    class_prices: pd.DataFrame
    determinism: pd.DataFrame
    forecast: pd.DataFrame
    saturation_threshold: float
    skipped_runs: int = 0
    notes: list[str] = field(default_factory=list)


def page_name(run_id: str) -> str:
    """A file name for the run's page: the id itself when it is a safe name, else a hash of it."""
    if _SAFE_ID.match(run_id):
        return f"{run_id}.html"
    return f"run-{sha256(run_id.encode()).hexdigest()[:16]}.html"


def collect(store: Store, profiles: dict[str, HardwareProfile] | None = None) -> SiteData:
    """Read the store once (five queries) and shape it into leaderboard rows and chart frames."""
    if profiles is None:
        from atomabench.hardware.profiles import load_profiles

        profiles = load_profiles()
    runs = store.runs_frame()
    skipped = int((~runs["status"].isin(LISTED_STATUSES)).sum())
    runs = runs[runs["status"].isin(LISTED_STATUSES)].reset_index(drop=True)
    listed = set(runs["run_id"])
    scenarios = store.scenarios_frame()
    scenarios = scenarios[scenarios["run_id"].isin(listed)].reset_index(drop=True)
    extra = store.report_frames()
    scenarios = _with_details(scenarios, extra["scenarios"])
    details = {
        row.run_id: (row.backend_settings or {}, row.hardware_info or {})
        for row in extra["runs"].itertuples(index=False)
        if row.run_id in listed
    }

    labels = {
        row.run_id: _hardware_class(row.profile_id, row.device_name, row.gpu_count, profiles)
        for row in runs.itertuples(index=False)
    }
    headline = _pick(scenarios[scenarios["valid"] & scenarios["kind"].ne("determinism")], "output_throughput")
    goodput = _pick(scenarios[scenarios["valid"]], "goodput")
    tiers = _tiers(scenarios)
    prices, class_prices, price_notes = _prices(scenarios, profiles)

    rows = []
    for run in runs.itertuples(index=False):
        settings, hardware = details.get(run.run_id, ({}, {}))
        best = headline.get(run.run_id)
        good = goodput.get(run.run_id)
        price = prices.get(run.run_id, {})
        memory, memory_source = _memory(best)
        rows.append(
            {
                "run_id": run.run_id,
                "page": f"runs/{page_name(run.run_id)}",
                "hardware_class": labels[run.run_id],
                "profile_id": _text(run.profile_id),
                "gpu_count": _int(run.gpu_count),
                "node": _text(hardware.get("hostname")),
                "model": run.model,
                "backend": run.backend,
                "dtype": _text(settings.get("dtype")),
                "suite": run.suite,
                "status": run.status,
                "scenario": None if best is None else best["scenario"],
                "output_tok_s": _value(best, "output_throughput"),
                "goodput_req_s": _value(good, "goodput"),
                "goodput_scenario": None if good is None else good["scenario"],
                "ttft_p50_ms": _value(best, "ttft_ms_p50"),
                "ttft_p99_ms": _value(best, "ttft_ms_p99"),
                "tpot_p50_ms": _value(best, "tpot_ms_p50"),
                "tpot_p99_ms": _value(best, "tpot_ms_p99"),
                "peak_memory_bytes": memory,
                "peak_memory_source": memory_source,
                "joules_per_token": _value(best, "joules_per_output_token"),
                "usd_per_1m_blended": _number(price.get("usd_per_1m_blended")),
                "usd_per_1m_input": _number(price.get("usd_per_1m_input")),
                "usd_per_1m_output": _number(price.get("usd_per_1m_output")),
                "price_basis": price.get("basis"),
                "determinism_tier": tiers.get(run.run_id),
                "date": run.started_at.strftime("%Y-%m-%d"),
                "started_at": run.started_at.isoformat(),
            }
        )

    per_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    # the run's own columns repeat on every scenario row; leaving them out halves the conversion
    page_columns = [c for c in scenarios.columns if c not in _RUN_LEVEL_COLUMNS]
    for record in scenarios[page_columns].to_dict("records"):
        per_run[record["run_id"]].append(record)
    run_info = {
        run.run_id: {
            **run._asdict(),
            "hardware_class": labels[run.run_id],
            "backend_settings": details.get(run.run_id, ({}, {}))[0],
            "hardware": details.get(run.run_id, ({}, {}))[1],
        }
        for run in runs.itertuples(index=False)
    }
    forecast, threshold, forecast_notes = _forecast()
    return SiteData(
        rows=rows,
        scenarios=dict(per_run),
        runs=run_info,
        points=_points(scenarios, labels),
        class_prices=class_prices,
        determinism=_determinism(extra["determinism"], listed, runs),
        forecast=forecast,
        saturation_threshold=threshold,
        skipped_runs=skipped,
        notes=[*price_notes, *forecast_notes],
    )


# --------------------------------------------------------------------------------------------------


def _with_details(scenarios: pd.DataFrame, details: pd.DataFrame) -> pd.DataFrame:
    """Join the serving columns on (run, n-th scenario): both lists keep each run's scenario order."""
    scenarios = scenarios.assign(ordinal=scenarios.groupby("run_id", sort=False).cumcount())
    details = details.sort_values(["run_id", "position"], kind="stable")
    details = details.assign(ordinal=details.groupby("run_id", sort=False).cumcount()).drop(
        columns=["scenario"]
    )
    return scenarios.merge(details, on=["run_id", "ordinal"], how="left", validate="one_to_one")


def _pick(frame: pd.DataFrame, column: str) -> dict[str, dict[str, Any]]:
    """Per run, the row with the largest ``column`` (first on ties); runs without a value are absent."""
    present = frame[frame[column].notna()]
    if present.empty:
        return {}
    best = present.loc[present.groupby("run_id", sort=False)[column].idxmax()]
    return {record["run_id"]: record for record in best.to_dict("records")}


def _tiers(scenarios: pd.DataFrame) -> dict[str, str]:
    """Per run, the worst stored determinism tier among its scenarios (fail > incomplete > B > A)."""
    tiers: dict[str, str] = {}
    for run_id, tier in scenarios.loc[
        scenarios["determinism_tier"].notna(), ["run_id", "determinism_tier"]
    ].itertuples(index=False):
        known = tiers.get(run_id)
        if known is None or _TIER_RANK.get(tier, 2) > _TIER_RANK.get(known, 2):
            tiers[run_id] = tier
    return tiers


def _prices(
    scenarios: pd.DataFrame, profiles: dict[str, HardwareProfile]
) -> tuple[dict[str, dict[str, Any]], pd.DataFrame, list[str]]:
    """Per-run and per-class prices with the bundled pricing parameters, as ``price_table`` makes them.

    ``economics.price_table`` loops over runs in pandas (about 1.7 ms a run, 17 s for 10,000), so the
    run it prices is picked here in one sort, by its rule: the fastest valid scenario meeting the
    pricing SLO, else the fastest. The dollars come from the public ``hourly_cost`` and
    ``token_prices``; ``tests/report`` checks the result equals ``price_table`` row for row.
    """
    from atomabench.economics import hourly_cost, load_catalogue, load_pricing_params, measured, token_prices

    params = load_pricing_params().params
    catalogue = load_catalogue().params
    frame = measured.usable_rows(scenarios[list(measured.REQUIRED_COLUMNS)])
    model_ids = {
        name: (found.id if (found := catalogue.find(str(name))) else str(name))
        for name in frame["model"].unique()
    }
    frame = frame.assign(
        model_id=frame["model"].map(model_ids),
        ok=measured.meets_slo(frame, params.slo.ttft_p99_ms, params.slo.tpot_p99_ms),
        input_tps=measured.input_throughput(frame),
        output_tps=pd.to_numeric(frame["output_throughput"], errors="coerce"),
    )
    picked = frame.sort_values(
        ["run_id", "ok", "output_tps"], ascending=[True, False, False], kind="stable"
    ).drop_duplicates("run_id")
    per_run: dict[str, dict[str, Any]] = {}
    for best in picked.to_dict("records"):
        profile_id = best["profile_id"] if isinstance(best["profile_id"], str) else None
        profile = profiles.get(profile_id) if profile_id else None
        gpus = int(best["gpu_count"]) if pd.notna(best["gpu_count"]) and best["gpu_count"] > 0 else 1
        watts = float(best["average_watts"]) if pd.notna(best["average_watts"]) else None
        usd_per_hour, _, _ = hourly_cost(profile, gpus, params, watts)
        input_tps = float(best["input_tps"]) if pd.notna(best["input_tps"]) else math.nan
        input_price, output_price, blended = token_prices(
            usd_per_hour, input_tps, float(best["output_tps"]), params
        )
        per_run[str(best["run_id"])] = {
            "model": best["model_id"],
            "profile_id": profile_id,
            "hardware": profile.name if profile else str(best["device_name"]),
            "gpu_count": gpus,
            "scenario": best["scenario"],
            "basis": "measured goodput at SLO" if best["ok"] else "measured throughput (SLO not met)",
            "usd_per_hour": usd_per_hour,
            "usd_per_1m_input": input_price,
            "usd_per_1m_output": output_price,
            "usd_per_1m_blended": blended,
        }
    notes = [
        f"prices: atomabench.economics with the bundled pricing.toml (utilisation {params.utilisation:g}, "
        f"hourly price from {params.hourly_price}, SLO p99 TTFT ≤ {params.slo.ttft_p99_ms:g} ms and "
        f"p99 TPOT ≤ {params.slo.tpot_p99_ms:g} ms)"
    ]
    return per_run, _class_prices(per_run), notes


CLASS_PRICE_COLUMNS = (
    "model",
    "profile_id",
    "hardware",
    "gpu_count",
    "run_id",
    "usd_per_1m_blended",
    "n_runs",
)


def _class_prices(per_run: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The cheapest priced run per (model, hardware class, GPU count), cheapest class first."""
    frame = pd.DataFrame(
        [{"run_id": run_id, **price} for run_id, price in per_run.items()],
        columns=["run_id", "model", "profile_id", "hardware", "gpu_count", "usd_per_1m_blended"],
    )
    if frame.empty:
        return pd.DataFrame(columns=list(CLASS_PRICE_COLUMNS))
    frame = frame.assign(hardware_key=frame["profile_id"].fillna(frame["hardware"]))
    keys = ["model", "hardware_key", "gpu_count"]
    frame = frame.assign(n_runs=frame.groupby(keys)["run_id"].transform("size"))
    priced = frame[frame["usd_per_1m_blended"].notna()].sort_values(
        ["usd_per_1m_blended", "run_id"], kind="stable"
    )
    cheapest = priced.drop_duplicates(keys).reset_index(drop=True)
    return cheapest[list(CLASS_PRICE_COLUMNS)]


def _forecast() -> tuple[pd.DataFrame, float, list[str]]:
    from atomabench.economics import forecast_table, load_forecast_params

    params = load_forecast_params().params
    table = forecast_table(params, ["base"])
    note = (
        f"block-space forecast: atomabench.economics.forecast_table, base scenario of the bundled "
        f"forecast.toml ({params.start_year}–{params.start_year + params.years - 1}); parameters only"
    )
    return table, params.saturation_threshold, [note]


def _points(scenarios: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Valid non-determinism scenarios with both TPOT p50 and output throughput, for the Pareto chart."""
    keep = (
        scenarios["valid"]
        & scenarios["kind"].ne("determinism")
        & (scenarios["tpot_ms_p50"] > 0)
        & (scenarios["output_throughput"] > 0)
    )
    points = scenarios.loc[keep, ["run_id", "model", "scenario", "tpot_ms_p50", "output_throughput"]]
    return points.assign(hardware_class=points["run_id"].map(labels)).reset_index(drop=True)


def _determinism(frame: pd.DataFrame, listed: set[str], runs: pd.DataFrame) -> pd.DataFrame:
    """Exact matches and comparisons per backend and batch size (skipped comparisons left out)."""
    frame = frame[frame["run_id"].isin(listed) & frame["skipped_reason"].isna()]
    columns = ["backend", "batch_size", "exact", "compared"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    backend = dict(zip(runs["run_id"], runs["backend"], strict=True))
    frame = frame.assign(backend=frame["run_id"].map(backend), exact=frame["exact_match"].astype(int))
    grouped = frame.groupby(["backend", "batch_size"], sort=True).agg(
        exact=("exact", "sum"), compared=("exact", "size")
    )
    return grouped.reset_index()[columns]


def _hardware_class(
    profile_id: Any, device_name: Any, gpu_count: Any, profiles: dict[str, HardwareProfile]
) -> str:
    """The profile's name (else its id, else the device name), with ×N for several GPUs."""
    profile = profiles.get(profile_id) if isinstance(profile_id, str) else None
    name = profile.name if profile else (_text(profile_id) or _text(device_name) or "unknown")
    count = _int(gpu_count) or 0
    return f"{name} ×{count}" if count > 1 else name


def _memory(best: dict[str, Any] | None) -> tuple[float | None, str | None]:
    """Peak device memory of the headline scenario, else its peak host RSS (CPU runs)."""
    if best is None:
        return None, None
    device = _number(best.get("peak_device_bytes"))
    if device is not None:
        return device, "device"
    host = _number(best.get("peak_host_rss_bytes"))
    return (host, "host RSS") if host is not None else (None, None)


def _value(row: dict[str, Any] | None, column: str) -> float | None:
    return None if row is None else _number(row.get(column))


def _number(value: Any) -> float | None:
    """A finite float, or None (NaN, NA and missing all become JSON null)."""
    if value is None or value is pd.NA:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
