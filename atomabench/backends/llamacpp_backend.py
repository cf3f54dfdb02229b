"""llama.cpp through llama-cpp-python: GGUF files as they are, several sequences per ``llama_decode``.

Most heterogeneous nodes (gaming GPUs, MacBooks, plain servers) serve small quantized models through
llama.cpp, so this backend loads a ``.gguf`` directly (no conversion to a Hugging Face folder).

Batching: llama-cpp-python's high-level ``Llama.generate`` serves one sequence at a time, so a batch
goes through llama.cpp's own multi-sequence API instead: one ``llama_batch`` per step carrying the next
token of every running sequence (each with its own ``seq_id`` in a unified KV cache), the way
llama-server batches its slots. Prompts are prefilled together, in chunks of ``n_batch`` tokens. A
sequence is admitted when the KV cache has room for its prompt plus its output budget, so a batch larger
than ``n_ctx`` holds runs as many sequences at once as fit and starts the rest as others finish.

Tokens are chosen in Python from the raw logits of each step (argmax for greedy, a seeded numpy draw
otherwise), which gives exact token ids, one ``perf_counter`` stamp per token and logprobs from the
same logits, only computed when asked for. The ``Llama`` object owns the model, the tokenizer and the
GGUF metadata; its own single-sequence context is kept tiny and unused.
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np

from atomabench.backends.base import BackendConfig, BackendInfo
from atomabench.errors import UserError
from atomabench.models import resolve_model
from atomabench.records import (
    RequestRecord,
    RequestSpec,
    SamplingSettings,
    TokenLogprobs,
    hash_token_ids,
)

DEVICES = ("auto", "cpu", "cuda", "mps")
OPTIONS = ("n_ctx", "n_batch", "n_gpu_layers")
DEFAULT_N_CTX = 2048
DEFAULT_N_BATCH = 512
HOLDER_N_CTX = 256
"""Cells of the ``Llama`` object's own context, which only exists because ``Llama`` always makes one."""

# llama.h ``enum llama_ftype`` (the GGUF ``general.file_type``): the quantization a file was made with.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M",
    18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S",
    25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M",
    32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
}  # fmt: skip
_QUANT_IN_NAME = re.compile(r"(?<![A-Za-z0-9])(I?Q\d_[A-Z0-9_]*[A-Z0-9]|BF16|F16|F32)(?![A-Za-z0-9])", re.I)
# llama_print_system_info sections that are accelerators (everything else runs on the host CPU).
_GPU_SECTIONS = {"CUDA": "cuda", "METAL": "metal", "VULKAN": "vulkan", "HIP": "rocm", "SYCL": "sycl"}


_Row = tuple[int, int, int, bool]
"""One row of a ``llama_batch``: token id, position in its sequence, seq_id, whether to keep logits."""


class _DecodeFailed(Exception):
    """llama_decode refused a step (out of memory, aborted); the unfinished requests are failed."""


@dataclass(slots=True)
class _Sequence:
    """One request of a batch while it runs: its KV slot, what it has produced, and its sampler."""

    position: int
    request: RequestSpec
    seq_id: int = -1
    prefilled: bool = False
    tokens: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    logprobs: list[TokenLogprobs] = field(default_factory=list)
    rng: np.random.Generator | None = None
    error: str | None = None

    @property
    def cells(self) -> int:
        """KV cells it can occupy: the prompt plus every output token but the last (never decoded)."""
        return self.request.prompt_tokens + self.request.max_tokens - 1


