"""Prompts with exact token lengths, cut from a bundled English corpus.

Like vLLM's random dataset, lengths are exact in tokens of the model under test; unlike random token
ids, windows of real prose give the model natural text, which matters for determinism findings (ties
in random-token soups are not representative). Windows start at seeded offsets so prompts differ and
no accidental prefix sharing inflates a prefix cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from atomabench.errors import UserError
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


# --------------------------------------------------------------------------------------------------
# Datasets of real prompts: the bundled set, ShareGPT JSON, JSONL of {prompt, output_len}


@dataclass(frozen=True)
class DatasetPrompt:
    """One prompt from a dataset, tokenized with the model under test, with its output length."""

    text: str
    token_ids: tuple[int, ...]
    output_len: int | None


# vLLM's ShareGPT sampling rules, so the same file yields the same kind of requests in both harnesses
SHAREGPT_MIN_TOKENS = 4
SHAREGPT_MAX_PROMPT_TOKENS = 1024
SHAREGPT_MAX_TOTAL_TOKENS = 2048


def load_dataset(
    kind: str,
    path: Path | None,
    tokenize: Callable[[str], list[int]],
) -> list[DatasetPrompt]:
    """Prompts of a ``bundled``, ``sharegpt`` or ``jsonl`` dataset, in file order.

    Errors name the file and line (JSONL) or entry (ShareGPT) at fault. ShareGPT entries are
    filtered as vLLM's benchmark does: the first human turn is the prompt, the reply's token count is
    the output length, and pairs shorter than 4 tokens or longer than 1024 / 2048 tokens are dropped.
    """
    if kind == "bundled":
        return _load_jsonl(package_data("prompts.jsonl"), tokenize)
    if path is None:
        raise UserError(f"dataset {kind!r} needs a file", field="dataset_path")
    if not path.is_file():
        raise UserError("no such dataset file", path=path, field="dataset_path")
    if kind == "jsonl":
        return _load_jsonl(path, tokenize)
    if kind == "sharegpt":
        return _load_sharegpt(path, tokenize)
    raise UserError(f"unknown dataset {kind!r}", field="dataset")


def _load_jsonl(path: Path, tokenize: Callable[[str], list[int]]) -> list[DatasetPrompt]:
    prompts: list[DatasetPrompt] = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"invalid JSON: {exc.msg}", path=path, line=number) from None
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"]:
            raise UserError("each line needs a non-empty string `prompt`", path=path, line=number)
        output_len = item.get("output_len")
        if output_len is not None and (
            not isinstance(output_len, int) or isinstance(output_len, bool) or output_len < 1
        ):
            raise UserError("`output_len` must be a positive integer", path=path, line=number)
        prompts.append(DatasetPrompt(item["prompt"], tuple(tokenize(item["prompt"])), output_len))
    if not prompts:
        raise UserError("the dataset has no prompts", path=path)
    return prompts


def _load_sharegpt(path: Path, tokenize: Callable[[str], list[int]]) -> list[DatasetPrompt]:
    try:
        entries = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise UserError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    if not isinstance(entries, list):
        raise UserError("a ShareGPT file is a JSON list of conversations", path=path)
    prompts: list[DatasetPrompt] = []
    for index, entry in enumerate(entries):
        turns = entry.get("conversations") if isinstance(entry, dict) else None
        if not isinstance(turns, list):
            raise UserError(f"entry {index} has no `conversations` list", path=path, field=f"[{index}]")
        if len(turns) < 2:
            continue
        try:
            prompt, reply = str(turns[0]["value"]), str(turns[1]["value"])
        except (KeyError, TypeError):
            raise UserError(
                f"entry {index}: each turn needs a `value`", path=path, field=f"[{index}].conversations"
            ) from None
        prompt_ids, output_len = tokenize(prompt), len(tokenize(reply))
        if len(prompt_ids) < SHAREGPT_MIN_TOKENS or output_len < SHAREGPT_MIN_TOKENS:
            continue
        if (
            len(prompt_ids) > SHAREGPT_MAX_PROMPT_TOKENS
            or len(prompt_ids) + output_len > SHAREGPT_MAX_TOTAL_TOKENS
        ):
            continue
        prompts.append(DatasetPrompt(prompt, tuple(prompt_ids), output_len))
    if not prompts:
        raise UserError("no usable conversations (after vLLM's length filters)", path=path)
    return prompts


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read dataset: {exc}", path=path) from None


def draw_dataset(
    prompts: Sequence[DatasetPrompt], count: int, rng: np.random.Generator
) -> list[DatasetPrompt]:
    """``count`` prompts in a seeded random order; a smaller dataset is cycled in fresh permutations."""
    drawn: list[DatasetPrompt] = []
    while len(drawn) < count:
        drawn.extend(prompts[int(i)] for i in rng.permutation(len(prompts)))
    return drawn[:count]
