"""The llamacpp backend: settings checks and pure helpers (fast), then the bundled GGUF (slow).

The slow tests load SmolLM2-135M-Instruct Q4_1 through llama.cpp once per module (well under a
second) and generate a few tokens per test; they skip when llama-cpp-python is not installed.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from atomabench.backends import BackendConfig, create_backend
from atomabench.backends.llamacpp_backend import (
    parse_system_info,
    quantization_type,
    sample_token,
    token_logprobs,
)
from atomabench.errors import UserError
from atomabench.records import RequestSpec, SamplingSettings, hash_token_ids

PROSE = "The committee met on Tuesday to discuss the budget for the coming year, and the chair opened by "


def _request(rid: str, prompt: list[int], max_tokens: int, ignore_eos: bool = True) -> RequestSpec:
    return RequestSpec(
        request_id=rid,
        scenario="t",
        prompt_token_ids=tuple(prompt),
        max_tokens=max_tokens,
        ignore_eos=ignore_eos,
    )


# ------------------------------------------------------------------------------ settings (no model)
@pytest.mark.parametrize(
    ("config", "field"),
    [
        (BackendConfig(kind="llamacpp", dtype="float16"), "dtype"),
        (BackendConfig(kind="llamacpp", device="tpu"), "device"),
        (BackendConfig(kind="llamacpp", options={"warp": 9}), "options"),
        (BackendConfig(kind="llamacpp", options={"seed": 1}), "options"),
        (BackendConfig(kind="llamacpp", options={"n_ctx": "big"}), "options"),
        (BackendConfig(kind="llamacpp", options={"n_ctx": True}), "options"),
        (BackendConfig(kind="llamacpp", options={"n_batch": 0}), "options"),
        (BackendConfig(kind="llamacpp", options={"n_gpu_layers": -2}), "options"),
        (BackendConfig(kind="llamacpp", model="tiny-random-llama"), "model"),
        (BackendConfig(kind="llamacpp", model="/no/such/model.gguf"), "model"),
    ],
)
def test_bad_llamacpp_settings_are_user_errors(config, field):
    with pytest.raises(UserError) as caught:
        create_backend(config)
    assert caught.value.field == field


def test_a_hugging_face_folder_is_refused_with_a_gguf_hint(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match=r"needs a \.gguf") as caught:
        create_backend(BackendConfig(kind="llamacpp", model=str(tmp_path)))
    assert caught.value.field == "model" and caught.value.path == str(tmp_path)


def test_a_missing_llama_cpp_install_names_the_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a),
    )
    with pytest.raises(UserError, match=r"atomabench\[llamacpp\]") as caught:
        create_backend(BackendConfig(kind="llamacpp"))
    assert caught.value.field == "backend"


# ------------------------------------------------------------------------------------ pure helpers
def test_system_info_is_split_into_sections():
    text = "CPU : SSE3 = 1 | AVX2 = 1 | LLAMAFILE = 1 | CUDA : ARCHS = 900 | USE_GRAPHS = 1 | "
    assert parse_system_info(text) == {
        "CPU": {"SSE3": "1", "AVX2": "1", "LLAMAFILE": "1"},
        "CUDA": {"ARCHS": "900", "USE_GRAPHS": "1"},
    }
    assert parse_system_info("") == {}


@pytest.mark.parametrize(
    ("metadata", "name", "expected"),
    [
        ({"general.file_type": "3"}, "x.gguf", "Q4_1"),
        ({"general.file_type": "15"}, "x.gguf", "Q4_K_M"),
        ({"general.file_type": "1024"}, "SmolLM2-135M-Instruct.Q4_K_M.gguf", "Q4_K_M"),
        ({}, "llama-7b-q8_0.gguf", "Q8_0"),
        ({}, "model-f16.gguf", "F16"),
        ({}, "weights.gguf", "unknown"),
    ],
)
def test_quantization_comes_from_metadata_then_file_name(metadata, name, expected):
    assert quantization_type(metadata, Path(name)) == expected


def test_token_logprobs_is_a_log_softmax_with_the_top_k_best_first():
    logits = np.log(np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)) + 7.0  # probs 0.1, 0.2, 0.3, 0.4
    step = token_logprobs(logits, chosen=1, k=2)
    assert math.isclose(step.logprob, math.log(0.2), abs_tol=1e-6)
    assert [tid for tid, _ in step.top] == [3, 2]
    assert [round(value, 6) for _, value in step.top] == [round(math.log(0.4), 6), round(math.log(0.3), 6)]
    tied = token_logprobs(np.array([1.0, 1.0, 0.0]), chosen=0, k=3)
    assert [tid for tid, _ in tied.top] == [0, 1, 2]  # equal logits: lower id first, as argmax picks


def test_sampling_follows_temperature_top_k_and_top_p():
    logits = np.array([0.0, math.log(3.0), -1.0, -50.0])  # at temperature 1: 0.2, 0.6, 0.07, ~0
    rng = np.random.default_rng(0)
    assert {sample_token(logits, SamplingSettings(temperature=1.0, top_k=1), rng) for _ in range(50)} == {1}
    assert {sample_token(logits, SamplingSettings(temperature=1.0, top_p=0.5), rng) for _ in range(50)} == {1}
    # temperature 0.5 squares the odds of tokens 0 and 1: 1 : 9; top_k=2 drops the rest
    draws = [sample_token(logits, SamplingSettings(temperature=0.5, top_k=2), rng) for _ in range(4000)]
    assert set(draws) == {0, 1}
    assert abs(draws.count(1) / len(draws) - 0.9) < 0.02
    same_seed = [
        sample_token(logits, SamplingSettings(temperature=1.0), np.random.default_rng(5)) for _ in range(3)
    ]
    assert len(set(same_seed)) == 1


# ------------------------------------------------------------------------------- the bundled GGUF
@pytest.fixture(scope="module")
def smollm():
    pytest.importorskip("llama_cpp")
    backend = create_backend(BackendConfig(kind="llamacpp", device="cpu", threads=2))
    backend.load()
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def prompt(smollm) -> list[int]:
    return smollm.tokenize(PROSE)


@pytest.mark.slow
def test_load_reports_quantization_build_and_settings(smollm):
    info = smollm.info
    assert (info.kind, info.model, info.model_source) == ("llamacpp", "smollm2-135m", "bundled-gguf")
    assert info.engine_version.startswith("llama-cpp-python 0.3.")
    assert info.dtype == info.settings["quantization"] == "Q4_1"
    assert info.parameters == 134_515_008  # the same count transformers reports for SmolLM2-135M
    assert info.device == "cpu" and info.settings["n_gpu_layers"] == 0
    assert info.settings["threads"] == 2 and info.settings["n_ctx"] == 2048
    assert info.settings["batching"] == "llama_batch" and info.settings["n_seq_max"] >= 64
    assert "CPU" in info.settings["build_features"]
    assert info.model_path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert smollm.vocab_size() == 49152
    assert smollm.eos_ids[0] == 2 and {0, 1, 2} <= smollm.special_token_ids()  # endoftext, im_start, im_end
    assert smollm.peak_device_memory() == (None, None)


@pytest.mark.slow
def test_tokenizer_round_trip(smollm):
    ids = smollm.tokenize("hello, world")
    assert smollm.detokenize(ids) == "hello, world"
    assert smollm.tokenize("<|im_end|>") == [2]  # special tokens in text map to their ids, as in HF


@pytest.mark.slow
def test_batch_records_have_exact_counts_and_one_timestamp_per_token(smollm, prompt):
    requests = [_request("a", prompt, 5), _request("b", prompt[:7], 3), _request("c", prompt[3:], 1)]
    records = smollm.generate(requests, SamplingSettings())
    assert [r.request_id for r in records] == ["a", "b", "c"]
    assert [r.output_tokens for r in records] == [5, 3, 1]
    assert [r.prompt_tokens for r in records] == [len(prompt), 7, len(prompt) - 3]
    for position, record in enumerate(records):
        assert len(record.token_times) == len(record.output_token_ids) == record.output_tokens
        assert record.send_time < record.first_token_time == record.token_times[0]
        assert record.end_time == record.token_times[-1]
        assert list(record.token_times) == sorted(record.token_times)
        assert record.output_hash == hash_token_ids(record.output_token_ids)
        assert (record.batch_size, record.batch_position) == (3, position)
        assert record.error is None and record.logprobs is None
    # one llama_decode per step serves all rows: the three first tokens come from one prefill
    assert records[2].token_times[0] < records[0].token_times[1]


@pytest.mark.slow
def test_greedy_batch_one_is_repeatable_and_matches_bare_llama_generate(smollm, prompt):
    first = smollm.generate([_request("x", prompt, 8)], SamplingSettings())[0]
    again = smollm.generate([_request("x", prompt, 8)], SamplingSettings())[0]
    assert first.output_token_ids == again.output_token_ids
    # the bare high-level API on the same model: a fresh single-sequence context, greedy sampler
    import llama_cpp

    bare = llama_cpp.Llama(
        model_path=smollm.info.model_path, n_ctx=2048, n_threads=2, n_threads_batch=2, verbose=False
    )
    try:
        expected = []
        for token in bare.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0):
            expected.append(token)
            if len(expected) == 8:
                break
    finally:
        bare.close()
    assert list(first.output_token_ids) == expected


@pytest.mark.slow
def test_logprobs_top1_is_the_greedy_token_and_do_not_change_it(smollm, prompt):
    plain = smollm.generate([_request("x", prompt, 6)], SamplingSettings())[0]
    scored = smollm.generate([_request("x", prompt, 6)], SamplingSettings(logprobs=3))[0]
    assert scored.output_token_ids == plain.output_token_ids
    assert scored.logprobs is not None and len(scored.logprobs) == 6
    for token, step in zip(scored.output_token_ids, scored.logprobs, strict=True):
        top_ids = [tid for tid, _ in step.top]
        top_values = [value for _, value in step.top]
        assert len(step.top) == 3 and top_ids[0] == token
        assert step.logprob == top_values[0]
        assert top_values == sorted(top_values, reverse=True) and top_values[0] <= 0.0


@pytest.mark.slow
def test_ignore_eos_false_stops_at_and_keeps_the_eos(smollm):
    chat = smollm.tokenize("<|im_start|>user\nSay OK.<|im_end|>\n<|im_start|>assistant\n")
    cut = smollm.generate([_request("x", chat, 40, ignore_eos=False)], SamplingSettings())[0]
    full = smollm.generate([_request("x", chat, 40, ignore_eos=True)], SamplingSettings())[0]
    assert 2 in cut.output_token_ids, "the instruct model answers and ends its turn with <|im_end|>"
    assert cut.output_token_ids[-1] == 2 and cut.output_token_ids.count(2) == 1
    assert full.output_tokens == 40  # ignore_eos decodes on past the EOS...
    assert full.output_token_ids[: cut.output_tokens] == cut.output_token_ids  # ...without masking it


@pytest.mark.slow
def test_sampling_is_seeded_per_request(smollm, prompt):
    sampling = SamplingSettings(temperature=1.0, seed=7)
    first = smollm.generate([_request("x", prompt, 8)], sampling)[0]
    again = smollm.generate([_request("x", prompt, 8)], sampling)[0]
    other = smollm.generate([_request("x", prompt, 8)], SamplingSettings(temperature=1.0, seed=8))[0]
    assert first.output_token_ids == again.output_token_ids
    assert first.output_token_ids != other.output_token_ids


@pytest.mark.slow
def test_score_agrees_with_greedy_generation(smollm, prompt):
    generated = smollm.generate([_request("x", prompt, 8)], SamplingSettings(logprobs=5))[0]
    scored = smollm.score(prompt, generated.output_token_ids, top_k=5)
    assert len(scored) == 8
    # the first token's logits come from a prefill of the prompt on both sides
    assert abs(scored[0].logprob - generated.logprobs[0].logprob) < 1e-3
    for token, teacher, step in zip(generated.output_token_ids, scored, generated.logprobs, strict=True):
        # later ones: one-row decode kernels vs the many-row prefill kernels of Q4_1 on CPU differ by up
        # to ~0.16 nats here (docs/llamacpp.md), never enough to move a token with a clear margin
        assert abs(teacher.logprob - step.logprob) < 0.25
        margin = step.top[0][1] - step.top[1][1]
        if margin > 0.5:
            assert teacher.top[0][0] == token  # argmax of the teacher-forced pass is the greedy token
    assert [t.top[0][0] for t in scored] == list(generated.output_token_ids)  # true for this prompt
    assert smollm.score(prompt, []) == []


@pytest.mark.slow
def test_a_batch_larger_than_the_kv_cache_runs_in_turns_and_oversized_requests_fail(prompt):
    small = create_backend(BackendConfig(kind="llamacpp", device="cpu", threads=2, options={"n_ctx": 256}))
    small.load()
    try:
        assert small.n_ctx == 256
        requests = [_request(str(i), prompt, 60) for i in range(6)]  # 6 x (prompt + 59) cells > 256
        records = small.generate(requests, SamplingSettings())
        assert [r.output_tokens for r in records] == [60] * 6
        # 3 fit at once (3 x 79 cells <= 256); the last had to wait for cells: its first token comes after
        # the first request finished, while the third started with the first
        assert records[-1].first_token_time > records[0].end_time
        assert records[2].first_token_time < records[0].token_times[1]
        too_long = small.generate(
            [_request("big", prompt, 300), _request("ok", prompt, 2)], SamplingSettings()
        )
        assert "n_ctx is 256" in too_long[0].error and too_long[0].output_tokens == 0
        assert too_long[1].error is None and too_long[1].output_tokens == 2
    finally:
        small.close()


@pytest.mark.slow
def test_gpu_devices_need_a_build_with_offload():
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python build can offload to a GPU")
    backend = create_backend(BackendConfig(kind="llamacpp", device="cuda"))
    with pytest.raises(UserError, match="no GPU offload") as caught:
        backend.load()
    assert caught.value.field == "device"


@pytest.mark.slow
def test_a_refused_decode_fails_the_batch_and_leaves_the_backend_usable(smollm, prompt, monkeypatch):
    import llama_cpp

    monkeypatch.setattr(llama_cpp, "llama_decode", lambda ctx, batch: -3)  # what a failed allocation returns
    failed = smollm.generate([_request("a", prompt, 4), _request("b", prompt, 4)], SamplingSettings())
    assert [r.error for r in failed] == ["llama_decode returned -3 for a step of 40 tokens"] * 2
    for record in failed:
        assert record.output_tokens == 0 and record.first_token_time is None
        assert record.end_time >= record.send_time
    monkeypatch.undo()
    assert smollm.generate([_request("a", prompt, 4)], SamplingSettings())[0].output_tokens == 4
