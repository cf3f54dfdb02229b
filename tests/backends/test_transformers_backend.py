"""The transformers backend on the tiny random llama: records, timing shape, EOS, logprobs, errors."""

from __future__ import annotations

import math

import pytest

from atomabench.backends import BackendConfig, create_backend
from atomabench.errors import UserError
from atomabench.records import RequestSpec, SamplingSettings, hash_token_ids


def _request(rid: str, prompt: list[int], max_tokens: int, ignore_eos: bool = True) -> RequestSpec:
    return RequestSpec(
        request_id=rid,
        scenario="t",
        prompt_token_ids=tuple(prompt),
        max_tokens=max_tokens,
        ignore_eos=ignore_eos,
    )


def test_batch_records_have_one_timestamp_per_token(tiny_backend):
    requests = [_request("a", [10, 11, 12], 5), _request("b", list(range(20, 40)), 3)]
    records = tiny_backend.generate(requests, SamplingSettings())
    assert [r.request_id for r in records] == ["a", "b"]
    assert [r.output_tokens for r in records] == [5, 3]
    assert [r.prompt_tokens for r in records] == [3, 20]
    for position, record in enumerate(records):
        assert len(record.token_times) == len(record.output_token_ids) == record.output_tokens
        assert record.send_time < record.first_token_time == record.token_times[0]
        assert record.end_time == record.token_times[-1]
        assert list(record.token_times) == sorted(record.token_times)
        assert record.output_hash == hash_token_ids(record.output_token_ids)
        assert (record.batch_size, record.batch_position) == (2, position)
        assert record.error is None and record.logprobs is None
    # all rows of a static batch share decoding steps, so their first three step times are identical
    assert records[0].token_times[:3] == records[1].token_times


def test_greedy_is_repeatable_and_left_padding_does_not_change_a_row(tiny_backend):
    prompt = list(range(50, 62))
    alone = tiny_backend.generate([_request("x", prompt, 6)], SamplingSettings())[0]
    again = tiny_backend.generate([_request("x", prompt, 6)], SamplingSettings())[0]
    assert alone.output_token_ids == again.output_token_ids
    padded = tiny_backend.generate(
        [_request("x", prompt, 6), _request("y", [1] * 30, 6)], SamplingSettings()
    )[0]
    # same tokens at batch 2 with 18 pad positions; exact equality is what the determinism suite measures,
    # here we only require the padded row to still be a valid 6-token greedy completion
    assert padded.output_tokens == 6


def test_ignore_eos_false_cuts_at_the_first_eos(tiny_backend):
    eos = tiny_backend.eos_ids[0]
    record = tiny_backend.generate(
        [_request("x", [eos, eos, eos], 12, ignore_eos=False)], SamplingSettings()
    )[0]
    tokens = list(record.output_token_ids)
    if eos in tokens:
        assert tokens.index(eos) == len(tokens) - 1
    assert record.output_tokens == len(record.token_times) <= 12


def test_logprobs_match_the_chosen_tokens_and_do_not_change_them(tiny_backend):
    prompt = list(range(70, 80))
    plain = tiny_backend.generate([_request("x", prompt, 4)], SamplingSettings())[0]
    scored = tiny_backend.generate([_request("x", prompt, 4)], SamplingSettings(logprobs=3))[0]
    assert scored.output_token_ids == plain.output_token_ids
    assert scored.logprobs is not None and len(scored.logprobs) == 4
    for token, step in zip(scored.output_token_ids, scored.logprobs, strict=True):
        top_ids = [tid for tid, _ in step.top]
        top_values = [value for _, value in step.top]
        assert len(step.top) == 3
        assert top_ids[0] == token  # greedy picks the argmax
        assert math.isclose(step.logprob, top_values[0], rel_tol=0, abs_tol=1e-6)
        assert top_values == sorted(top_values, reverse=True) and top_values[0] <= 0.0


def test_sampling_is_reproducible_for_a_seed(tiny_backend):
    prompt = list(range(5, 15))
    sampling = SamplingSettings(temperature=1.0, seed=7)
    first = tiny_backend.generate([_request("x", prompt, 8)], sampling)[0]
    second = tiny_backend.generate([_request("x", prompt, 8)], sampling)[0]
    assert first.output_token_ids == second.output_token_ids


def test_tokenizer_round_trip(tiny_backend):
    ids = tiny_backend.tokenize("hello, world")
    assert len(ids) == len("hello, world")  # byte-level with no merges: one token per byte
    assert tiny_backend.detokenize(ids) == "hello, world"
    assert tiny_backend.vocab_size() == 259
    assert tiny_backend.peak_device_memory() == (None, None)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (BackendConfig(model="tiny-random-llama", dtype="float8"), "dtype"),
        (BackendConfig(model="tiny-random-llama", device="tpu"), "device"),
        (BackendConfig(model="tiny-random-llama", options={"warp": 9}), "options"),
        (BackendConfig(model="/no/such/model"), "model"),
        (BackendConfig(kind="nonsense"), "backend"),
    ],
)
def test_bad_backend_settings_are_user_errors(config, field):
    with pytest.raises(UserError) as caught:
        create_backend(config)
    assert caught.value.field == field


def test_a_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(UserError, match=r"config\.json"):
        create_backend(BackendConfig(model=str(tmp_path)))
    not_gguf = tmp_path / "weights.bin"
    not_gguf.write_bytes(b"x")
    with pytest.raises(UserError, match=r"\.gguf"):
        create_backend(BackendConfig(model=str(not_gguf)))
