"""The README's promise on the real bundled model: `atomabench run` completes and stores the smoke suite."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_default_run_on_smollm2_stores_nonzero_metrics(tmp_path):
    db = str(tmp_path / "results.db")
    ran = subprocess.run(
        [sys.executable, "-m", "atomabench.cli", "run", "--db", db, "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    run_id = json.loads(ran.stdout)["run"]["run_id"]

    shown = subprocess.run(
        [sys.executable, "-m", "atomabench.cli", "results", "show", run_id, "--db", db, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    document = json.loads(shown.stdout)
    assert document["run"]["model"] == "smollm2-135m" and document["run"]["status"] == "completed"
    assert document["run"]["backend_settings"]["parameters"] == 134_515_008
    assert [s["name"] for s in document["scenarios"]] == ["single-stream", "offline-b8"]
    for scenario in document["scenarios"]:
        metrics = scenario["metrics"]
        assert metrics["failed"] == 0 and metrics["completed"] > 0
        assert metrics["output_throughput"] > 0 and metrics["total_token_throughput"] > 0
        for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
            percentiles = metrics[key]["percentiles"]
            assert 0 < percentiles["p50"] <= percentiles["p99"], key
        assert scenario["memory"]["peak_host_rss_bytes"] > 300 * 2**20  # 135M fp32 weights alone are 0.5 GB
