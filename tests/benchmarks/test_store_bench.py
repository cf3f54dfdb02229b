"""Storing a scenario of 10,000 requests (64 tokens each) in SQLite takes well under a second.

A long serving run commits scenario by scenario; a slow insert would stall the run between scenarios.
Best of three rounds, each into a fresh run of the same database.
"""

from __future__ import annotations

import itertools

from store.factories import make_request, make_run, make_scenario

from atomabench.store import open_store

BUDGET_S = 1.0


def test_ten_thousand_requests_are_stored_well_under_a_second(benchmark, tmp_path):
    records = tuple(make_request(index, output_token_ids=tuple(range(64))) for index in range(10_000))
    scenario = make_scenario(records=records)
    run_ids = (f"run-{n:04d}" for n in itertools.count())
    with open_store(tmp_path / "bench.db") as store:

        def fresh_run() -> tuple[tuple[str, object], dict]:
            run_id = next(run_ids)
            store.start_run(make_run(run_id))
            return (run_id, scenario), {}

        benchmark.pedantic(store.add_scenario, setup=fresh_run, rounds=3, iterations=1)
        assert store.get_run("run-0000").scenarios[0].records == records
    best = benchmark.stats.stats.min
    benchmark.extra_info["best_seconds"] = best
    assert best < BUDGET_S, f"storing 10k requests took {best:.2f} s at best"
