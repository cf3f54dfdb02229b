"""Datasets: the bundled prompt set, ShareGPT JSON with vLLM's filters, JSONL with file:line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from atomabench.errors import UserError
from atomabench.workloads.dataset import SyntheticPrompts, draw_dataset, load_dataset
from atomabench.workloads.plan import PromptSources, build_requests
from atomabench.workloads.suite import parse_suite


def words(text: str) -> list[int]:
    """A tokenizer with one token per word, so lengths are countable by eye."""
    return [len(word) for word in text.split()]


def test_bundled_prompts_ship_with_the_package():
    prompts = load_dataset("bundled", None, words)
    assert len(prompts) == 40
    assert all(p.text and p.token_ids and p.output_len and p.output_len > 0 for p in prompts)


def test_jsonl_reads_prompts_and_output_lengths(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "one two three", "output_len": 5}\n\n{"prompt": "four"}\n')
    first, second = load_dataset("jsonl", path, words)
    assert (first.text, first.token_ids, first.output_len) == ("one two three", (3, 3, 5), 5)
    assert (second.text, second.output_len) == ("four", None)


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ('{"prompt": "a"}\n{"prompt": \n', 2, "invalid JSON"),
        ('{"prompt": "a"}\n{"text": "b"}\n', 2, "each line needs a non-empty string `prompt`"),
        ('{"prompt": "a", "output_len": 0}\n', 1, "`output_len` must be a positive integer"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, content, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(UserError) as caught:
        load_dataset("jsonl", path, words)
    assert caught.value.path == str(path) and caught.value.line == line
    assert caught.value.message.startswith(message)


def test_sharegpt_uses_first_turns_and_vllm_length_filters(tmp_path):
    long_reply = " ".join(["w"] * 2100)
    entries = [
        {"conversations": [{"from": "human", "value": "a b c d e"}, {"from": "gpt", "value": "f g h i"}]},
        {"conversations": [{"from": "human", "value": "too short"}, {"from": "gpt", "value": "x y z w"}]},
        {"conversations": [{"from": "human", "value": "a b c d"}, {"from": "gpt", "value": long_reply}]},
        {"conversations": [{"from": "human", "value": "lonely turn"}]},
    ]
    path = tmp_path / "share.json"
    path.write_text(json.dumps(entries))
    (kept,) = load_dataset("sharegpt", path, words)
    assert kept.text == "a b c d e" and kept.output_len == 4


def test_sharegpt_with_nothing_usable_is_an_error(tmp_path):
    path = tmp_path / "share.json"
    path.write_text(json.dumps([{"conversations": [{"value": "a"}, {"value": "b"}]}]))
    with pytest.raises(UserError, match="no usable conversations"):
        load_dataset("sharegpt", path, words)


def test_a_small_dataset_is_cycled_in_seeded_permutations():
    prompts = load_dataset("bundled", None, words)
    drawn = draw_dataset(prompts, 100, np.random.default_rng(3))
    assert len(drawn) == 100 and len({p.text for p in drawn[:40]}) == 40
    assert drawn == draw_dataset(prompts, 100, np.random.default_rng(3))


def test_requests_from_a_dataset_keep_text_and_dataset_lengths(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"prompt": "one two", "output_len": 7}\n')
    suite = parse_suite(
        '[[scenarios]]\nname = "s"\nkind = "server"\nnum_requests = 3\ndataset = "jsonl"\n'
        'dataset_path = "p.jsonl"\n',
        tmp_path / "suite.toml",
    )
    sources = PromptSources(SyntheticPrompts(words, set()), words, base_dir=tmp_path)
    specs = build_requests(suite.scenarios[0], sources, 3, np.random.default_rng(0))
    assert [(s.prompt_text, s.prompt_token_ids, s.max_tokens) for s in specs] == [("one two", (3, 3), 7)] * 3


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ('dataset = "jsonl"\n', "scenarios[0].dataset_path", "dataset 'jsonl' needs `dataset_path`"),
        ('dataset = "bundled"\ninput_tokens = 8\n', "scenarios[0].input_tokens", "brings its own prompts"),
        ("input_tokens = 8\n", "scenarios[0].output_tokens", "synthetic prompts need `output_tokens`"),
    ],
)
def test_dataset_settings_are_validated(body, field, message):
    with pytest.raises(UserError) as caught:
        parse_suite(f'[[scenarios]]\nname = "s"\nkind = "server"\nnum_requests = 3\n{body}', "x.toml")
    assert caught.value.field == field and message in caught.value.message
