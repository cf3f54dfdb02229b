"""Capacity: memory fit, the seeds' sizing claims, the decode roofline at an SLO, network capacity."""

from __future__ import annotations

import math

import pytest
from economics_helpers import h100, scenario_row, scenarios_frame, toy_gpu, toy_model, toy_moe

from atomabench.economics.capacity import (
    Census,
    CensusEntry,
    census_capacity,
    deployment_gpu_counts,
    fit_table,
    gpus_needed,
    load_capacity_params,
    network_capacity,
    roofline_at_slo,
    seed_checks,
    slo_throughput,
)
from atomabench.economics.catalogue import Catalogue, load_catalogue


def params(**updates: object):
    return load_capacity_params().with_values(updates).params


def test_llama_8b_memory_from_its_architecture() -> None:
    model = load_catalogue().params.get("llama-3.1-8b")
    # 8,030,261,248 params × 2 B = 16.06 GB; KV = 2 · 32 layers · 8 heads · 128 · 2 B = 131,072 B/token.
    assert model.weight_bytes("bf16") == 16_060_522_496
    assert model.kv_bytes_per_token("bf16") == 131_072
    assert model.weight_bytes("int4") == 4_015_130_624


def test_seed_claims_are_reproduced_and_corrected() -> None:
    checks = seed_checks(load_catalogue().params, {"h100-sxm": h100()}, load_capacity_params().params)
    gpt4, llama400, llama7 = (checks.iloc[i] for i in range(3))
    # 1.76e12 × 2 B = 3.52 TB = 3,520 GB ÷ 80 GB = 44 GPUs (the seed says ~40).
    assert gpt4["weights_gb"] == pytest.approx(3520)
    assert gpt4["min_gpus"] == 44
    # With 90% usable and 8,192 tokens of KV (120 · 1 · 128 · 2 · 2 = 61,440 B/token → 0.503 GB):
    # 3,520.5 GB ÷ 72 GB = 48.9 → 49.
    assert gpt4["practical_gpus"] == 49
    assert gpt4["capex_usd"] == 44 * 31000 and gpt4["seed_capex_usd"] == 1_240_000
    assert "understated" in gpt4["verdict"] and "memory consistent" in gpt4["verdict"]
    # 400e9 × 2 B = 800 GB ÷ 80 GB = 10, not the seed's 5; with KV (516,096 B/token × 8,192 = 4.2 GB)
    # and 90% usable: 804.2 ÷ 72 = 11.2 → 12. Hardware: 10 × $31,000 = $310,000, not $155,000.
    assert llama400["min_gpus"] == 10 and llama400["seed_gpus"] == 5
    assert llama400["practical_gpus"] == 12
    assert llama400["capex_usd"] == 310_000 and llama400["seed_capex_usd"] == 155_000
    assert "need ≥ 10 GPUs, not 5" in llama400["verdict"]
    # 7e9 × 0.5 B = 3.5 GB, as seed 004 says.
    assert llama7["weights_gb"] == pytest.approx(3.5) and llama7["verdict"] == "memory consistent"


def test_gpus_needed_rounds_up_and_handles_missing_memory() -> None:
    assert gpus_needed(160e9, 80, 1.0) == 2
    assert gpus_needed(160.1e9, 80, 1.0) == 3
    assert gpus_needed(144e9, 80, 0.9) == 2  # exactly 2 × 72 GB
    assert math.isnan(gpus_needed(1e9, None, 0.9))
    assert deployment_gpu_counts(3, 8) == [4, 8]
    assert deployment_gpu_counts(1, 8) == [1, 2, 4, 8]
    assert deployment_gpu_counts(12, 8) == []


def test_fit_table_for_a_toy_model() -> None:
    p = params(context_tokens=1000, batch=250, gpu_count=1, usable_memory_fraction=0.9)
    table = fit_table(Catalogue(models=(toy_model(),)), {"toy-gpu": toy_gpu()}, p)
    row = table.iloc[0]
    # 2 GB weights + 4,000 B × 1,000 tokens × 250 sequences = 1 GB KV = 3 GB ≤ 9 GB usable → 1 GPU.
    assert (row["weights_gb"], row["kv_cache_gb"], row["total_gb"]) == pytest.approx((2.0, 1.0, 3.0))
    assert row["gpus_needed"] == 1 and bool(row["fits"])
    p = params(context_tokens=1000, batch=2000, gpu_count=1, usable_memory_fraction=0.9)
    row = fit_table(Catalogue(models=(toy_model(),)), {"toy-gpu": toy_gpu()}, p).iloc[0]
    # 2 + 8 = 10 GB > 9 GB → 2 GPUs, so it does not fit on 1.
    assert row["gpus_needed"] == 2 and not bool(row["fits"])


