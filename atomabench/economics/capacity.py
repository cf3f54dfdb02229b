"""Capacity: which models fit on a hardware class, how fast they decode at a latency SLO, and how many
tokens per second a whole network of nodes (a census) could serve.

Memory: weight bytes = params · bytes per value; KV bytes = 2 · layers · kv_heads · head_dim · bytes
· context · batch; GPUs needed = ceil(bytes / (memory · usable fraction)). Speed: decode is
memory-bound, so one step of a batch of B sequences takes at least (weight bytes read + B · KV bytes
per sequence) / (bandwidth · MBU); that roofline is an upper bound on throughput and is marked
``estimated``. Measured scenarios replace it wherever they exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from atomabench.economics import measured
from atomabench.economics.answer import Answer
from atomabench.economics.catalogue import BYTES_PER_VALUE, Catalogue, Dtype, ModelSpec
from atomabench.economics.params import Loaded, Params, load, load_file
from atomabench.records import HardwareProfile

GB = 1e9
"""Profiles give memory in decimal GB (an "80 GB" H100 is 80e9 bytes here)."""


class SloParams(Params):
    ttft_p99_ms: float = Field(gt=0)
    tpot_p99_ms: float = Field(gt=0)


class SeedClaim(Params):
    """A sizing claim from the seed documents, recomputed and judged by :func:`seed_checks`."""

    claim: str
    source: str
    model: str | None = None
    params: float | None = Field(default=None, gt=0)
    dtype: Dtype
    seed_gpus: float | None = None
    seed_weights_gb: float | None = None

    @model_validator(mode="after")
    def _model_or_params(self) -> SeedClaim:
        if self.model is None and self.params is None:
            raise ValueError("a claim needs a catalogue model or a parameter count")
        return self


class SeedChecks(Params):
    profile: str
    gpu_price_usd: float = Field(ge=0)
    claims: tuple[SeedClaim, ...] = ()


class CapacityParams(Params):
    dtype: Dtype
    kv_dtype: Dtype
    context_tokens: int = Field(ge=1)
    batch: int = Field(ge=1)
    gpu_count: int = Field(ge=1)
    max_gpus: int = Field(ge=1)
    usable_memory_fraction: float = Field(gt=0, le=1)
    mbu: float = Field(gt=0, le=1)
    max_batch: int = Field(ge=1)
    slo: SloParams
    seed_checks: SeedChecks


class CensusEntry(Params):
    profile: str
    gpu_count: int = Field(ge=1)
    count: int = Field(ge=0)
    source: str = ""


class Census(Params):
    nodes: tuple[CensusEntry, ...]


def load_capacity_params(path: str | Path | None = None) -> Loaded[CapacityParams]:
    return load(CapacityParams, "capacity.toml", path)


def load_census(path: str | Path | None = None) -> Loaded[Census]:
    """The bundled illustrative census, or a user file that replaces it entirely."""
    return load(Census, "census.toml") if path is None else load_file(Census, path)


# --------------------------------------------------------------------------------------------------
# Memory


def memory_needed_bytes(
    model: ModelSpec, dtype: str, kv_dtype: str, context_tokens: int, batch: int
) -> float:
    """Weights plus the KV cache of ``batch`` sequences at ``context_tokens`` each."""
    return model.weight_bytes(dtype) + model.kv_bytes_per_token(kv_dtype) * context_tokens * batch


def gpus_needed(total_bytes: float, memory_gb: float | None, usable_fraction: float) -> float:
    """ceil(bytes / usable bytes per GPU); NaN when the profile gives no memory size."""
    if not memory_gb:
        return math.nan
    return float(math.ceil(total_bytes / (memory_gb * GB * usable_fraction) - 1e-9))


def max_batch_in_memory(model: ModelSpec, profile: HardwareProfile, gpus: int, params: CapacityParams) -> int:
    """How many sequences at ``context_tokens`` fit beside the weights on ``gpus`` GPUs."""
    if not profile.memory_gb:
        return 0
    free = profile.memory_gb * GB * gpus * params.usable_memory_fraction - model.weight_bytes(params.dtype)
    per_sequence = model.kv_bytes_per_token(params.kv_dtype) * params.context_tokens
    return max(0, int(free // per_sequence))


# --------------------------------------------------------------------------------------------------
# Roofline


def decode_step_seconds(
    model: ModelSpec,
    dtype: str,
    kv_dtype: str,
    context_tokens: float,
    batch: np.ndarray | float,
    bandwidth_bytes_s: float,
) -> np.ndarray | float:
    """Memory-bound lower bound of one decode step: bytes read / bandwidth (bandwidth already × MBU)."""
    batch_array = np.asarray(batch, dtype=float)
    weights = model.weight_bytes_read_per_step(dtype, batch_array)
    kv = batch_array * model.kv_bytes_per_token(kv_dtype) * context_tokens
    step = (weights + kv) / bandwidth_bytes_s
    return float(step) if np.ndim(step) == 0 else step


@dataclass(frozen=True)
class RooflinePoint:
    batch: int
    tokens_per_s: float
    tpot_ms: float


def roofline_at_slo(
    model: ModelSpec, profile: HardwareProfile, gpus: int, params: CapacityParams
) -> RooflinePoint:
    """The largest batch whose decode step meets the TPOT SLO, and its aggregate tokens/s.

    Every sequence is assumed to sit at ``context_tokens`` (worst case for KV reads), bandwidth adds up
    across tensor-parallel GPUs (communication ignored), and the batch is capped by memory.
    """
    if not profile.memory_bandwidth_gbs:
        return RooflinePoint(0, math.nan, math.nan)
    limit = min(max_batch_in_memory(model, profile, gpus, params), params.max_batch)
    if limit < 1:
        return RooflinePoint(0, 0.0, math.nan)
    bandwidth = profile.memory_bandwidth_gbs * GB * gpus * params.mbu
    batches = np.arange(1, limit + 1, dtype=float)
    steps = np.asarray(
        decode_step_seconds(model, params.dtype, params.kv_dtype, params.context_tokens, batches, bandwidth)
    )
    feasible = np.nonzero(steps * 1000.0 <= params.slo.tpot_p99_ms)[0]
    if feasible.size == 0:
        return RooflinePoint(0, 0.0, float(steps[0] * 1000.0))
    best = int(feasible[-1])
    return RooflinePoint(int(batches[best]), float(batches[best] / steps[best]), float(steps[best] * 1000.0))


# --------------------------------------------------------------------------------------------------
# Tables


def fit_table(
    catalogue: Catalogue, profiles: dict[str, HardwareProfile], params: CapacityParams
) -> pd.DataFrame:
    """Per model and hardware class: memory needed, GPUs needed, and whether it fits ``gpu_count``."""
    rows = []
    for model in catalogue.models:
        weights = model.weight_bytes(params.dtype)
        kv = model.kv_bytes_per_token(params.kv_dtype) * params.context_tokens * params.batch
        for profile in profiles.values():
            needed = gpus_needed(weights + kv, profile.memory_gb, params.usable_memory_fraction)
            rows.append(
                {
                    "model": model.id,
                    "profile_id": profile.id,
                    "hardware": profile.name,
                    "dtype": params.dtype,
                    "context_tokens": params.context_tokens,
                    "batch": params.batch,
                    "weights_gb": weights / GB,
                    "kv_cache_gb": kv / GB,
                    "total_gb": (weights + kv) / GB,
                    "memory_gb": profile.memory_gb,
                    "gpus_needed": needed,
                    "gpu_count": params.gpu_count,
                    "fits": bool(needed <= min(params.gpu_count, units_per_node(profile, params.max_gpus))),
                    "fits_one_node": bool(needed <= units_per_node(profile, params.max_gpus)),
                }
            )
    return pd.DataFrame(rows)


def seed_checks(
    catalogue: Catalogue, profiles: dict[str, HardwareProfile], params: CapacityParams
) -> pd.DataFrame:
    """The seeds' sizing claims recomputed: weights alone set a floor the seed must not go below."""
    checks = params.seed_checks
    profile = profiles.get(checks.profile)
    memory_gb = profile.memory_gb if profile else None
    rows = []
    for claim in checks.claims:
        model = catalogue.get(claim.model) if claim.model else None
        count = claim.params if claim.params is not None else model.params  # type: ignore[union-attr]
        weights = count * BYTES_PER_VALUE[claim.dtype]
        floor = gpus_needed(weights, memory_gb, 1.0)
        practical = math.nan
        if model is not None:
            total = memory_needed_bytes(
                model, claim.dtype, params.kv_dtype, params.context_tokens, params.batch
            )
            practical = gpus_needed(total, memory_gb, params.usable_memory_fraction)
        rows.append(
            {
                "claim": claim.claim,
                "source": claim.source,
                "profile_id": checks.profile,
                "dtype": claim.dtype,
                "weights_gb": weights / GB,
                "seed_weights_gb": claim.seed_weights_gb,
                "min_gpus": floor,
                "practical_gpus": practical,
                "seed_gpus": claim.seed_gpus,
                "capex_usd": floor * checks.gpu_price_usd,
                "seed_capex_usd": (claim.seed_gpus or math.nan) * checks.gpu_price_usd,
                "verdict": _verdict(claim, weights / GB, floor),
            }
        )
    return pd.DataFrame(rows)


