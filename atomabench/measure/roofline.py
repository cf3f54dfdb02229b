"""How close a scenario came to the hardware's limits: MBU for decode, MFU for prefill.

Decode reads every weight (and the KV cache of every running sequence) once per step, so it is bound
by memory bandwidth; prefill does about 2·params FLOPs per prompt token, so it is bound by compute
(shared/reference/hardware.md, "Roofline reminders"). Definitions (DESIGN.md "Metric definitions",
Databricks "LLM inference performance engineering"):

- MBU = (weight bytes + KV bytes read per decode step) / TPOT / peak memory bandwidth
- MFU = 2 · params · prompt tokens prefilled in the TTFT / TTFT / peak FLOPS

Both are returned as fractions (0.299, not 29.9). Pure functions: no I/O, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from atomabench.records import HardwareProfile, LatencyStats, ScenarioMetrics

_DTYPE_BY_BYTES = {4: "fp32", 2: "bf16", 1: "fp8"}
_FALLBACK_DTYPES = {"bf16": ("fp16",), "fp16": ("bf16",), "fp32": ("tf32",)}


def kv_bytes_per_token(layers: int, kv_heads: int, head_dim: int, bytes_per_value: float) -> float:
    """KV cache bytes one token occupies: 2 (K and V) · layers · kv_heads · head_dim · bytes per value."""
    return 2 * layers * kv_heads * head_dim * bytes_per_value


def decode_mbu(
    weight_bytes: float, kv_bytes_per_step: float, tpot_s: float, peak_bandwidth_gbs: float
) -> float:
    """Model bandwidth utilisation of decode: bytes a step must read, per TPOT, over peak bandwidth."""
    _require_positive(tpot_s=tpot_s, peak_bandwidth_gbs=peak_bandwidth_gbs)
    return (weight_bytes + kv_bytes_per_step) / tpot_s / (peak_bandwidth_gbs * 1e9)


def prefill_mfu(params: float, prompt_tokens: float, ttft_s: float, peak_tflops: float) -> float:
    """Model FLOPS utilisation of prefill: 2·params·prompt_tokens FLOPs in the TTFT, over peak FLOPS."""
    _require_positive(ttft_s=ttft_s, peak_tflops=peak_tflops)
    return 2 * params * prompt_tokens / ttft_s / (peak_tflops * 1e12)


def scenario_roofline(
    metrics: ScenarioMetrics, model_facts: Mapping[str, Any], profile: HardwareProfile | Mapping[str, Any]
) -> dict[str, Any]:
    """MBU and MFU of one scenario, each None with a ``*_reason`` when a figure it needs is missing.

    ``model_facts`` keys: ``parameters``, ``weight_bytes``, ``layers``, ``kv_heads``, ``head_dim``,
    ``bytes_per_value``, ``mean_prompt_tokens``, ``mean_output_tokens``; optional ``dtype`` (the
    compute precision, a ``peak_tflops`` key; otherwise from ``bytes_per_value``) and ``concurrency``
    (sequences decoded and prefilled together; otherwise estimated as output tokens/s × mean TPOT,
    at least 1). ``profile`` is a ``HardwareProfile`` or a mapping with ``memory_bandwidth_gbs`` and
    ``peak_tflops`` (e.g. ``DeviceProfileResult.as_profile_figures()``).

    Per decode step every running sequence reads its KV cache, on average prompt + output/2 tokens
    long, and all of them share one read of the weights.
    """
    bandwidth, peaks = _profile_figures(profile)
    tpot_s = _mean_seconds(metrics.tpot_ms)
    ttft_s = _mean_seconds(metrics.ttft_ms)
    concurrency, concurrency_source = _concurrency(model_facts, metrics, tpot_s)
    dtype = model_facts.get("dtype") or _DTYPE_BY_BYTES.get(_number(model_facts.get("bytes_per_value")) or 0)
    result: dict[str, Any] = {
        "mbu": None,
        "mbu_reason": None,
        "mfu": None,
        "mfu_reason": None,
        "concurrency": concurrency,
        "concurrency_source": concurrency_source,
        "dtype": dtype,
        "peak_bandwidth_gbs": bandwidth,
        "peak_tflops": None,
        "kv_bytes_per_step": None,
        "bytes_per_step": None,
        "achieved_bandwidth_gbs": None,
        "achieved_tflops": None,
    }

    # ---- decode: MBU
    weight_bytes = _number(model_facts.get("weight_bytes"))
    kv_step, kv_reason = _kv_bytes_per_step(model_facts, concurrency)
    missing = _first_missing(
        ("weight_bytes", weight_bytes),
        ("mean TPOT (no request produced two tokens)", tpot_s),
        ("memory_bandwidth_gbs in the profile", bandwidth),
    )
    if missing:
        result["mbu_reason"] = f"missing {missing}"
    elif kv_step is None:
        result["mbu_reason"] = kv_reason
    else:
        assert weight_bytes is not None and tpot_s is not None and bandwidth is not None
        result["kv_bytes_per_step"] = kv_step
        result["bytes_per_step"] = weight_bytes + kv_step
        result["achieved_bandwidth_gbs"] = (weight_bytes + kv_step) / tpot_s / 1e9
        result["mbu"] = decode_mbu(weight_bytes, kv_step, tpot_s, bandwidth)

    # ---- prefill: MFU
    params = _number(model_facts.get("parameters"))
    prompt_tokens = _number(model_facts.get("mean_prompt_tokens"))
    peak = _peak_for(dtype, peaks)
    result["peak_tflops"] = peak
    missing = _first_missing(
        ("parameters", params),
        ("mean_prompt_tokens", prompt_tokens),
        ("mean TTFT", ttft_s),
        (f"peak_tflops for {dtype or 'the model dtype'} in the profile", peak),
    )
    if missing:
        result["mfu_reason"] = f"missing {missing}"
    else:
        assert params is not None and prompt_tokens is not None and ttft_s is not None and peak is not None
        tokens_in_ttft = prompt_tokens * concurrency
        result["achieved_tflops"] = 2 * params * tokens_in_ttft / ttft_s / 1e12
        result["mfu"] = prefill_mfu(params, tokens_in_ttft, ttft_s, peak)
    return result


def _profile_figures(profile: HardwareProfile | Mapping[str, Any]) -> tuple[float | None, dict[str, float]]:
    if isinstance(profile, HardwareProfile):
        return profile.memory_bandwidth_gbs, dict(profile.peak_tflops)
    peaks = profile.get("peak_tflops") or {}
    return _number(profile.get("memory_bandwidth_gbs")), {k: v for k, v in peaks.items() if _number(v)}


def _peak_for(dtype: str | None, peaks: Mapping[str, float]) -> float | None:
    """The profile's peak for ``dtype``; bf16 and fp16 stand in for each other (same tensor-core rate)."""
    if dtype is None:
        return None
    for candidate in (dtype, *_FALLBACK_DTYPES.get(dtype, ())):
        if candidate in peaks:
            return float(peaks[candidate])
    return None


