"""A determinism fingerprint: what a node outputs on the canary set, cheap to compare between nodes.

It holds, per canary, the greedy output token ids and the top-1/top-2 margin at every step, plus two
hashes (all token ids; top-k logprobs rounded at fixed steps) and the environment that produced them.
Two nodes compare fingerprints without running anything: identical hashes mean exact commitments
work between them; tokens that differ only where both nodes saw a near-tie mean a verifier's
re-scoring will accept either; anything else is a mismatch.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from atomabench import __version__
from atomabench.backends.base import BackendInfo
from atomabench.determinism.analyze import top_margin
from atomabench.determinism.canaries import canaries
from atomabench.errors import UserError
from atomabench.records import HardwareInfo, RequestSpec, SamplingSettings

FORMAT_VERSION = 1
HASHED_STEPS = (0, 7, 15, 31)
LOGPROB_DECIMALS = 3

# Environment keys that must agree for two fingerprints to be comparable at all (same computation).
SAME_COMPUTATION = ("model", "model_digest", "dtype")
# Keys that define a hardware/software class (an echelon): differences here explain differing kernels.
SAME_CLASS = ("hardware_class", "gpu_count", "engine", "engine_version", "device", "batch_invariant")


class CanaryOutput(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_id: str
    prompt: str
    output_token_ids: tuple[int, ...]
    margins: tuple[float | None, ...]
    logprob_hash: str


class Fingerprint(BaseModel):
    model_config = ConfigDict(frozen=True)

    format_version: int = FORMAT_VERSION
    created_at: datetime
    atomabench_version: str
    environment: dict[str, Any]
    output_tokens: int
    top_k: int
    token_hash: str
    logprob_hash: str
    canaries: tuple[CanaryOutput, ...]


Verdict = Literal["identical", "near-tie", "different-class", "mismatch"]


class CanaryComparison(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_id: str
    same_tokens: bool
    first_divergence: int | None = None
    margin_a: float | None = None
    margin_b: float | None = None


class FingerprintComparison(BaseModel):
    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    reason: str
    environment_differences: dict[str, tuple[Any, Any]]
    canaries: tuple[CanaryComparison, ...]


@cache
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def model_digest(model_path: str | None) -> str | None:
    """sha256 over a model folder's config and weight files: the same weights give the same digest."""
    if not model_path or not Path(model_path).is_dir():
        return None
    folder = Path(model_path)
    combined = hashlib.sha256()
    for file in sorted([*folder.glob("config.json"), *folder.glob("*.safetensors"), *folder.glob("*.bin")]):
        stat = file.stat()
        combined.update(file.name.encode())
        combined.update(_file_digest(str(file), stat.st_size, stat.st_mtime_ns).encode())
    return combined.hexdigest()


def environment(info: BackendInfo, hardware: HardwareInfo) -> dict[str, Any]:
    gpu = hardware.gpus[0] if hardware.gpus else None
    return {
        "hardware_class": hardware.profile_id or hardware.device_name,
        "device_name": hardware.device_name,
        "gpu_count": hardware.gpu_count,
        "driver": gpu.driver_version if gpu else None,
        "cuda": gpu.cuda_version if gpu else hardware.torch_cuda_version,
        "cpu_model": hardware.cpu_model,
        "engine": info.kind,
        "engine_version": info.engine_version,
        "model": info.model,
        "model_digest": model_digest(info.model_path),
        "dtype": info.dtype,
        "device": info.device,
        # what the engine was built with (vLLM records it), not what the environment says now
        "batch_invariant": bool(info.settings.get("batch_invariant", False)),
        "threads": info.settings.get("threads"),
    }


def take_fingerprint(
    backend, info: BackendInfo, hardware: HardwareInfo, *, output_tokens: int = 32, top_k: int = 5
) -> Fingerprint:
    """Run every canary alone (batch 1, greedy, top-k logprobs) and summarise the outputs."""
    outputs = []
    for canary in canaries():
        request = RequestSpec(
            request_id=f"fingerprint-{canary.id}",
            scenario="fingerprint",
            prompt_token_ids=tuple(backend.tokenize(canary.text)),
            max_tokens=output_tokens,
            ignore_eos=True,
        )
        record = backend.generate([request], SamplingSettings(logprobs=top_k))[0]
        if record.error or record.logprobs is None:
            raise RuntimeError(f"canary {canary.id} failed: {record.error}")
        rounded = [
            [(token, round(value, LOGPROB_DECIMALS)) for token, value in record.logprobs[step].top]
            for step in HASHED_STEPS
            if step < len(record.logprobs)
        ]
        outputs.append(
            CanaryOutput(
                prompt_id=canary.id,
                prompt=canary.text,
                output_token_ids=record.output_token_ids,
                margins=tuple(
                    None if (m := top_margin(step)) is None else round(m, 6) for step in record.logprobs
                ),
                logprob_hash=_sha(rounded),
            )
        )
    return Fingerprint(
        created_at=datetime.now(UTC),
        atomabench_version=__version__,
        environment=environment(info, hardware),
        output_tokens=output_tokens,
        top_k=top_k,
        token_hash=_sha([list(c.output_token_ids) for c in outputs]),
        logprob_hash=_sha([c.logprob_hash for c in outputs]),
        canaries=tuple(outputs),
    )


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, separators=(",", ":")).encode()).hexdigest()


