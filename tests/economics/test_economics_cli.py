"""The four commands through typer's CliRunner on a local app, with profiles and results injected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from economics_helpers import h100, scenario_row, scenarios_frame, toy_gpu
from typer.testing import CliRunner

from atomabench.economics import cli
from atomabench.economics.params import default_path
from atomabench.errors import UserError

runner = CliRunner()


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setattr(cli, "load_hardware_profiles", lambda: {"h100-sxm": h100(), "toy-gpu": toy_gpu()})
    monkeypatch.setattr(cli, "load_results", lambda db: (None, "no stored runs (test)"))
    application = typer.Typer()
    cli.register(application)
    return application


def run_json(app: typer.Typer, *args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_price_without_runs_is_estimated(app: typer.Typer) -> None:
    document = run_json(app, "price")
    assert document["command"] == "price" and document["estimated"] is True
    rows = document["tables"]["prices"]
    assert {r["model"] for r in rows} == {"llama-3.1-8b", "llama-3.1-70b"}
    assert all(r["basis"] == "estimated (roofline)" for r in rows)
    names = {a["name"] for a in document["assumptions"]}
    assert {"utilisation", "tco.pue", "estimate.mbu"} <= names
    assert "no stored runs (test)" in document["notes"]


def test_price_with_a_measured_run(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = scenarios_frame(
        scenario_row(
            run_id="r1",
            model="meta-llama/Llama-3.1-8B-Instruct",
            profile_id="h100-sxm",
            scenario="c16",
            duration_s=60.0,
            total_input_tokens=240_000,
            output_throughput=1000.0,
            ttft_ms_p99=500.0,
            tpot_ms_p99=40.0,
        ),
    )
    monkeypatch.setattr(cli, "load_results", lambda db: (frame, "measured (test)"))
    rows = run_json(app, "price")["tables"]["prices"]
    run = next(r for r in rows if r["level"] == "run")
    # 4,000 in + 1,000 out tokens/s on one H100 at $3.49/h → $0.9694 per 1M output (see pricing tests).
    assert run["model"] == "llama-3.1-8b" and run["estimated"] is False
    assert run["usd_per_1m_output"] == pytest.approx(0.9694444, rel=1e-6)
    estimated_h100 = [
        r for r in rows if r["estimated"] and r["profile_id"] == "h100-sxm" and r["model"] == "llama-3.1-8b"
    ]
    assert estimated_h100 == []


def test_price_sweep_stacks_tables(app: typer.Typer) -> None:
    document = run_json(app, "price", "--sweep", "utilisation=0.25,0.5")
    rows = document["tables"]["prices"]
    low = {(r["model"], r["profile_id"]): r for r in rows if r["sweep"] == "utilisation=0.25"}
    high = {(r["model"], r["profile_id"]): r for r in rows if r["sweep"] == "utilisation=0.5"}
    key = ("llama-3.1-8b", "h100-sxm")
    # Half the utilisation, twice the price.
    assert low[key]["usd_per_1m_blended"] == pytest.approx(2 * high[key]["usd_per_1m_blended"])
    swept = next(a for a in document["assumptions"] if a["name"] == "utilisation")
    assert swept["value"] == "0.25, 0.5" and swept["source"] == "swept on the command line"


def test_bad_params_file_raises_user_error_with_location(app: typer.Typer, tmp_path: Path) -> None:
    user = tmp_path / "p.toml"
    user.write_text("[tco]\nlife_years = -1\n")
    result = runner.invoke(app, ["price", "--params", str(user)])
    assert isinstance(result.exception, UserError)
    assert (result.exception.path, result.exception.line, result.exception.field) == (
        str(user),
        2,
        "tco.life_years",
    )


def test_capacity_tables_and_seed_correction(app: typer.Typer) -> None:
    document = run_json(app, "capacity")
    checks = document["tables"]["seed_checks"]
    assert [c["min_gpus"] for c in checks[:2]] == [44, 10]
    gpus = {r["profile_id"]: r for r in document["tables"]["gpus_needed"]}
    # Llama 3.1 70B at bf16 with 8,192 tokens of KV: (141.1 + 2.7) GB ÷ 72 GB = 2 H100s.
    assert gpus["h100-sxm"]["llama-3.1-70b"] == 2
    assert document["estimated"] is True
    network = {r["model"]: r for r in document["tables"]["network"]}
    assert network["gpt-4-class-1.76t"]["tokens_per_s"] == 0


def test_capacity_sweep_over_gpu_count(app: typer.Typer) -> None:
    rows = run_json(app, "capacity", "--sweep", "gpu_count=1,2")["tables"]["fit"]
    fits = {(r["sweep"], r["model"], r["profile_id"]): r["fits"] for r in rows}
    assert fits[("gpu_count=1", "llama-3.1-70b", "h100-sxm")] is False
    assert fits[("gpu_count=2", "llama-3.1-70b", "h100-sxm")] is True


def test_rewards_from_a_nodes_file(app: typer.Typer) -> None:
    document = run_json(app, "rewards", "--nodes", str(default_path("rewards_example_epoch.toml")))
    nodes = {r["node_id"]: r for r in document["tables"]["nodes"]}
    assert nodes["h100-a"]["emission_reward"] == pytest.approx(1_000_010 * 4 / 6.9)
    assert nodes["4090-cheat"]["net_emission"] == -50
    assert document["estimated"] is False


def test_rewards_from_the_census_are_estimated(app: typer.Typer, tmp_path: Path) -> None:
    census = tmp_path / "census.toml"
    census.write_text(
        '[[nodes]]\nprofile = "h100-sxm"\ngpu_count = 1\ncount = 2\n'
        '[[nodes]]\nprofile = "toy-gpu"\ngpu_count = 1\ncount = 1\n'
    )
    document = run_json(app, "rewards", "--census", str(census))
    nodes = document["tables"]["nodes"]
    assert len(nodes) == 3 and document["estimated"] is True
    # Two identical H100 nodes earn the same; all three shares add up to the whole emission.
    h100_rewards = [n["emission_reward"] for n in nodes if n["hardware_class"] == "h100-sxm"]
    assert h100_rewards[0] == pytest.approx(h100_rewards[1])
    assert sum(n["emission_reward"] for n in nodes) == pytest.approx(1_000_000)


def test_forecast_json_and_plot(app: typer.Typer, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "forecast.png"
    document = run_json(app, "forecast", "--draws", "200", "--plot", str(plot))
    assert plot.exists() and plot.stat().st_size > 1000
    saturation = {(r["scenario"], r["chain"]): r["saturation_year"] for r in document["tables"]["saturation"]}
    assert saturation[("per-request", "Ethereum L1 (blobs)")] == 2026
    assert len(document["tables"]["monte_carlo_bands"]) == 60


def test_forecast_table_output(app: typer.Typer) -> None:
    result = runner.invoke(app, ["forecast", "--draws", "0"])
    assert result.exit_code == 0, result.output
    assert "saturation" in result.output and "assumptions" in result.output and "ESTIMATED" in result.output


def test_format_cell() -> None:
    assert cli.format_cell(2031.0, plain_integers=True) == "2031"
    assert cli.format_cell(1234567.0) == "1,234,567"
    assert cli.format_cell(0.96944444) == "0.9694"
    assert cli.format_cell(float("nan")) == "–" and cli.format_cell(None) == "–"
    assert cli.format_cell(True) == "yes"