def _kv_bytes_per_step(facts: Mapping[str, Any], concurrency: float) -> tuple[float | None, str | None]:
    names = ("layers", "kv_heads", "head_dim", "bytes_per_value", "mean_prompt_tokens", "mean_output_tokens")
    values = [_number(facts.get(name)) for name in names]
    missing = [name for name, value in zip(names, values, strict=True) if value is None]
    if missing:
        return None, f"missing {', '.join(missing)} for the KV cache read per step"
    layers, kv_heads, head_dim, bytes_per_value, prompt_tokens, output_tokens = (
        float(value or 0) for value in values
    )
    per_token = kv_bytes_per_token(int(layers), int(kv_heads), int(head_dim), bytes_per_value)
    return per_token * (prompt_tokens + output_tokens / 2) * concurrency, None


def _concurrency(
    facts: Mapping[str, Any], metrics: ScenarioMetrics, tpot_s: float | None
) -> tuple[float, str]:
    given = _number(facts.get("concurrency"))
    if given is not None:
        return given, "given"
    throughput = _number(metrics.output_throughput)
    if throughput is None or tpot_s is None:
        return 1.0, "assumed 1 (no throughput or TPOT to estimate it)"
    return max(1.0, throughput * tpot_s), "estimated as output tokens/s × mean TPOT"


def _mean_seconds(stats: LatencyStats) -> float | None:
    value = _number(stats.mean)
    return None if value is None or value <= 0 else value / 1000


def _number(value: Any) -> float | None:
    """A usable number, or None for missing, NaN, infinite or non-positive values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _first_missing(*named: tuple[str, float | None]) -> str | None:
    return next((name for name, value in named if value is None), None)


def _require_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
