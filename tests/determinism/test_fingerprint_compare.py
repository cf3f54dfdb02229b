"""Fingerprint verdicts on hand-built fingerprints: settings, model identity, near-ties, classes."""

from __future__ import annotations

from datetime import UTC, datetime

from atomabench.determinism.fingerprint import CanaryOutput, Fingerprint, compare_fingerprints

ENV = {"hardware_class": "generic-cpu", "gpu_count": 0, "engine": "transformers", "engine_version": "5.19",
       "model": "smollm2-135m", "model_digest": "abc", "dtype": "float32", "device": "cpu",
       "batch_invariant": False}  # fmt: skip


def fingerprint(tokens=(1, 2, 3), margins=(1.0, 0.05, 1.0), output_tokens=3, top_k=5, **env) -> Fingerprint:
    canary = CanaryOutput(
        prompt_id="c", prompt="p", output_token_ids=tokens, margins=margins, logprob_hash="h"
    )
    return Fingerprint(
        created_at=datetime.now(UTC), atomabench_version="0.1.0", environment={**ENV, **env},
        output_tokens=output_tokens, top_k=top_k, token_hash=str(tokens), logprob_hash="h",
        canaries=(canary,),
    )  # fmt: skip


def test_identical():
    assert compare_fingerprints(fingerprint(), fingerprint()).verdict == "identical"


def test_different_lengths_or_top_k_are_not_comparable():
    short = compare_fingerprints(
        fingerprint(), fingerprint(tokens=(1, 2), margins=(1.0, 0.05), output_tokens=2)
    )
    assert short.verdict == "mismatch" and "not comparable" in short.reason
    assert compare_fingerprints(fingerprint(), fingerprint(top_k=2)).verdict == "mismatch"


def test_same_weights_under_another_name_are_the_same_computation():
    renamed = compare_fingerprints(fingerprint(), fingerprint(model="/cache/SmolLM2-folder"))
    assert renamed.verdict == "identical"
    other_weights = compare_fingerprints(fingerprint(), fingerprint(model_digest="def"))
    assert other_weights.verdict == "mismatch" and "model_digest" in other_weights.reason


def test_near_tie_wide_and_other_class():
    near = compare_fingerprints(fingerprint(), fingerprint(tokens=(1, 9, 9), margins=(1.0, 0.04, 1.0)))
    assert near.verdict == "near-tie" and near.canaries[0].first_divergence == 1
    wide = compare_fingerprints(fingerprint(), fingerprint(tokens=(7, 2, 3), margins=(1.0, 0.05, 1.0)))
    assert wide.verdict == "mismatch" and "wide margin" in wide.reason
    other = compare_fingerprints(fingerprint(), fingerprint(tokens=(7, 2, 3), hardware_class="h100-sxm"))
    assert other.verdict == "different-class" and "hardware_class" in other.reason