def test_roofline_batch_and_tokens_per_second_at_the_slo() -> None:
    p = params(context_tokens=1000, usable_memory_fraction=0.9, mbu=1.0, **{"slo.tpot_p99_ms": 5.002})
    point = roofline_at_slo(toy_model(), toy_gpu(), 1, p)
    # Step time = (2e9 B + B · 4e6 B) / 1e12 B/s = 2 ms + 0.004 ms · B ≤ 5.002 ms → B = 750 (memory
    # allows (9 − 2) GB / 4 MB = 1,750). Tokens/s = 750 / 5 ms = 150,000.
    assert point.batch == 750
    assert point.tpot_ms == pytest.approx(5.0)
    assert point.tokens_per_s == pytest.approx(150_000)
    # At half the bandwidth efficiency even one sequence misses 5 ms: (2e9 + 4e6) / 5e11 = 4.008 ms
    # fits, but an SLO of 4 ms does not.
    slow = params(context_tokens=1000, mbu=0.5, **{"slo.tpot_p99_ms": 4.0})
    assert roofline_at_slo(toy_model(), toy_gpu(), 1, slow).tokens_per_s == 0.0


def test_moe_reads_only_the_experts_a_batch_touches() -> None:
    moe = toy_moe()
    # Batch 1: shared 2e9/3 + 2 experts × 7e9/6 = 3e9 params (the active count) × 2 B.
    assert moe.weight_bytes_read_per_step("bf16", 1) == pytest.approx(6e9)
    # Batch 2: 8 · (1 − 0.75²) = 3.5 experts touched → 2e9/3 + 3.5 · 7e9/6 = 4.75e9 params → 9.5e9 B.
    assert moe.weight_bytes_read_per_step("bf16", 2) == pytest.approx(9.5e9)
    # A large batch touches every expert: all 10e9 params.
    assert moe.weight_bytes_read_per_step("bf16", 1000) == pytest.approx(20e9)


def test_measured_goodput_replaces_the_roofline(catalogue: Catalogue) -> None:
    frame = scenarios_frame(
        scenario_row(
            run_id="r1",
            model="toy-1b",
            profile_id="toy-gpu",
            scenario="c8",
            output_throughput=900.0,
            ttft_ms_p99=300.0,
            tpot_ms_p99=40.0,
        ),
        scenario_row(
            run_id="r1",
            model="toy-1b",
            profile_id="toy-gpu",
            scenario="c64",
            output_throughput=5000.0,
            ttft_ms_p99=300.0,
            tpot_ms_p99=90.0,
        ),  # misses the 50 ms TPOT SLO
        scenario_row(
            run_id="r2",
            model="toy-1b",
            profile_id="toy-gpu",
            scenario="c32",
            output_throughput=9000.0,
            ttft_ms_p99=100.0,
            tpot_ms_p99=10.0,
            valid=False,
        ),  # invalid: ignored
    )
    table = slo_throughput(catalogue, {"toy-gpu": toy_gpu()}, params(), frame)
    row = table[(table["model"] == "toy-1b") & (table["gpu_count"] == 1)].iloc[0]
    assert row["tokens_per_s"] == 900.0 and not row["estimated"] and row["run_id"] == "r1"
    others = table[(table["model"] == "toy-1b") & (table["gpu_count"] > 1)]
    assert others["estimated"].all()


def test_network_capacity_from_a_census(catalogue: Catalogue) -> None:
    p = params(
        context_tokens=1000, usable_memory_fraction=0.9, mbu=1.0, max_gpus=2, **{"slo.tpot_p99_ms": 5.002}
    )
    census = Census(
        nodes=(
            CensusEntry(profile="toy-gpu", gpu_count=2, count=3),
            CensusEntry(profile="unknown-class", gpu_count=1, count=5),
        )
    )
    breakdown = census_capacity(Catalogue(models=(toy_model(),)), {"toy-gpu": toy_gpu()}, census, p)
    toy = breakdown[breakdown["profile_id"] == "toy-gpu"].iloc[0]
    # On 2 GPUs (2 TB/s, 18 GB usable): step = (2e9 + B · 4e6) / 2e12 ≤ 5.002 ms → B = 2,000
    # (memory allows 4,000): 2,000 / 5 ms = 400,000 tokens/s, better than 2 replicas × 150,000.
    assert toy["replicas_per_node"] == 1 and toy["gpus_per_replica"] == 2
    assert toy["tokens_per_s_per_node"] == pytest.approx(400_000)
    assert toy["tokens_per_s"] == pytest.approx(1_200_000)
    summary = network_capacity(breakdown).iloc[0]
    assert summary["tokens_per_s"] == pytest.approx(1_200_000)
    assert (summary["nodes_able"], summary["gpus_able"], summary["nodes_total"]) == (3, 6, 8)
    assert summary["basis"] == "estimated"
