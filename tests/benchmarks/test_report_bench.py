"""The issue's budget: the leaderboard site for 10,000 stored runs builds in under 30 s on 2 cores.

The store is filled once by bulk insertion (``tests/report/bulk.py``: 10,000 runs, 25,000 scenarios,
every other run with determinism comparisons); only ``build_site`` is timed. The figure goes to
pytest-benchmark's ``extra_info``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from report.bulk import fill

from atomabench.hardware.profiles import load_profiles
from atomabench.paths import hardware_profiles_dir
from atomabench.report import build_site
from atomabench.store import open_store

RUNS = 10_000
BUDGET_S = 30.0


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("report-bench") / "results.db"
    with open_store(path) as store:
        scenarios = fill(store, RUNS)
        yield store, scenarios


def test_site_for_10k_runs_under_30_s(benchmark, big_store, tmp_path: Path) -> None:
    store, scenarios = big_store
    profiles = load_profiles(hardware_profiles_dir())
    out = tmp_path / "site"

    started, cpu_started = time.perf_counter(), time.process_time()
    summary = benchmark.pedantic(
        build_site, args=(store, out), kwargs={"profiles": profiles}, rounds=1, iterations=1
    )
    seconds = time.perf_counter() - started  # measured here too, in case of --benchmark-disable
    cpu_seconds = time.process_time() - cpu_started

    benchmark.extra_info.update(
        {
            "runs": summary.runs,
            "scenarios": summary.scenarios,
            "build_seconds": round(seconds, 2),
            "build_cpu_seconds": round(cpu_seconds, 2),
            "budget_s": BUDGET_S,
        }
    )
    assert (summary.runs, summary.run_pages, summary.scenarios) == (RUNS, RUNS, scenarios)
    assert len(list((out / "runs").iterdir())) == RUNS
    assert (out / "leaderboard.csv").read_text().count("\n") == RUNS + 1
    assert seconds < BUDGET_S, f"building the site for {RUNS} runs took {seconds:.1f} s"