def compare_fingerprints(
    a: Fingerprint, b: Fingerprint, near_tie_margin: float = 0.1
) -> FingerprintComparison:
    """identical, near-tie (same class, tokens differ only at near-ties), different-class, or mismatch."""
    keys = sorted(set(a.environment) | set(b.environment))
    differences = {
        key: (a.environment.get(key), b.environment.get(key))
        for key in keys
        if a.environment.get(key) != b.environment.get(key)
    }
    canary_b = {c.prompt_id: c for c in b.canaries}
    per_canary = [_compare_canary(c, canary_b.get(c.prompt_id)) for c in a.canaries]

    computation = [key for key in SAME_COMPUTATION if key in differences]
    if a.environment.get("model_digest") and "model_digest" not in differences:
        computation = [key for key in computation if key != "model"]  # the same weights under another name
    if (
        a.format_version != b.format_version
        or {c.prompt_id for c in a.canaries} != set(canary_b)
        or (a.output_tokens, a.top_k) != (b.output_tokens, b.top_k)
    ):
        return FingerprintComparison(
            verdict="mismatch",
            reason="not comparable: different fingerprint formats, canary sets, output lengths or top-k",
            environment_differences=differences,
            canaries=tuple(per_canary),
        )
    if computation:
        return FingerprintComparison(
            verdict="mismatch",
            reason=f"not the same computation: {', '.join(computation)} differ",
            environment_differences=differences,
            canaries=tuple(per_canary),
        )
    if a.token_hash == b.token_hash and a.logprob_hash == b.logprob_hash:
        return FingerprintComparison(
            verdict="identical",
            reason="token ids and rounded top-k logprobs are identical on every canary",
            environment_differences=differences,
            canaries=tuple(per_canary),
        )
    diverged = [c for c in per_canary if not c.same_tokens]
    wide = [
        c
        for c in diverged
        if c.margin_a is None or c.margin_b is None or min(c.margin_a, c.margin_b) >= near_tie_margin
    ]
    class_keys = [key for key in SAME_CLASS if key in differences]
    if class_keys and (wide or diverged):
        return FingerprintComparison(
            verdict="different-class",
            reason=f"{len(diverged)} canary output(s) differ; hardware or software class differs "
            f"({', '.join(class_keys)}), so kernels differ",
            environment_differences=differences,
            canaries=tuple(per_canary),
        )
    if wide:
        return FingerprintComparison(
            verdict="mismatch",
            reason=f"{len(wide)} canary output(s) diverge at a wide margin (>= {near_tie_margin} nats) "
            "on the same class of node",
            environment_differences=differences,
            canaries=tuple(per_canary),
        )
    detail = (
        f"{len(diverged)} canary output(s) diverge, all at near-ties (< {near_tie_margin} nats)"
        if diverged
        else "same tokens everywhere; rounded logprobs differ slightly"
    )
    return FingerprintComparison(
        verdict="near-tie", reason=detail, environment_differences=differences, canaries=tuple(per_canary)
    )


def _compare_canary(a: CanaryOutput, b: CanaryOutput | None) -> CanaryComparison:
    if b is None:
        return CanaryComparison(prompt_id=a.prompt_id, same_tokens=False)
    if a.output_token_ids == b.output_token_ids:
        return CanaryComparison(prompt_id=a.prompt_id, same_tokens=True)
    index = next(
        (i for i, (x, y) in enumerate(zip(a.output_token_ids, b.output_token_ids, strict=False)) if x != y),
        min(len(a.output_token_ids), len(b.output_token_ids)),
    )

    def margin(c: CanaryOutput) -> float | None:
        return c.margins[index] if index < len(c.margins) else None

    return CanaryComparison(
        prompt_id=a.prompt_id,
        same_tokens=False,
        first_divergence=index,
        margin_a=margin(a),
        margin_b=margin(b),
    )


def save_fingerprint(fingerprint: Fingerprint, path: Path) -> None:
    try:
        path.write_text(fingerprint.model_dump_json(indent=2), encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the fingerprint: {exc.strerror}", path=path, field="--out") from exc


def load_fingerprint(path: Path) -> Fingerprint:
    try:
        return Fingerprint.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read fingerprint: {exc.strerror}", path=path) from exc
    except UnicodeDecodeError as exc:
        raise UserError("not a text file (expected fingerprint JSON)", path=path) from exc
    except ValidationError as exc:
        error = exc.errors()[0]
        raise UserError(
            f"not an atomabench fingerprint: {error['msg']}",
            path=path,
            field=".".join(str(p) for p in error["loc"]) or None,
        ) from exc