class LlamaCppBackend:
    """GGUF models on llama.cpp (CPU, CUDA, Metal, ... whatever the installed build supports)."""

    def __init__(self, config: BackendConfig) -> None:
        if config.dtype != "auto":
            raise UserError(
                f"dtype {config.dtype!r} does not apply to llamacpp: the quantization comes from the GGUF "
                "file; leave dtype at auto",
                field="dtype",
            )
        if config.device not in DEVICES:
            raise UserError(
                f"unknown device {config.device!r}; choose one of {', '.join(DEVICES)}", field="device"
            )
        self.options = _checked_options(config.options)
        self.model_spec = resolve_model(config.model)  # fails fast on a bad path, before anything runs
        if self.model_spec.source not in ("bundled-gguf", "gguf"):
            raise UserError(
                "llamacpp needs a .gguf model file (or smollm2-135m, the bundled GGUF); "
                f"{config.model!r} is not available as GGUF",
                path=self.model_spec.location,
                field="model",
            )
        if importlib.util.find_spec("llama_cpp") is None:
            raise UserError(
                "the llamacpp backend needs llama-cpp-python: pip install 'atomabench[llamacpp]'",
                field="backend",
            )
        self.config = config
        self.llm: Any = None
        self.info: BackendInfo | None = None
        self.eos_ids: list[int] = []
        self._special_ids: set[int] = set()
        self._ctx: Any = None
        self._memory: Any = None
        self._batch: Any = None
        self._n_vocab = 0
        self.n_ctx = 0
        self.n_batch = 0
        self.n_seq_max = 0

    # ------------------------------------------------------------------------------------------ load
    def load(self) -> BackendInfo:
        import llama_cpp

        system_info = llama_cpp.llama_print_system_info().decode(errors="replace")
        features = parse_system_info(system_info)
        gpu_layers = self._gpu_layers(bool(llama_cpp.llama_supports_gpu_offload()))
        threads = self.config.threads or default_threads()
        n_batch = self.options.get("n_batch", DEFAULT_N_BATCH)
        path = self.model_spec.location
        assert path is not None
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(path),
                n_gpu_layers=gpu_layers,
                n_ctx=HOLDER_N_CTX,
                n_batch=min(n_batch, HOLDER_N_CTX),
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except ValueError as exc:  # llama.cpp could not read it: truncated, not a GGUF, unknown arch
            raise UserError(f"llama.cpp cannot load this model: {exc}", path=path, field="model") from exc
        self._open_context(llama_cpp, n_batch)
        self._n_vocab = int(self.llm.n_vocab())
        self._scan_vocab(llama_cpp)
        metadata = dict(self.llm.metadata)
        quantization = quantization_type(metadata, path)
        gpu = next((name for section, name in _GPU_SECTIONS.items() if section in features), None)
        self.info = BackendInfo(
            kind="llamacpp",
            engine_version=f"llama-cpp-python {package_version('llama-cpp-python')}",
            model=self.model_spec.name,
            model_path=str(path),
            model_source=self.model_spec.source,
            parameters=int(llama_cpp.llama_model_n_params(self.llm.model)),
            dtype=quantization,
            device=gpu if gpu and gpu_layers != 0 else "cpu",
            settings={
                "quantization": quantization,
                "threads": threads,
                "n_ctx": self.n_ctx,
                "n_batch": self.n_batch,
                "n_ubatch": int(llama_cpp.llama_n_ubatch(self._ctx)),
                "n_gpu_layers": gpu_layers,
                "n_seq_max": self.n_seq_max,
                "kv_unified": True,
                "batching": "llama_batch",
                "sampling": "argmax (greedy) or a numpy draw seeded per request from the raw logits",
                "build_features": features,
                "gpu_offload_supported": bool(llama_cpp.llama_supports_gpu_offload()),
                "model_size_bytes": int(llama_cpp.llama_model_size(self.llm.model)),
                "architecture": metadata.get("general.architecture"),
                "source_file": str(path),
            },
        )
        return self.info

    def _gpu_layers(self, offload_supported: bool) -> int:
        wanted = self.config.device
        if wanted in ("cuda", "mps") and not offload_supported:
            raise UserError(
                f"device {wanted} requested but this llama-cpp-python build has no GPU offload; "
                "reinstall it with CMAKE_ARGS for your GPU (docs/llamacpp.md)",
                field="device",
            )
        if "n_gpu_layers" in self.options:
            layers = self.options["n_gpu_layers"]
            if layers != 0 and wanted == "cpu":
                raise UserError("n_gpu_layers offloads to a GPU but device is cpu", field="options")
            if layers != 0 and not offload_supported:
                raise UserError(
                    "n_gpu_layers asks for GPU offload but this llama-cpp-python build has none",
                    field="options",
                )
            return layers
        return -1 if wanted != "cpu" and offload_supported else 0

    def _open_context(self, llama_cpp: Any, n_batch: int) -> None:
        """A context of our own: the Llama object's has room for one sequence only."""
        params = llama_cpp.llama_context_params.from_buffer_copy(self.llm.context_params)
        params.n_ctx = self.options.get("n_ctx", DEFAULT_N_CTX)
        params.n_batch = n_batch
        params.n_ubatch = min(n_batch, DEFAULT_N_BATCH)  # the same rule Llama applies to its own context
        params.n_seq_max = int(llama_cpp.llama_max_parallel_sequences())
        params.kv_unified = True  # one pool of n_ctx cells shared by however many sequences run
        ctx = llama_cpp.llama_init_from_model(self.llm.model, params)
        if not ctx:
            raise UserError(
                f"llama.cpp could not create a context with n_ctx={params.n_ctx} (out of memory?)",
                field="options",
            )
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self.n_ctx = int(llama_cpp.llama_n_ctx(ctx))
        self.n_batch = int(llama_cpp.llama_n_batch(ctx))
        self.n_seq_max = int(llama_cpp.llama_n_seq_max(ctx))
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)

    def _scan_vocab(self, llama_cpp: Any) -> None:
        """End-of-generation and control tokens, read once from the GGUF vocabulary."""
        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        eog: list[int] = []
        special: set[int] = set()
        for token in range(self._n_vocab):
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                eog.append(token)
            if llama_cpp.llama_vocab_get_attr(vocab, token) & control:
                special.add(token)
        main_eos = int(self.llm.token_eos())
        self.eos_ids = sorted(eog, key=lambda t: (t != main_eos, t))  # the model's own EOS first
        self._special_ids = special | set(eog)

    # ------------------------------------------------------------------------------------ tokenizer
    def tokenize(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self.llm.detokenize(list(token_ids), special=True).decode("utf-8", errors="replace")

    def vocab_size(self) -> int:
        return self._n_vocab

    def special_token_ids(self) -> set[int]:
        return set(self._special_ids)

    # ------------------------------------------------------------------------------------- generate
    def generate(self, requests: Sequence[RequestSpec], sampling: SamplingSettings) -> list[RequestRecord]:
        if not requests:
            return []
        send_time = time.perf_counter()
        sequences = [_Sequence(position, request) for position, request in enumerate(requests)]
        waiting: deque[_Sequence] = deque()
        for sequence in sequences:
            if sequence.cells > self.n_ctx:
                sequence.error = (
                    f"needs {sequence.cells} KV cells (prompt + max_tokens - 1) but n_ctx is {self.n_ctx}; "
                    "raise the n_ctx option"
                )
            else:
                waiting.append(sequence)
        running: list[_Sequence] = []
        free_seq_ids = list(range(self.n_seq_max - 1, -1, -1))  # pop() hands out 0 first
        free_cells = self.n_ctx
        self._clear_memory()
        try:
            while waiting or running:
                while waiting and free_seq_ids and waiting[0].cells <= free_cells:
                    sequence = waiting.popleft()
                    sequence.seq_id = free_seq_ids.pop()
                    free_cells -= sequence.cells
                    if not sampling.greedy:
                        sequence.rng = np.random.default_rng(sampling.seed)
                    running.append(sequence)
                for sequence in self._step(running, sampling):
                    running.remove(sequence)
                    self._drop_sequence(sequence.seq_id)
                    free_seq_ids.append(sequence.seq_id)
                    free_cells += sequence.cells
        except _DecodeFailed as exc:
            for sequence in [*running, *waiting]:
                sequence.error = str(exc)
        finally:
            self._clear_memory()  # the next call starts cold: batch-1 runs of a prompt are repeatable
        returned_at = time.perf_counter()
        return [self._record(seq, send_time, len(requests), returned_at) for seq in sequences]

    def _step(self, running: Sequence[_Sequence], sampling: SamplingSettings) -> list[_Sequence]:
        """Decode one step of every running sequence (whole prompts for new ones); return the finished."""
        rows: list[_Row] = []
        owners: list[_Sequence | None] = []  # the sequence whose next token a row's logits choose
        for sequence in running:
            if sequence.prefilled:
                position = sequence.request.prompt_tokens + len(sequence.tokens) - 1
                rows.append((sequence.tokens[-1], position, sequence.seq_id, True))
                owners.append(sequence)
                continue
            last = sequence.request.prompt_tokens - 1
            for position, token in enumerate(sequence.request.prompt_token_ids):
                rows.append((token, position, sequence.seq_id, position == last))
                owners.append(sequence if position == last else None)
            sequence.prefilled = True
        finished: list[_Sequence] = []
        for start in range(0, len(rows), self.n_batch):
            self._decode(rows[start : start + self.n_batch])
            for row, owner in enumerate(owners[start : start + self.n_batch]):
                if owner is not None and self._choose(owner, row, sampling):
                    finished.append(owner)
        return finished

    def _decode(self, rows: Sequence[_Row]) -> None:
        import llama_cpp

        batch = self._batch
        for row, (token, position, seq_id, wants_logits) in enumerate(rows):
            batch.token[row] = token
            batch.pos[row] = position
            batch.n_seq_id[row] = 1
            batch.seq_id[row][0] = seq_id
            batch.logits[row] = wants_logits
        batch.n_tokens = len(rows)
        status = llama_cpp.llama_decode(self._ctx, batch)
        if status != 0:
            raise _DecodeFailed(f"llama_decode returned {status} for a step of {len(rows)} tokens")

    def _choose(self, sequence: _Sequence, row: int, sampling: SamplingSettings) -> bool:
        """Pick the next token of ``sequence`` from its logits at batch ``row``; True when it is done."""
        logits = self._logits(row)
        if sampling.greedy:
            token = int(logits.argmax())
        else:
            assert sequence.rng is not None
            token = sample_token(logits, sampling, sequence.rng)
        if sampling.logprobs:
            sequence.logprobs.append(token_logprobs(logits, token, sampling.logprobs))
        sequence.tokens.append(token)
        sequence.times.append(time.perf_counter())
        request = sequence.request
        return len(sequence.tokens) >= request.max_tokens or (
            not request.ignore_eos and token in self.eos_ids
        )

    def _logits(self, row: int) -> np.ndarray:
        """The raw logits llama.cpp produced for batch ``row`` (a view, valid until the next decode)."""
        import llama_cpp

        pointer = llama_cpp.llama_get_logits_ith(self._ctx, row)
        if not pointer:
            raise RuntimeError(f"llama.cpp returned no logits for batch row {row}")
        return np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))

    def _drop_sequence(self, seq_id: int) -> None:
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(self._memory, seq_id, -1, -1)

    def _clear_memory(self) -> None:
        import llama_cpp

        llama_cpp.llama_memory_clear(self._memory, True)

    @staticmethod
    def _record(sequence: _Sequence, send_time: float, batch_size: int, returned_at: float) -> RequestRecord:
        """A failed request keeps no partial output and ends when the batch returned."""
        request = sequence.request
        failed = sequence.error is not None
        tokens = () if failed else tuple(sequence.tokens)
        times = () if failed else tuple(sequence.times)
        return RequestRecord(
            request_id=request.request_id,
            scenario=request.scenario,
            prompt_tokens=request.prompt_tokens,
            output_tokens=len(tokens),
            send_time=send_time,
            first_token_time=times[0] if times else None,
            token_times=times,
            end_time=times[-1] if times else returned_at,
            error=sequence.error,
            output_token_ids=tokens,
            output_hash=hash_token_ids(tokens),
            logprobs=tuple(sequence.logprobs) if sequence.logprobs and not failed else None,
            batch_size=batch_size,
            batch_position=sequence.position,
        )

    # ----------------------------------------------------------------------------------------- score
    def score(
        self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int], top_k: int = 5
    ) -> list[TokenLogprobs]:
        """Teacher-forced logprobs of ``output_token_ids`` after the prompt, in one prefill.

        This is the check a verifier node runs on another node's claimed tokens: prompt + claim go
        through ``llama_decode`` with logits kept at every claimed position.
        """
        if not output_token_ids:
            return []
        if not prompt_token_ids:
            raise ValueError("scoring needs at least one prompt token to condition the first claim on")
        ids = [*prompt_token_ids, *output_token_ids]
        if len(ids) - 1 > self.n_ctx:
            raise UserError(
                f"prompt + claim need {len(ids) - 1} KV cells but n_ctx is {self.n_ctx}; raise n_ctx",
                field="options",
            )
        first = len(prompt_token_ids) - 1  # the position whose logits predict the first claimed token
        rows: list[_Row] = [
            (token, position, 0, position >= first) for position, token in enumerate(ids[:-1])
        ]
        steps: list[TokenLogprobs] = []
        self._clear_memory()
        try:
            for start in range(0, len(rows), self.n_batch):
                chunk = rows[start : start + self.n_batch]
                self._decode(chunk)
                for row, (_, position, _, wanted) in enumerate(chunk):
                    if wanted:
                        steps.append(token_logprobs(self._logits(row), ids[position + 1], max(1, top_k)))
        finally:
            self._clear_memory()
        return steps

    # --------------------------------------------------------------------------------------- memory
    def peak_device_memory(self) -> tuple[int | None, str | None]:
        """llama.cpp exposes no peak-allocation counter; host RSS (tracked by the runner) covers CPU."""
        return None, None

    def reset_peak_device_memory(self) -> None:
        pass

    def close(self) -> None:
        import llama_cpp

        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            llama_cpp.llama_free(self._ctx)  # before the model it was made from
            self._ctx = None
            self._memory = None
        if self.llm is not None:
            self.llm.close()
            self.llm = None


