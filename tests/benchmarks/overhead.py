"""Shared by the backend-overhead benchmarks: the same prompts and the same interleaved best-of timing.

Rounds alternate between the sides and each side keeps its best round, so machine noise (which only
ever adds time) cancels instead of deciding a ratio.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from atomabench.records import RequestSpec

PROMPT_TOKENS = 64
NEW_TOKENS = 32
ROUNDS = 3


def bench_requests(tokenize: Callable[[str], list[int]], batch: int) -> list[RequestSpec]:
    """``batch`` prompts of exactly PROMPT_TOKENS tokens, each asking for NEW_TOKENS."""
    corpus = tokenize("The committee met on Tuesday to discuss the budget for the coming year. " * 20)
    return [
        RequestSpec(
            request_id=str(i),
            scenario="bench",
            prompt_token_ids=tuple(corpus[i : i + PROMPT_TOKENS]),
            max_tokens=NEW_TOKENS,
        )
        for i in range(batch)
    ]


def best_throughputs(runs: dict[str, Callable[[], int]], rounds: int = ROUNDS) -> dict[str, float]:
    """Best tokens/s of each named run (a callable returning tokens produced) over interleaved rounds."""
    best: dict[str, float] = {name: 0.0 for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            tokens = run()
            best[name] = max(best[name], tokens / (time.perf_counter() - start))
    return best
