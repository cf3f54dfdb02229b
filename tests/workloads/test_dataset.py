"""Synthetic prompts and length sampling, with a character tokenizer so every token is checkable."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from atomabench.workloads.dataset import SyntheticPrompts, corpus_text, lengths_summary, sample_lengths
from atomabench.workloads.suite import LengthDistribution


def char_tokenize(text: str) -> list[int]:
    """One token per character: a prompt decodes back to the exact corpus text it was cut from."""
    return [ord(c) for c in text]


def decode(token_ids: tuple[int, ...]) -> str:
    return "".join(map(chr, token_ids))


@pytest.fixture(scope="module")
def prompts() -> SyntheticPrompts:
    return SyntheticPrompts(char_tokenize)


# ------------------------------------------------------------------------------------------- prompts


@pytest.mark.parametrize("length", [1, 7, 128, 1000])
def test_prompt_has_exact_length_and_comes_from_the_corpus(prompts: SyntheticPrompts, length: int) -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        prompt = prompts.prompt(length, rng)
        assert len(prompt) == length
        corpus = corpus_text()
        assert decode(prompt) in corpus + corpus  # a window of the corpus, possibly wrapping at its end


def test_prompts_longer_than_the_corpus_wrap_around() -> None:
    # a 20-token "corpus" 0..19: a 50-token prompt is 50 consecutive ids modulo 20
    cyclic = SyntheticPrompts(lambda _text: list(range(20)))
    prompt = cyclic.prompt(50, np.random.default_rng(0))
    assert len(prompt) == 50
    assert all(later == (earlier + 1) % 20 for earlier, later in itertools.pairwise(prompt))


def test_same_seed_same_prompts_and_requests_differ(prompts: SyntheticPrompts) -> None:
    first = [prompts.prompt(64, np.random.default_rng(11)) for _ in range(2)]
    assert first[0] == first[1]
    rng = np.random.default_rng(11)
    drawn = [prompts.prompt(64, rng) for _ in range(10)]
    assert drawn[0] == first[0]
    assert len(set(drawn)) == 10


def test_different_seeds_give_different_prompts(prompts: SyntheticPrompts) -> None:
    assert prompts.prompt(64, np.random.default_rng(1)) != prompts.prompt(64, np.random.default_rng(2))


def test_special_tokens_are_left_out_of_the_corpus() -> None:
    newline = ord("\n")
    without_newlines = SyntheticPrompts(char_tokenize, special_ids={newline})
    rng = np.random.default_rng(5)
    for _ in range(50):
        assert newline not in without_newlines.prompt(500, rng)


def test_a_tokenizer_that_yields_almost_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="tokenized to almost nothing"):
        SyntheticPrompts(lambda _text: [1, 2, 3])


# ------------------------------------------------------------------------------------------ lengths


def test_fixed_lengths() -> None:
    fixed = LengthDistribution(dist="fixed", value=7)
    assert sample_lengths(fixed, 4, np.random.default_rng(0)) == [7, 7, 7, 7]


def test_uniform_lengths_cover_both_bounds_inclusively() -> None:
    lengths = sample_lengths(LengthDistribution(dist="uniform", min=3, max=5), 300, np.random.default_rng(0))
    assert len(lengths) == 300
    assert set(lengths) == {3, 4, 5}
    assert all(isinstance(n, int) for n in lengths)


def test_normal_lengths_are_clipped_to_min_and_max() -> None:
    # std 50 around 10 overshoots both bounds often, so clipping must put values exactly on them
    dist = LengthDistribution(dist="normal", mean=10, std=50, min=2, max=30)
    lengths = sample_lengths(dist, 500, np.random.default_rng(0))
    assert min(lengths) == 2
    assert max(lengths) == 30
    assert all(isinstance(n, int) for n in lengths)


def test_normal_lengths_without_bounds_are_at_least_one() -> None:
    unbounded = LengthDistribution(dist="normal", mean=5, std=100)
    lengths = sample_lengths(unbounded, 500, np.random.default_rng(0))
    assert min(lengths) == 1


def test_normal_with_zero_std_is_the_mean_rounded() -> None:
    dist = LengthDistribution(dist="normal", mean=12.4, std=0)
    assert sample_lengths(dist, 3, np.random.default_rng(0)) == [12, 12, 12]


def test_lengths_are_reproducible_for_a_seed() -> None:
    dist = LengthDistribution(dist="uniform", min=1, max=1000)
    first = sample_lengths(dist, 20, np.random.default_rng(42))
    assert first == sample_lengths(dist, 20, np.random.default_rng(42))
    assert first != sample_lengths(dist, 20, np.random.default_rng(43))


def test_lengths_summary() -> None:
    # mean (2 + 4 + 9) / 3 = 5
    assert lengths_summary([2, 4, 9]) == {"mean": 5.0, "min": 2, "max": 9}
