"""What PostgreSQL enforces and SQLite lets through: every case here must behave the same on both."""

from __future__ import annotations

import math

from atomabench.hardware.telemetry import TelemetrySample
from atomabench.records import RunResult, TokenLogprobs
from atomabench.store import Store

from .factories import make_request, make_run, make_scenario
from .sql import fetch_all


def test_non_finite_floats_inside_json_columns_read_back_as_floats(store: Store) -> None:
    """PostgreSQL's JSON type rejects NaN and Infinity; a -inf logprob must not cost the scenario."""
    request = make_request(0, with_logprobs=True)
    assert request.logprobs is not None
    odd_logprobs = (TokenLogprobs(logprob=-math.inf, top=((11, -math.inf), (3, -0.5))), *request.logprobs[1:])
    request = request.model_copy(update={"logprobs": odd_logprobs})
    scenario = make_scenario(records=(request,)).model_copy(
        update={
            "telemetry": {"power_w_mean": math.nan, "peak": math.inf, "label": "NaN is text here"},
            "serving": {"rates": [1.0, -math.inf], "nested": {"x": [math.nan]}},
        }
    )
    run = make_run().model_copy(
        update={"backend_settings": {"temperature_floor": -math.inf, "dtype": "fp32"}}
    )
    store.start_run(run)
    store.add_scenario(run.run_id, scenario)

    back = store.get_run(run.run_id)

    assert back.run == run
    stored = back.scenarios[0]
    assert stored.records[0].logprobs is not None
    assert stored.records[0].logprobs[0].logprob == -math.inf
    assert stored.records[0].logprobs[0].top == ((11, -math.inf), (3, -0.5))
    assert stored.records[0].logprobs[1:] == odd_logprobs[1:]
    assert stored.telemetry is not None and math.isnan(stored.telemetry["power_w_mean"])
    assert (stored.telemetry["peak"], stored.telemetry["label"]) == (math.inf, "NaN is text here")
    assert stored.serving is not None and stored.serving["rates"] == [1.0, -math.inf]
    assert math.isnan(stored.serving["nested"]["x"][0])


def test_long_free_text_fits_on_every_database(store: Store) -> None:
    """PostgreSQL enforces VARCHAR lengths; names and ids a user controls have none."""
    long_name = "scenario-" + "x" * 600
    records = (make_request(0, scenario=long_name).model_copy(update={"request_id": "r" * 400}),)
    run = make_run(suite="s" * 300)
    scenario = make_scenario(long_name, records=records)
    store.start_run(run)
    store.add_scenario(run.run_id, scenario)

    assert store.get_run(run.run_id) == RunResult(run=run, scenarios=(scenario,))


def test_a_throttle_mask_with_bit_63_set_reads_back_unchanged(store: Store) -> None:
    """NVML's "unknown reason" is bit 63, beyond a signed 64-bit integer."""
    run = make_run()
    store.start_run(run)
    scenario_id = store.add_scenario(run.run_id, make_scenario())
    mask = (1 << 63) | 0x4
    store.add_telemetry(scenario_id, [TelemetrySample(t=0.0, gpu_index=0, throttle_reasons=mask)])

    frame = store.telemetry_frame(run.run_id)

    assert int(frame["throttle_reasons"].iloc[0]) == mask
    assert fetch_all(store, "SELECT throttle_reasons FROM telemetry_samples") == [(mask - (1 << 64),)]


def test_import_run_gives_back_an_equal_run_with_its_status_and_determinism(store: Store) -> None:
    from atomabench.records import DeterminismResult, DeterminismSummary

    finished = make_run("imported").model_copy(
        update={"status": "completed", "ended_at": make_run().started_at.replace(hour=13)}
    )
    determinism = make_scenario("determinism").model_copy(
        update={
            "determinism": (
                DeterminismResult(check="R", prompt_id="c1", batch_size=1, exact_match=True),
                DeterminismResult(
                    check="B",
                    prompt_id="c1",
                    batch_size=8,
                    position=3,
                    exact_match=False,
                    first_divergence=5,
                    margin_at_divergence=0.0625,
                ),
            ),
            "determinism_summary": DeterminismSummary(
                tier="B",
                reason="near-tie flips only",
                near_tie_margin=0.1,
                comparisons=2,
                exact=1,
                near_tie_flips=1,
                wide_flips=0,
                repeat_mismatches=0,
            ),
        }
    )
    result = RunResult(run=finished, scenarios=(make_scenario("chat"), determinism))

    store.import_run(result)

    assert store.get_run("imported") == result
    assert store.list_runs()[0].status == "completed"
