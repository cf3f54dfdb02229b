"""Turn a scenario into the exact requests to send, in batches, warm-up first.

A plan is data: which requests, in which batches. The runner executes it; nothing here runs a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atomabench.records import RequestSpec
from atomabench.workloads.dataset import SyntheticPrompts, sample_lengths
from atomabench.workloads.suite import OfflineScenario, ScenarioBase, SingleStreamScenario


@dataclass(frozen=True)
class ScenarioPlan:
    scenario: ScenarioBase
    warmup: tuple[tuple[RequestSpec, ...], ...]
    measured: tuple[tuple[RequestSpec, ...], ...]

    @property
    def measured_requests(self) -> int:
        return sum(len(batch) for batch in self.measured)


def plan_scenario(scenario: ScenarioBase, prompts: SyntheticPrompts) -> ScenarioPlan:
    """Requests for ``scenario``; the same seed always gives the same prompts and lengths."""
    rng = np.random.default_rng(scenario.seed)
    if isinstance(scenario, OfflineScenario):
        batch_size, warmup_count = scenario.batch_size, scenario.warmup_batches * scenario.batch_size
    elif isinstance(scenario, SingleStreamScenario):
        batch_size, warmup_count = 1, scenario.warmup_requests
    else:  # pragma: no cover - every kind is handled above
        raise TypeError(f"no planner for scenario kind {scenario.kind!r}")

    def requests(count: int, prefix: str, warmup: bool) -> list[RequestSpec]:
        inputs = sample_lengths(scenario.input_tokens, count, rng)
        outputs = sample_lengths(scenario.output_tokens, count, rng)
        return [
            RequestSpec(
                request_id=f"{scenario.name}-{prefix}{index}",
                scenario=scenario.name,
                prompt_token_ids=prompts.prompt(n_in, rng),
                max_tokens=n_out,
                ignore_eos=scenario.ignore_eos,
                warmup=warmup,
            )
            for index, (n_in, n_out) in enumerate(zip(inputs, outputs, strict=True))
        ]

    warmup = requests(warmup_count, "warmup-", True)
    measured = requests(scenario.num_requests, "", False)
    return ScenarioPlan(scenario, _batches(warmup, batch_size), _batches(measured, batch_size))


def _batches(requests: list[RequestSpec], size: int) -> tuple[tuple[RequestSpec, ...], ...]:
    return tuple(tuple(requests[i : i + size]) for i in range(0, len(requests), size))