def _verdict(claim: SeedClaim, weights_gb: float, floor: float) -> str:
    notes = []
    if claim.seed_weights_gb is not None:
        close = abs(claim.seed_weights_gb - weights_gb) <= 0.05 * weights_gb
        notes.append(
            "memory consistent"
            if close
            else f"memory is {weights_gb:,.1f} GB, not {claim.seed_weights_gb:,g}"
        )
    if claim.seed_gpus is not None and not math.isnan(floor):
        if claim.seed_gpus >= floor:
            notes.append("GPU count consistent")
        else:
            notes.append(f"understated: weights alone need ≥ {floor:.0f} GPUs, not {claim.seed_gpus:g}")
    return "; ".join(notes) or "nothing to check"


def units_per_node(profile: HardwareProfile, max_gpus: int) -> int:
    """How many accelerators of this class one node can pool: ``max_gpus`` for GPUs, 1 for a Mac or CPU."""
    return max_gpus if profile.kind == "gpu" else 1


def deployment_gpu_counts(needed: float, max_gpus: int) -> list[int]:
    """GPU counts a model can be served on: powers of two from the first that holds it up to a node.

    Tensor parallelism must divide the attention heads, so real deployments use 1, 2, 4 or 8 GPUs
    (vLLM ``tensor_parallel_size``); a model needing 3 GPUs of memory runs on 4.
    """
    if math.isnan(needed):
        return []
    count = 1 << max(0, math.ceil(math.log2(max(needed, 1))))
    counts = []
    while count <= max_gpus:
        counts.append(count)
        count *= 2
    return counts


