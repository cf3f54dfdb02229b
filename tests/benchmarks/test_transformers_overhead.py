"""The measuring must not slow what it measures: backend vs a bare ``generate`` on SmolLM2.

Both sides run the same model object, dtype, prompts, batch and greedy settings. Rounds are
interleaved and the best round of each side is compared, so machine noise (which only ever adds
time) cancels instead of deciding the result. The logprobs-on cost is measured the same way and
reported in the benchmark's extra_info (and printed), not asserted.
"""

from __future__ import annotations

import pytest
from overhead import NEW_TOKENS, bench_requests, best_throughputs

from atomabench.backends import BackendConfig, create_backend
from atomabench.records import RequestSpec, SamplingSettings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm():
    backend = create_backend(BackendConfig(model="smollm2-135m", dtype="float32", device="cpu"))
    backend.load()
    yield backend
    backend.close()


def _bare_generate(backend, requests: list[RequestSpec]):
    """What a user would write by hand: one generate() call, no streamer, no hooks."""
    import torch
    from transformers import GenerationConfig

    ids = torch.tensor([r.prompt_token_ids for r in requests])
    config = GenerationConfig(
        max_new_tokens=NEW_TOKENS,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=backend.tokenizer.pad_token_id,
    )

    def run() -> int:
        with torch.inference_mode():
            out = backend.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config
            )
        return int(out[:, ids.shape[1] :].numel())

    return run


@pytest.mark.parametrize("batch", [1, 32])
def test_backend_throughput_matches_bare_generate(benchmark, smollm, batch):
    requests = bench_requests(smollm.tokenize, batch)
    bare = _bare_generate(smollm, requests)

    def backend_run(logprobs: int = 0):
        def run() -> int:
            records = smollm.generate(requests, SamplingSettings(logprobs=logprobs))
            return sum(r.output_tokens for r in records)

        return run

    bare()  # warm both paths (first call allocates and initialises oneDNN)
    assert backend_run()() == batch * NEW_TOKENS
    best = best_throughputs({"bare": bare, "backend": backend_run(), "logprobs5": backend_run(5)})
    ratio = best["backend"] / best["bare"]
    logprobs_cost = 1.0 - best["logprobs5"] / best["backend"]
    benchmark.extra_info.update(
        batch=batch,
        bare_tokens_per_s=round(best["bare"], 2),
        backend_tokens_per_s=round(best["backend"], 2),
        backend_over_bare=round(ratio, 4),
        logprobs5_tokens_per_s=round(best["logprobs5"], 2),
        logprobs5_slowdown=round(logprobs_cost, 4),
    )
    print(
        f"\nbatch {batch}: bare {best['bare']:.1f} tok/s, backend {best['backend']:.1f} tok/s "
        f"(ratio {ratio:.3f}), logprobs=5 {best['logprobs5']:.1f} tok/s ({logprobs_cost:+.1%} slower)"
    )
    benchmark.pedantic(backend_run(), rounds=1, iterations=1)
    assert ratio >= 0.95, f"backend reached only {ratio:.3f}x the bare generate() throughput"
