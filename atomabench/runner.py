"""Execute a suite: plan every scenario, run the plans on one backend, measure, store each as it ends.

The runner is the only room that holds a backend, trackers and the store at once, and it passes only
records between them. Every scenario is committed the moment it finishes, so an interrupt (Ctrl-C,
SIGTERM) loses at most the scenario in flight and the run is marked ``interrupted``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from atomabench import __version__
from atomabench.backends import Backend, BackendConfig, create_backend
from atomabench.determinism.plan import DeterminismPlan, plan_determinism
from atomabench.determinism.plan import analyze as analyze_determinism
from atomabench.measure.metrics import compute_metrics
from atomabench.measure.trackers import track_memory
from atomabench.records import HardwareInfo, RequestRecord, RunInfo, RunResult, ScenarioResult
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
        observer.stage(
            f"loading {backend_config.model} with {backend_config.kind} (the first run of a GGUF "
            "model converts it once, ~30 s)"
        )
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
        store.start_run(run)
        finished = 0
        try:
            for index, plan in enumerate(plans):
                observer.scenario_started(plan, index, len(plans))
                result = execute_plan(plan, backend, suite.percentiles, observer)
                store.add_scenario(run.run_id, result)
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


def execute_plan(
    plan: ScenarioPlan | DeterminismPlan,
    backend: Backend,
    percentiles: tuple[float, ...],
    observer: RunObserver,
) -> ScenarioResult:
    """Warm up, run the measured batches inside the trackers, then compute metrics (and findings)."""
    sampling = plan.scenario.sampling
    for batch in plan.warmup:
        backend.generate(batch, sampling)
        observer.requests_done(len(batch), warmup=True)

    batches = [case.requests for case in plan.cases] if isinstance(plan, DeterminismPlan) else plan.measured
    outputs: list[list[RequestRecord]] = []
    started_at = datetime.now(UTC)
    with track_memory(backend.reset_peak_device_memory, backend.peak_device_memory) as memory:
        for batch in batches:
            outputs.append(backend.generate(batch, sampling))
            observer.requests_done(len(batch), warmup=False)
    ended_at = datetime.now(UTC)

    findings: dict = {}
    valid, invalid_reason = True, None
    if isinstance(plan, DeterminismPlan):
        results, summary = analyze_determinism(plan, list(zip(plan.cases, outputs, strict=True)))
        findings = {"determinism": results, "determinism_summary": summary}
        if summary.tier == "incomplete":
            valid, invalid_reason = False, summary.reason

    records = [record for batch in outputs for record in batch]
    origin = min(r.send_time for r in records)
    records = [r.shifted(origin) for r in records]
    metrics = compute_metrics(records, percentiles)
    if metrics.completed == 0:
        valid, invalid_reason = False, "no request completed"
    return ScenarioResult(
        name=plan.scenario.name,
        kind=plan.scenario.kind,
        settings=plan.scenario.model_dump(mode="json"),
        started_at=started_at,
        ended_at=ended_at,
        metrics=metrics,
        memory=memory.stats(),
        valid=valid,
        invalid_reason=invalid_reason,
        records=tuple(records),
        **findings,
    )
