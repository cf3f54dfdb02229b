"""The static site built from a small store: files, escaping, downloads that match the store."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from atomabench.economics import load_catalogue, load_pricing_params, price_table
from atomabench.measure.definitions import METRICS
from atomabench.report import build_markdown, build_site
from atomabench.report.charts import Axis, pareto_front
from atomabench.report.data import LEADERBOARD_COLUMNS, page_name
from atomabench.store import open_store

from .conftest import XSS_HOST, XSS_MODEL, fill_small_store

LISTED = {"run-a", "run-b", "run-d"}


def _csv(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "leaderboard.csv", keep_default_na=True)


def test_expected_files_and_summary(built) -> None:
    out = built.out
    for name in (
        "index.html",
        "methodology.html",
        "data.js",
        "leaderboard.csv",
        "leaderboard.json",
        "assets/app.js",
        "assets/style.css",
    ):
        assert (out / name).is_file(), name
    assert sorted(path.name for path in (out / "runs").iterdir()) == [
        "run-a.html",
        "run-b.html",
        "run-d.html",
    ]
    summary = built.summary
    assert (summary.runs, summary.scenarios, summary.run_pages, summary.skipped_runs) == (3, 6, 3, 1)
    assert summary.hardware_classes == 3
    assert summary.index == out / "index.html"
    assert "1 running or failed runs left out" in summary.one_line()
    index = (out / "index.html").read_text()
    assert '<script src="data.js"></script>' in index
    assert "http://" not in index.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in index and "fetch(" not in (out / "assets/app.js").read_text()


def test_hostile_names_are_escaped_everywhere(built) -> None:
    out = built.out
    pages = [out / "index.html", out / "methodology.html", *(out / "runs").iterdir()]
    for page in pages:
        text = page.read_text()
        assert XSS_MODEL not in text, page
        assert XSS_HOST not in text, page
    run_page = (out / "runs" / "run-b.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in run_page
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in run_page
    data_js = (out / "data.js").read_text()
    assert "<" not in data_js  # every '<' is \u003c, so no '</script>' can end a script early
    assert "\\u003cscript>alert(1)\\u003c/script>" in data_js
    assert "textContent" in (out / "assets/app.js").read_text()
    assert "innerHTML" not in (out / "assets/app.js").read_text()


def test_data_js_assigns_one_global_with_every_listed_run(built) -> None:
    text = (built.out / "data.js").read_text()
    prefix = "window.ATOMABENCH_DATA = "
    assert text.startswith(prefix) and text.rstrip().endswith(";")
    document = json.loads(text[len(prefix) :].rstrip().rstrip(";"))
    run_ids = {row[document["fields"].index("run_id")] for row in document["rows"]}
    assert run_ids == LISTED
    assert [c["key"] for c in document["columns"]][:3] == ["hardware_class", "node", "model"]


def test_csv_and_json_match_the_store(built) -> None:
    csv = _csv(built.out).set_index("run_id")
    document = json.loads((built.out / "leaderboard.json").read_text())
    assert list(csv.reset_index().columns) == list(LEADERBOARD_COLUMNS) == document["columns"]
    assert {row["run_id"] for row in document["rows"]} == set(csv.index) == LISTED

    scenarios = built.store.scenarios_frame()
    for run_id in LISTED:
        mine = scenarios[
            (scenarios["run_id"] == run_id) & scenarios["valid"] & scenarios["kind"].ne("determinism")
        ]
        best = mine.loc[mine["output_throughput"].idxmax()]
        row = csv.loc[run_id]
        assert row["scenario"] == best["scenario"]
        for column, stored in (
            ("output_tok_s", "output_throughput"),
            ("ttft_p50_ms", "ttft_ms_p50"),
            ("ttft_p99_ms", "ttft_ms_p99"),
            ("tpot_p50_ms", "tpot_ms_p50"),
            ("tpot_p99_ms", "tpot_ms_p99"),
        ):
            assert row[column] == pytest.approx(best[stored]), (run_id, column)
    # run-b's invalid 5000 tok/s scenario is never the headline; its determinism scenario is not either
    assert csv.loc["run-b", "output_tok_s"] == 300.0
    assert csv.loc["run-a", "output_tok_s"] == 120.0
    assert csv.loc["run-b", "model"] == XSS_MODEL
    assert csv.loc["run-b", "node"] == XSS_HOST
    assert csv.loc["run-a", "determinism_tier"] == "B"
    assert csv.loc["run-a", "dtype"] == "bfloat16"
    assert csv.loc["run-a", "hardware_class"] == "NVIDIA GeForce RTX 4090"
    assert csv.loc["run-a", "peak_memory_bytes"] == 1_500_000_000
    assert csv.loc["run-a", "peak_memory_source"] == "device"
    assert csv.loc["run-d", "peak_memory_bytes"] == 2_000_000_000
    assert csv.loc["run-d", "peak_memory_source"] == "host RSS"
    assert csv.loc["run-a", "joules_per_token"] == 25.0
    assert math.isnan(csv.loc["run-d", "joules_per_token"])
    assert csv.loc["run-a", "page"] == "runs/run-a.html"
    assert csv.loc["run-a", "date"] == "2025-03-01"


def test_prices_equal_economics_price_table(built) -> None:
    """The site picks and prices runs itself for speed; it must agree with price_table exactly."""
    table = price_table(
        built.profiles, load_catalogue().params, load_pricing_params().params, built.store.scenarios_frame()
    )
    runs = table[table["level"] == "run"].set_index("run_id")
    document = json.loads((built.out / "leaderboard.json").read_text())
    rows = {row["run_id"]: row for row in document["rows"]}
    assert set(runs.index) == LISTED
    for run_id, expected in runs.iterrows():
        for column in ("usd_per_1m_blended", "usd_per_1m_input", "usd_per_1m_output"):
            got = rows[run_id][column]
            assert (got is None and math.isnan(expected[column])) or got == pytest.approx(expected[column])
        assert rows[run_id]["price_basis"] == expected["basis"]
    assert rows["run-a"]["usd_per_1m_blended"] is not None
    classes = table[(table["level"] == "class") & ~table["estimated"] & table["usd_per_1m_blended"].notna()]
    shown = document["class_prices"]
    assert sorted(
        (c["model"], c["hardware"], c["gpu_count"], round(c["usd_per_1m_blended"], 9)) for c in shown
    ) == sorted(
        (r.model, r.hardware, r.gpu_count, round(r.usd_per_1m_blended, 9)) for r in classes.itertuples()
    )


def test_run_page_shows_every_scenario_hardware_and_settings(built) -> None:
    page = (built.out / "runs" / "run-a.html").read_text()
    for scenario in ("chat", "batch8", "determinism"):
        assert f">{scenario}</th>" in page
    assert "AMD Ryzen 9 7950X" in page and "node-7" in page and "550.54.14" in page
    assert "device" in page and "cuda:0" in page  # backend settings
    assert "TTFT p99 ms" in page and "218.75" in page
    invalid = (built.out / "runs" / "run-b.html").read_text()
    assert "(invalid)" in invalid and "thermal throttling during the window" in invalid


def test_charts_are_inline_svg(built) -> None:
    index = (built.out / "index.html").read_text()
    assert index.count("<svg") == 4
    assert index.count("<circle") > 3
    assert 'class="front"' in index
    assert "exact-match share" in index
    assert "Ethereum" in index or "Sui" in index


def test_methodology_lists_every_metric_definition(built) -> None:
    page = (built.out / "methodology.html").read_text()
    for metric in METRICS:
        assert f"<code>{metric.key}</code>" in page, metric.key
    assert "utilisation" in page  # pricing assumptions rendered from pricing.toml


def test_rebuild_removes_pages_of_deleted_runs(tmp_path: Path, profiles) -> None:
    with open_store(tmp_path / "r.db") as store:
        fill_small_store(store)
        build_site(store, tmp_path / "site", profiles=profiles)
        store.delete_run("run-d")
        summary = build_site(store, tmp_path / "site", profiles=profiles)
    assert summary.runs == 2
    assert sorted(p.name for p in (tmp_path / "site" / "runs").iterdir()) == ["run-a.html", "run-b.html"]


def test_empty_store_builds_a_site_that_says_so(tmp_path: Path, profiles) -> None:
    with open_store(tmp_path / "r.db") as store:
        summary = build_site(store, tmp_path / "site", profiles=profiles)
        table = build_markdown(store, profiles=profiles)
    assert (summary.runs, summary.run_pages) == (0, 0)
    index = (tmp_path / "site" / "index.html").read_text()
    assert "no valid scenario with both TPOT and throughput is stored yet" in index
    assert table.count("\n") == 2


def test_markdown_table(built) -> None:
    table = build_markdown(built.store, profiles=built.profiles)
    lines = table.splitlines()
    assert lines[0].startswith("| Hardware class | Node | Model |")
    assert set(lines[1]) <= {"|", "-", ":"}
    assert len(lines) == 2 + len(LISTED)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in lines[2]  # 300 tok/s: first
    assert "<" not in table  # every tag from a name is escaped, so a renderer shows it as text
    assert "cpu\\|model" in lines[4]
    for line in lines[2:]:
        assert line.count(" | ") == len(lines[0].split(" | ")) - 1  # escaped pipes keep one cell
    top = build_markdown(built.store, limit=1, profiles=built.profiles).splitlines()
    assert len(top) == 5 and top[-1] == "1 of 3 runs shown."


def test_page_names_are_safe() -> None:
    assert page_name("run-0001") == "run-0001.html"
    hashed = page_name("../../etc/passwd")
    assert hashed.startswith("run-") and "/" not in hashed and hashed.endswith(".html")


def test_pareto_front_by_hand() -> None:
    # (latency, throughput): (1, 10) and (2, 30) and (4, 50) are on the front; (3, 20) and (5, 50) are beaten
    xs, ys = [2.0, 1.0, 3.0, 4.0, 5.0], [30.0, 10.0, 20.0, 50.0, 50.0]
    assert pareto_front(xs, ys) == [1, 0, 3]


def test_axis_ticks() -> None:
    linear = Axis(0.0, 100.0, 0.0, 100.0, log=False)
    assert linear.ticks() == [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    assert linear(50.0) == 50.0
    log = Axis(1.0, 1000.0, 0.0, 300.0, log=True)
    assert log.ticks()[0] == 1 and 1000 in log.ticks()
    assert log(10.0) == pytest.approx(100.0)


def test_report_frames_read_what_the_site_needs(built) -> None:
    frames = built.store.report_frames()
    assert set(frames) == {"runs", "scenarios", "determinism"}
    runs = frames["runs"].set_index("run_id")
    assert set(runs.index) == LISTED | {"run-c"}  # the store hands out every run; the site filters
    assert runs.loc["run-b", "hardware_info"]["hostname"] == XSS_HOST
    assert runs.loc["run-a", "backend_settings"]["dtype"] == "bfloat16"
    scenarios = frames["scenarios"]
    assert not scenarios.duplicated(["run_id", "position"]).any()
    assert len(scenarios) == len(built.store.scenarios_frame())
    determinism = frames["determinism"]
    assert sorted(determinism["batch_size"]) == [1, 4, 8, 8]
    assert determinism["exact_match"].sum() == 3
    only_a = built.store.report_frames(["run-a"])
    assert set(only_a["runs"]["run_id"]) == {"run-a"} and len(only_a["scenarios"]) == 3
