"""Plans: the exact requests and batches a scenario asks for, warm-up first, reproducible by seed."""

from __future__ import annotations

import pytest

from atomabench.workloads.dataset import SyntheticPrompts
from atomabench.workloads.plan import ScenarioPlan, plan_scenario
from atomabench.workloads.suite import OfflineScenario, SingleStreamScenario


@pytest.fixture(scope="module")
def prompts() -> SyntheticPrompts:
    return SyntheticPrompts(lambda text: [ord(c) for c in text])


def offline(**overrides: object) -> OfflineScenario:
    settings: dict = {
        "name": "off",
        "kind": "offline",
        "num_requests": 10,
        "batch_size": 4,
        "warmup_batches": 2,
        "input_tokens": 8,
        "output_tokens": 5,
    }
    return OfflineScenario.model_validate({**settings, **overrides})


def single_stream(**overrides: object) -> SingleStreamScenario:
    settings: dict = {
        "name": "one",
        "kind": "single_stream",
        "num_requests": 3,
        "warmup_requests": 2,
        "input_tokens": 16,
        "output_tokens": 2,
    }
    return SingleStreamScenario.model_validate({**settings, **overrides})


def batch_sizes(batches: tuple[tuple, ...]) -> list[int]:
    return [len(batch) for batch in batches]


def test_offline_batches_and_warmup(prompts: SyntheticPrompts) -> None:
    # 2 warm-up batches of 4 = 8 warm-up requests; 10 measured requests in batches of 4, 4, 2
    plan = plan_scenario(offline(), prompts)
    assert isinstance(plan, ScenarioPlan)
    assert batch_sizes(plan.warmup) == [4, 4]
    assert batch_sizes(plan.measured) == [4, 4, 2]
    assert plan.measured_requests == 10

    warmup = [r for batch in plan.warmup for r in batch]
    measured = [r for batch in plan.measured for r in batch]
    assert [r.request_id for r in warmup] == [f"off-warmup-{i}" for i in range(8)]
    assert [r.request_id for r in measured] == [f"off-{i}" for i in range(10)]
    assert all(r.warmup for r in warmup)
    assert not any(r.warmup for r in measured)
    for request in warmup + measured:
        assert request.scenario == "off"
        assert request.prompt_tokens == 8
        assert request.max_tokens == 5
        assert request.ignore_eos is True


def test_offline_without_warmup(prompts: SyntheticPrompts) -> None:
    plan = plan_scenario(offline(warmup_batches=0, num_requests=8), prompts)
    assert plan.warmup == ()
    assert batch_sizes(plan.measured) == [4, 4]


def test_single_stream_sends_one_request_per_batch(prompts: SyntheticPrompts) -> None:
    plan = plan_scenario(single_stream(), prompts)
    assert batch_sizes(plan.warmup) == [1, 1]
    assert batch_sizes(plan.measured) == [1, 1, 1]
    assert [batch[0].request_id for batch in plan.warmup] == ["one-warmup-0", "one-warmup-1"]
    assert [batch[0].request_id for batch in plan.measured] == ["one-0", "one-1", "one-2"]
    assert [batch[0].warmup for batch in plan.warmup + plan.measured] == [True, True, False, False, False]
    assert all(batch[0].prompt_tokens == 16 and batch[0].max_tokens == 2 for batch in plan.measured)


def test_single_stream_without_warmup(prompts: SyntheticPrompts) -> None:
    plan = plan_scenario(single_stream(warmup_requests=0), prompts)
    assert plan.warmup == ()
    assert plan.measured_requests == 3


def test_ignore_eos_is_carried(prompts: SyntheticPrompts) -> None:
    plan = plan_scenario(single_stream(ignore_eos=False), prompts)
    assert [batch[0].ignore_eos for batch in plan.measured] == [False, False, False]


def test_sampled_lengths_stay_within_their_distributions(prompts: SyntheticPrompts) -> None:
    scenario = offline(
        num_requests=40,
        input_tokens={"dist": "uniform", "min": 20, "max": 30},
        output_tokens={"dist": "uniform", "min": 1, "max": 3},
    )
    requests = [r for batch in plan_scenario(scenario, prompts).measured for r in batch]
    assert all(20 <= r.prompt_tokens <= 30 for r in requests)
    assert all(1 <= r.max_tokens <= 3 for r in requests)
    assert len({r.prompt_tokens for r in requests}) > 1  # actually drawn, not one fixed value


def test_same_seed_gives_the_same_plan(prompts: SyntheticPrompts) -> None:
    first = plan_scenario(offline(seed=7), prompts)
    again = plan_scenario(offline(seed=7), prompts)
    assert first.warmup == again.warmup
    assert first.measured == again.measured


def test_other_seed_gives_other_prompts(prompts: SyntheticPrompts) -> None:
    first = plan_scenario(offline(seed=7), prompts).measured[0][0]
    other = plan_scenario(offline(seed=8), prompts).measured[0][0]
    assert first.prompt_token_ids != other.prompt_token_ids


def test_prompts_differ_across_requests(prompts: SyntheticPrompts) -> None:
    plan = plan_scenario(offline(), prompts)
    every = [r.prompt_token_ids for batch in plan.warmup + plan.measured for r in batch]
    assert len(set(every)) == 18  # 8 warm-up + 10 measured, no two alike
