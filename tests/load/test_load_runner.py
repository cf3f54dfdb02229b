"""Server and sweep scenarios through the runner into a real SQLite store, on a simulated server."""

from __future__ import annotations

import pytest

from atomabench.backends import BackendConfig
from atomabench.errors import UserError
from atomabench.runner import run_suite
from atomabench.store import open_store
from atomabench.workloads.suite import parse_suite

from .simulated import SimulatedServer

SERVER = """
name = "load"
[slo]
ttft_ms = 100
tpot_ms = 40

[[scenarios]]
name = "poisson"
kind = "server"
arrival = "constant"
rate = 20
num_requests = 40
warmup_requests = 2
warmup_s = 0.25
cooldown_s = 0.25
input_tokens = 16
output_tokens = 8
"""

SWEEP = """
name = "sweep"
[[scenarios]]
name = "sweep"
kind = "sweep"
points = 3
num_requests = 24
max_concurrency = 16
input_tokens = 16
output_tokens = 8
slo = { ttft_ms = 120, tpot_ms = 25 }
"""


def run(text: str, db_path: str, backend: SimulatedServer, hardware):
    suite = parse_suite(text, "suite.toml")
    with open_store(db_path) as store:
        result = run_suite(suite, BackendConfig(kind="simulated"), store, backend=backend, hardware=hardware)
        assert store.get_run(result.run.run_id) == result  # stored exactly as returned
    return result


@pytest.fixture
def hardware():
    from tests.store.factories import make_hardware

    return make_hardware()


def test_a_server_scenario_sends_on_schedule_and_drops_warmup_and_cooldown(db_path, hardware):
    backend = SimulatedServer(slots=8)
    (scenario,) = run(SERVER, db_path, backend, hardware).scenarios
    # two warm-up requests one by one, then the 40 scheduled requests in one load
    assert backend.calls == [(1, 1), (1, 1), (40, None)]
    serving = scenario.serving
    # constant 20 req/s: sends at 0, 0.05, … 1.95; the first 0.25 s (5 sends) and the last 0.25 s
    # before the final send (sends after 1.70: 1.75, 1.80, 1.85, 1.90, 1.95) are not measured
    assert (serving["excluded_warmup"], serving["excluded_cooldown"], serving["sent"]) == (5, 5, 40)
    assert scenario.metrics.completed == 30 and len(scenario.records) == 30
    assert serving["target_rate"] == 20 and serving["achieved_send_rate"] == pytest.approx(20.0)
    assert serving["arrival"] == "constant"
    # the suite's SLO applies: TTFT 20 ms ≤ 100 ms and TPOT ≤ 40 ms for every request at this light load
    assert scenario.metrics.slo_attainment == 1.0 and serving["slo_met"] is True
    assert scenario.metrics.goodput == pytest.approx(scenario.metrics.request_throughput)
    assert 1.0 <= scenario.metrics.mean_concurrency <= scenario.metrics.peak_concurrency


def test_failures_are_counted_misses_and_the_run_completes(db_path, hardware):
    result = run(SERVER, db_path, SimulatedServer(slots=8, fail_every=4), hardware)
    (scenario,) = result.scenarios
    assert result.run.status == "completed"
    assert scenario.metrics.failed > 0
    assert scenario.metrics.slo_attainment == pytest.approx(
        scenario.metrics.completed / (scenario.metrics.completed + scenario.metrics.failed)
    )
    assert scenario.serving["slo_met"] is False and "failed" in scenario.serving["slo_reason"]


