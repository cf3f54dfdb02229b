"""Issue 8's promise on the bundled GGUF: the smoke and determinism suites run on llama.cpp and are stored.

Both go through the real CLI in a subprocess, into a temporary database, exactly as a node operator
would type them (`atomabench run --backend llamacpp`, `atomabench determinism --backend llamacpp`).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp")


def _cli(*args: str, timeout: int = 600) -> dict:
    ran = subprocess.run(
        [sys.executable, "-m", "atomabench.cli", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    return json.loads(ran.stdout)


def _requests(run_id: str, db: str, scenario: str) -> list[dict]:
    shown = _cli("results", "show", run_id, "--requests", "--db", db)
    return next(s for s in shown["scenarios"] if s["name"] == scenario)["records"]


def test_smoke_suite_on_llamacpp_stores_nonzero_metrics_with_backend_and_quantization(tmp_path):
    db = str(tmp_path / "results.db")
    run_id = _cli("run", "--backend", "llamacpp", "--model", "smollm2-135m", "--threads", "2", "--db", db)[
        "run"
    ]["run_id"]

    document = _cli("results", "show", run_id, "--db", db)
    run = document["run"]
    assert (run["backend"], run["model"], run["status"]) == ("llamacpp", "smollm2-135m", "completed")
    engine = run["backend_settings"]
    assert engine["dtype"] == engine["settings"]["quantization"] == "Q4_1"
    assert engine["engine_version"].startswith("llama-cpp-python ")
    assert engine["parameters"] == 134_515_008
    assert engine["settings"]["batching"] == "llama_batch" and engine["settings"]["threads"] == 2
    assert [s["name"] for s in document["scenarios"]] == ["single-stream", "offline-b8"]
    for scenario in document["scenarios"]:
        metrics = scenario["metrics"]
        assert metrics["failed"] == 0 and metrics["completed"] > 0
        assert metrics["output_throughput"] > 0 and metrics["total_token_throughput"] > 0
        for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
            percentiles = metrics[key]["percentiles"]
            assert 0 < percentiles["p50"] <= percentiles["p99"], key
    single, offline = document["scenarios"]
    assert single["metrics"]["completed"] == 8 and single["metrics"]["total_output_tokens"] == 8 * 32
    assert offline["metrics"]["completed"] == 32 and offline["metrics"]["total_output_tokens"] == 32 * 64
    stored = _requests(run_id, db, "offline-b8")  # exact engine token counts, one timestamp per token
    shapes = [(r["batch_size"], r["output_tokens"], len(r["token_times"])) for r in stored]
    assert shapes == [(8, 64, 64)] * 32
    assert sorted(r["batch_position"] for r in stored) == sorted(list(range(8)) * 4)

    listed = _cli("results", "list", "--db", db)
    assert [(row["run_id"], row["backend"]) for row in listed] == [(run_id, "llamacpp")]


def test_determinism_suite_on_llamacpp_stores_findings(tmp_path):
    db = str(tmp_path / "results.db")
    result = _cli(
        "determinism",
        "--backend", "llamacpp",
        "--threads", "2",
        "--batch-sizes", "1,2,3",
        "--prompts", "1",
        "--output-tokens", "12",
        "--db", db,
    )  # fmt: skip
    shown = _cli("results", "show", result["run"]["run_id"], "--db", db)
    scenario = shown["scenarios"][0]
    summary = scenario["determinism_summary"]
    findings = scenario["determinism"]
    # 1 prompt: R repeats 2 (3 runs, first is the reference) + B at 2 (positions 0, 1) and 3 (0, 1, 2) + U
    assert sorted((f["check"], f["batch_size"], f["position"]) for f in findings) == [
        ("B", 2, 0), ("B", 2, 1), ("B", 3, 0), ("B", 3, 1), ("B", 3, 2),
        ("R", 1, 0), ("R", 1, 0), ("U", 16, 0),
    ]  # fmt: skip
    assert summary["comparisons"] == 8 and summary["tier"] in ("A", "B", "fail")
    assert summary["repeat_mismatches"] == 0  # batch-1 runs of one prompt are identical
    assert summary["skipped"] == ["P: this backend has no prefix cache, so cold and warm runs cannot differ"]
    unique = next(f for f in findings if f["check"] == "U")
    assert unique["samples"] == 16 and unique["unique_completions"] >= 1
