"""The command line as a user meets it: JSON output, listings, exports, one-line errors, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from atomabench.cli import app, main

TEST_DATA = Path(__file__).parents[1] / "data"
runner = CliRunner()


def invoke(*args: str):
    """Run the CLI through ``main`` semantics: UserError → one line + exit 2."""
    return runner.invoke(app, list(args), catch_exceptions=True)


def run_main(args: list[str], capsys) -> tuple[int, str, str]:
    old_argv = sys.argv
    sys.argv = ["atomabench", *args]
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        sys.argv = old_argv
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory) -> tuple[str, dict]:
    db = str(tmp_path_factory.mktemp("cli") / "results.db")
    result = invoke("run", "--suite", str(TEST_DATA / "tiny.toml"), "--device", "cpu", "--db", db, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    return db, document


def test_run_json_reports_every_scenario(stored_run):
    _, document = stored_run
    assert document["run"]["status"] == "completed"
    assert [s["name"] for s in document["scenarios"]] == ["stream", "batched"]
    for scenario in document["scenarios"]:
        assert "records" not in scenario
        metrics = scenario["metrics"]
        assert metrics["output_throughput"] > 0
        for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
            assert set(metrics[key]["percentiles"]) == {"p50", "p90", "p95", "p99"}
        assert scenario["memory"]["peak_host_rss_bytes"] > 0


def test_results_list_and_show(stored_run):
    db, document = stored_run
    run_id = document["run"]["run_id"]
    listed = invoke("results", "list", "--db", db, "--json")
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [row["run_id"] for row in rows] == [run_id]
    assert rows[0]["status"] == "completed" and rows[0]["scenario_count"] == 2

    shown = invoke("results", "show", run_id[:10], "--db", db, "--json", "--requests")
    assert shown.exit_code == 0
    again = json.loads(shown.stdout)
    assert again["run"] == document["run"]
    assert len(again["scenarios"][0]["records"]) == 3
    assert len(again["scenarios"][0]["records"][0]["token_times"]) == 5

    table = invoke("results", "show", run_id[:10], "--db", db)
    assert table.exit_code == 0 and "TTFT p99 ms" in table.stdout and "batched" in table.stdout
    assert invoke("results", "list", "--db", db).exit_code == 0


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_results_export(stored_run, tmp_path, fmt):
    db, document = stored_run
    out = tmp_path / f"scenarios.{fmt}"
    result = invoke("results", "export", "--format", fmt, "--out", str(out), "--db", db)
    assert result.exit_code == 0, result.output
    frame = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt](out)
    assert list(frame["scenario"]) == ["stream", "batched"]
    assert (frame["run_id"] == document["run"]["run_id"]).all()


def test_suites_and_hardware_commands():
    listed = invoke("suites", "list", "--json")
    assert listed.exit_code == 0
    assert "smoke" in [row["name"] for row in json.loads(listed.stdout)]
    shown = invoke("suites", "show", "smoke", "--json")
    assert json.loads(shown.stdout)["scenarios"][0]["kind"] == "single_stream"
    hardware = invoke("hw", "--json")
    assert hardware.exit_code == 0
    info = json.loads(hardware.stdout)
    assert info["cpu_threads"] >= 1 and info["profile"]["id"] == info["profile_id"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--suite", "no-such-suite"], "unknown suite 'no-such-suite'"),
        (["run", "--suite", "missing.toml"], "missing.toml: suite: no such suite file"),
        (["run", "--model", "/no/such/model", "--suite", str(TEST_DATA / "tiny.toml")], "no such model"),
        (["run", "--dtype", "float8", "--suite", str(TEST_DATA / "tiny.toml")], "dtype: unknown dtype"),
        (["results", "show", "ffffffff"], "no run matches 'ffffffff'"),
        (["results", "export", "--format", "xlsx", "--out", "x.xlsx"], "xlsx"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(args, expected, capsys, tmp_path):
    code, _out, err = run_main([*args, "--db", str(tmp_path / "r.db")], capsys)
    assert code == 2
    assert err.startswith("atomabench: error: ") and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_malformed_suite_names_file_and_line(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "bad"\n[[scenarios]]\nname = "x"\nkind = "offline"\nnum_requests = 2\n'
        "batch_size = 0\ninput_tokens = 4\noutput_tokens = 4\n"
    )
    code, _, err = run_main(["run", "--suite", str(bad), "--db", str(tmp_path / "r.db")], capsys)
    assert code == 2
    assert f"{bad}:6: scenarios[0].batch_size:" in err


def test_unwritable_database_is_a_user_error(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = run_main(["results", "list", "--db", str(blocker / "sub" / "r.db")], capsys)
    assert code == 2 and "db" in err
    assert not (blocker.parent / "sub").exists()


def test_sigint_mid_run_keeps_finished_scenarios(tmp_path):
    db = tmp_path / "results.db"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atomabench.cli",
            "run",
            "--suite",
            str(TEST_DATA / "interrupt.toml"),
            "--device",
            "cpu",
            "--db",
            str(db),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if db.exists() and _scenario_count(db) >= 1:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        else:
            pytest.fail("the first scenario was never stored")
        time.sleep(0.5)  # well inside the 5000-request second scenario
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted after 1 finished scenario" in stderr
    with sqlite3.connect(db) as connection:
        statuses = connection.execute("select status from runs").fetchall()
        names = connection.execute("select name from scenarios").fetchall()
    assert statuses == [("interrupted",)]
    assert names == [("quick",)]


def _scenario_count(db: Path) -> int:
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute("select count(*) from scenarios").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["determinism", "--batch-sizes", "0", "--model", "tiny-random-llama"], "--batch-sizes:"),
        (["determinism", "--batch-sizes", ",", "--model", "tiny-random-llama"], "at least one batch size"),
        (["determinism", "--output-tokens", "5000", "--model", "tiny-random-llama"], "--output-tokens:"),
        (
            ["determinism", "fingerprint", "--out", "/no/such/dir/x.json", "--model", "tiny-random-llama"],
            "--out",
        ),
    ],
)
def test_determinism_option_mistakes_are_one_line(args, expected, capsys, tmp_path):
    code, _, err = run_main([*args], capsys)
    assert code == 2 and expected in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[]", "holds no claim"),
        ('{"claims": 5}', "`claims` must be a list"),
        ('{"canaries": [1]}', "`canaries` must be a list of objects"),
        ('{"prompt": "", "output_token_ids": [1]}', "non-empty `prompt`"),
        ('{"prompt": "hi", "output_token_ids": [99999999]}', "outside this model's vocabulary"),
    ],
)
def test_malformed_claims_are_one_line(content, expected, capsys, tmp_path):
    claims = tmp_path / "claims.json"
    claims.write_text(content)
    code, _, err = run_main(["determinism", "verify", str(claims), "--model", "tiny-random-llama"], capsys)
    assert code == 2 and expected in err and "Traceback" not in err


def test_a_corrupt_model_file_is_one_line(capsys, tmp_path):
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    code, _, err = run_main(
        [
            "run",
            "--suite",
            str(TEST_DATA / "tiny.toml"),
            "--model",
            str(empty),
            "--db",
            str(tmp_path / "r.db"),
        ],
        capsys,
    )
    assert code == 2 and "cannot load this model" in err and "Traceback" not in err
