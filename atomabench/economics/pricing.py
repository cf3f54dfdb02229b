"""Pricing: dollars per million input, output and blended tokens, per run and per hardware class.

$/1M = $/h ÷ (tokens/s · utilisation · 3600) · 1e6. The hour costs either the profile's rental price
(midpoint of its range by default) or a TCO: capex ÷ (life · 8760) + watts · PUE · $/kWh ÷ 1000 +
hosting, with watts measured where a run recorded them, else TDP × GPU count.

Input and output tokens share one GPU-hour. It is split with a configurable cost ratio r (one input
token costs r output tokens): the hour buys r · input tokens/s + output tokens/s "output-equivalent"
tokens, so $/1M output = $/h ÷ ((r · in/s + out/s) · utilisation · 3600) · 1e6 and $/1M input = r ×
that. At those prices the hour's tokens pay exactly for the hour. Blended = (3 · input + 1 · output)
÷ 4, Artificial Analysis' 3:1 mix.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field

from atomabench.economics import measured
from atomabench.economics.answer import Answer
from atomabench.economics.capacity import (
    GB,
    SloParams,
    deployment_gpu_counts,
    gpus_needed,
    memory_needed_bytes,
    units_per_node,
)
from atomabench.economics.catalogue import Catalogue, Dtype, ModelSpec
from atomabench.economics.params import Loaded, Params, load
from atomabench.errors import UserError
from atomabench.records import HardwareProfile


class TcoParams(Params):
    life_years: float = Field(gt=0)
    pue: float = Field(ge=1)
    usd_per_kwh: float = Field(ge=0)
    hosting_usd_per_gpu_hour: float = Field(ge=0)


class EstimateParams(Params):
    """The workload a roofline estimate assumes for classes without measured runs."""

    models: tuple[str, ...]
    dtype: Dtype
    kv_dtype: Dtype
    batch: int = Field(ge=1)
    prompt_tokens: int = Field(ge=1)
    output_tokens: int = Field(ge=1)
    mbu: float = Field(gt=0, le=1)
    mfu: float = Field(gt=0, le=1)
    usable_memory_fraction: float = Field(gt=0, le=1)
    max_gpus: int = Field(ge=1)


class PricingParams(Params):
    utilisation: float = Field(gt=0, le=1)
    hourly_price: Literal["rent", "tco"]
    rent_point: Literal["low", "mid", "high"]
    input_output_cost_ratio: float = Field(ge=0)
    blend_input_weight: float = Field(ge=0)
    blend_output_weight: float = Field(ge=0)
    include_estimates: bool
    slo: SloParams
    tco: TcoParams
    estimate: EstimateParams


def load_pricing_params(path: str | Path | None = None) -> Loaded[PricingParams]:
    return load(PricingParams, "pricing.toml", path)


COLUMNS = [
    "level",
    "model",
    "profile_id",
    "hardware",
    "gpu_count",
    "run_id",
    "scenario",
    "basis",
    "estimated",
    "output_tps",
    "input_tps",
    "usd_per_hour",
    "hourly_basis",
    "watts",
    "usd_per_1m_input",
    "usd_per_1m_output",
    "usd_per_1m_blended",
    "n_runs",
]


def hourly_cost(
    profile: HardwareProfile | None,
    gpu_count: int,
    params: PricingParams,
    measured_watts: float | None = None,
) -> tuple[float, str, float]:
    """($/h, how it was priced, watts used) for ``gpu_count`` GPUs of ``profile``.

    Rental price where chosen and known, else TCO; NaN when the profile lacks what either needs.
    """
    if profile is None:
        return math.nan, "no hardware profile", math.nan
    if params.hourly_price == "rent" and profile.rent_usd_per_hour is not None:
        low, high = profile.rent_usd_per_hour
        per_gpu = {"low": low, "mid": (low + high) / 2, "high": high}[params.rent_point]
        return per_gpu * gpu_count, f"rent ({params.rent_point})", math.nan
    basis = "tco" if params.hourly_price == "tco" else "tco (no rental price)"
    watts = measured_watts if measured_watts is not None and measured_watts > 0 else None
    if watts is None:
        watts = profile.tdp_w * gpu_count if profile.tdp_w is not None else math.nan
        watt_basis = "TDP"
    else:
        watt_basis = "measured W"
    if profile.price_usd is None or math.isnan(watts):
        return math.nan, f"{basis}: no purchase price or power figure", watts
    tco = params.tco
    capex_per_hour = profile.price_usd * gpu_count / (tco.life_years * 8760)
    energy_per_hour = watts * tco.pue * tco.usd_per_kwh / 1000
    hosting_per_hour = tco.hosting_usd_per_gpu_hour * gpu_count
    return capex_per_hour + energy_per_hour + hosting_per_hour, f"{basis}, {watt_basis}", watts


def token_prices(
    usd_per_hour: float, input_tps: float, output_tps: float, params: PricingParams
) -> tuple[float, float, float]:
    """($/1M input, $/1M output, $/1M blended) for one hour split by the input:output cost ratio."""
    ratio = params.input_output_cost_ratio
    equivalent_tps = ratio * (input_tps if math.isfinite(input_tps) else 0.0) + output_tps
    if not equivalent_tps > 0 or not math.isfinite(usd_per_hour):
        return math.nan, math.nan, math.nan
    output_price = usd_per_hour / (equivalent_tps * params.utilisation * 3600) * 1e6
    input_price = ratio * output_price
    weights = params.blend_input_weight + params.blend_output_weight
    blended = (params.blend_input_weight * input_price + params.blend_output_weight * output_price) / weights
    return input_price, output_price, blended


def peak_flops(profile: HardwareProfile, dtype: str) -> float:
    """Peak dense FLOP/s at ``dtype``, falling back to bf16/fp16/fp32 (weights dequantised to compute)."""
    for key in (dtype, "bf16", "fp16", "fp32"):
        if profile.peak_tflops.get(key):
            return profile.peak_tflops[key] * 1e12
    return math.nan


def estimate_throughput(
    model: ModelSpec, profile: HardwareProfile, gpus: int, estimate: EstimateParams
) -> tuple[float, float, int]:
    """Roofline (output tokens/s, input tokens/s, batch) for a static batch of the estimate workload.

    Prefill is compute-bound: batch · prompt · 2 · active params FLOPs at peak · MFU. Decode is
    memory-bound: each of ``output_tokens`` steps reads the weights plus the batch's KV cache at the
    mean context (prompt + output/2), at bandwidth · MBU. The batch is capped by memory.
    """
    if not profile.memory_gb or not profile.memory_bandwidth_gbs:
        return math.nan, math.nan, 0
    context = estimate.prompt_tokens + estimate.output_tokens
    free = profile.memory_gb * GB * gpus * estimate.usable_memory_fraction - model.weight_bytes(
        estimate.dtype
    )
    fit = int(free // (model.kv_bytes_per_token(estimate.kv_dtype) * context))
    batch = min(estimate.batch, fit)
    if batch < 1:
        return math.nan, math.nan, 0
    flops = peak_flops(profile, estimate.dtype) * gpus * estimate.mfu
    prefill_s = batch * estimate.prompt_tokens * 2 * model.active / flops if math.isfinite(flops) else 0.0
    bandwidth = profile.memory_bandwidth_gbs * GB * gpus * estimate.mbu
    mean_context = estimate.prompt_tokens + estimate.output_tokens / 2
    step_bytes = (
        model.weight_bytes_read_per_step(estimate.dtype, batch)
        + batch * model.kv_bytes_per_token(estimate.kv_dtype) * mean_context
    )
    decode_s = estimate.output_tokens * step_bytes / bandwidth
    total_s = prefill_s + decode_s
    return batch * estimate.output_tokens / total_s, batch * estimate.prompt_tokens / total_s, batch


def price_table(
    profiles: dict[str, HardwareProfile],
    catalogue: Catalogue,
    params: PricingParams,
    results: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Prices per measured run and per hardware class; classes without runs get roofline estimates.

    Per run, the scenario with the highest output throughput among those meeting the SLO is used
    (goodput at the SLO); if none meets it, the highest throughput, flagged in ``basis``. Per class
    (model, profile, GPU count), the cheapest run stands for the class.
    """
    run_rows = _measured_run_rows(profiles, catalogue, params, results)
    class_rows = _best_per_class(run_rows)
    measured_keys = {(r["model"], r["profile_id"], r["gpu_count"]) for r in class_rows}
    measured_pairs = {(model, profile) for model, profile, _ in measured_keys}
    estimate_rows = []
    if params.include_estimates:
        estimate_rows = [
            row
            for row in _estimated_rows(profiles, catalogue, params)
            if (row["model"], row["profile_id"]) not in measured_pairs
        ]
    return pd.DataFrame([*run_rows, *class_rows, *estimate_rows], columns=COLUMNS)


