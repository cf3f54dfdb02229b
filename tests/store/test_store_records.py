"""Records in, the same records out: round trip, lookup by prefix, listing, status, deletion, durability."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from atomabench.errors import UserError
from atomabench.records import RunResult
from atomabench.store import RunSummary, Store, open_store

from .factories import T0, make_hardware, make_metrics, make_request, make_run, make_scenario
from .sql import row_count


def test_round_trip_rebuilds_the_exact_records(store: Store) -> None:
    run = make_run()
    chat = make_scenario("chat")
    failing = make_scenario(
        "long",
        records=(
            make_request(0, scenario="long", output_token_ids=(5, 6, 7, 8)),
            make_request(1, error="timeout"),
        ),
        with_energy=False,
        valid=False,
        minutes_after_t0=2,
    )
    store.start_run(run)
    first_id = store.add_scenario(run.run_id, chat)
    second_id = store.add_scenario(run.run_id, failing)

    result = store.get_run(run.run_id)

    assert result == RunResult(run=run, scenarios=(chat, failing))
    assert second_id != first_id
    # the parts most likely to be lost on the way, checked one by one as well
    first = result.scenarios[0].records[0]
    assert first.token_times == (0.125, 0.25, 0.375)
    assert first.logprobs is not None
    assert first.logprobs[1].logprob == -0.25
    assert first.logprobs[1].top == ((12, -0.25), (13, -2.5))
    assert result.scenarios[0].records[1].logprobs is None
    assert result.scenarios[1].records[1].error == "timeout"
    assert result.scenarios[1].records[1].first_token_time is None
    assert result.scenarios[1].energy is None
    assert result.scenarios[1].invalid_reason == "thermal throttling during the window"
    assert result.scenarios[0].metrics.ttft_ms.percentiles == {
        "p50": 125.0,
        "p90": 187.5,
        "p99": 218.75,
        "p95": 203.125,
    }
    assert list(result.scenarios[0].metrics.ttft_ms.percentiles) == ["p50", "p90", "p95", "p99"]
    assert result.scenarios[0].metrics.e2el_ms.std is None
    assert result.run.hardware.gpus[0].name == "NVIDIA GeForce RTX 4090"
    assert result.run.started_at.tzinfo is not None


def test_a_non_utc_time_comes_back_as_the_same_instant_in_utc(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    run = make_run().model_copy(update={"started_at": datetime(2025, 3, 1, 14, 0, tzinfo=plus_two)})
    store.start_run(run)

    started = store.get_run(run.run_id).run.started_at

    assert started == T0
    assert started.utcoffset() == timedelta(0)


def test_nan_metrics_are_kept_instead_of_losing_the_scenario(store: Store) -> None:
    run = make_run()
    scenario = make_scenario(output_throughput=math.nan)
    nan_p50 = scenario.metrics.ttft_ms.model_copy(update={"percentiles": {"p50": math.nan}})
    scenario = scenario.model_copy(
        update={"metrics": scenario.metrics.model_copy(update={"ttft_ms": nan_p50})}
    )
    store.start_run(run)
    store.add_scenario(run.run_id, scenario)

    metrics = store.get_run(run.run_id).scenarios[0].metrics

    assert math.isnan(metrics.output_throughput)
    assert math.isnan(metrics.ttft_ms.percentiles["p50"])
    assert metrics.request_throughput == 4.0


def test_get_run_by_unique_prefix(store: Store) -> None:
    for index, run_id in enumerate(("abc123", "abc456", "xyz789")):
        store.start_run(make_run(run_id, hours_after_t0=index))

    assert store.get_run("abc1").run.run_id == "abc123"
    assert store.get_run("x").run.run_id == "xyz789"
    assert store.resolve_run_id("abc4") == "abc456"


def test_an_exact_id_wins_over_longer_ids_it_prefixes(store: Store) -> None:
    store.start_run(make_run("abc"))
    store.start_run(make_run("abcdef", hours_after_t0=1))

    assert store.get_run("abc").run.run_id == "abc"


def test_ambiguous_prefix_names_the_candidates(store: Store) -> None:
    store.start_run(make_run("abc123"))
    store.start_run(make_run("abc456", hours_after_t0=1))

    with pytest.raises(UserError) as caught:
        store.get_run("abc")

    assert caught.value.field == "run_id"
    assert "abc123, abc456" in str(caught.value)
    assert "several runs" in str(caught.value)


@pytest.mark.parametrize("unknown", ["nope", "a%", "a_c", ""])
def test_unknown_prefix_is_a_user_error(store: Store, unknown: str) -> None:
    """``%`` and ``_`` are LIKE wildcards in SQL; they must match only themselves."""
    store.start_run(make_run("abc123"))

    with pytest.raises(UserError) as caught:
        store.get_run(unknown)

    assert caught.value.field == "run_id"


def test_list_runs_newest_first_with_counts_and_best_valid_throughput(store: Store) -> None:
    old = make_run("run-old", hours_after_t0=0)
    new = make_run(
        "run-new",
        hours_after_t0=2,
        backend="vllm",
        hardware=make_hardware("NVIDIA H100 80GB HBM3", "h100-sxm", 8),
    )
    empty = make_run("run-empty", hours_after_t0=1, hardware=make_hardware(profile_id=None))
    for run in (old, new, empty):
        store.start_run(run)
    store.add_scenario("run-old", make_scenario("a", output_throughput=12.0))
    store.add_scenario("run-old", make_scenario("b", output_throughput=20.0))
    store.add_scenario("run-old", make_scenario("c", output_throughput=99.0, valid=False))
    store.add_scenario("run-new", make_scenario("a", output_throughput=1500.0))

    runs = store.list_runs()

    assert [summary.run_id for summary in runs] == ["run-new", "run-empty", "run-old"]
    assert runs[0] == RunSummary(
        run_id="run-new",
        suite="smoke",
        backend="vllm",
        model="smollm2-135m",
        device_name="NVIDIA H100 80GB HBM3",
        profile_id="h100-sxm",
        status="running",
        started_at=T0 + timedelta(hours=2),
        scenario_count=1,
        best_output_throughput=1500.0,
        dtype="bfloat16",  # from backend_settings: listings show what precision ran
    )
    assert (runs[1].scenario_count, runs[1].best_output_throughput, runs[1].profile_id) == (0, None, None)
    assert (runs[2].scenario_count, runs[2].best_output_throughput) == (3, 20.0)
    assert [summary.run_id for summary in store.list_runs(limit=2)] == ["run-new", "run-empty"]


def test_finish_run_records_status_and_end_time(store: Store) -> None:
    run = make_run()
    store.start_run(run)
    ended = T0 + timedelta(minutes=5)

    store.finish_run("run-0001", "interrupted", ended)

    stored = store.get_run("run-0001").run
    assert stored.status == "interrupted"
    assert stored.ended_at == ended
    assert store.list_runs()[0].status == "interrupted"


def test_finish_run_refuses_an_unknown_status(store: Store) -> None:
    store.start_run(make_run())

    with pytest.raises(ValueError, match="unknown run status 'done'"):
        store.finish_run("run-0001", "done", T0)  # type: ignore[arg-type]


def test_writing_to_an_unknown_or_duplicate_run_is_a_user_error(store: Store) -> None:
    store.start_run(make_run())

    with pytest.raises(UserError, match="already stored"):
        store.start_run(make_run())
    with pytest.raises(UserError, match="no run 'run-9999'"):
        store.add_scenario("run-9999", make_scenario())
    with pytest.raises(UserError, match="no run 'run-9999'"):
        store.finish_run("run-9999", "completed", T0)


def test_delete_run_removes_every_row_under_it(store: Store) -> None:
    store.start_run(make_run("keep"))
    store.start_run(make_run("drop-me", hours_after_t0=1))
    store.add_scenario("keep", make_scenario())
    store.add_scenario("drop-me", make_scenario())
    store.add_scenario("drop-me", make_scenario("second"))

    assert store.delete_run("drop") == "drop-me"

    assert [summary.run_id for summary in store.list_runs()] == ["keep"]
    assert {table: row_count(store, table) for table in ("runs", "hardware", "scenarios", "requests")} == {
        "runs": 1,
        "hardware": 1,
        "scenarios": 1,
        "requests": 2,
    }
    # 4 metrics: ttft 5 scalars + 4 pcts, tpot 5 + 3, itl 5 + 4, e2el count + mean
    assert row_count(store, "latency_stats") == 9 + 8 + 9 + 2
    with pytest.raises(UserError):
        store.delete_run("drop-me")


def test_ten_thousand_requests_round_trip(store: Store) -> None:
    """Bulk storage keeps every record exactly (its speed target is tests/benchmarks/test_store_bench.py)."""
    records = tuple(make_request(index, output_token_ids=tuple(range(64))) for index in range(10_000))
    scenario = make_scenario(records=records)
    store.start_run(make_run())
    store.add_scenario("run-0001", scenario)
    assert store.get_run("run-0001").scenarios[0].records == records


def test_a_committed_scenario_survives_a_crash_before_finish_run(tmp_path: Path) -> None:
    """A process that dies mid-run (no finish_run, no close) still leaves its finished scenario."""
    db_path = tmp_path / "crash.db"
    run, scenario = make_run(), make_scenario()
    (tmp_path / "run.json").write_text(run.model_dump_json())
    (tmp_path / "scenario.json").write_text(scenario.model_dump_json())
    crashing_runner = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from atomabench.records import RunInfo, ScenarioResult
        from atomabench.store import open_store

        folder = Path({str(tmp_path)!r})
        store = open_store(str(folder / "crash.db"))
        store.start_run(RunInfo.model_validate_json((folder / "run.json").read_text()))
        scenario = ScenarioResult.model_validate_json((folder / "scenario.json").read_text())
        store.add_scenario("run-0001", scenario)
        os._exit(9)  # killed: no finish_run, no close, no WAL checkpoint
        """
    )

    completed = subprocess.run([sys.executable, "-c", crashing_runner], capture_output=True, text=True)

    assert completed.returncode == 9, completed.stderr
    with open_store(db_path) as fresh:
        result = fresh.get_run("run-0001")
    assert result.run.status == "running"
    assert result.run.ended_at is None
    assert result.scenarios == (scenario,)


def test_scenario_positions_follow_insertion_order(store: Store) -> None:
    store.start_run(make_run())
    for name in ("z-last-alphabetically", "a-first", "m-middle"):
        store.add_scenario("run-0001", make_scenario(name))

    names = [scenario.name for scenario in store.get_run("run-0001").scenarios]

    assert names == ["z-last-alphabetically", "a-first", "m-middle"]


def test_metrics_factory_is_self_consistent() -> None:
    """Guards the hand-computed numbers the other tests rely on."""
    metrics = make_metrics()
    assert (metrics.total_input_tokens, metrics.total_output_tokens) == (64, 6)
    assert metrics.output_throughput == 6 / 0.5
    assert metrics.total_token_throughput == 70 / 0.5
    assert datetime(2025, 3, 1, 12, tzinfo=UTC) == T0


def test_get_run_without_records_keeps_the_aggregates(store: Store) -> None:
    store.start_run(make_run())
    scenario = make_scenario()
    store.add_scenario("run-0001", scenario)

    light = store.get_run("run-0001", with_records=False).scenarios[0]

    assert light.records == ()
    assert light == scenario.model_copy(update={"records": ()})