def test_a_sweep_runs_sync_throughput_and_rates_between_and_finds_the_highest_rate_in_slo(db_path, hardware):
    backend = SimulatedServer(slots=4, prefill_s=0.02, tpot_s=0.01, crowding=0.25)
    result = run(SWEEP, db_path, backend, hardware)
    names = [s.name for s in result.scenarios]
    assert names[:2] == ["sweep.sync", "sweep.throughput"] and names[-1] == "sweep"
    points, summary = result.scenarios[:-1], result.scenarios[-1]
    assert len(points) == 2 + 3 and all(p.kind == "server" for p in points)
    sync, throughput = points[0].metrics.request_throughput, points[1].metrics.request_throughput
    assert throughput > sync
    rates = [p.serving["target_rate"] for p in points[2:]]
    assert rates == sorted(rates) and sync < rates[0] and rates[-1] < throughput
    # max_concurrency caps the throughput point; the synchronous point has one request in flight
    assert points[0].metrics.peak_concurrency == 1.0 and points[1].metrics.peak_concurrency <= 16

    sweep = summary.serving["sweep"]
    assert summary.kind == "sweep" and summary.records == ()
    met = [row for row in sweep["points"] if row["slo_met"]]
    missed = [row for row in sweep["points"] if not row["slo_met"]]
    assert met and missed  # the all-at-once point queues past the TTFT limit; light loads meet it
    assert sweep["max_rate_within_slo"] == max(row["request_throughput"] for row in met)
    assert all(row["tpot_p99_ms"] <= 25 and row["ttft_p99_ms"] <= 120 for row in met)
    assert summary.metrics.request_throughput == sweep["max_rate_within_slo"]
    assert summary.valid


def test_a_sweep_nobody_can_meet_is_stored_invalid_with_the_reason(db_path, hardware):
    result = run(SWEEP.replace("ttft_ms = 120", "ttft_ms = 1"), db_path, SimulatedServer(), hardware)
    summary = result.scenarios[-1]
    assert not summary.valid and summary.serving["sweep"]["max_rate_within_slo"] is None
    assert "no point met the SLO" in summary.invalid_reason and "TTFT" in summary.invalid_reason


def test_static_batch_backends_refuse_load_scenarios_before_loading(db_path, hardware):
    suite = parse_suite(SERVER, "suite.toml")
    with open_store(db_path) as store, pytest.raises(UserError) as caught:
        run_suite(suite, BackendConfig(model="tiny-random-llama"), store, hardware=hardware)
    assert caught.value.field == "scenarios[0].kind"
    assert "cannot serve" in caught.value.message and "openai-http" in caught.value.message
    with open_store(db_path) as store:
        assert store.list_runs() == []


def test_results_show_prints_serving_metrics_and_the_sweep_table(db_path, hardware):
    from typer.testing import CliRunner

    from atomabench.cli import app

    result = run(SWEEP, db_path, SimulatedServer(), hardware)
    wide = CliRunner(env={"COLUMNS": "250"})  # six scenario columns do not fit 80
    shown = wide.invoke(app, ["results", "show", result.run.run_id[:10], "--db", db_path])
    assert shown.exit_code == 0, shown.output
    best = result.scenarios[-1].serving["sweep"]["max_rate_within_slo"]
    assert f"highest rate within the SLO {best:,.3f} req/s" in shown.output
    assert "goodput req/s (SLO met)" in shown.output and "concurrency peak / mean" in shown.output
    as_json = CliRunner().invoke(app, ["results", "show", result.run.run_id, "--db", db_path, "--json"])
    document = __import__("json").loads(as_json.output)
    assert document["scenarios"][-1]["serving"]["sweep"]["max_rate_within_slo"] == best


class _CountingObserver:
    def __init__(self) -> None:
        self.measured = self.warmup = 0

    def stage(self, message):
        pass

    def scenario_started(self, plan, index, total):
        pass

    def requests_done(self, count, warmup):
        if warmup:
            self.warmup += count
        else:
            self.measured += count

    def scenario_finished(self, result):
        pass


def test_progress_advances_once_per_finished_request(db_path, hardware):
    observer = _CountingObserver()
    suite = parse_suite(SERVER, "suite.toml")
    with open_store(db_path) as store:
        run_suite(
            suite,
            BackendConfig(kind="simulated"),
            store,
            backend=SimulatedServer(),
            hardware=hardware,
            observer=observer,
        )
    assert (observer.warmup, observer.measured) == (2, 40)


def test_an_slo_at_a_percentile_the_suite_does_not_list_is_still_judged(db_path, hardware):
    text = SERVER.replace('name = "load"', 'name = "load"\npercentiles = [50]').replace(
        "tpot_ms = 40", "tpot_ms = 40\npercentile = 95"
    )
    (scenario,) = run(text, db_path, SimulatedServer(slots=8), hardware).scenarios
    assert set(scenario.metrics.ttft_ms.percentiles) == {"p50", "p95", "p99"}
    assert scenario.serving["slo_met"] is True and scenario.serving["slo_reason"] == "met"
