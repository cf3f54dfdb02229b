"""The qualification verdict on a real tiny run, varied by hand so each rule has an exact answer."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from atomabench import api
from atomabench.cli import app
from atomabench.economics.catalogue import load_catalogue
from atomabench.records import DeterminismSummary, GpuInfo, LatencyStats
from atomabench.verdict import ClassMinimums, VerdictRules, decide, node_memory


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from pathlib import Path

    suite = Path(__file__).parent / "data" / "tiny.toml"
    return api.run(str(suite), device="cpu", db=str(tmp_path_factory.mktemp("verdict") / "r.db"))


def with_latency(run, index: int, ttft_p99: float, tpot_p99: float, throughput: float):
    scenario = run.scenarios[index]
    metrics = scenario.metrics.model_copy(
        update={
            "ttft_ms": LatencyStats(count=1, percentiles={"p99": ttft_p99}),
            "tpot_ms": LatencyStats(count=1, percentiles={"p99": tpot_p99}),
            "output_throughput": throughput,
        }
    )
    scenarios = list(run.scenarios)
    scenarios[index] = scenario.model_copy(update={"metrics": metrics})
    return run.model_copy(update={"scenarios": tuple(scenarios)})


def with_tier(run, tier: str):
    summary = DeterminismSummary(
        tier=tier, reason="test", near_tie_margin=0.1, comparisons=1, exact=1, near_tie_flips=0, wide_flips=0,
        repeat_mismatches=0,
    )  # fmt: skip
    scenario = run.scenarios[0].model_copy(
        update={"name": "det", "kind": "determinism", "determinism_summary": summary}
    )
    return run.model_copy(update={"scenarios": (*run.scenarios, scenario)})


RULES = VerdictRules(
    ttft_p99_ms=100, tpot_p99_ms=20, minimums={"default": ClassMinimums(output_tokens_per_s=50, memory_gb=1)}
)


def test_best_scenario_within_the_slo_decides_throughput(tiny_run):
    run = with_latency(with_latency(tiny_run, 0, 90, 10, 60.0), 1, 500, 10, 999.0)  # batched misses TTFT
    verdict = decide(with_tier(run, "B"), RULES)
    assert verdict.best_scenario_at_slo == "stream" and verdict.best_output_tokens_per_s_at_slo == 60.0
    assert verdict.passed and verdict.minimums_from == "default" and verdict.determinism_tier == "B"
    assert [c.name for c in verdict.checks] == ["memory", "output tokens/s at SLO", "determinism tier"]


def test_fails_below_minimum_without_slo_or_with_a_bad_tier(tiny_run):
    slow = decide(
        with_tier(with_latency(with_latency(tiny_run, 0, 90, 10, 40.0), 1, 500, 50, 999.0), "A"), RULES
    )
    assert not slow.passed and [c.passed for c in slow.checks] == [True, False, True]
    nothing = decide(
        with_tier(with_latency(with_latency(tiny_run, 0, 900, 10, 60.0), 1, 500, 50, 999.0), "A"), RULES
    )
    assert (
        nothing.best_scenario_at_slo is None and "no valid scenario met the SLO" in nothing.checks[1].measured
    )
    failed = decide(with_tier(with_latency(tiny_run, 0, 90, 10, 60.0), "fail"), RULES)
    assert not failed.passed and failed.checks[2].measured == "fail"
    unmeasured = decide(with_latency(tiny_run, 0, 90, 10, 60.0), RULES)
    assert not unmeasured.passed and unmeasured.determinism_tier is None


def test_invalid_scenarios_never_count(tiny_run):
    run = with_tier(with_latency(with_latency(tiny_run, 0, 90, 10, 60.0), 1, 500, 50, 999.0), "A")
    invalid = run.scenarios[0].model_copy(update={"valid": False, "invalid_reason": "thermal throttling"})
    verdict = decide(run.model_copy(update={"scenarios": (invalid, *run.scenarios[1:])}), RULES)
    assert verdict.best_scenario_at_slo is None
    assert verdict.invalid_scenarios == ("stream: thermal throttling",)


def test_class_minimums_and_memory_fit(tiny_run):
    h100 = GpuInfo(index=0, vendor="NVIDIA", name="NVIDIA H100 80GB HBM3", memory_total_bytes=85_520_809_984)
    hardware = tiny_run.run.hardware.model_copy(
        update={"gpus": (h100,) * 8, "accelerator": "cuda", "profile_id": "h100-sxm"}
    )
    run = tiny_run.model_copy(update={"run": tiny_run.run.model_copy(update={"hardware": hardware})})
    assert node_memory(hardware) == pytest.approx((8 * 85.520809984, "8 × GPU memory"))
    rules = VerdictRules(
        minimums={"default": ClassMinimums(), "h100-sxm": ClassMinimums(memory_gb=640)},
        context_tokens=8192,
        fit_dtypes=("bf16",),
    )
    verdict = decide(run, rules, catalogue_models=list(load_catalogue().params.models))
    assert verdict.minimums_from == "h100-sxm" and verdict.checks[0].passed
    fits = {f.model: f.fits for f in verdict.servable_models}
    # 405B at bf16 is 810 GB of weights alone: more than 8 x 80 GB; 70B (140 GB + KV) fits
    assert fits["llama-3.1-405b"] is False and fits["llama-3.1-70b"] is True
    seventy = next(f for f in verdict.servable_models if f.model == "llama-3.1-70b")
    model = next(m for m in load_catalogue().params.models if m.id == "llama-3.1-70b")
    assert seventy.needed_gb == pytest.approx(
        round((model.weight_bytes("bf16") + model.kv_bytes_per_token("bf16") * 8192) / 1e9, 3)
    )


def test_qualification_cli_prints_a_verdict(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--suite",
            "qualification",
            "--model",
            "tiny-random-llama",
            "--device",
            "cpu",
            "--db",
            str(tmp_path / "q.db"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    verdict = document["verdict"]
    assert verdict["hardware_class"] == document["run"]["hardware"]["profile_id"]
    assert [c["name"] for c in verdict["checks"]] == ["memory", "output tokens/s at SLO", "determinism tier"]
    assert verdict["determinism_tier"] in ("A", "B", "fail")
    assert {s["kind"] for s in document["scenarios"]} == {"single_stream", "offline", "determinism"}


def test_a_measured_cpu_profile_takes_the_generic_cpu_minimums():
    rules = VerdictRules(
        minimums={"default": ClassMinimums(memory_gb=16), "generic-cpu": ClassMinimums(memory_gb=8)}
    )
    assert rules.minimums_for("measured-intel-xeon", "cpu")[0] == "generic-cpu"
    assert rules.minimums_for("measured-intel-xeon", "cuda")[0] == "default"
    assert rules.minimums_for("generic-cpu", "cpu")[0] == "generic-cpu"
