"""The protocol every engine implements, and the plain config object that selects one.

A backend only runs a model: it receives planned ``RequestSpec``s, submits them together, and returns
one ``RequestRecord`` per request with a timestamp for every token. It knows nothing about metrics,
trackers or storage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from atomabench.records import (
    RequestRecord,
    RequestSpec,
    SamplingSettings,
    ScheduledRequest,
    TokenLogprobs,
)


class BackendConfig(BaseModel):
    """Which engine, which model, and engine options (``options`` are engine-specific)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = "transformers"
    model: str = "smollm2-135m"
    dtype: str = "auto"
    device: str = "auto"
    threads: int | None = Field(default=None, ge=1)
    options: dict = Field(default_factory=dict)


class BackendInfo(BaseModel):
    """What a loaded backend reports about itself; stored with every run."""

    model_config = ConfigDict(frozen=True)

    kind: str
    engine_version: str
    model: str
    model_path: str | None = None
    model_source: str | None = None
    parameters: int | None = None
    dtype: str
    device: str
    settings: dict = Field(default_factory=dict)


def torch_peak_device_memory(device: str) -> tuple[int | None, str | None]:
    """Peak device bytes through torch's allocator, and where they were read; (None, None) on CPU,
    where the weights and caches live in host memory that the RSS tracker already covers."""
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated()), "torch.cuda.max_memory_allocated"
    if device == "mps":
        import torch

        return int(torch.mps.driver_allocated_memory()), "torch.mps.driver_allocated_memory (after batch)"
    return None, None


def reset_torch_peak_device_memory(device: str) -> None:
    """Start a new peak for :func:`torch_peak_device_memory` (MPS has no peak counter to reset)."""
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()


class HfTokenizerMethods:
    """The four tokenizer methods of ``Backend`` for engines that hold a Hugging Face tokenizer in
    ``self.tokenizer``: no special tokens added (prompts are exact token ids), none skipped."""

    tokenizer: Any

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=False)

    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def special_token_ids(self) -> set[int]:
        return set(self.tokenizer.all_special_ids)


@runtime_checkable
class Backend(Protocol):
    config: BackendConfig

    def load(self) -> BackendInfo:
        """Load the model; may take long. Returns what was loaded."""

    def tokenize(self, text: str) -> list[int]:
        """Token ids for ``text`` with this backend's tokenizer (no special tokens added)."""

    def detokenize(self, token_ids: Sequence[int]) -> str: ...

    def vocab_size(self) -> int: ...

    def special_token_ids(self) -> set[int]: ...

    def generate(self, requests: Sequence[RequestSpec], sampling: SamplingSettings) -> list[RequestRecord]:
        """Submit ``requests`` together (one batch) and return one record per request, same order."""

    def score(
        self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int], top_k: int = 5
    ) -> list[TokenLogprobs]:
        """Teacher-forced logprobs of claimed output tokens (for verification); may raise
        NotImplementedError where the engine cannot score."""

    def peak_device_memory(self) -> tuple[int | None, str | None]:
        """Peak device bytes since the last ``reset_peak_device_memory`` and where it was read."""

    def reset_peak_device_memory(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class ServingBackend(Backend, Protocol):
    """A backend that can also take requests as they arrive over time (server and sweep scenarios).

    Engines with continuous batching (vLLM, any OpenAI-compatible server) implement this; engines
    that only run static batches do not, and the runner refuses server scenarios for them.
    """

    def serve(
        self,
        schedule: Sequence[ScheduledRequest],
        sampling: SamplingSettings,
        *,
        max_concurrency: int | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> list[RequestRecord]:
        """Send each request no earlier than ``arrival_s`` after the call starts, with at most
        ``max_concurrency`` in flight (None: unlimited), and return one record per scheduled request in
        schedule order. A failed request (HTTP error, dropped stream, timeout, malformed data) is a
        record with ``error`` set, never an exception; ``send_time`` is when it was actually sent.
        ``on_done`` is called (cheaply, on the serving thread) as each request ends: progress only."""
