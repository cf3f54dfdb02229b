"""MBU and MFU against hand-computed figures (shared/reference/economics.md, hardware.md)."""

from __future__ import annotations

import math

import pytest

from atomabench.hardware.profiles import get_profile
from atomabench.measure.roofline import decode_mbu, kv_bytes_per_token, prefill_mfu, scenario_roofline
from atomabench.records import LatencyStats, ScenarioMetrics

# Llama-2-7B in fp16: 32 layers, 32 KV heads (no GQA), head_dim 128.
LLAMA2_7B = {
    "parameters": 7e9,
    "weight_bytes": 14e9,
    "layers": 32,
    "kv_heads": 32,
    "head_dim": 128,
    "bytes_per_value": 2,
    "mean_prompt_tokens": 512,
    "mean_output_tokens": 256,
}
H100_SXM = {"memory_bandwidth_gbs": 3350, "peak_tflops": {"bf16": 989, "fp16": 989, "fp8": 1979}}


def metrics(
    *, tpot_ms: float | None, ttft_ms: float | None, output_throughput: float = 71.0
) -> ScenarioMetrics:
    def stats(mean: float | None) -> LatencyStats:
        return LatencyStats(count=0 if mean is None else 8, mean=mean)

    return ScenarioMetrics(
        duration_s=10.0,
        completed=8,
        failed=0,
        total_input_tokens=8 * 512,
        total_output_tokens=8 * 256,
        request_throughput=0.8,
        output_throughput=output_throughput,
        total_token_throughput=output_throughput * 3,
        peak_output_throughput=output_throughput,
        ttft_ms=stats(ttft_ms),
        tpot_ms=stats(tpot_ms),
        itl_ms=stats(tpot_ms),
        e2el_ms=stats(None),
    )


def test_decode_mbu_reproduces_the_databricks_7b_figure() -> None:
    # 7B fp16 at 14 ms TPOT moves 14e9 B / 0.014 s = 1e12 B/s; against 3.35 TB/s that is 29.9 %
    mbu = decode_mbu(14e9, 0, 0.014, 3350)

    assert mbu == pytest.approx(1e12 / 3.35e12, rel=1e-12)
    assert round(100 * mbu, 1) == 29.9


def test_decode_mbu_counts_kv_bytes_on_top_of_the_weights() -> None:
    assert decode_mbu(14e9, 1e9, 0.015, 1000) == pytest.approx(1.0, rel=1e-12)  # 15e9 B / 15 ms = 1 TB/s


def test_prefill_mfu() -> None:
    # 2 · 7e9 · 1000 FLOPs in 0.1 s = 1.4e14 FLOP/s; / 989e12 = 0.14156
    assert prefill_mfu(7e9, 1000, 0.1, 989) == pytest.approx(1.4e14 / 989e12, rel=1e-12)
    assert round(100 * prefill_mfu(7e9, 1000, 0.1, 989), 2) == 14.16


def test_kv_bytes_per_token_of_known_models() -> None:
    assert kv_bytes_per_token(32, 32, 128, 2) == 524_288  # Llama-2-7B fp16: 0.5 MiB per token
    assert kv_bytes_per_token(32, 8, 128, 2) == 131_072  # Llama-3-8B (GQA, 8 KV heads)
    assert kv_bytes_per_token(80, 8, 128, 1) == 163_840  # Llama-3-70B with an fp8 KV cache


@pytest.mark.parametrize(
    ("function", "args", "message"),
    [
        (decode_mbu, (14e9, 0, 0.0, 3350), "tpot_s must be positive, got 0.0"),
        (decode_mbu, (14e9, 0, 0.014, 0), "peak_bandwidth_gbs must be positive, got 0"),
        (prefill_mfu, (7e9, 1000, -1.0, 989), "ttft_s must be positive, got -1.0"),
    ],
)
def test_non_positive_denominators_are_refused(function, args, message) -> None:
    with pytest.raises(ValueError, match=message):
        function(*args)


def test_scenario_roofline_with_given_concurrency() -> None:
    result = scenario_roofline(
        metrics(tpot_ms=14.0, ttft_ms=100.0), {**LLAMA2_7B, "concurrency": 1}, get_profile("h100-sxm")
    )

    # per step: 14e9 weight bytes + 524288 B/token · (512 + 256/2) tokens of context · 1 sequence
    kv_step = 524_288 * 640
    assert result["kv_bytes_per_step"] == kv_step == 335_544_320
    assert result["bytes_per_step"] == 14e9 + kv_step
    assert result["achieved_bandwidth_gbs"] == pytest.approx((14e9 + kv_step) / 0.014 / 1e9, rel=1e-12)
    assert result["mbu"] == pytest.approx((14e9 + kv_step) / 0.014 / 3.35e12, rel=1e-12)
    assert round(100 * result["mbu"], 2) == 30.57
    # prefill: 2 · 7e9 · 512 FLOPs in 100 ms against bf16 (2 bytes per value) at 989 TFLOPS
    assert result["dtype"] == "bf16"
    assert result["peak_tflops"] == 989
    assert result["mfu"] == pytest.approx(2 * 7e9 * 512 / 0.1 / 989e12, rel=1e-12)
    assert result["achieved_tflops"] == pytest.approx(71.68, rel=1e-12)
    assert result["concurrency"] == 1 and result["concurrency_source"] == "given"
    assert result["mbu_reason"] is None and result["mfu_reason"] is None


