"""transformers + torch on CPU, CUDA or Apple MPS: batched greedy or sampled generation.

Timing rides on ``generate``'s streamer hook: HF calls ``streamer.put`` once per decoding step right
after the new tokens exist on the host, so one ``perf_counter()`` per step timestamps every token of
every row at the cost of a list append. Logprobs, when asked for, come from a forward hook on the
output projection (raw model logits, before any sampling processors); with logprobs off nothing is
hooked, so the measured path is ``generate`` itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from importlib.metadata import version as package_version
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
    TokenLogprobs,
    hash_token_ids,
)

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda", "mps")


class _StepClock:
    """A generate() streamer that only timestamps steps (and gathers logprobs when a hook feeds it)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False
        self.pending_logprobs: Any = None  # log-softmax of the step being decoded, set by the hook
        self.chosen_logprobs: list[Any] = []
        self.top_values: list[Any] = []
        self.top_ids: list[Any] = []

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first hands the streamer the prompt ids
            self._prompt_seen = True
            return
        self.times.append(time.perf_counter())
        if self.pending_logprobs is not None:
            rows = self.pending_logprobs
            chosen = value.to(rows.device).view(-1, 1)
            self.chosen_logprobs.append(rows.gather(1, chosen).squeeze(1))
            self.pending_logprobs = None

    def end(self) -> None:
        pass


