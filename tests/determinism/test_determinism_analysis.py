"""Pure determinism comparisons and tiers on hand-built records with known answers."""

from __future__ import annotations

import math

import pytest

from atomabench.determinism.analyze import compare, summarize, top_margin, unique_completions
from atomabench.records import DeterminismResult, RequestRecord, TokenLogprobs, hash_token_ids


def step(chosen: float, *top: tuple[int, float]) -> TokenLogprobs:
    return TokenLogprobs(logprob=chosen, top=tuple(top))


def record(tokens: list[int], steps: list[TokenLogprobs] | None) -> RequestRecord:
    return RequestRecord(
        request_id="r", scenario="d", prompt_tokens=3, output_tokens=len(tokens), send_time=0.0,
        first_token_time=0.1, token_times=tuple(0.1 * (i + 1) for i in range(len(tokens))),
        end_time=0.1 * len(tokens),
        output_token_ids=tuple(tokens), output_hash=hash_token_ids(tokens),
        logprobs=None if steps is None else tuple(steps),
    )  # fmt: skip


REFERENCE = record(
    [5, 6, 7, 8],
    [
        step(-0.10, (5, -0.10), (9, -2.50)),
        step(-0.20, (6, -0.20), (1, -1.20)),
        step(-0.69, (7, -0.69), (3, -0.70)),  # near-tie: margin 0.01
        step(-0.05, (8, -0.05), (2, -4.00)),
    ],
)


def test_identical_outputs_are_an_exact_match():
    result = compare(REFERENCE, REFERENCE, check="B", prompt_id="p", batch_size=8, position=7)
    assert result.exact_match and result.first_divergence is None and result.margin_at_divergence is None
    assert result.max_abs_logprob_delta == 0.0 and result.top_overlap == 1.0 and result.length_delta == 0
    assert (result.batch_size, result.position) == (8, 7)


def test_divergence_reports_index_margin_and_drift_before_it():
    candidate = record(
        [5, 6, 3, 2],
        [
            step(-0.11, (5, -0.11), (9, -2.40)),  # |Δ| = 0.01
            step(-0.23, (6, -0.23), (4, -1.30)),  # |Δ| = 0.03, top-2 id differs: overlap 1/2
            step(-0.70, (3, -0.70), (7, -0.705)),  # flipped; candidate margin 0.005
            step(-0.30, (2, -0.30), (8, -0.90)),
        ],
    )
    result = compare(REFERENCE, candidate, check="B", prompt_id="p", batch_size=4)
    assert not result.exact_match
    assert result.first_divergence == 2
    assert math.isclose(result.margin_at_divergence, 0.005, abs_tol=1e-12)  # min(0.01, 0.005)
    assert math.isclose(result.max_abs_logprob_delta, 0.03, abs_tol=1e-12)
    assert math.isclose(result.top_overlap, (1.0 + 0.5) / 2)


def test_length_difference_without_token_difference_diverges_at_the_shorter_end():
    shorter = record([5, 6], REFERENCE.logprobs[:2])
    result = compare(REFERENCE, shorter, check="B", prompt_id="p", batch_size=2)
    # the shorter run has no step at index 2, so no margin can be read there
    assert (result.first_divergence, result.length_delta, result.margin_at_divergence) == (2, -2, None)
    assert result.max_abs_logprob_delta == 0.0


def test_unique_completions_counts_distinct_outputs():
    other = record([5, 6, 3, 8], REFERENCE.logprobs)
    result = unique_completions(REFERENCE, [REFERENCE, other, REFERENCE, REFERENCE], prompt_id="p")
    assert (result.check, result.unique_completions, result.samples) == ("U", 2, 4)
    assert result.most_common_share == 0.75 and not result.exact_match and result.first_divergence == 2


def test_top_margin():
    assert math.isclose(top_margin(REFERENCE.logprobs[0]), 2.4)
    assert top_margin(step(-0.1, (5, -0.1))) is None


def finding(check: str, exact: bool, margin: float | None = None, **extra) -> DeterminismResult:
    return DeterminismResult(
        check=check, prompt_id="p", batch_size=2, exact_match=exact,
        first_divergence=None if exact else 3, margin_at_divergence=margin, **extra,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("results", "tier", "reason"),
    [
        ([finding("R", True), finding("B", True)], "A", "all 2 comparisons bit-identical"),
        (
            [finding("R", True), finding("B", False, 0.02), finding("B", True)],
            "B",
            "1 of 3 differed, all at near-ties (< 0.1 nats)",
        ),
        (
            [finding("R", True), finding("B", False, 0.02), finding("B", False, 0.5)],
            "fail",
            "1 flip(s) at a wide margin",
        ),
        (
            [finding("R", False, 0.001), finding("B", True)],
            "fail",
            "1 repeat(s) of the same prompt at batch 1 differed",
        ),
        ([finding("B", False, None)], "fail", "margin unknown"),
        ([finding("P", True, skipped_reason="no cache")], "incomplete", "no comparison could run"),
    ],
)
def test_tiers(results, tier, reason):
    summary = summarize(results, 0.1, skipped=("P: skipped",))
    assert summary.tier == tier
    assert reason in summary.reason
    assert summary.skipped == ("P: skipped",)
    assert summary.near_tie_margin == 0.1


def test_u_grades_the_most_confident_flip_among_the_copies():
    near = record(
        [5, 6, 3, 8], [*REFERENCE.logprobs[:2], step(-0.70, (3, -0.70), (7, -0.705)), REFERENCE.logprobs[3]]
    )
    wide = record([9, 6, 7, 8], [step(-3.0, (5, -0.1), (9, -3.0)), *REFERENCE.logprobs[1:]])
    result = unique_completions(REFERENCE, [REFERENCE, near, wide, REFERENCE], prompt_id="p")
    assert result.first_divergence == 0 and math.isclose(result.margin_at_divergence, 2.4)
    assert summarize([result], 0.1).tier == "fail"
