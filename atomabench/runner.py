"""Execute a suite: plan every scenario, run the plans on one backend, measure, store each as it ends.

The runner is the only room that holds a backend, trackers and the store at once, and it passes only
records between them. Every scenario is committed the moment it finishes, so an interrupt (Ctrl-C,
SIGTERM) loses at most the scenario in flight and the run is marked ``interrupted``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from atomabench import __version__
from atomabench.backends import Backend, BackendConfig, BackendInfo, ServingBackend, create_backend
from atomabench.determinism.plan import DeterminismPlan, plan_determinism
from atomabench.determinism.plan import analyze as analyze_determinism
from atomabench.errors import UserError
from atomabench.hardware.telemetry import TelemetrySample, track_telemetry
from atomabench.measure.metrics import compute_metrics, percentile_key, slo_holds
from atomabench.measure.roofline import scenario_roofline
from atomabench.measure.trackers import track_memory
from atomabench.measure.validity import INVALIDATING_THROTTLE_REASONS, assess
from atomabench.records import (
    HardwareInfo,
    HardwareProfile,
    RequestRecord,
    RunInfo,
    RunResult,
    ScenarioResult,
    ScheduledRequest,
)
from atomabench.workloads.dataset import SyntheticPrompts
from atomabench.workloads.plan import PromptSources, ScenarioPlan, ServerPlan, plan_load, plan_scenario
from atomabench.workloads.suite import (
    LOAD_KINDS,
    DeterminismScenario,
    ServerScenario,
    Slo,
    Suite,
    SweepScenario,
)

if TYPE_CHECKING:
    from atomabench.store import Store


class RunObserver(Protocol):
    """Progress callbacks for a UI; every method is optional to implement meaningfully."""

    def stage(self, message: str) -> None: ...

    def scenario_started(
        self, plan: ScenarioPlan | ServerPlan | DeterminismPlan, index: int, total: int
    ) -> None: ...

    def requests_done(self, count: int, warmup: bool) -> None: ...

    def scenario_finished(self, result: ScenarioResult) -> None: ...


class SilentObserver:
    def stage(self, message: str) -> None:
        pass

    def scenario_started(
        self, plan: ScenarioPlan | ServerPlan | DeterminismPlan, index: int, total: int
    ) -> None:
        pass

    def requests_done(self, count: int, warmup: bool) -> None:
        pass

    def scenario_finished(self, result: ScenarioResult) -> None:
        pass


@dataclass
class RunInterrupted(Exception):
    """Raised in place of KeyboardInterrupt once the partial run is safely marked in the store."""

    run_id: str
    finished_scenarios: int

    def __str__(self) -> str:
        return f"run {self.run_id} interrupted after {self.finished_scenarios} finished scenario(s)"


def new_run_id() -> str:
    return uuid.uuid4().hex


def run_suite(
    suite: Suite,
    backend_config: BackendConfig,
    store: Store,
    *,
    observer: RunObserver | None = None,
    hardware: HardwareInfo | None = None,
    backend: Backend | None = None,
) -> RunResult:
    """Run every scenario of ``suite`` and return the stored run.

    Bad input (unknown backend, unreadable model) fails in ``create_backend`` before anything is
    written; the run row is created only once the model has loaded. ``backend`` replaces the one
    ``backend_config`` would build (wrappers, engines not in the registry).
    """
    observer = observer or SilentObserver()
    backend = backend or create_backend(backend_config)
    _require_serving(suite, backend, backend_config.kind)
    if hardware is None:
        from atomabench.hardware import probe

        observer.stage("probing hardware")
        hardware = probe()
    try:
        observer.stage(f"loading {backend_config.model} with {backend_config.kind}")
        info = backend.load()
        prompts = SyntheticPrompts(backend.tokenize, backend.special_token_ids())
        sources = PromptSources(
            prompts, backend.tokenize, base_dir=Path(suite.path).parent if suite.path else None
        )
        prefix_cache = bool(getattr(backend, "prefix_cache", False))
        plans = [_plan(scenario, sources, prefix_cache) for scenario in suite.scenarios]

        run = RunInfo(
            run_id=new_run_id(),
            suite=suite.name,
            suite_path=suite.path,
            backend=info.kind,
            model=info.model,
            backend_settings=info.model_dump(mode="json"),
            started_at=datetime.now(UTC),
            atomabench_version=__version__,
            hardware=hardware,
        )
        context = MeasureContext(
            # p99 is always computed (the verdict and pricing are defined on it), and so is every
            # percentile an SLO of the suite is judged at
            percentiles=tuple(sorted({*suite.percentiles, 99.0, *_slo_percentiles(suite)})),
            tolerated_throttle_reasons=frozenset(suite.tolerated_throttle_reasons),
            cpu_energy=hardware.accelerator == "cpu",
            telemetry_interval_s=suite.telemetry_interval_s,
            slo=suite.slo,
            model_facts=_model_facts(info),
            profile=_profile_for(hardware),
        )
        store.start_run(run)
        finished = 0
        try:
            for index, plan in enumerate(plans):
                if isinstance(plan, SweepScenario):
                    steps = execute_sweep(plan, sources, backend, context, observer, index, len(plans))
                else:
                    observer.scenario_started(plan, index, len(plans))
                    steps = iter([execute_plan(plan, backend, context, observer)])
                for result, samples in steps:
                    scenario_id = store.add_scenario(run.run_id, result)
                    store.add_telemetry(scenario_id, samples)
                    finished += 1
                    observer.scenario_finished(result)
        except KeyboardInterrupt:
            store.finish_run(run.run_id, "interrupted", datetime.now(UTC))
            raise RunInterrupted(run.run_id, finished) from None
        except BaseException:
            store.finish_run(run.run_id, "failed", datetime.now(UTC))
            raise
        store.finish_run(run.run_id, "completed", datetime.now(UTC))
        return store.get_run(run.run_id)
    finally:
        backend.close()


@dataclass(frozen=True)
class MeasureContext:
    """What every scenario of a run is measured against."""

    percentiles: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)
    telemetry_interval_s: float = 0.5
    model_facts: dict = field(default_factory=dict)
    profile: HardwareProfile | None = None
    tolerated_throttle_reasons: frozenset[str] = frozenset()
    slo: Slo | None = None
    """The suite's SLO, for server scenarios that have none of their own."""
    cpu_energy: bool = True
    """Read RAPL package energy: only where the CPU is the accelerator, never as a GPU node's energy."""


