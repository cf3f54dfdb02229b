"""Plan the determinism checks as batches to generate, and turn their outputs into findings.

For each needle prompt (a canary): R = the prompt alone at batch 1, ``repeats`` times (the first run is
the reference); B = the needle at the first, middle and last position among fillers of mixed lengths at
each batch size; U = ``concurrent`` identical copies in one batch; P = prefix cache cold vs warm, only
where the backend has a prefix cache (otherwise recorded as skipped, with the reason).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from atomabench.determinism.analyze import compare, summarize, unique_completions
from atomabench.determinism.canaries import canaries
from atomabench.records import DeterminismResult, DeterminismSummary, RequestRecord, RequestSpec
from atomabench.workloads.dataset import SyntheticPrompts, sample_lengths
from atomabench.workloads.suite import DeterminismScenario

POSITIONS = {"first": lambda size: 0, "middle": lambda size: size // 2, "last": lambda size: size - 1}


@dataclass(frozen=True)
class Case:
    """One batch to generate and which of its rows are the needle."""

    check: str
    prompt_id: str
    requests: tuple[RequestSpec, ...]
    needle_rows: tuple[int, ...]
    position: int = 0
    repeat: int = 0
    reset_prefix_cache: bool = False
    """Empty the engine's prefix cache before this batch (the cold half of P)."""


@dataclass(frozen=True)
class DeterminismPlan:
    scenario: DeterminismScenario
    cases: tuple[Case, ...]
    skipped: tuple[str, ...] = ()
    warmup: tuple[tuple[RequestSpec, ...], ...] = ()

    @property
    def measured_requests(self) -> int:
        return sum(len(case.requests) for case in self.cases)


def plan_determinism(
    scenario: DeterminismScenario,
    tokenize: Callable[[str], list[int]],
    fillers: SyntheticPrompts,
    *,
    prefix_cache: bool = False,
) -> DeterminismPlan:
    rng = np.random.default_rng(scenario.seed)
    cases: list[Case] = []
    serial = 0

    def spec(prompt_ids: Sequence[int], label: str) -> RequestSpec:
        nonlocal serial
        serial += 1
        return RequestSpec(
            request_id=f"{scenario.name}-{label}-{serial}",
            scenario=scenario.name,
            prompt_token_ids=tuple(prompt_ids),
            max_tokens=scenario.output_tokens,
            ignore_eos=True,
        )

    for canary in canaries()[: scenario.num_prompts]:
        needle = tokenize(canary.text)
        for repeat in range(scenario.repeats):
            cases.append(Case("R", canary.id, (spec(needle, f"{canary.id}-R{repeat}"),), (0,), repeat=repeat))
        for size in scenario.batch_sizes:
            if size == 1:
                continue  # batch 1 is the reference itself
            lengths = sample_lengths(scenario.filler_input_tokens, size - 1, rng)
            filler_ids = [fillers.prompt(n, rng) for n in lengths]
            for position in sorted({POSITIONS[name](size) for name in scenario.positions}):
                batch = [spec(ids, f"{canary.id}-filler") for ids in filler_ids]
                batch.insert(position, spec(needle, f"{canary.id}-B{size}p{position}"))
                cases.append(Case("B", canary.id, tuple(batch), (position,), position=position))
        if scenario.concurrent > 1:
            batch = tuple(spec(needle, f"{canary.id}-U{i}") for i in range(scenario.concurrent))
            cases.append(Case("U", canary.id, batch, tuple(range(scenario.concurrent))))
        if scenario.prefix_cache and prefix_cache:
            # A shared prefix of whole cache blocks (vLLM caches full blocks only: 16 tokens on CUDA,
            # 128 on CPU), emptied before the cold run so the warm run really reads from the cache.
            prompt = (*fillers.prompt(scenario.prefix_tokens, rng), *needle)
            for repeat in (0, 1):  # cold, then warm
                cases.append(
                    Case(
                        "P",
                        canary.id,
                        (spec(prompt, f"{canary.id}-P{repeat}"),),
                        (0,),
                        repeat=repeat,
                        reset_prefix_cache=repeat == 0,
                    )
                )

    skipped = ()
    if scenario.prefix_cache and not prefix_cache:
        skipped = ("P: this backend has no prefix cache, so cold and warm runs cannot differ",)
    return DeterminismPlan(scenario, tuple(cases), skipped)


def analyze(
    plan: DeterminismPlan, outputs: Sequence[tuple[Case, Sequence[RequestRecord]]]
) -> tuple[tuple[DeterminismResult, ...], DeterminismSummary]:
    """Compare every needle output with its prompt's first batch-1 run and tier the node."""
    references: dict[str, RequestRecord] = {}
    results: list[DeterminismResult] = []
    for case, records in outputs:
        needles = [records[row] for row in case.needle_rows]
        if case.check == "R" and case.repeat == 0:
            references[case.prompt_id] = needles[0]
            continue
        reference = references[case.prompt_id]
        if case.check == "U":
            results.append(unique_completions(reference, needles, prompt_id=case.prompt_id))
            continue
        if case.check == "P" and case.repeat == 0:
            references[f"{case.prompt_id}/P"] = needles[0]
            continue
        base = references[f"{case.prompt_id}/P"] if case.check == "P" else reference
        results.append(
            compare(
                base,
                needles[0],
                check=case.check,
                prompt_id=case.prompt_id,
                batch_size=len(records),
                position=case.position,
                repeat=case.repeat,
            )
        )
    return tuple(results), summarize(results, plan.scenario.near_tie_margin, plan.skipped)
