"""Prompts with exact token lengths, cut from a bundled English corpus.

Like vLLM's random dataset, lengths are exact in tokens of the model under test; unlike random token
ids, windows of real prose give the model natural text, which matters for determinism findings (ties
in random-token soups are not representative). Windows start at seeded offsets so prompts differ and
no accidental prefix sharing inflates a prefix cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

from atomabench.paths import package_data
from atomabench.workloads.suite import LengthDistribution


@cache
def corpus_text() -> str:
    return package_data("corpus.txt").read_text(encoding="utf-8")


class SyntheticPrompts:
    """Draws prompts of exact token lengths from the corpus, tokenized once per tokenizer."""

    def __init__(self, tokenize: Callable[[str], list[int]], special_ids: set[int] | None = None) -> None:
        tokens = [t for t in tokenize(corpus_text()) if t not in (special_ids or set())]
        if len(tokens) < 16:
            raise ValueError("the corpus tokenized to almost nothing; is the tokenizer broken?")
        self._tokens = np.asarray(tokens, dtype=np.int64)

    def prompt(self, length: int, rng: np.random.Generator) -> tuple[int, ...]:
        """``length`` consecutive corpus tokens from a random offset, wrapping around the corpus end."""
        start = int(rng.integers(0, len(self._tokens)))
        index = (start + np.arange(length)) % len(self._tokens)
        return tuple(int(t) for t in self._tokens[index])


def sample_lengths(dist: LengthDistribution, count: int, rng: np.random.Generator) -> list[int]:
    """``count`` lengths from ``dist``; normal draws are rounded and clipped to [min or 1, max]."""
    if dist.dist == "fixed":
        assert dist.value is not None
        return [dist.value] * count
    if dist.dist == "uniform":
        assert dist.min is not None and dist.max is not None
        return [int(x) for x in rng.integers(dist.min, dist.max + 1, size=count)]
    assert dist.mean is not None and dist.std is not None
    low = dist.min or 1
    high = dist.max or np.iinfo(np.int32).max
    return [int(x) for x in np.clip(np.rint(rng.normal(dist.mean, dist.std, size=count)), low, high)]


def lengths_summary(lengths: Sequence[int]) -> dict[str, float]:
    array = np.asarray(lengths)
    return {"mean": float(array.mean()), "min": int(array.min()), "max": int(array.max())}