def _plan(
    scenario: object, sources: PromptSources, prefix_cache: bool
) -> ScenarioPlan | ServerPlan | DeterminismPlan | SweepScenario:
    """The plan of one scenario; a sweep stays a scenario because its rates depend on its first runs."""
    if isinstance(scenario, DeterminismScenario):
        return plan_determinism(scenario, sources.tokenize, sources.synthetic, prefix_cache=prefix_cache)
    if isinstance(scenario, SweepScenario):
        return scenario
    if isinstance(scenario, ServerScenario):
        return plan_load(scenario, sources, rate=scenario.rate, max_concurrency=scenario.max_concurrency)
    return plan_scenario(scenario, sources)  # type: ignore[arg-type]


def _slo_percentiles(suite: Suite) -> set[float]:
    slos = [suite.slo, *(getattr(scenario, "slo", None) for scenario in suite.scenarios)]
    return {slo.percentile for slo in slos if slo is not None}


def _require_serving(suite: Suite, backend: Backend, kind: str) -> None:
    """Server and sweep scenarios need requests that arrive over time; refuse them up front, before
    anything loads, for engines that only run static batches."""
    if isinstance(backend, ServingBackend):
        return
    for index, scenario in enumerate(suite.scenarios):
        if scenario.kind in LOAD_KINDS:
            raise UserError(
                f"scenario {scenario.name!r} is a {scenario.kind} load, which the {kind} backend cannot "
                "serve (it runs static batches); use --backend vllm or --backend openai-http",
                path=suite.path,
                field=f"scenarios[{index}].kind",
            )