def _measured_run_rows(
    profiles: dict[str, HardwareProfile],
    catalogue: Catalogue,
    params: PricingParams,
    results: pd.DataFrame | None,
) -> list[dict]:
    frame = measured.usable_rows(results)
    if frame.empty:
        return []
    frame = frame.assign(
        model_id=measured.model_ids(frame, catalogue),
        ok=measured.meets_slo(frame, params.slo.ttft_p99_ms, params.slo.tpot_p99_ms),
        input_tps=measured.input_throughput(frame),
    )
    rows = []
    for run_id, group in frame.groupby("run_id", sort=True):
        good = group[group["ok"]]
        pick = good if not good.empty else group
        best = pick.loc[pd.to_numeric(pick["output_throughput"], errors="coerce").idxmax()]
        basis = "measured goodput at SLO" if not good.empty else "measured throughput (SLO not met)"
        profile_id = best["profile_id"] if isinstance(best["profile_id"], str) else None
        profile = profiles.get(profile_id) if profile_id else None
        gpus = int(best["gpu_count"]) if pd.notna(best["gpu_count"]) and best["gpu_count"] > 0 else 1
        watts = float(best["average_watts"]) if pd.notna(best["average_watts"]) else None
        usd_per_hour, hourly_basis, used_watts = hourly_cost(profile, gpus, params, watts)
        output_tps = float(best["output_throughput"])
        input_tps = float(best["input_tps"]) if pd.notna(best["input_tps"]) else math.nan
        input_price, output_price, blended = token_prices(usd_per_hour, input_tps, output_tps, params)
        rows.append(
            {
                "level": "run",
                "model": best["model_id"],
                "profile_id": profile_id,
                "hardware": profile.name if profile else str(best["device_name"]),
                "gpu_count": gpus,
                "run_id": str(run_id),
                "scenario": str(best["scenario"]),
                "basis": basis,
                "estimated": False,
                "output_tps": output_tps,
                "input_tps": input_tps,
                "usd_per_hour": usd_per_hour,
                "hourly_basis": hourly_basis,
                "watts": used_watts,
                "usd_per_1m_input": input_price,
                "usd_per_1m_output": output_price,
                "usd_per_1m_blended": blended,
                "n_runs": 1,
            }
        )
    return rows


