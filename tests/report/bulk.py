"""Many stored runs fast: rows built once from the store factories' records, then bulk-inserted.

``Store.add_scenario`` commits one transaction per scenario, which is right for a benchmark run but
would take minutes for 10,000 runs; here every table gets one ``executemany`` in one transaction. The
row dicts come from the store's own record-to-row helpers, so they are exactly what ``add_scenario``
would write.
"""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import insert
from store.factories import make_hardware, make_run, make_scenario

from atomabench.records import DeterminismResult, DeterminismSummary
from atomabench.store import Store
from atomabench.store.schema import DeterminismRow, HardwareRow, LatencyStatRow, RunRow, ScenarioRow
from atomabench.store.store import _determinism_rows, _latency_rows, _scenario_columns

HARDWARE = (
    ("NVIDIA H100 80GB HBM3", "h100-sxm", 1),
    ("NVIDIA H100 80GB HBM3", "h100-sxm", 8),
    ("NVIDIA A100-SXM4-80GB", "a100-80gb-sxm", 1),
    ("NVIDIA GeForce RTX 4090", "rtx-4090", 1),
    ("NVIDIA L4", "l4", 1),
    ("AMD EPYC 9654", "generic-cpu", 0),
)
BACKENDS = (("vllm", "bf16"), ("transformers", "bfloat16"), ("llamacpp", "Q4_K_M"))
MODELS = ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "smollm2-135m", "mistral-7b")
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


def _determinism_results(rng: random.Random) -> tuple[DeterminismResult, ...]:
    return tuple(
        DeterminismResult(
            check="B", prompt_id="needle-0", batch_size=size, exact_match=size < 8 or rng.random() < 0.7
        )
        for size in BATCH_SIZES
    )


def fill(store: Store, runs: int, seed: int = 7) -> int:
    """Store ``runs`` completed runs (two batch scenarios each, every other one a determinism scenario).

    Returns the number of scenarios written.
    """
    rng = random.Random(seed)
    template = make_scenario("offline")
    template_columns = _scenario_columns(template.model_copy(update={"records": ()}))
    template_latency = _latency_rows(0, template.metrics)
    summary = DeterminismSummary(
        tier="B",
        reason="near-ties only",
        near_tie_margin=0.1,
        comparisons=7,
        exact=5,
        near_tie_flips=2,
        wide_flips=0,
        repeat_mismatches=0,
    )
    run_rows, hardware_rows, scenario_rows, latency_rows, determinism_rows = [], [], [], [], []
    scenario_id = 0
    for index in range(runs):
        device, profile, gpus = HARDWARE[index % len(HARDWARE)]
        backend, dtype = BACKENDS[(index // len(HARDWARE)) % len(BACKENDS)]
        run = make_run(
            f"run-{index:05d}",
            hours_after_t0=index,
            backend=backend,
            model=MODELS[index % len(MODELS)],
            hardware=make_hardware(device, profile, gpu_count=gpus),
        )
        run_rows.append(
            {
                "run_id": run.run_id,
                "suite": run.suite,
                "suite_path": run.suite_path,
                "backend": run.backend,
                "model": run.model,
                "backend_settings": {**run.backend_settings, "dtype": dtype, "kind": backend},
                "started_at": run.started_at,
                "ended_at": run.started_at + timedelta(minutes=5),
                "status": "completed",
                "atomabench_version": run.atomabench_version,
            }
        )
        hardware = run.hardware
        hardware_rows.append(
            {
                "run_id": run.run_id,
                "profile_id": hardware.profile_id,
                "device_name": hardware.device_name,
                "gpu_count": hardware.gpu_count,
                "accelerator": hardware.accelerator,
                "cpu_model": hardware.cpu_model,
                "info": hardware.model_dump(mode="json") | {"hostname": f"node-{index % 997}"},
            }
        )
        speed = rng.uniform(0.2, 5.0) * (gpus or 0.1)
        names = ["offline-b1", "offline-b8"] + (["determinism"] if index % 2 == 0 else [])
        for position, name in enumerate(names):
            scenario_id += 1
            scale = 8.0 if name == "offline-b8" else 1.0
            columns = dict(template_columns)
            columns.update(
                id=scenario_id,
                run_id=run.run_id,
                position=position,
                name=name,
                kind="determinism" if name == "determinism" else "offline",
                settings={"batch_size": 8 if scale > 1 else 1, "max_tokens": 128},
                started_at=run.started_at + timedelta(minutes=position + 1),
                ended_at=run.started_at + timedelta(minutes=position + 2),
                output_throughput=12.0 * speed * scale,
                total_token_throughput=140.0 * speed * scale,
            )
            if name == "determinism":
                columns.update(
                    determinism_tier=summary.tier, determinism_summary=summary.model_dump(mode="json")
                )
                determinism_rows.extend(_determinism_rows(scenario_id, _determinism_results(rng)))
            scenario_rows.append(columns)
            latency_factor = (1.0 + 0.15 * scale) / speed
            latency_rows.extend(
                {**row, "scenario_id": scenario_id, "value": row["value"] * latency_factor}
                if row["stat"] != "count"
                else {**row, "scenario_id": scenario_id}
                for row in template_latency
            )
    with store._engine.begin() as connection:  # the test's own bulk path; the store has no bulk API
        for table, rows in (
            (RunRow, run_rows),
            (HardwareRow, hardware_rows),
            (ScenarioRow, scenario_rows),
            (LatencyStatRow, latency_rows),
            (DeterminismRow, determinism_rows),
        ):
            if rows:
                connection.execute(insert(table), rows)
    return scenario_id