def execute_plan(
    plan: ScenarioPlan | ServerPlan | DeterminismPlan,
    backend: Backend,
    context: MeasureContext,
    observer: RunObserver,
) -> tuple[ScenarioResult, list[TelemetrySample]]:
    """Warm up, run the measured batches (or the load) inside the trackers, then compute metrics.

    Returns the result and the raw telemetry samples (stored as a time series beside it).
    """
    scenario = plan.scenario
    sampling = scenario.sampling
    for batch in plan.warmup:
        if isinstance(plan, ServerPlan):
            backend.serve([ScheduledRequest(spec=batch[0], arrival_s=0.0)], sampling, max_concurrency=1)
        else:
            backend.generate(batch, sampling)
        observer.requests_done(len(batch), warmup=True)

    outputs: list[list[RequestRecord]] = []
    started_at = datetime.now(UTC)
    with (
        track_memory(backend.reset_peak_device_memory, backend.peak_device_memory) as memory,
        track_telemetry(context.telemetry_interval_s, cpu_energy=context.cpu_energy) as telemetry,
    ):
        if isinstance(plan, ServerPlan):
            outputs.append(
                backend.serve(
                    plan.schedule,
                    sampling,
                    max_concurrency=plan.max_concurrency,
                    on_done=lambda: observer.requests_done(1, warmup=False),
                )
            )
        else:
            if isinstance(plan, DeterminismPlan):
                steps = [(case.requests, case.reset_prefix_cache) for case in plan.cases]
            else:
                steps = [(batch, False) for batch in plan.measured]
            for batch, cold in steps:
                if cold and hasattr(backend, "reset_prefix_cache"):
                    backend.reset_prefix_cache()
                outputs.append(backend.generate(batch, sampling))
                observer.requests_done(len(batch), warmup=False)
    ended_at = datetime.now(UTC)

    records = [record for batch in outputs for record in batch]
    origin = min(r.send_time for r in records)
    records = [r.shifted(origin) for r in records]
    slo = getattr(scenario, "slo", None) or context.slo
    serving: dict | None = None
    if isinstance(plan, ServerPlan):
        records, serving = _measured_window(plan, records)
    metrics = compute_metrics(records, context.percentiles, slo)
    summary = telemetry.summary()
    valid, invalid_reason = assess(
        summary,
        duration_s=metrics.duration_s,
        completed=metrics.completed,
        min_duration_s=scenario.min_duration_s or None,
        min_requests=scenario.min_requests or None,
        invalidating_reasons=INVALIDATING_THROTTLE_REASONS - context.tolerated_throttle_reasons,
    )
    if serving is not None and slo is not None:
        met, reason = slo_holds(metrics, slo)
        serving.update(slo=slo.model_dump(mode="json"), slo_met=met, slo_reason=reason)

    findings: dict = {}
    if isinstance(plan, DeterminismPlan):
        results, determinism_summary = analyze_determinism(plan, list(zip(plan.cases, outputs, strict=True)))
        findings = {"determinism": results, "determinism_summary": determinism_summary}
        if determinism_summary.tier == "incomplete":
            valid = False
            invalid_reason = "; ".join(filter(None, (invalid_reason, determinism_summary.reason)))

    roofline = None
    if context.profile is not None and context.model_facts and metrics.completed:
        ok = [r for r in records if r.ok]
        if isinstance(plan, ServerPlan):
            in_flight = metrics.mean_concurrency or 1.0  # continuous batching: the effective concurrency
        else:
            in_flight = len(records) / len(outputs)  # sequences decoded together, as planned
        roofline = scenario_roofline(
            metrics,
            {
                **context.model_facts,
                "mean_prompt_tokens": metrics.total_input_tokens / len(ok),
                "mean_output_tokens": metrics.total_output_tokens / len(ok),
                "concurrency": in_flight,
            },
            context.profile,
        )
    settings = scenario.model_dump(mode="json")
    if isinstance(plan, ServerPlan) and plan.label is not None:
        settings.update(sweep=scenario.name, point=plan.label, rate=plan.rate)
    result = ScenarioResult(
        name=plan.name if isinstance(plan, ServerPlan) else scenario.name,
        kind="server" if isinstance(plan, ServerPlan) else scenario.kind,
        settings=settings,
        started_at=started_at,
        ended_at=ended_at,
        metrics=metrics,
        memory=memory.stats(),
        energy=telemetry.energy(metrics.total_output_tokens),
        valid=valid,
        invalid_reason=invalid_reason,
        records=tuple(records),
        telemetry=summary.model_dump(mode="json"),
        roofline=roofline,
        serving=serving,
        **findings,
    )
    return result, telemetry.samples


def _measured_window(plan: ServerPlan, records: list[RequestRecord]) -> tuple[list[RequestRecord], dict]:
    """Drop requests sent in the warm-up window (the first ``warmup_s``) or the cool-down window (the
    last ``cooldown_s`` before the final send), where the load is still ramping up or draining."""
    scenario = plan.scenario
    sends = [r.send_time for r in records]
    first, last = min(sends), max(sends)
    early = [r for r in records if r.send_time - first < scenario.warmup_s]
    late = [
        r
        for r in records
        if r.send_time - first >= scenario.warmup_s and last - r.send_time < scenario.cooldown_s
    ]
    excluded = {id(r) for r in (*early, *late)}
    kept = [r for r in records if id(r) not in excluded]
    if not kept:
        raise UserError(
            f"warmup_s={scenario.warmup_s:g} and cooldown_s={scenario.cooldown_s:g} leave no measured "
            f"request out of {len(records)} sent over {last - first:.2f} s",
            path=None,
            field=f"{scenario.name}.warmup_s",
        )
    span = max(r.send_time for r in kept) - min(r.send_time for r in kept)
    serving = {
        "arrival": scenario.arrival if plan.rate is not None else "all-at-once",
        "burstiness": scenario.burstiness,
        "target_rate": plan.rate,
        "achieved_send_rate": (len(kept) - 1) / span if span > 0 and len(kept) > 1 else None,
        "max_concurrency": plan.max_concurrency,
        "point": plan.label,
        "excluded_warmup": len(early),
        "excluded_cooldown": len(late),
        "sent": len(records),
    }
    return kept, serving