# ------------------------------------------------------------------------------------------ helpers
def _checked_options(options: dict) -> dict[str, int]:
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise UserError(
            f"unknown llamacpp option(s): {', '.join(sorted(unknown))}; known: {', '.join(OPTIONS)}",
            field="options",
        )
    lowest = {"n_ctx": 16, "n_batch": 1, "n_gpu_layers": -1}
    for name, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest[name]:
            raise UserError(f"{name} must be an integer >= {lowest[name]}, got {value!r}", field="options")
    return dict(options)


def default_threads() -> int:
    """Physical cores available to this process: llama.cpp gains nothing from SMT siblings."""
    import psutil

    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or available
    return max(1, min(available, physical))


def parse_system_info(text: str) -> dict[str, dict[str, str]]:
    """``llama_print_system_info()`` as {section: {flag: value}}, e.g. {"CPU": {"AVX2": "1"}}.

    The text reads ``CPU : SSE3 = 1 | AVX2 = 1 | ... | CUDA : ARCHS = 900 | ...``: a section name
    followed by `` : `` starts a section, ``KEY = VALUE`` items belong to the latest section.
    """
    sections: dict[str, dict[str, str]] = {}
    current = "general"
    for item in (part.strip() for part in text.split("|")):
        if not item:
            continue
        if " : " in item:
            current, _, item = (piece.strip() for piece in item.partition(" : "))
            current = current.upper()
            sections.setdefault(current, {})
        key, equals, value = (piece.strip() for piece in item.partition("="))
        if key:
            sections.setdefault(current, {})[key] = value if equals else "1"
    return sections


