"""Turn a scenario into the exact requests to send, in batches or on an arrival schedule, warm-up first.

A plan is data: which requests, in which batches, or when each is sent. The runner executes it;
nothing here runs a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atomabench.records import RequestSpec, ScheduledRequest
from atomabench.workloads.arrivals import arrival_offsets
from atomabench.workloads.dataset import (
    DatasetPrompt,
    SyntheticPrompts,
    draw_dataset,
    load_dataset,
    sample_lengths,
)
from atomabench.workloads.suite import (
    OfflineScenario,
    ScenarioBase,
    ServerScenario,
    SingleStreamScenario,
    SweepScenario,
)


@dataclass(frozen=True)
class ScenarioPlan:
    scenario: ScenarioBase
    warmup: tuple[tuple[RequestSpec, ...], ...]
    measured: tuple[tuple[RequestSpec, ...], ...]

    @property
    def measured_requests(self) -> int:
        return sum(len(batch) for batch in self.measured)


@dataclass(frozen=True)
class ServerPlan:
    """A load: warm-up requests sent one by one, then the measured schedule under one arrival process.

    ``rate`` None means all at once; ``label`` names a sweep point (``sync``, ``throughput``, ``rate-…``).
    """

    scenario: ServerScenario | SweepScenario
    warmup: tuple[tuple[RequestSpec, ...], ...]
    """Batches of one: each warm-up request is sent alone, so compilation and caches settle first."""
    schedule: tuple[ScheduledRequest, ...]
    rate: float | None
    max_concurrency: int | None
    label: str | None = None

    @property
    def measured_requests(self) -> int:
        return len(self.schedule)

    @property
    def name(self) -> str:
        return self.scenario.name if self.label is None else f"{self.scenario.name}.{self.label}"


@dataclass
class PromptSources:
    """Where a scenario's prompts come from: the synthetic corpus, or a dataset loaded once per run."""

    synthetic: SyntheticPrompts
    tokenize: Callable[[str], list[int]]
    base_dir: Path | None = None
    """Relative ``dataset_path``s are resolved against this (the suite file's folder)."""
    _loaded: dict[tuple[str, str | None], list[DatasetPrompt]] = field(default_factory=dict)

    def dataset(self, scenario: ScenarioBase) -> list[DatasetPrompt]:
        path = None
        if scenario.dataset_path is not None:
            path = Path(scenario.dataset_path).expanduser()
            if not path.is_absolute() and self.base_dir is not None:
                path = self.base_dir / path
        key = (scenario.dataset, None if path is None else str(path))
        if key not in self._loaded:
            self._loaded[key] = load_dataset(scenario.dataset, path, self.tokenize)
        return self._loaded[key]


def build_requests(
    scenario: ScenarioBase,
    sources: PromptSources | SyntheticPrompts,
    count: int,
    rng: np.random.Generator,
    *,
    prefix: str = "",
    warmup: bool = False,
) -> list[RequestSpec]:
    """``count`` requests of ``scenario``: exact-length synthetic prompts or dataset prompts."""
    if isinstance(sources, SyntheticPrompts):
        synthetic, dataset = sources, None
    else:
        synthetic = sources.synthetic
        dataset = None if scenario.dataset == "synthetic" else sources.dataset(scenario)

    if dataset is None:
        assert scenario.input_tokens is not None and scenario.output_tokens is not None
        inputs = sample_lengths(scenario.input_tokens, count, rng)
        outputs = sample_lengths(scenario.output_tokens, count, rng)
        prompts: list[tuple[tuple[int, ...], str | None]] = [(synthetic.prompt(n, rng), None) for n in inputs]
    else:
        drawn = draw_dataset(dataset, count, rng)
        prompts = [(item.token_ids, item.text) for item in drawn]
        if scenario.output_tokens is not None:
            outputs = sample_lengths(scenario.output_tokens, count, rng)
        else:
            outputs = [item.output_len or 128 for item in drawn]
    return [
        RequestSpec(
            request_id=f"{scenario.name}-{prefix}{index}",
            scenario=scenario.name,
            prompt_token_ids=token_ids,
            prompt_text=text,
            max_tokens=n_out,
            ignore_eos=scenario.ignore_eos,
            warmup=warmup,
        )
        for index, ((token_ids, text), n_out) in enumerate(zip(prompts, outputs, strict=True))
    ]


def plan_scenario(scenario: ScenarioBase, prompts: PromptSources | SyntheticPrompts) -> ScenarioPlan:
    """Requests for ``scenario``; the same seed always gives the same prompts and lengths."""
    rng = np.random.default_rng(scenario.seed)
    if isinstance(scenario, OfflineScenario):
        batch_size, warmup_count = scenario.batch_size, scenario.warmup_batches * scenario.batch_size
    elif isinstance(scenario, SingleStreamScenario):
        batch_size, warmup_count = 1, scenario.warmup_requests
    else:  # pragma: no cover - every batch kind is handled above; loads use plan_load
        raise TypeError(f"no batch planner for scenario kind {scenario.kind!r}")

    warmup = build_requests(scenario, prompts, warmup_count, rng, prefix="warmup-", warmup=True)
    measured = build_requests(scenario, prompts, scenario.num_requests, rng)
    return ScenarioPlan(scenario, _batches(warmup, batch_size), _batches(measured, batch_size))


def plan_load(
    scenario: ServerScenario | SweepScenario,
    prompts: PromptSources | SyntheticPrompts,
    *,
    rate: float | None,
    max_concurrency: int | None,
    label: str | None = None,
    warmup: bool = True,
) -> ServerPlan:
    """The schedule of one load at ``rate`` (None: all at once). Every sweep point gets the same
    prompts (same seed), so points differ only in how the requests arrive."""
    rng = np.random.default_rng(scenario.seed)
    warmup_specs = build_requests(
        scenario, prompts, scenario.warmup_requests if warmup else 0, rng, prefix="warmup-", warmup=True
    )
    specs = build_requests(scenario, prompts, scenario.num_requests, rng)
    arrival_rng = np.random.default_rng([scenario.seed, 1])
    offsets = arrival_offsets(scenario.arrival, rate, len(specs), arrival_rng, burstiness=scenario.burstiness)
    if label is not None:
        specs = [spec.model_copy(update={"request_id": f"{label}-{spec.request_id}"}) for spec in specs]
    schedule = tuple(
        ScheduledRequest(spec=spec, arrival_s=offset) for spec, offset in zip(specs, offsets, strict=True)
    )
    warmup_batches = tuple((spec,) for spec in warmup_specs)
    return ServerPlan(scenario, warmup_batches, schedule, rate, max_concurrency, label)


def _batches(requests: list[RequestSpec], size: int) -> tuple[tuple[RequestSpec, ...], ...]:
    return tuple(tuple(requests[i : i + size]) for i in range(0, len(requests), size))
