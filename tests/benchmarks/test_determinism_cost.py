"""What the default determinism suite costs next to the smoke suite, on the bundled model.

Both suites run back to back on the same machine and model; the ratio of their wall times is
recorded (extra_info and printed) and must stay under 3x so operators actually run it.
"""

from __future__ import annotations

import time

import pytest

from atomabench import api

pytestmark = pytest.mark.slow


def test_determinism_suite_costs_under_three_smoke_suites(benchmark, tmp_path):
    db = str(tmp_path / "results.db")
    timings: dict[str, float] = {}

    def timed(suite: str):
        start = time.perf_counter()
        result = api.run(suite, model="smollm2-135m", dtype="float32", device="cpu", db=db)
        timings[suite] = time.perf_counter() - start
        return result

    smoke = timed("smoke")
    determinism = benchmark.pedantic(timed, args=("determinism",), rounds=1, iterations=1)
    ratio = timings["determinism"] / timings["smoke"]
    summary = determinism.scenarios[0].determinism_summary
    benchmark.extra_info.update(
        smoke_s=round(timings["smoke"], 1),
        determinism_s=round(timings["determinism"], 1),
        ratio=round(ratio, 3),
        tier=summary.tier,
        comparisons=summary.comparisons,
        near_tie_flips=summary.near_tie_flips,
        wide_flips=summary.wide_flips,
    )
    print(
        f"\nsmoke {timings['smoke']:.1f} s, determinism {timings['determinism']:.1f} s: {ratio:.2f}x; "
        f"tier {summary.tier} ({summary.reason})"
    )
    assert smoke.run.status == determinism.run.status == "completed"
    assert summary.comparisons > 0
    assert ratio < 3.0