def quantization_type(metadata: dict[str, str], path: Path) -> str:
    """The GGUF's quantization (e.g. Q4_1): ``general.file_type`` first, else the file name."""
    file_type = metadata.get("general.file_type")
    if file_type is not None and file_type.strip().isdigit() and int(file_type) in FILE_TYPES:
        return FILE_TYPES[int(file_type)]
    match = _QUANT_IN_NAME.search(path.name)
    return match.group(1).upper() if match else "unknown"


def token_logprobs(logits: np.ndarray, chosen: int, k: int) -> TokenLogprobs:
    """Log-softmax of raw logits (float64): the chosen token's logprob and the top ``k``, best first."""
    values = np.asarray(logits, dtype=np.float64)
    shifted = values - values.max()
    logprobs = shifted - np.log(np.exp(shifted).sum())
    k = min(k, len(logprobs))
    top = np.argpartition(logprobs, -k)[-k:]
    top = top[np.lexsort((top, -logprobs[top]))]  # best first; equal values by lower id, like argmax
    return TokenLogprobs(
        logprob=float(logprobs[chosen]), top=tuple((int(i), float(logprobs[i])) for i in top)
    )


def sample_token(logits: np.ndarray, sampling: SamplingSettings, rng: np.random.Generator) -> int:
    """Temperature, then top-k, then top-p over the raw logits; one draw from ``rng``."""
    scaled = np.asarray(logits, dtype=np.float64) / sampling.temperature
    candidates = np.arange(len(scaled))
    if 0 < sampling.top_k < len(scaled):
        candidates = np.sort(np.argpartition(scaled, -sampling.top_k)[-sampling.top_k :])
    weights = np.exp(scaled[candidates] - scaled[candidates].max())
    probs = weights / weights.sum()
    if sampling.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        kept = order[: int(np.searchsorted(np.cumsum(probs[order]), sampling.top_p)) + 1]
        candidates, probs = candidates[kept], probs[kept] / probs[kept].sum()
    return int(candidates[rng.choice(len(candidates), p=probs)])


__all__ = [
    "LlamaCppBackend",
    "parse_system_info",
    "quantization_type",
    "sample_token",
    "token_logprobs",
]
