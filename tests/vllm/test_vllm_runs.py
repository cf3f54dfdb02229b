"""Suites on vLLM end to end: the CLI with --backend vllm, the determinism suite, and the real vLLM
OpenAI server measured through the openai-http backend. Each run is stored and shown back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def _cli(*args: str, timeout: int = 900, expect: int = 0) -> subprocess.CompletedProcess:
    ran = subprocess.run(
        [sys.executable, "-m", "atomabench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert ran.returncode == expect, ran.stderr[-3000:]
    return ran


def _json(*args: str, timeout: int = 900) -> dict:
    return json.loads(_cli(*args, "--json", timeout=timeout).stdout)


def test_cli_run_with_backend_vllm_stores_a_run_that_results_show_displays(tmp_path):
    db = str(tmp_path / "results.db")
    suite = str(DATA / "vllm-smoke.toml")
    run_id = _json("run", "--backend", "vllm", "--dtype", "float32", "--suite", suite, "--db", db)["run"][
        "run_id"
    ]

    document = _json("results", "show", run_id, "--db", db)
    run = document["run"]
    assert (run["backend"], run["model"], run["status"]) == ("vllm", "smollm2-135m", "completed")
    assert run["backend_settings"]["settings"]["attention_backend"]
    by_name = {s["name"]: s for s in document["scenarios"]}
    assert list(by_name) == ["single-stream", "offline-b8", "server"]
    for scenario in by_name.values():
        metrics = scenario["metrics"]
        assert metrics["failed"] == 0 and metrics["output_throughput"] > 0
        assert metrics["ttft_ms"]["percentiles"]["p50"] > 0 and metrics["tpot_ms"]["percentiles"]["p50"] > 0
    assert by_name["offline-b8"]["metrics"]["total_output_tokens"] == 8 * 16
    assert by_name["server"]["metrics"]["completed"] == 8

    shown = _cli("results", "show", run_id, "--db", db).stdout
    assert "vllm 0." in shown and "offline-b8" in shown


def test_determinism_suite_on_vllm_runs_the_prefix_cache_check_and_stores_findings(tmp_path, borrowed):
    from atomabench.backends import BackendConfig
    from atomabench.runner import run_suite
    from atomabench.store import open_store
    from atomabench.workloads.suite import load_suite

    db = str(tmp_path / "results.db")
    suite = load_suite(str(DATA / "vllm-determinism.toml"))
    with open_store(db) as store:
        result = run_suite(suite, BackendConfig(kind="vllm", dtype="float32"), store, backend=borrowed)
    scenario = result.scenarios[0]
    summary = scenario.determinism_summary
    assert summary.tier in ("A", "B", "fail") and not summary.skipped  # P ran: vLLM has a prefix cache
    checks = {finding.check for finding in scenario.determinism}
    assert checks == {"R", "B", "U", "P"}
    batch_sizes = {f.batch_size for f in scenario.determinism if f.check == "B"}
    assert batch_sizes == {2, 4, 8}

    shown = _json("results", "show", result.run.run_id, "--db", db)
    stored = shown["scenarios"][0]
    assert stored["determinism_summary"]["tier"] == summary.tier
    assert len(stored["determinism"]) == len(scenario.determinism)


def test_batch_invariant_mode_through_the_cli(tmp_path):
    """On CPU vLLM cannot run VLLM_BATCH_INVARIANT=1: one clear line, exit 2, nothing stored.
    On a GPU the same command runs the determinism suite in batch-invariant mode."""
    from vllm.platforms import current_platform

    db = str(tmp_path / "results.db")
    args = ["run", "--backend", "vllm", "--suite", str(DATA / "vllm-determinism.toml"), "--db", db]
    args += ["-o", "batch_invariant=true"]
    if current_platform.is_cpu():
        ran = _cli(*args, expect=2, timeout=300)
        assert "batch_invariant is not supported by vLLM on CPU" in ran.stderr
        assert "Traceback" not in ran.stderr
        return
    run = _json(*args)["run"]
    assert run["backend_settings"]["settings"]["batch_invariant"] is True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, server: subprocess.Popen, log: Path, limit_s: float = 420.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the vLLM server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(2)
    pytest.fail(
        f"the vLLM server did not answer /v1/models within {limit_s:.0f} s:\n{log.read_text()[-3000:]}"
    )


def test_real_vllm_openai_server_measured_through_openai_http(tmp_path, smollm2_folder):
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log = tmp_path / "server.log"
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(smollm2_folder), "--served-model-name", "smollm2-vllm",
        "--dtype", "float32", "--gpu-memory-utilization", "0.3", "--max-model-len", "2048",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with log.open("w") as sink:
        server = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        _wait_ready(url, server, log)
        db = str(tmp_path / "results.db")
        run_id = _json(
            "run", "--backend", "openai-http", "--url", url, "--model", "smollm2-vllm",
            "--tokenizer", str(smollm2_folder), "--suite", str(DATA / "vllm-http.toml"), "--db", db,
        )["run"]["run_id"]  # fmt: skip
        document = _json("results", "show", run_id, "--db", db)
        assert (document["run"]["backend"], document["run"]["status"]) == ("openai-http", "completed")
        for scenario in document["scenarios"]:
            metrics = scenario["metrics"]
            assert metrics["failed"] == 0 and metrics["completed"] > 0 and metrics["output_throughput"] > 0
            assert metrics["ttft_ms"]["percentiles"]["p50"] > 0
        assert [s["name"] for s in document["scenarios"]] == ["single-stream", "server"]
        assert document["scenarios"][0]["metrics"]["total_output_tokens"] == 3 * 16
        assert "openai-http" in _cli("results", "show", run_id, "--db", db).stdout
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
