"""Execute a suite: plan every scenario, run the plans on one backend, measure, store each as it ends.

The runner is the only room that holds a backend, trackers and the store at once, and it passes only
records between them. Every scenario is committed the moment it finishes, so an interrupt (Ctrl-C,
SIGTERM) loses at most the scenario in flight and the run is marked ``interrupted``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from atomabench import __version__
from atomabench.backends import Backend, BackendConfig, BackendInfo, create_backend
from atomabench.determinism.plan import DeterminismPlan, plan_determinism
from atomabench.determinism.plan import analyze as analyze_determinism
from atomabench.hardware.telemetry import TelemetrySample, track_telemetry
from atomabench.measure.metrics import compute_metrics
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
)
from atomabench.workloads.dataset import SyntheticPrompts
from atomabench.workloads.plan import ScenarioPlan, plan_scenario
from atomabench.workloads.suite import DeterminismScenario, Suite

if TYPE_CHECKING:
    from atomabench.store import Store


class RunObserver(Protocol):
    """Progress callbacks for a UI; every method is optional to implement meaningfully."""

    def stage(self, message: str) -> None: ...

    def scenario_started(self, plan: ScenarioPlan | DeterminismPlan, index: int, total: int) -> None: ...

    def requests_done(self, count: int, warmup: bool) -> None: ...

    def scenario_finished(self, result: ScenarioResult) -> None: ...


class SilentObserver:
    def stage(self, message: str) -> None:
        pass

    def scenario_started(self, plan: ScenarioPlan | DeterminismPlan, index: int, total: int) -> None:
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
    if hardware is None:
        from atomabench.hardware import probe

        observer.stage("probing hardware")
        hardware = probe()
    try:
        observer.stage(f"loading {backend_config.model} with {backend_config.kind}")
        info = backend.load()
        prompts = SyntheticPrompts(backend.tokenize, backend.special_token_ids())
        prefix_cache = bool(getattr(backend, "prefix_cache", False))
        plans = [
            plan_determinism(scenario, backend.tokenize, prompts, prefix_cache=prefix_cache)
            if isinstance(scenario, DeterminismScenario)
            else plan_scenario(scenario, prompts)
            for scenario in suite.scenarios
        ]

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
            # p99 is always computed: SLOs, the verdict and pricing are defined on it
            percentiles=tuple(sorted({*suite.percentiles, 99.0})),
            tolerated_throttle_reasons=frozenset(suite.tolerated_throttle_reasons),
            cpu_energy=hardware.accelerator == "cpu",
            telemetry_interval_s=suite.telemetry_interval_s,
            model_facts=_model_facts(info),
            profile=_profile_for(hardware),
        )
        store.start_run(run)
        finished = 0
        try:
            for index, plan in enumerate(plans):
                observer.scenario_started(plan, index, len(plans))
                result, samples = execute_plan(plan, backend, context, observer)
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
    cpu_energy: bool = True
    """Read RAPL package energy: only where the CPU is the accelerator, never as a GPU node's energy."""


def execute_plan(
    plan: ScenarioPlan | DeterminismPlan,
    backend: Backend,
    context: MeasureContext,
    observer: RunObserver,
) -> tuple[ScenarioResult, list[TelemetrySample]]:
    """Warm up, run the measured batches inside the trackers, then compute metrics (and findings).

    Returns the result and the raw telemetry samples (stored as a time series beside it).
    """
    scenario = plan.scenario
    sampling = scenario.sampling
    for batch in plan.warmup:
        backend.generate(batch, sampling)
        observer.requests_done(len(batch), warmup=True)

    batches = [case.requests for case in plan.cases] if isinstance(plan, DeterminismPlan) else plan.measured
    outputs: list[list[RequestRecord]] = []
    started_at = datetime.now(UTC)
    with (
        track_memory(backend.reset_peak_device_memory, backend.peak_device_memory) as memory,
        track_telemetry(context.telemetry_interval_s, cpu_energy=context.cpu_energy) as telemetry,
    ):
        for batch in batches:
            outputs.append(backend.generate(batch, sampling))
            observer.requests_done(len(batch), warmup=False)
    ended_at = datetime.now(UTC)

    records = [record for batch in outputs for record in batch]
    origin = min(r.send_time for r in records)
    records = [r.shifted(origin) for r in records]
    metrics = compute_metrics(records, context.percentiles)
    summary = telemetry.summary()
    valid, invalid_reason = assess(
        summary,
        duration_s=metrics.duration_s,
        completed=metrics.completed,
        min_duration_s=scenario.min_duration_s or None,
        min_requests=scenario.min_requests or None,
        invalidating_reasons=INVALIDATING_THROTTLE_REASONS - context.tolerated_throttle_reasons,
    )

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
        roofline = scenario_roofline(
            metrics,
            {
                **context.model_facts,
                "mean_prompt_tokens": metrics.total_input_tokens / len(ok),
                "mean_output_tokens": metrics.total_output_tokens / len(ok),
                "concurrency": len(records) / len(batches),  # sequences decoded together, as planned
            },
            context.profile,
        )
    result = ScenarioResult(
        name=scenario.name,
        kind=scenario.kind,
        settings=scenario.model_dump(mode="json"),
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
        **findings,
    )
    return result, telemetry.samples


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
