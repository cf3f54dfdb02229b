"""The qualification verdict: what a node can serve, how fast at the SLO, how deterministic, pass/fail.

A pure function of a stored run, the suite's ``[verdict]`` rules and the model catalogue: it never runs a
model. Only valid scenarios count (a throttled or disturbed scenario is marked invalid upstream).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from atomabench.records import HardwareInfo, RunResult

TIER_ORDER = {"A": 0, "B": 1, "fail": 2, "incomplete": 3}


class ClassMinimums(BaseModel):
    """What a hardware class must reach to pass (suite ``[verdict.minimums.<profile id or default>]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    output_tokens_per_s: float = Field(default=0.0, ge=0.0, description="at the SLO, best valid scenario")
    determinism_tier: Literal["A", "B", "any"] = "B"
    memory_gb: float = Field(default=0.0, ge=0.0)


class VerdictRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ttft_p99_ms: float = Field(default=2000.0, gt=0)
    tpot_p99_ms: float = Field(default=250.0, gt=0)
    context_tokens: int = Field(default=4096, ge=1, description="KV cache per sequence for the memory fit")
    usable_memory_fraction: float = Field(default=0.9, gt=0, le=1)
    fit_dtypes: tuple[str, ...] = ("bf16", "fp8", "int4")
    minimums: dict[str, ClassMinimums] = Field(default_factory=lambda: {"default": ClassMinimums()})

    def minimums_for(self, profile_id: str | None, accelerator: str = "cpu") -> tuple[str, ClassMinimums]:
        """The class's own minimums; a CPU-only node without its own (e.g. a measured profile) takes
        ``generic-cpu``'s; anything else takes ``default``."""
        if profile_id and profile_id in self.minimums:
            return profile_id, self.minimums[profile_id]
        if accelerator == "cpu" and "generic-cpu" in self.minimums:
            return "generic-cpu", self.minimums["generic-cpu"]
        return "default", self.minimums.get("default", ClassMinimums())


class ModelFit(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    dtype: str
    needed_gb: float
    fits: bool


class Check(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    required: str
    measured: str
    passed: bool


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool
    hardware_class: str | None
    minimums_from: str
    memory_gb: float
    memory_source: str
    servable_models: tuple[ModelFit, ...]
    best_output_tokens_per_s_at_slo: float | None
    best_scenario_at_slo: str | None
    determinism_tier: str | None
    checks: tuple[Check, ...]
    invalid_scenarios: tuple[str, ...] = ()


def node_memory(hardware: HardwareInfo) -> tuple[float, str]:
    """Bytes a model can live in, in GB: GPU memory summed over GPUs, else unified or host RAM."""
    gpu_bytes = [g.memory_total_bytes for g in hardware.gpus if g.memory_total_bytes]
    if gpu_bytes and hardware.accelerator in ("cuda", "rocm"):
        return sum(gpu_bytes) / 1e9, f"{len(gpu_bytes)} × GPU memory"
    return hardware.ram_bytes / 1e9, "unified memory" if hardware.accelerator == "mps" else "host RAM"


def decide(run: RunResult, rules: VerdictRules, catalogue_models: list | None = None) -> Verdict:
    """Judge one run against ``rules``. ``catalogue_models`` defaults to the bundled model catalogue."""
    hardware = run.run.hardware
    minimums_from, minimums = rules.minimums_for(hardware.profile_id, hardware.accelerator)
    memory_gb, memory_source = node_memory(hardware)
    usable = memory_gb * rules.usable_memory_fraction
    fits = [
        ModelFit(model=model.id, dtype=dtype, needed_gb=round(needed / 1e9, 3), fits=needed / 1e9 <= usable)
        for model in (catalogue_models if catalogue_models is not None else _catalogue())
        for dtype in rules.fit_dtypes
        if (needed := model.weight_bytes(dtype) + model.kv_bytes_per_token(dtype) * rules.context_tokens)
    ]

    valid = [s for s in run.scenarios if s.valid]
    invalid = tuple(f"{s.name}: {s.invalid_reason}" for s in run.scenarios if not s.valid)
    at_slo = [
        s
        for s in valid
        if s.kind != "determinism"
        and s.metrics.ttft_ms.percentiles.get("p99", float("inf")) <= rules.ttft_p99_ms
        and s.metrics.tpot_ms.percentiles.get("p99", float("inf")) <= rules.tpot_p99_ms
    ]
    best = max(at_slo, key=lambda s: s.metrics.output_throughput, default=None)
    tiers = [s.determinism_summary.tier for s in valid if s.determinism_summary is not None]
    tier = max(tiers, key=TIER_ORDER.__getitem__) if tiers else None

    checks = [
        Check(
            name="memory",
            required=f">= {minimums.memory_gb:g} GB",
            measured=f"{memory_gb:.1f} GB ({memory_source})",
            passed=memory_gb >= minimums.memory_gb,
        ),
        Check(
            name="output tokens/s at SLO",
            required=f">= {minimums.output_tokens_per_s:g} (p99 TTFT <= {rules.ttft_p99_ms:g} ms, "
            f"p99 TPOT <= {rules.tpot_p99_ms:g} ms)",
            measured="no valid scenario met the SLO"
            if best is None
            else f"{best.metrics.output_throughput:.1f} ({best.name})",
            passed=best is not None and best.metrics.output_throughput >= minimums.output_tokens_per_s,
        ),
    ]
    if minimums.determinism_tier != "any":
        checks.append(
            Check(
                name="determinism tier",
                required=f"{minimums.determinism_tier} or better",
                measured=tier or "not measured (suite has no determinism scenario)",
                passed=tier is not None and TIER_ORDER[tier] <= TIER_ORDER[minimums.determinism_tier],
            )
        )
    return Verdict(
        passed=all(c.passed for c in checks),
        hardware_class=hardware.profile_id,
        minimums_from=minimums_from,
        memory_gb=round(memory_gb, 3),
        memory_source=memory_source,
        servable_models=tuple(fits),
        best_output_tokens_per_s_at_slo=None if best is None else best.metrics.output_throughput,
        best_scenario_at_slo=None if best is None else best.name,
        determinism_tier=tier,
        checks=tuple(checks),
        invalid_scenarios=invalid,
    )


def _catalogue() -> list:
    from atomabench.economics.catalogue import load_catalogue

    return list(load_catalogue().params.models)