def execute_sweep(
    scenario: SweepScenario,
    sources: PromptSources,
    backend: Backend,
    context: MeasureContext,
    observer: RunObserver,
    index: int,
    total: int,
) -> Iterator[tuple[ScenarioResult, list[TelemetrySample]]]:
    """Synchronous (one request in flight), then maximum throughput (all at once), then ``points``
    rates evenly spaced between the two measured request rates; every point is yielded (and stored)
    as it ends, then a ``sweep`` summary naming the highest rate at which the SLO held."""
    points: list[ScenarioResult] = []

    def run_point(rate: float | None, concurrency: int | None, label: str, warmup: bool) -> ScenarioResult:
        plan = plan_load(
            scenario, sources, rate=rate, max_concurrency=concurrency, label=label, warmup=warmup
        )
        observer.scenario_started(plan, index, total)
        return execute_plan(plan, backend, context, observer)

    for rate, concurrency, label, warmup in (
        (None, 1, "sync", True),
        (None, scenario.max_concurrency, "throughput", False),
    ):
        result, samples = run_point(rate, concurrency, label, warmup)
        points.append(result)
        yield result, samples
    low, high = (p.metrics.request_throughput for p in points)
    if high > low > 0:
        for rate in np.linspace(low, high, scenario.points + 2)[1:-1]:
            result, samples = run_point(float(rate), scenario.max_concurrency, f"rate-{rate:.3g}", False)
            points.append(result)
            yield result, samples
    yield sweep_summary(scenario, points), []


def sweep_summary(scenario: SweepScenario, points: list[ScenarioResult]) -> ScenarioResult:
    """One row for the whole sweep: the metrics of its best point within the SLO, and every point."""
    key = percentile_key(scenario.slo.percentile)
    table = []
    for point in points:
        serving = point.serving or {}
        metrics = point.metrics
        table.append(
            {
                "point": serving.get("point"),
                "target_rate": serving.get("target_rate"),
                "request_throughput": metrics.request_throughput,
                "output_throughput": metrics.output_throughput,
                "goodput": metrics.goodput,
                "slo_attainment": metrics.slo_attainment,
                f"ttft_{key}_ms": metrics.ttft_ms.percentiles.get(key),
                f"tpot_{key}_ms": metrics.tpot_ms.percentiles.get(key),
                "mean_concurrency": metrics.mean_concurrency,
                "slo_met": bool(serving.get("slo_met")) and point.valid,
                "slo_reason": serving.get("slo_reason") if point.valid else point.invalid_reason,
            }
        )
    meeting = [(row, point) for row, point in zip(table, points, strict=True) if row["slo_met"]]
    best_row, best = max(meeting, key=lambda pair: pair[0]["request_throughput"], default=(None, None))
    basis = best or points[0]
    summary = {
        "points": table,
        "slo": scenario.slo.model_dump(mode="json"),
        "max_rate_within_slo": None if best_row is None else best_row["request_throughput"],
        "best_point": None if best_row is None else best_row["point"],
        "best_target_rate": None if best_row is None else best_row["target_rate"],
    }
    return ScenarioResult(
        name=scenario.name,
        kind="sweep",
        settings=scenario.model_dump(mode="json"),
        started_at=points[0].started_at,
        ended_at=points[-1].ended_at,
        metrics=basis.metrics,
        memory=basis.memory,
        energy=basis.energy,
        valid=best is not None,
        invalid_reason=None if best is not None else f"no point met the SLO ({table[0]['slo_reason']})",
        serving={"sweep": summary},
    )


_BYTES_PER_VALUE = {"float32": 4, "bfloat16": 2, "float16": 2, "float8_e4m3fn": 1, "int8": 1}


def _model_facts(info: BackendInfo) -> dict:
    """What the roofline needs about the model, from what the backend reported after loading."""
    architecture = info.settings.get("architecture") or {}
    bytes_per_value = _BYTES_PER_VALUE.get(info.dtype)
    if not info.parameters or bytes_per_value is None:
        return {}
    return {
        "parameters": info.parameters,
        "weight_bytes": info.parameters * bytes_per_value,
        "bytes_per_value": bytes_per_value,
        "dtype": {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(info.dtype, info.dtype),
        **architecture,
    }


def _profile_for(hardware: HardwareInfo) -> HardwareProfile | None:
    from atomabench.hardware import get_profile

    return get_profile(hardware.profile_id) if hardware.profile_id else None