def _best_per_class(run_rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for row in run_rows:
        groups.setdefault((row["model"], row["profile_id"] or row["hardware"], row["gpu_count"]), []).append(
            row
        )
    class_rows = []
    for rows in groups.values():
        priced = [r for r in rows if math.isfinite(r["usd_per_1m_blended"])]
        best = min(priced, key=lambda r: r["usd_per_1m_blended"]) if priced else rows[0]
        class_rows.append({**best, "level": "class", "n_runs": len(rows)})
    return class_rows


def _estimated_rows(
    profiles: dict[str, HardwareProfile], catalogue: Catalogue, params: PricingParams
) -> list[dict]:
    estimate = params.estimate
    rows = []
    for name in estimate.models:
        model = catalogue.find(name)
        if model is None:
            known = ", ".join(m.id for m in catalogue.models)
            raise UserError(f"unknown model {name!r}; the catalogue has: {known}", field="estimate.models")
        context = estimate.prompt_tokens + estimate.output_tokens
        need = memory_needed_bytes(model, estimate.dtype, estimate.kv_dtype, context, 1)
        for profile in profiles.values():
            counts = deployment_gpu_counts(
                gpus_needed(need, profile.memory_gb, estimate.usable_memory_fraction),
                units_per_node(profile, estimate.max_gpus),
            )
            if not counts:
                continue
            gpus = counts[0]
            output_tps, input_tps, batch = estimate_throughput(model, profile, gpus, estimate)
            if batch < 1:
                continue
            usd_per_hour, hourly_basis, watts = hourly_cost(profile, gpus, params)
            input_price, output_price, blended = token_prices(usd_per_hour, input_tps, output_tps, params)
            rows.append(
                {
                    "level": "class",
                    "model": model.id,
                    "profile_id": profile.id,
                    "hardware": profile.name,
                    "gpu_count": gpus,
                    "run_id": None,
                    "scenario": f"batch {batch}, {estimate.prompt_tokens} in / {estimate.output_tokens} out",
                    "basis": "estimated (roofline)",
                    "estimated": True,
                    "output_tps": output_tps,
                    "input_tps": input_tps,
                    "usd_per_hour": usd_per_hour,
                    "hourly_basis": hourly_basis,
                    "watts": watts,
                    "usd_per_1m_input": input_price,
                    "usd_per_1m_output": output_price,
                    "usd_per_1m_blended": blended,
                    "n_runs": 0,
                }
            )
    return rows


def price_answer(
    profiles: dict[str, HardwareProfile],
    catalogue: Catalogue,
    params: Loaded[PricingParams],
    results: pd.DataFrame | None = None,
) -> Answer:
    """:func:`price_table` with the assumptions behind it, as the ``price`` command shows it."""
    table = price_table(profiles, catalogue, params.params, results)
    measured_runs = int((table["level"] == "run").sum())
    notes = []
    if measured_runs == 0:
        notes.append("no stored runs: every price is a roofline estimate from the hardware profiles")
    else:
        notes.append(f"{measured_runs} measured run(s); classes without runs keep roofline estimates")
    if table["usd_per_hour"].isna().any():
        notes.append(
            "some classes have no rental price, purchase price or power figure: their prices are blank"
        )
    return Answer(
        command="price",
        tables={"prices": table},
        assumptions=params.assumptions(),
        estimated=bool(table["estimated"].any()) or table.empty,
        notes=tuple(notes),
        display={
            "prices": [
                "level",
                "model",
                "hardware",
                "gpu_count",
                "basis",
                "output_tps",
                "input_tps",
                "usd_per_hour",
                "hourly_basis",
                "usd_per_1m_input",
                "usd_per_1m_output",
                "usd_per_1m_blended",
            ]
        },
    )