SLO_COLUMNS = [
    "model",
    "profile_id",
    "gpu_count",
    "tokens_per_s",
    "tokens_per_s_per_gpu",
    "batch",
    "tpot_ms",
    "basis",
    "estimated",
    "run_id",
]


def slo_throughput(
    catalogue: Catalogue,
    profiles: dict[str, HardwareProfile],
    params: CapacityParams,
    results: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Tokens/s at the latency SLO per model, class and GPU count.

    Measured where stored runs exist; elsewhere the decode roofline (marked ``estimated``) on every
    power-of-two GPU count from the first that holds the model up to ``max_gpus``.
    """
    rows: dict[tuple[str, str, int], dict] = {}
    for model in catalogue.models:
        total = memory_needed_bytes(model, params.dtype, params.kv_dtype, params.context_tokens, 1)
        for profile in profiles.values():
            if not profile.memory_bandwidth_gbs:
                continue
            needed = gpus_needed(total, profile.memory_gb, params.usable_memory_fraction)
            for gpus in deployment_gpu_counts(needed, units_per_node(profile, params.max_gpus)):
                point = roofline_at_slo(model, profile, gpus, params)
                rows[(model.id, profile.id, gpus)] = {
                    "model": model.id,
                    "profile_id": profile.id,
                    "gpu_count": gpus,
                    "tokens_per_s": point.tokens_per_s,
                    "tokens_per_s_per_gpu": point.tokens_per_s / gpus,
                    "batch": point.batch,
                    "tpot_ms": point.tpot_ms,
                    "basis": "estimated (decode roofline)",
                    "estimated": True,
                    "run_id": None,
                }
    for row in measured_slo_rows(catalogue, params.slo, results):
        rows[(row["model"], row["profile_id"], row["gpu_count"])] = row
    return pd.DataFrame(list(rows.values()), columns=SLO_COLUMNS)


def best_per_class(speeds: pd.DataFrame, tolerance: float = 0.05) -> pd.DataFrame:
    """Per model and class, the fewest GPUs within ``tolerance`` of the best tokens/s per GPU.

    Measured rows win over estimates for the same model and class.
    """
    if speeds.empty:
        return speeds
    picked = []
    for _, group in speeds.groupby(["model", "profile_id"], sort=False):
        measured_rows = group[~group["estimated"].astype(bool)]
        pool = measured_rows if not measured_rows.empty else group
        best = pool["tokens_per_s_per_gpu"].max()
        close = pool[pool["tokens_per_s_per_gpu"] >= (1 - tolerance) * best]
        picked.append(close.sort_values("gpu_count", kind="stable").iloc[0])
    return pd.DataFrame(picked).reset_index(drop=True)


def measured_slo_rows(catalogue: Catalogue, slo: SloParams, results: pd.DataFrame | None) -> list[dict]:
    """Best measured output tokens/s meeting the SLO per (model, profile, GPU count)."""
    frame = measured.usable_rows(results)
    frame = frame[frame["profile_id"].notna()]
    if frame.empty:
        return []
    frame = frame.assign(
        model_id=measured.model_ids(frame, catalogue),
        ok=measured.meets_slo(frame, slo.ttft_p99_ms, slo.tpot_p99_ms),
        gpus=pd.to_numeric(frame["gpu_count"], errors="coerce").fillna(1).clip(lower=1).astype(int),
    )
    rows = []
    for (model_id, profile_id, gpus), group in frame.groupby(["model_id", "profile_id", "gpus"], sort=True):
        good = group[group["ok"]]
        best = good.loc[good["output_throughput"].idxmax()] if not good.empty else None
        rows.append(
            {
                "model": model_id,
                "profile_id": profile_id,
                "gpu_count": int(gpus),
                "tokens_per_s": float(best["output_throughput"]) if best is not None else 0.0,
                "tokens_per_s_per_gpu": (float(best["output_throughput"]) if best is not None else 0.0)
                / gpus,
                "batch": None,
                "tpot_ms": float(best["tpot_ms_p99"]) if best is not None else math.nan,
                "basis": "measured (goodput at SLO)" if best is not None else "measured (SLO not met)",
                "estimated": False,
                "run_id": str(best["run_id"]) if best is not None else str(group["run_id"].iloc[0]),
            }
        )
    return rows


CENSUS_COLUMNS = [
    "model",
    "profile_id",
    "node_gpus",
    "nodes",
    "known_profile",
    "replicas_per_node",
    "gpus_per_replica",
    "tokens_per_s_per_node",
    "tokens_per_s",
    "basis",
    "estimated",
]


def census_capacity(
    catalogue: Catalogue,
    profiles: dict[str, HardwareProfile],
    census: Census,
    params: CapacityParams,
    results: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per model and census entry: replicas per node, tokens/s per node and for all nodes of the entry.

    A node of G GPUs runs ⌊G / g⌋ replicas of a model that needs g GPUs. Measured throughput on the
    same class (at any GPU count g ≤ G) is used where it exists, picking the count that gives the
    node the most tokens/s; otherwise the roofline at the SLO.
    """
    speeds = slo_throughput(catalogue, profiles, params, results)
    rows = []
    for model in catalogue.models:
        model_speeds = speeds[speeds["model"] == model.id]
        for entry in census.nodes:
            options = model_speeds[
                (model_speeds["profile_id"] == entry.profile) & (model_speeds["gpu_count"] <= entry.gpu_count)
            ]
            measured_options = options[~options["estimated"].astype(bool)]
            if not measured_options.empty:
                options = measured_options
            best = None
            for option in options.itertuples():
                replicas = entry.gpu_count // int(option.gpu_count)
                per_node = replicas * float(option.tokens_per_s)
                if best is None or per_node > best[1]:
                    best = (replicas, per_node, option)
            rows.append(
                {
                    "model": model.id,
                    "profile_id": entry.profile,
                    "node_gpus": entry.gpu_count,
                    "nodes": entry.count,
                    "known_profile": entry.profile in profiles,
                    "replicas_per_node": best[0] if best else 0,
                    "gpus_per_replica": int(best[2].gpu_count) if best else None,
                    "tokens_per_s_per_node": best[1] if best else 0.0,
                    "tokens_per_s": (best[1] if best else 0.0) * entry.count,
                    "basis": best[2].basis if best else "does not fit",
                    "estimated": bool(best[2].estimated) if best else True,
                }
            )
    return pd.DataFrame(rows, columns=CENSUS_COLUMNS)


def network_capacity(breakdown: pd.DataFrame) -> pd.DataFrame:
    """Per model: tokens/s if the whole census served only that model, and from which evidence."""
    rows = []
    for model, group in breakdown.groupby("model", sort=False):
        serving = group[group["replicas_per_node"] > 0]
        bases = {"estimated" if est else "measured" for est in serving["estimated"]}
        rows.append(
            {
                "model": model,
                "tokens_per_s": float(serving["tokens_per_s"].sum()),
                "nodes_able": int(serving["nodes"].sum()),
                "gpus_able": int((serving["nodes"] * serving["node_gpus"]).sum()),
                "nodes_total": int(group["nodes"].sum()),
                "basis": " + ".join(sorted(bases)) if bases else "no node can serve it",
                "estimated": "estimated" in bases or not bases,
            }
        )
    return pd.DataFrame(rows)


def capacity_answer(
    profiles: dict[str, HardwareProfile],
    catalogue: Catalogue,
    params: Loaded[CapacityParams],
    census: Loaded[Census],
    results: pd.DataFrame | None = None,
) -> Answer:
    """Every capacity table with its assumptions, as the ``capacity`` command shows them."""
    p = params.params
    fit = fit_table(catalogue, profiles, p)
    gpus = fit.pivot_table(
        index="profile_id", columns="model", values="gpus_needed", sort=False, dropna=False
    )
    gpus = gpus.reindex(columns=[m.id for m in catalogue.models]).astype("Int64").reset_index()
    gpus.columns.name = None
    speeds = slo_throughput(catalogue, profiles, p, results)
    breakdown = census_capacity(catalogue, profiles, census.params, p, results)
    network = network_capacity(breakdown)
    unknown = sorted({e.profile for e in census.params.nodes} - set(profiles))
    notes = [
        f"fit: weights at {p.dtype} + KV at {p.kv_dtype} for {p.batch} × {p.context_tokens} tokens, "
        f"{p.usable_memory_fraction:.0%} of each GPU's memory usable",
        "tokens/s at the SLO: measured goodput where stored runs exist, "
        "else the decode roofline (an upper bound)",
    ]
    if speeds.empty or speeds["estimated"].all():
        notes.append("no stored runs: every speed is a roofline estimate")
    if unknown:
        notes.append(
            f"census classes without a hardware profile (counted as serving nothing): {', '.join(unknown)}"
        )
    assumptions = pd.concat(
        [
            params.assumptions(),
            pd.DataFrame(
                [
                    {
                        "name": "catalogue",
                        "value": f"{len(catalogue.models)} models",
                        "source": "models.toml",
                    },
                    {
                        "name": "census",
                        "value": f"{sum(e.count for e in census.params.nodes)} nodes",
                        "source": str(census.files[-1].path),
                    },
                ]
            ),
        ],
        ignore_index=True,
    )
    return Answer(
        command="capacity",
        tables={
            "gpus_needed": gpus,
            "fit": fit,
            "seed_checks": seed_checks(catalogue, profiles, p),
            "slo_best": best_per_class(speeds),
            "slo_throughput": speeds,
            "census": breakdown,
            "network": network,
        },
        assumptions=assumptions,
        estimated=bool(speeds["estimated"].any()) if not speeds.empty else True,
        notes=tuple(notes),
        display={
            "gpus_needed": list(gpus.columns),
            "seed_checks": [
                "claim",
                "weights_gb",
                "seed_gpus",
                "min_gpus",
                "practical_gpus",
                "seed_capex_usd",
                "capex_usd",
                "verdict",
            ],
            "slo_best": [
                "model",
                "profile_id",
                "gpu_count",
                "tokens_per_s",
                "tokens_per_s_per_gpu",
                "batch",
                "tpot_ms",
                "basis",
            ],
            "network": ["model", "tokens_per_s", "nodes_able", "gpus_able", "nodes_total", "basis"],
        },
    )
