"""Pure comparisons of generated records against a batch-1 reference, and the tier they earn.

Tiers (DESIGN.md): A = bit-identical everywhere (exact commitments between nodes work); B = outputs
differ only where the top-1 and top-2 candidates were within ``near_tie_margin`` nats (a verifier's
teacher-forced re-scoring accepts them); fail = any repeat at batch 1 differs, or a token flipped
where the model was confident (margin at or above the threshold).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from atomabench.records import DeterminismResult, DeterminismSummary, RequestRecord, TokenLogprobs


def top_margin(step: TokenLogprobs) -> float | None:
    """Top-1 minus top-2 logprob at one step (None when fewer than two candidates were kept)."""
    if len(step.top) < 2:
        return None
    return step.top[0][1] - step.top[1][1]


def compare(
    reference: RequestRecord,
    candidate: RequestRecord,
    *,
    check: str,
    prompt_id: str,
    batch_size: int,
    position: int = 0,
    repeat: int = 0,
) -> DeterminismResult:
    """How ``candidate`` differs from ``reference``: first divergence, margin there, drift before it."""
    ref_tokens, cand_tokens = reference.output_token_ids, candidate.output_token_ids
    divergence = next(
        (i for i, (a, b) in enumerate(zip(ref_tokens, cand_tokens, strict=False)) if a != b), None
    )
    if divergence is None and len(ref_tokens) != len(cand_tokens):
        divergence = min(len(ref_tokens), len(cand_tokens))
    agreeing = len(ref_tokens) if divergence is None else divergence

    margin = max_delta = overlap = None
    if reference.logprobs is not None and candidate.logprobs is not None:
        ref_lp, cand_lp = reference.logprobs, candidate.logprobs
        agreeing = min(agreeing, len(ref_lp), len(cand_lp))
        if agreeing:
            max_delta = max(abs(ref_lp[i].logprob - cand_lp[i].logprob) for i in range(agreeing))
            overlap = sum(_overlap(ref_lp[i], cand_lp[i]) for i in range(agreeing)) / agreeing
        if divergence is not None and divergence < min(len(ref_lp), len(cand_lp)):
            margins = [
                m for m in (top_margin(ref_lp[divergence]), top_margin(cand_lp[divergence])) if m is not None
            ]
            margin = min(margins) if margins else None
    return DeterminismResult(
        check=check,  # type: ignore[arg-type]
        prompt_id=prompt_id,
        batch_size=batch_size,
        position=position,
        repeat=repeat,
        exact_match=divergence is None,
        first_divergence=divergence,
        margin_at_divergence=margin,
        max_abs_logprob_delta=max_delta,
        top_overlap=overlap,
        length_delta=len(cand_tokens) - len(ref_tokens),
    )


def _overlap(a: TokenLogprobs, b: TokenLogprobs) -> float:
    ids_a, ids_b = {t for t, _ in a.top}, {t for t, _ in b.top}
    return len(ids_a & ids_b) / max(len(ids_a), 1)


def unique_completions(
    reference: RequestRecord, records: Sequence[RequestRecord], *, prompt_id: str
) -> DeterminismResult:
    """The U check: N identical requests in one batch; how many distinct completions came back."""
    counts = Counter(r.output_hash for r in records)
    differing = [r for r in records if r.output_token_ids != reference.output_token_ids]
    # grade the most confident flip among the copies: one wide flip must not hide behind a near-tie
    worst = max(
        (compare(reference, r, check="U", prompt_id=prompt_id, batch_size=len(records)) for r in differing),
        key=lambda c: math.inf if c.margin_at_divergence is None else c.margin_at_divergence,
        default=None,
    )
    return DeterminismResult(
        check="U",
        prompt_id=prompt_id,
        batch_size=len(records),
        exact_match=not differing,
        first_divergence=worst.first_divergence if worst else None,
        margin_at_divergence=worst.margin_at_divergence if worst else None,
        max_abs_logprob_delta=worst.max_abs_logprob_delta if worst else None,
        top_overlap=worst.top_overlap if worst else None,
        length_delta=worst.length_delta if worst else 0,
        unique_completions=len(counts),
        samples=len(records),
        most_common_share=counts.most_common(1)[0][1] / len(records),
    )


def summarize(
    results: Sequence[DeterminismResult], near_tie_margin: float, skipped: Sequence[str] = ()
) -> DeterminismSummary:
    """The tier earned by a set of comparisons, with the reason spelled out."""
    compared = [r for r in results if r.skipped_reason is None]
    repeat_mismatches = sum(1 for r in compared if r.check == "R" and not r.exact_match)
    flips = [r for r in compared if not r.exact_match and r.check != "R"]
    wide = [r for r in flips if r.margin_at_divergence is None or r.margin_at_divergence >= near_tie_margin]
    near = [r for r in flips if r not in wide]
    unique_max = max(
        (r.unique_completions for r in compared if r.unique_completions is not None), default=None
    )

    if not compared:
        tier, reason = "incomplete", "no comparison could run"
    elif repeat_mismatches:
        tier, reason = "fail", f"{repeat_mismatches} repeat(s) of the same prompt at batch 1 differed"
    elif wide:
        first = wide[0]
        margin = "unknown" if first.margin_at_divergence is None else f"{first.margin_at_divergence:.4f}"
        tier = "fail"
        reason = (
            f"{len(wide)} flip(s) at a wide margin (first: prompt {first.prompt_id}, check {first.check}, "
            f"batch {first.batch_size}, token {first.first_divergence}, margin {margin} >= {near_tie_margin})"
        )
    elif near:
        tier = "B"
        reason = f"{len(near)} of {len(compared)} differed, all at near-ties (< {near_tie_margin} nats)"
    else:
        tier, reason = "A", f"all {len(compared)} comparisons bit-identical"
    return DeterminismSummary(
        tier=tier,
        reason=reason,
        near_tie_margin=near_tie_margin,
        comparisons=len(compared),
        exact=sum(1 for r in compared if r.exact_match),
        near_tie_flips=len(near),
        wide_flips=len(wide),
        repeat_mismatches=repeat_mismatches,
        unique_completions_max=unique_max,
        skipped=tuple(skipped),
    )
