"""The llamacpp backend must not be slower than llama-cpp-python used by hand, on the bundled GGUF.

The bare side is what a user would write: one ``Llama`` with the backend's settings (model file,
n_ctx, n_batch, threads, GPU layers) and its high-level ``generate()`` token iterator, greedy, reset
before each request. That API serves one sequence at a time, so at batch N the bare side runs the N
requests one after another, while the backend sends them together through ``llama_batch``; the
batch-N ratio therefore also shows what multi-sequence batching buys. Rounds are interleaved and the
best round of each side is compared, so machine noise (which only ever adds time) cancels. The
logprobs-on cost is reported in extra_info (and printed), not asserted.
"""

from __future__ import annotations

import pytest
from overhead import NEW_TOKENS, bench_requests, best_throughputs

from atomabench.backends import BackendConfig, create_backend
from atomabench.records import RequestSpec, SamplingSettings

pytestmark = pytest.mark.slow

THREADS = 2


@pytest.fixture(scope="module")
def backend():
    pytest.importorskip("llama_cpp")
    loaded = create_backend(BackendConfig(kind="llamacpp", device="cpu", threads=THREADS))
    loaded.load()
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def bare_llama(backend):
    from llama_cpp import Llama

    settings = backend.info.settings
    llm = Llama(
        model_path=backend.info.model_path,
        n_ctx=settings["n_ctx"],
        n_batch=settings["n_batch"],
        n_threads=settings["threads"],
        n_threads_batch=settings["threads"],
        n_gpu_layers=settings["n_gpu_layers"],
        verbose=False,
    )
    yield llm
    llm.close()


def _bare_generate(llm, requests: list[RequestSpec]):
    """llama-cpp-python by hand: greedy ``generate()`` per request, cold KV cache each time."""

    def run() -> int:
        produced = 0
        for request in requests:
            llm.reset()  # no prefix reuse from the previous round: the backend starts cold too
            count = 0
            for _token in llm.generate(list(request.prompt_token_ids), temp=0.0, top_k=1, repeat_penalty=1.0):
                count += 1
                if count == NEW_TOKENS:
                    break
            produced += count
        return produced

    return run


@pytest.mark.parametrize("batch", [1, 8])
def test_backend_throughput_matches_bare_llama_cpp(benchmark, backend, bare_llama, batch):
    requests = bench_requests(backend.tokenize, batch)
    bare = _bare_generate(bare_llama, requests)

    def backend_run(logprobs: int = 0):
        def run() -> int:
            records = backend.generate(requests, SamplingSettings(logprobs=logprobs))
            return sum(r.output_tokens for r in records)

        return run

    assert bare() == batch * NEW_TOKENS  # also warms both paths
    assert backend_run()() == batch * NEW_TOKENS
    best = best_throughputs({"bare": bare, "backend": backend_run(), "logprobs5": backend_run(5)})
    ratio = best["backend"] / best["bare"]
    logprobs_cost = 1.0 - best["logprobs5"] / best["backend"]
    benchmark.extra_info.update(
        batch=batch,
        threads=THREADS,
        bare_tokens_per_s=round(best["bare"], 2),
        backend_tokens_per_s=round(best["backend"], 2),
        backend_over_bare=round(ratio, 4),
        logprobs5_tokens_per_s=round(best["logprobs5"], 2),
        logprobs5_slowdown=round(logprobs_cost, 4),
    )
    print(
        f"\nbatch {batch}: bare llama-cpp-python {best['bare']:.1f} tok/s, "
        f"backend {best['backend']:.1f} tok/s (ratio {ratio:.3f}), "
        f"logprobs=5 {best['logprobs5']:.1f} tok/s ({logprobs_cost:+.1%} slower)"
    )
    benchmark.pedantic(backend_run(), rounds=1, iterations=1)
    assert ratio >= 0.95, f"backend reached only {ratio:.3f}x the bare llama-cpp-python throughput"
