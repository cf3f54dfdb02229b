"""A whole suite on the tiny model through the runner into a real SQLite store, and back."""

from __future__ import annotations

import pytest

from atomabench import api
from atomabench.backends import BackendConfig
from atomabench.runner import RunInterrupted, run_suite
from atomabench.store import open_store
from atomabench.workloads.suite import load_suite


def test_tiny_suite_runs_and_round_trips_through_the_store(tiny_suite_path, db_path):
    result = api.run(str(tiny_suite_path), device="cpu", db=db_path)
    assert result.run.status == "completed"
    assert result.run.model == "tiny-random-llama"
    assert result.run.hardware.cpu_threads >= 1
    assert [s.name for s in result.scenarios] == ["stream", "batched"]

    stream, batched = result.scenarios
    assert stream.metrics.completed == 3 and stream.metrics.failed == 0
    assert [r.request_id for r in stream.records] == ["stream-0", "stream-1", "stream-2"]  # warm-up excluded
    assert all(r.output_tokens == 5 and r.prompt_tokens == 12 for r in stream.records)
    assert stream.metrics.total_output_tokens == 15
    assert batched.metrics.completed == 6
    assert sorted({r.batch_size for r in batched.records}) == [2, 4]  # 6 requests in batches of 4
    for scenario in result.scenarios:
        m = scenario.metrics
        assert min(r.send_time for r in scenario.records) == 0.0  # rebased to the window start
        assert m.output_throughput > 0 and m.ttft_ms.count == m.completed
        assert m.ttft_ms.percentiles["p99"] >= m.ttft_ms.percentiles["p50"] > 0
        assert m.tpot_ms.percentiles["p50"] > 0 and m.itl_ms.percentiles["p50"] > 0
        assert scenario.memory.peak_host_rss_bytes > 50 * 2**20
        assert scenario.settings["name"] == scenario.name

    with open_store(db_path) as store:
        assert store.get_run(result.run.run_id[:8]) == result
        frame = store.scenarios_frame()
    assert list(frame["scenario"]) == ["stream", "batched"]
    assert frame["output_throughput"].gt(0).all()


class _InterruptingObserver:
    """Presses Ctrl-C as the second scenario starts."""

    def stage(self, message):
        pass

    def scenario_started(self, plan, index, total):
        if index == 1:
            raise KeyboardInterrupt

    def requests_done(self, count, warmup):
        pass

    def scenario_finished(self, result):
        pass


def test_interrupt_keeps_finished_scenarios_and_marks_the_run(tiny_suite_path, db_path):
    suite = load_suite(str(tiny_suite_path))
    with open_store(db_path) as store, pytest.raises(RunInterrupted) as caught:
        run_suite(
            suite,
            BackendConfig(model="tiny-random-llama", device="cpu"),
            store,
            observer=_InterruptingObserver(),
        )
    assert caught.value.finished_scenarios == 1
    with open_store(db_path) as store:
        stored = store.get_run(caught.value.run_id)
    assert stored.run.status == "interrupted" and stored.run.ended_at is not None
    assert [s.name for s in stored.scenarios] == ["stream"]


def test_a_bad_model_writes_nothing(tiny_suite_path, db_path):
    from atomabench.errors import UserError

    with pytest.raises(UserError):
        api.run(str(tiny_suite_path), model="/definitely/missing", db=db_path)
    with open_store(db_path) as store:
        assert store.list_runs() == []


def test_cli_options_override_suite_backend_defaults(tiny_suite_path):
    suite = load_suite(str(tiny_suite_path))
    assert api.backend_config_for(suite).model == "tiny-random-llama"
    config = api.backend_config_for(suite, model="smollm2-135m", dtype="float32", threads=2)
    assert (config.model, config.dtype, config.threads, config.kind) == (
        "smollm2-135m",
        "float32",
        2,
        "transformers",
    )