def test_scenario_roofline_estimates_concurrency_from_throughput_and_tpot() -> None:
    # 570 output tokens/s at 14 ms per token per sequence: 570 · 0.014 = 7.98 sequences at a time
    result = scenario_roofline(
        metrics(tpot_ms=14.0, ttft_ms=100.0, output_throughput=570.0), LLAMA2_7B, H100_SXM
    )

    assert result["concurrency"] == pytest.approx(7.98, rel=1e-12)
    assert result["concurrency_source"] == "estimated as output tokens/s × mean TPOT"
    assert result["kv_bytes_per_step"] == pytest.approx(335_544_320 * 7.98, rel=1e-12)
    assert result["mfu"] == pytest.approx(2 * 7e9 * 512 * 7.98 / 0.1 / 989e12, rel=1e-12)


def test_concurrency_is_at_least_one() -> None:
    # one request at a time spends part of the window in prefill: 50 tok/s · 14 ms = 0.7 → 1
    result = scenario_roofline(
        metrics(tpot_ms=14.0, ttft_ms=100.0, output_throughput=50.0), LLAMA2_7B, H100_SXM
    )

    assert result["concurrency"] == 1.0


def test_generic_cpu_profile_has_no_figures_so_both_are_none_with_reasons() -> None:
    result = scenario_roofline(metrics(tpot_ms=14.0, ttft_ms=100.0), LLAMA2_7B, get_profile("generic-cpu"))

    assert result["mbu"] is None
    assert result["mbu_reason"] == "missing memory_bandwidth_gbs in the profile"
    assert result["mfu"] is None
    assert result["mfu_reason"] == "missing peak_tflops for bf16 in the profile"


def test_measured_cpu_profile_as_a_mapping() -> None:
    # a CPU measured at 15 GB/s and 0.15 TFLOPS fp32, running a 135M model in fp32 (540 MB of weights)
    facts = {**LLAMA2_7B, "parameters": 135e6, "weight_bytes": 540e6, "bytes_per_value": 4, "concurrency": 1}
    facts.update(layers=30, kv_heads=3, head_dim=64, mean_prompt_tokens=64, mean_output_tokens=64)
    figures = {"memory_bandwidth_gbs": 15.0, "peak_tflops": {"fp32": 0.15}}

    result = scenario_roofline(metrics(tpot_ms=50.0, ttft_ms=40.0), facts, figures)

    kv_step = 2 * 30 * 3 * 64 * 4 * (64 + 32)
    assert result["mbu"] == pytest.approx((540e6 + kv_step) / 0.05 / 15e9, rel=1e-12)
    assert result["dtype"] == "fp32"
    assert result["mfu"] == pytest.approx(2 * 135e6 * 64 / 0.04 / 0.15e12, rel=1e-12)


def test_bf16_model_falls_back_to_the_fp16_peak() -> None:
    result = scenario_roofline(
        metrics(tpot_ms=14.0, ttft_ms=100.0),
        LLAMA2_7B,
        {"memory_bandwidth_gbs": 1008, "peak_tflops": {"fp16": 165.2}},
    )

    assert result["peak_tflops"] == 165.2


def test_missing_figures_give_reasons_not_numbers() -> None:
    no_tpot = scenario_roofline(metrics(tpot_ms=None, ttft_ms=100.0), LLAMA2_7B, H100_SXM)
    assert no_tpot["mbu"] is None
    assert no_tpot["mbu_reason"] == "missing mean TPOT (no request produced two tokens)"
    assert no_tpot["concurrency_source"] == "assumed 1 (no throughput or TPOT to estimate it)"
    assert no_tpot["mfu"] is not None

    partial = {key: value for key, value in LLAMA2_7B.items() if key not in ("kv_heads", "head_dim")}
    no_kv = scenario_roofline(metrics(tpot_ms=14.0, ttft_ms=100.0), partial, H100_SXM)
    assert no_kv["mbu"] is None
    assert no_kv["mbu_reason"] == "missing kv_heads, head_dim for the KV cache read per step"

    nan_ttft = scenario_roofline(
        metrics(tpot_ms=14.0, ttft_ms=math.nan), {**LLAMA2_7B, "weight_bytes": None}, H100_SXM
    )
    assert nan_ttft["mbu_reason"] == "missing weight_bytes"
    assert nan_ttft["mfu_reason"] == "missing mean TTFT"
