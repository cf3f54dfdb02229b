"""The per-engine ε of verify: a 0.16-nat honest gap passes llama.cpp's default and fails the strict one."""

from __future__ import annotations

from atomabench.determinism.verify import DEFAULT_EPSILON, default_epsilon, judge
from atomabench.records import TokenLogprobs

# claimed token 7 at logprob -0.86; this node's argmax is token 3 at -0.70: a gap of 0.16 nats
SCORES = [TokenLogprobs(logprob=-0.86, top=((3, -0.70), (7, -0.86)))]


def test_engine_defaults():
    assert default_epsilon("llamacpp") == 0.25
    assert (
        default_epsilon("transformers") == default_epsilon("vllm") == default_epsilon(None) == DEFAULT_EPSILON
    )
    assert DEFAULT_EPSILON == 0.1


def test_a_gap_between_the_two_defaults_is_judged_by_the_engine_epsilon():
    strict = judge([7], SCORES, default_epsilon("transformers"), "c")
    lenient = judge([7], SCORES, default_epsilon("llamacpp"), "c")
    assert (strict.accepted, strict.first_rejected, strict.epsilon) == (False, 0, 0.1)
    assert (lenient.accepted, lenient.near_tie_tokens, lenient.epsilon) == (True, 1, 0.25)
    assert abs(lenient.max_gap - 0.16) < 1e-12