class TransformersBackend(HfTokenizerMethods):
    """The reference backend: any causal LM folder transformers can load."""

    def __init__(self, config: BackendConfig) -> None:
        if config.dtype not in DTYPES:
            raise UserError(
                f"unknown dtype {config.dtype!r}; choose one of {', '.join(DTYPES)}", field="dtype"
            )
        if config.device not in DEVICES:
            raise UserError(
                f"unknown device {config.device!r}; choose one of {', '.join(DEVICES)}", field="device"
            )
        unknown = set(config.options) - {"attn_implementation"}
        if unknown:
            raise UserError(f"unknown transformers option(s): {', '.join(sorted(unknown))}", field="options")
        self.config = config
        self.model_spec = resolve_model(config.model)  # fails fast on a bad path, before anything runs
        self.model: Any = None
        self.tokenizer: Any = None
        self.device = ""
        self.torch_dtype: Any = None
        self.info: BackendInfo | None = None
        self.eos_ids: list[int] = []

    # ------------------------------------------------------------------------------------------ load
    def load(self) -> BackendInfo:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        self.device = self._pick_device(torch)
        self.torch_dtype = self._pick_dtype(torch)
        model_kwargs: dict[str, Any] = {"dtype": self.torch_dtype}
        if "attn_implementation" in self.config.options:
            model_kwargs["attn_implementation"] = self.config.options["attn_implementation"]
        source = self.model_spec.location or self.model_spec.name
        try:
            folder = materialize(self.model_spec)
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModelForCausalLM.from_pretrained(folder, **model_kwargs).to(self.device).eval()
        except (OSError, ValueError, KeyError) as exc:  # truncated, empty or foreign files
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"cannot load this model: {message}", path=source, field="model") from exc
        # generate() back-fills an unset eos_token_id from the model's defaults, which would make
        # ignore_eos impossible; the backend owns EOS handling, so it takes the ids and clears them.
        self.eos_ids = self._model_eos_ids()
        self.model.generation_config.eos_token_id = None
        parameters = sum(p.numel() for p in self.model.parameters())
        self.info = BackendInfo(
            kind="transformers",
            engine_version=f"transformers {package_version('transformers')}, torch {torch.__version__}",
            model=self.model_spec.name,
            model_path=str(folder),
            model_source=self.model_spec.source,
            parameters=parameters,
            dtype=str(self.torch_dtype).removeprefix("torch."),
            device=self.device,
            settings={
                "threads": torch.get_num_threads(),
                "attn_implementation": getattr(self.model.config, "_attn_implementation", None),
                "source_file": str(self.model_spec.location) if self.model_spec.location else None,
                "architecture": _architecture(self.model.config),
            },
        )
        return self.info

    def _pick_device(self, torch: Any) -> str:
        wanted = self.config.device
        if wanted == "auto":
            if torch.cuda.is_available():
                return "cuda"
            if torch.backends.mps.is_available():
                return "mps"
            return "cpu"
        if wanted == "cuda" and not torch.cuda.is_available():
            raise UserError("device cuda requested but torch sees no CUDA device", field="device")
        if wanted == "mps" and not torch.backends.mps.is_available():
            raise UserError("device mps requested but torch sees no Apple MPS device", field="device")
        return wanted

    def _pick_dtype(self, torch: Any) -> Any:
        if self.config.dtype != "auto":
            return getattr(torch, self.config.dtype)
        if self.device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if self.device == "mps":
            return torch.float16
        # fp32 on CPU: bf16 speed hinges on AVX-512-BF16/AMX (CPUs without them emulate it slowly)
        return torch.float32

    # ------------------------------------------------------------------------------------- generate
    def generate(self, requests: Sequence[RequestSpec], sampling: SamplingSettings) -> list[RequestRecord]:
        import torch
        from transformers import GenerationConfig

        if not requests:
            return []
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id
        longest = max(r.prompt_tokens for r in requests)
        ids = torch.full((len(requests), longest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(requests), longest), dtype=torch.long)
        for row, request in enumerate(requests):  # left padding: every row's last prompt token aligned
            n = request.prompt_tokens
            ids[row, longest - n :] = torch.tensor(request.prompt_token_ids, dtype=torch.long)
            mask[row, longest - n :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)

        eos_ids = self.eos_ids
        # ignore_eos keeps decoding past EOS without masking it (vLLM's meaning), so the distribution is
        # untouched; rows that honour EOS are cut at their first EOS afterwards.
        stop_on_eos = not any(r.ignore_eos for r in requests)
        generation = GenerationConfig(
            max_new_tokens=max(r.max_tokens for r in requests),
            do_sample=not sampling.greedy,
            temperature=sampling.temperature if not sampling.greedy else None,
            top_p=sampling.top_p if not sampling.greedy else None,
            top_k=(sampling.top_k or None) if not sampling.greedy else None,
            eos_token_id=eos_ids if stop_on_eos else None,
            pad_token_id=pad_id,
        )
        clock = _StepClock()
        hook = self._install_logprob_hook(clock, sampling.logprobs) if sampling.logprobs else None
        if not sampling.greedy:
            torch.manual_seed(sampling.seed)
        send_time = time.perf_counter()
        try:
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=ids, attention_mask=mask, generation_config=generation, streamer=clock
                )
        except torch.OutOfMemoryError as exc:  # a real, reportable outcome of a too-large batch
            end = time.perf_counter()
            return [
                self._failed(r, send_time, end, f"out of memory: {exc}".splitlines()[0]) for r in requests
            ]
        finally:
            if hook is not None:
                hook.remove()
        new_tokens = output[:, longest:].tolist()
        logprobs = self._collect_logprobs(clock, len(requests)) if sampling.logprobs else None
        records = []
        for row, request in enumerate(requests):
            tokens = new_tokens[row][: request.max_tokens]
            if not request.ignore_eos:
                tokens = _cut_after_eos(tokens, eos_ids)
            n = len(tokens)
            times = clock.times[:n]
            records.append(
                RequestRecord(
                    request_id=request.request_id,
                    scenario=request.scenario,
                    prompt_tokens=request.prompt_tokens,
                    output_tokens=n,
                    send_time=send_time,
                    first_token_time=times[0] if times else None,
                    token_times=tuple(times),
                    end_time=times[-1] if times else send_time,
                    output_token_ids=tuple(tokens),
                    output_hash=hash_token_ids(tokens),
                    logprobs=tuple(logprobs[row][:n]) if logprobs is not None else None,
                    batch_size=len(requests),
                    batch_position=row,
                )
            )
        return records

    def score(
        self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int], top_k: int = 5
    ) -> list[TokenLogprobs]:
        """Teacher-forced logprobs of ``output_token_ids`` after the prompt, in one prefill.

        This is the check a verifier node runs on another node's claimed tokens: one forward pass over
        prompt + claim, reading each claimed token's logprob and the top-k at its position.
        """
        import torch

        if not output_token_ids:
            return []
        ids = torch.tensor([[*prompt_token_ids, *output_token_ids]], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids).logits[0].float()
        start = len(prompt_token_ids) - 1
        steps = torch.log_softmax(logits[start : start + len(output_token_ids)], dim=-1)
        claimed = torch.tensor(list(output_token_ids), device=steps.device).view(-1, 1)
        chosen = steps.gather(1, claimed).squeeze(1).cpu().tolist()
        values, indices = torch.topk(steps, max(1, top_k), dim=-1)
        values, indices = values.cpu().tolist(), indices.cpu().tolist()
        return [
            TokenLogprobs(logprob=chosen[i], top=tuple(zip(indices[i], values[i], strict=True)))
            for i in range(len(output_token_ids))
        ]

    def _model_eos_ids(self) -> list[int]:
        configured = self.model.generation_config.eos_token_id
        if configured is None:
            configured = self.tokenizer.eos_token_id
        return list(configured) if isinstance(configured, list | tuple) else [configured]

    def _install_logprob_hook(self, clock: _StepClock, k: int) -> Any:
        import torch

        def on_logits(_module: Any, _inputs: Any, logits: Any) -> None:
            step = torch.log_softmax(logits[:, -1, :].float(), dim=-1)
            clock.pending_logprobs = step
            values, indices = torch.topk(step, k, dim=-1)
            clock.top_values.append(values)
            clock.top_ids.append(indices)

        return self.model.get_output_embeddings().register_forward_hook(on_logits)

    @staticmethod
    def _collect_logprobs(clock: _StepClock, rows: int) -> list[list[TokenLogprobs]]:
        import torch

        if not clock.chosen_logprobs:
            return [[] for _ in range(rows)]
        steps = len(clock.chosen_logprobs)
        chosen = torch.stack(clock.chosen_logprobs, dim=1).cpu().tolist()
        values = torch.stack(clock.top_values[:steps], dim=1).cpu().tolist()
        indices = torch.stack(clock.top_ids[:steps], dim=1).cpu().tolist()
        return [
            [
                TokenLogprobs(logprob=chosen[r][s], top=tuple(zip(indices[r][s], values[r][s], strict=True)))
                for s in range(steps)
            ]
            for r in range(rows)
        ]

    @staticmethod
    def _failed(request: RequestSpec, send: float, end: float, reason: str) -> RequestRecord:
        return RequestRecord(
            request_id=request.request_id,
            scenario=request.scenario,
            prompt_tokens=request.prompt_tokens,
            output_tokens=0,
            send_time=send,
            first_token_time=None,
            end_time=end,
            error=reason,
        )

    # --------------------------------------------------------------------------------------- memory
    def peak_device_memory(self) -> tuple[int | None, str | None]:
        return torch_peak_device_memory(self.device)

    def reset_peak_device_memory(self) -> None:
        reset_torch_peak_device_memory(self.device)

    def close(self) -> None:
        self.model = None
        self.tokenizer = None


def _architecture(config: Any) -> dict[str, int]:
    """Layer and KV-head geometry, for KV-cache sizes and the roofline."""
    heads = getattr(config, "num_attention_heads", None)
    hidden = getattr(config, "hidden_size", None)
    head_dim = getattr(config, "head_dim", None) or (hidden // heads if hidden and heads else None)
    facts = {
        "layers": getattr(config, "num_hidden_layers", None),
        "kv_heads": getattr(config, "num_key_value_heads", None) or heads,
        "head_dim": head_dim,
    }
    return {key: int(value) for key, value in facts.items() if value}


def _cut_after_eos(tokens: list[int], eos_ids: Sequence[int]) -> list[int]:
    for index, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[: index + 1]
    return tokens
