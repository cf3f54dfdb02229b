"""The vllm backend on the bundled SmolLM2 (fp32): exact tokens, per-step times, logprobs, arrivals."""

from __future__ import annotations

import itertools
import time

import pytest

from atomabench.backends import BackendConfig, create_backend
from atomabench.errors import UserError
from atomabench.records import RequestSpec, SamplingSettings, ScheduledRequest

pytestmark = pytest.mark.vllm


def _spec(request_id: str, ids: list[int], max_tokens: int = 12) -> RequestSpec:
    return RequestSpec(
        request_id=request_id, scenario="t", prompt_token_ids=tuple(ids), max_tokens=max_tokens
    )


def test_unknown_option_wrong_type_and_threads_are_user_errors():
    with pytest.raises(UserError, match="unknown vllm option"):
        create_backend(BackendConfig(kind="vllm", options={"n_ctx": 512}))
    with pytest.raises(UserError, match="enable_prefix_caching has the wrong type"):
        create_backend(BackendConfig(kind="vllm", options={"enable_prefix_caching": "yes"}))
    with pytest.raises(UserError, match="VLLM_CPU_OMP_THREADS_BIND"):
        create_backend(BackendConfig(kind="vllm", threads=2))
    with pytest.raises(UserError, match="unknown dtype"):
        create_backend(BackendConfig(kind="vllm", dtype="int3"))


def test_batch_invariant_on_cpu_is_refused_before_the_engine_starts(monkeypatch):
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        pytest.skip("on a GPU batch_invariant runs; covered by test_vllm_runs")
    monkeypatch.setenv("VLLM_BATCH_INVARIANT", "0")  # restored after the test: load() sets it
    backend = create_backend(BackendConfig(kind="vllm", options={"batch_invariant": True}))
    started = time.perf_counter()
    with pytest.raises(UserError, match="batch_invariant is not supported by vLLM on CPU"):
        backend.load()
    assert time.perf_counter() - started < 30  # refused up front, not after minutes of warm-up
    assert backend.llm is None


@pytest.mark.slow
def test_load_reports_the_engine_as_it_really_is(vllm_backend):
    info = vllm_backend.info
    assert info.kind == "vllm" and info.engine_version.startswith("vllm 0.")
    assert (info.dtype, info.parameters) == ("float32", 134_515_008)  # same count as transformers
    settings = info.settings
    assert settings["attention_backend"]  # read from the worker's model runner, e.g. CPU_ATTN
    assert settings["enable_prefix_caching"] is True and vllm_backend.prefix_cache is True
    assert settings["batch_invariant"] is False
    assert settings["max_num_seqs"] == 64 and settings["max_model_len"] == 2048
    assert settings["kv_cache_tokens"] == settings["num_kv_blocks"] * settings["block_size"] > 2048
    assert settings["architecture"] == {"layers": 30, "kv_heads": 3, "head_dim": 64}
    if info.device == "cpu":
        assert settings["attention_backend"] == "CPU_ATTN"


@pytest.mark.slow
def test_generate_returns_exact_lengths_step_times_and_logprobs(vllm_backend):
    needle = vllm_backend.tokenize("The capital of France is")
    requests = [_spec(f"r{i}", needle + [100 + i] * i, max_tokens=8 + i) for i in range(4)]
    records = vllm_backend.generate(requests, SamplingSettings(logprobs=3))
    assert [r.request_id for r in records] == ["r0", "r1", "r2", "r3"]
    for i, record in enumerate(records):
        assert record.ok and record.output_tokens == len(record.output_token_ids) == 8 + i
        assert len(record.token_times) == record.output_tokens and record.batch_size == 4
        assert record.send_time < record.first_token_time <= record.end_time == record.token_times[-1]
        assert list(record.token_times) == sorted(record.token_times)
        assert len(record.logprobs) == record.output_tokens
        for token, step in zip(record.output_token_ids, record.logprobs, strict=True):
            assert len(step.top) == 3 and step.top[0][0] == token  # greedy: the chosen token is top-1
            assert step.logprob == pytest.approx(step.top[0][1])
    # all four were decoded together: their first 8 tokens share the same step stamps
    assert len({r.token_times[:8] for r in records}) == 1

    alone = vllm_backend.generate(requests[:1], SamplingSettings(logprobs=3))[0]
    assert alone.batch_size == 1 and alone.output_tokens == 8
    scored = vllm_backend.score(needle, alone.output_token_ids, top_k=2)
    assert len(scored) == 8
    for step, generated in zip(scored, alone.logprobs, strict=True):
        assert step.logprob == pytest.approx(generated.logprob, abs=1e-3)
        assert step.top[0][0] == generated.top[0][0]


@pytest.mark.slow
def test_serve_honours_arrivals_concurrency_and_records_failures(vllm_backend):
    ids = vllm_backend.tokenize("Once upon a time")
    schedule = [ScheduledRequest(spec=_spec(f"s{i}", ids, 6), arrival_s=0.4 * i) for i in range(4)]
    done: list[float] = []
    started = time.perf_counter()
    records = vllm_backend.serve(
        schedule, SamplingSettings(), on_done=lambda: done.append(time.perf_counter())
    )
    assert [r.request_id for r in records] == ["s0", "s1", "s2", "s3"]
    for item, record in zip(schedule, records, strict=True):
        assert record.ok and record.output_tokens == 6 and len(record.token_times) == 6
        assert record.send_time >= started + item.arrival_s - 1e-6  # never before its arrival
        assert record.send_time <= started + item.arrival_s + 0.05  # sent at arrival (client's view)
        assert record.first_token_time > record.send_time
    assert len(done) == 4 and sorted(done) == done  # progress: called once per request as it ends

    one_at_a_time = vllm_backend.serve(
        [ScheduledRequest(spec=_spec(f"c{i}", ids, 6), arrival_s=0.0) for i in range(3)],
        SamplingSettings(),
        max_concurrency=1,
    )
    for before, after in itertools.pairwise(one_at_a_time):
        assert after.send_time >= before.end_time  # the slot frees only when the previous one ends

    too_long = _spec("big", ids * 1000, 4)
    mixed = vllm_backend.serve(
        [
            ScheduledRequest(spec=too_long, arrival_s=0.0),
            ScheduledRequest(spec=_spec("ok", ids, 4), arrival_s=0.0),
        ],
        SamplingSettings(),
    )
    assert mixed[0].error and "maximum context length" in mixed[0].error and mixed[0].output_tokens == 0
    assert mixed[1].ok and mixed[1].output_tokens == 4
