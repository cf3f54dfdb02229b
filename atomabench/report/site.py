"""The static leaderboard site: HTML, a data.js, CSV and JSON, written to one folder.

It works from ``file://`` and any static host: no server, no CDN, no fetch. The table's rows travel in
``data.js``, which assigns one global, because browsers refuse ``fetch()`` of a local JSON file. Every
user-controlled string is HTML-escaped here and inserted with ``textContent`` by ``app.js``.
Templates and assets are package files (``atomabench/report/templates``, ``static``).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

import pandas as pd

import atomabench
from atomabench.errors import UserError
from atomabench.report import charts
from atomabench.report.data import LEADERBOARD_COLUMNS, SiteData, collect, page_name

if TYPE_CHECKING:
    from atomabench.records import HardwareProfile
    from atomabench.store import Store

DEFAULT_OUT = Path("reports/site")


@dataclass(frozen=True)
class Column:
    """One leaderboard column: the row field it shows, its header, how it is formatted, and why."""

    key: str
    label: str
    kind: str
    help: str


COLUMNS: tuple[Column, ...] = (
    Column("hardware_class", "Hardware class", "text", "hardware profile the probe matched, ×N GPUs"),
    Column("node", "Node", "text", "hostname the run was measured on"),
    Column("model", "Model", "text", "model as the run named it; links to the run page"),
    Column("backend", "Backend", "text", "inference engine"),
    Column("dtype", "Dtype / quant", "text", "precision or quantization the engine ran"),
    Column("output_tok_s", "Output tok/s", "f1", "output throughput of the best scenario"),
    Column("goodput_req_s", "Goodput req/s", "f2", "highest stored goodput at the scenario's SLO"),
    Column("ttft_p50_ms", "TTFT p50 ms", "f1", "time to first token, median, of the best scenario"),
    Column("ttft_p99_ms", "TTFT p99 ms", "f1", "time to first token, p99, of the best scenario"),
    Column("tpot_p50_ms", "TPOT p50 ms", "f2", "time per output token, median, of the best scenario"),
    Column("tpot_p99_ms", "TPOT p99 ms", "f2", "time per output token, p99, of the best scenario"),
    Column("peak_memory_bytes", "Peak memory", "bytes", "peak device memory of the best scenario"),
    Column("joules_per_token", "J/token", "g3", "energy per output token of the best scenario"),
    Column("usd_per_1m_blended", "$/1M tokens", "usd", "blended price from atomabench.economics"),
    Column("determinism_tier", "Determinism", "text", "worst stored determinism tier of the run"),
    Column("date", "Date", "text", "day the run started (UTC)"),
)
_CLIENT_FIELDS = tuple(
    dict.fromkeys((*(c.key for c in COLUMNS), "run_id", "page", "peak_memory_source", "hardware_class"))
)


@dataclass(frozen=True)
class SiteSummary:
    """What ``build_site`` wrote: where, how much, and how long it took."""

    out_dir: Path
    index: Path
    runs: int
    scenarios: int
    run_pages: int
    hardware_classes: int
    skipped_runs: int
    seconds: float

    def to_json_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["out_dir"] = str(self.out_dir)
        document["index"] = str(self.index)
        return document

    def one_line(self) -> str:
        return (
            f"{self.runs} runs ({self.scenarios} scenarios, {self.hardware_classes} hardware classes), "
            f"{self.run_pages} run pages in {self.seconds:.1f} s"
            + (f"; {self.skipped_runs} running or failed runs left out" if self.skipped_runs else "")
        )


def build_site(
    store: Store, out_dir: str | Path = DEFAULT_OUT, *, profiles: dict[str, HardwareProfile] | None = None
) -> SiteSummary:
    """Write the whole site for every completed or interrupted run in ``store`` into ``out_dir``."""
    started = time.perf_counter()
    out = Path(out_dir)
    data = collect(store, profiles)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "assets").mkdir(exist_ok=True)
        _copy_assets(out / "assets")
        layout = Template(_template("layout.html"))
        _write(out / "data.js", _data_js(data, generated))
        _write_tables(out, data, generated)
        _write(out / "index.html", _index_page(layout, data, generated))
        _write(out / "methodology.html", _methodology_page(layout, generated))
        pages = _replace_run_pages(out, layout, data, generated)
    except OSError as exc:
        raise UserError(f"cannot write the site: {exc.strerror or exc}", path=out, field="out") from None
    return SiteSummary(
        out_dir=out,
        index=out / "index.html",
        runs=len(data.rows),
        scenarios=sum(len(s) for s in data.scenarios.values()),
        run_pages=pages,
        hardware_classes=len({row["hardware_class"] for row in data.rows}),
        skipped_runs=data.skipped_runs,
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------------------------------
# Files


def _template(name: str) -> str:
    return resources.files("atomabench.report").joinpath("templates", name).read_text(encoding="utf-8")


def _copy_assets(target: Path) -> None:
    for name in ("app.js", "style.css"):
        source = resources.files("atomabench.report").joinpath("static", name)
        with resources.as_file(source) as path:
            shutil.copyfile(path, target / name)


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _json_text(document: Any) -> str:
    """JSON that is also safe to place inside HTML or a script: no raw '<', so no '</script>'."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def _data_js(data: SiteData, generated: str) -> str:
    document = {
        "generated": generated,
        "fields": list(_CLIENT_FIELDS),
        "columns": [asdict(column) for column in COLUMNS],
        "sort": {"key": "output_tok_s", "dir": "desc"},
        "rows": [[row[name] for name in _CLIENT_FIELDS] for row in data.rows],
    }
    return "window.ATOMABENCH_DATA = " + _json_text(document) + ";\n"


def _write_tables(out: Path, data: SiteData, generated: str) -> None:
    frame = pd.DataFrame(data.rows, columns=list(LEADERBOARD_COLUMNS))
    frame.to_csv(out / "leaderboard.csv", index=False)
    prices = data.class_prices.astype(object).where(data.class_prices.notna(), None)
    document = {
        "generated_at": generated,
        "atomabench_version": atomabench.__version__,
        "columns": list(LEADERBOARD_COLUMNS),
        "rows": data.rows,
        "class_prices": prices.to_dict("records"),
    }
    _write(out / "leaderboard.json", json.dumps(document, ensure_ascii=False, allow_nan=False))


# --------------------------------------------------------------------------------------------------
# Pages


def _page(layout: Template, title: str, body: str, generated: str, root: str, scripts: str = "") -> str:
    return layout.substitute(
        title=escape(title),
        root=root,
        body=body,
        version=escape(atomabench.__version__),
        generated=generated,
        scripts=scripts,
    )


def _index_page(layout: Template, data: SiteData, generated: str) -> str:
    classes = len({row["hardware_class"] for row in data.rows})
    summary = (
        f"{len(data.rows):,} runs on {classes:,} hardware classes, "
        f"{sum(len(s) for s in data.scenarios.values()):,} scenarios. Click a column header to sort, "
        "type to filter; every run links to its page."
    )
    chart_html = "\n".join(
        (
            charts.pareto_chart(data.points),
            charts.price_chart(data.class_prices),
            charts.determinism_chart(data.determinism),
            charts.forecast_chart(data.forecast, data.saturation_threshold),
        )
    )
    notes = [
        "Only completed and interrupted runs are listed; each cell is a stored value, see Methodology.",
        *data.notes,
    ]
    if data.skipped_runs:
        notes.append(f"{data.skipped_runs} running or failed run(s) are not listed.")
    body = Template(_template("index.html")).substitute(
        summary=escape(summary),
        charts=chart_html,
        notes="\n".join(f"<li>{escape(note)}</li>" for note in notes),
    )
    scripts = '<script src="data.js"></script>\n<script src="assets/app.js"></script>'
    return _page(layout, "atomabench leaderboard", body, generated, "", scripts)


def _methodology_page(layout: Template, generated: str) -> str:
    from atomabench.economics import load_pricing_params
    from atomabench.measure.definitions import METRICS

    rows = "".join(
        f"<tr><td><code>{escape(m.key)}</code></td><td>{escape(m.name)}</td><td>{escape(m.unit)}</td>"
        f'<td class="wrap">{escape(m.definition)}</td><td class="wrap"><code>{escape(m.formula)}</code></td>'
        f'<td class="wrap">{escape(m.source)}'
        + (f"<br><small>after {escape(m.reference)}</small>" if m.reference else "")
        + "</td></tr>"
        for m in METRICS
    )
    columns = "".join(
        f"<tr><td>{escape(c.label)}</td><td><code>{escape(c.key)}</code></td>"
        f'<td class="wrap">{escape(c.help)}</td></tr>'
        for c in COLUMNS
    )
    assumptions = load_pricing_params().assumptions()
    pricing = "".join(
        f"<tr><td><code>{escape(str(r.name))}</code></td><td>{escape(str(r.value))}</td>"
        f'<td class="wrap">{escape(str(r.source))}</td></tr>'
        for r in assumptions.itertuples(index=False)
    )
    body = (
        "<h1>Methodology</h1>"
        "<p>Every number on this site is a value stored by <code>atomabench run</code>, a count of stored "
        "rows, or the output of <code>atomabench.economics</code> (prices, block-space forecast). "
        "Nothing is recomputed from per-request records here. Only completed and interrupted runs are "
        "listed.</p>"
        "<h2>Leaderboard columns</h2>"
        "<p>The <em>best scenario</em> of a run is its valid, non-determinism scenario with the highest "
        "output throughput; throughput, TTFT, TPOT, peak memory and J/token all come from that one "
        "scenario, so a row never mixes scenarios. Goodput is the highest stored goodput of any valid "
        "scenario (serving scenarios with an SLO). Peak memory falls back to the peak host RSS where no "
        "device memory was read (CPU runs), marked “(host)”.</p>"
        '<table class="kv"><thead><tr><th>column</th><th>field</th><th>computed from</th></tr></thead>'
        f"<tbody>{columns}</tbody></table>"
        "<h2>Metric definitions</h2>"
        '<div class="table-wrap"><table class="defs"><thead><tr><th>key</th><th>metric</th><th>unit</th>'
        "<th>definition</th><th>formula</th><th>computed in</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
        "<h2>Pricing assumptions</h2>"
        "<p>Prices come from <code>atomabench.economics.price_table</code> with the bundled "
        "<code>pricing.toml</code>; each value's source is listed.</p>"
        '<div class="table-wrap"><table class="defs"><thead><tr><th>parameter</th><th>value</th>'
        f"<th>source</th></tr></thead><tbody>{pricing}</tbody></table></div>"
    )
    return _page(layout, "atomabench methodology", body, generated, "")


# --------------------------------------------------------------------------------------------------
# Run pages

_SCENARIO_ROWS: tuple[tuple[str, str, str], ...] = (
    ("requests ok", "completed", "int"),
    ("requests failed", "failed", "int"),
    ("duration s", "duration_s", "f2"),
    ("input tokens", "total_input_tokens", "int"),
    ("output tokens", "total_output_tokens", "int"),
    ("requests/s", "request_throughput", "f3"),
    ("output tok/s", "output_throughput", "f1"),
    ("total tok/s", "total_token_throughput", "f1"),
    ("peak output tok/s (1 s)", "peak_output_throughput", "f1"),
    *(
        (f"{label} {stat} ms", f"{metric}_{stat}", "f2")
        for label, metric in (
            ("TTFT", "ttft_ms"),
            ("TPOT", "tpot_ms"),
            ("ITL", "itl_ms"),
            ("E2EL", "e2el_ms"),
        )
        for stat in ("mean", "p50", "p90", "p99")
    ),
    ("goodput req/s", "goodput", "f3"),
    ("SLO attainment", "slo_attainment", "pct"),
    ("peak concurrency", "peak_concurrency", "f1"),
    ("mean concurrency", "mean_concurrency", "f2"),
    ("peak device memory", "peak_device_bytes", "bytes"),
    ("peak host RSS", "peak_host_rss_bytes", "bytes"),
    ("KV-cache capacity tokens", "kv_cache_capacity_tokens", "int"),
    ("energy J", "energy_joules", "f1"),
    ("average W", "average_watts", "f1"),
    ("J / output token", "joules_per_output_token", "g3"),
    ("determinism tier", "determinism_tier", "text"),
)

_HARDWARE_ROWS = (
    ("hostname", "hostname"),
    ("hardware class", None),
    ("profile", "profile_id"),
    ("accelerator", "accelerator"),
    ("CPU", "cpu_model"),
    ("CPU cores / threads", None),
    ("RAM", "ram_bytes"),
    ("OS", "os"),
    ("Python", "python_version"),
    ("torch", "torch_version"),
    ("torch CUDA", "torch_cuda_version"),
    ("transformers", "transformers_version"),
    ("vLLM", "vllm_version"),
)


def _cell(value: Any, kind: str) -> str:
    """One formatted, escaped cell; '–' for anything absent or not finite."""
    if value is None or value is pd.NA or value != value or value in (math.inf, -math.inf):
        return "–"
    return _FORMATS[kind](value)


_FORMATS = {
    "text": lambda v: escape(str(v)),
    "int": lambda v: f"{int(v):,}",
    "bytes": lambda v: _bytes(float(v)),
    "pct": lambda v: f"{100 * float(v):.1f}%",
    "g3": lambda v: f"{float(v):.3g}",
    "f1": lambda v: f"{float(v):,.1f}",
    "f2": lambda v: f"{float(v):,.2f}",
    "f3": lambda v: f"{float(v):,.3f}",
}


def _bytes(value: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    index = 0
    while value >= 1024 and index < len(units) - 1:
        value /= 1024
        index += 1
    return f"{value:.0f} {units[index]}" if index == 0 else f"{value:.1f} {units[index]}"


_COMPACT = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)


def _compact_json(value: Any) -> str:
    return escape(_COMPACT.encode(value))


def _kv_table(pairs: list[tuple[str, str]]) -> str:
    return (
        '<table class="kv"><tbody>'
        + "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in pairs)
        + "</tbody></table>"
    )


def _hardware_pairs(info: dict[str, Any], hardware_class: str) -> list[tuple[str, str]]:
    pairs = []
    for label, key in _HARDWARE_ROWS:
        if label == "hardware class":
            value = escape(hardware_class)
        elif label == "CPU cores / threads":
            value = f"{_cell(info.get('cpu_cores'), 'int')} / {_cell(info.get('cpu_threads'), 'int')}"
        elif key == "ram_bytes":
            value = _cell(info.get(key), "bytes")
        else:
            value = _cell(info.get(key), "text")
        pairs.append((label, value))
    for gpu in info.get("gpus") or ():
        described = ", ".join(
            f"{name} {gpu[key]}"
            for name, key in (
                ("driver", "driver_version"),
                ("CUDA", "cuda_version"),
                ("compute", "compute_capability"),
                ("power limit W", "power_limit_w"),
            )
            if gpu.get(key) is not None
        )
        memory = _cell(gpu.get("memory_total_bytes"), "bytes")
        pairs.append((f"GPU {gpu.get('index', '')}", escape(f"{gpu.get('name', '')}, {memory}, {described}")))
    return pairs


def _settings_pairs(settings: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = []
    for key, value in settings.items():
        if isinstance(value, dict):
            pairs.extend(
                (f"{key}.{inner}", _compact_json(v) if isinstance(v, dict | list) else _cell(v, "text"))
                for inner, v in value.items()
            )
        else:
            pairs.append((key, _compact_json(value) if isinstance(value, list) else _cell(value, "text")))
    return pairs


def _run_page(run: dict[str, Any], scenarios: list[dict[str, Any]], row: dict[str, Any]) -> str:
    heads = "".join(
        f'<th class="num">{escape(str(s["scenario"]))}'
        + ("" if s["valid"] else ' <span class="invalid">(invalid)</span>')
        + "</th>"
        for s in scenarios
    )
    lines = [
        "<tr><th>kind</th>"
        + "".join(f'<td class="num">{escape(str(s["kind"]))}</td>' for s in scenarios)
        + "</tr>",
        "<tr><th>valid</th>"
        + "".join(
            '<td class="num">yes</td>'
            if s["valid"]
            else f'<td class="num wrap invalid">no: {_cell(s.get("invalid_reason"), "text")}</td>'
            for s in scenarios
        )
        + "</tr>",
    ]
    for label, key, kind in _SCENARIO_ROWS:
        lines.append(
            f"<tr><th>{label}</th>"
            + "".join(f'<td class="num">{_cell(s.get(key), kind)}</td>' for s in scenarios)
            + "</tr>"
        )
    for label, key in (("MBU decode", "mbu"), ("MFU prefill", "mfu")):
        lines.append(
            f"<tr><th>{label}</th>"
            + "".join(
                f'<td class="num">{_cell((s.get("roofline") or {}).get(key), "pct")}</td>' for s in scenarios
            )
            + "</tr>"
        )
    lines.append(
        "<tr><th>settings</th>"
        + "".join(f'<td class="wrap"><pre>{_compact_json(s.get("settings"))}</pre></td>' for s in scenarios)
        + "</tr>"
    )
    if any(s.get("serving") for s in scenarios):
        lines.append(
            "<tr><th>serving</th>"
            + "".join(
                f'<td class="wrap"><pre>{_compact_json(s["serving"]) if s.get("serving") else "–"}</pre></td>'
                for s in scenarios
            )
            + "</tr>"
        )
    started = run["started_at"]
    ended = run["ended_at"]
    overview = [
        ("run id", escape(run["run_id"])),
        ("suite", escape(str(run["suite"]))),
        ("model", escape(str(run["model"]))),
        ("backend", escape(str(run["backend"]))),
        ("dtype / quantization", _cell(row["dtype"], "text")),
        ("status", escape(str(run["status"]))),
        ("started (UTC)", escape(started.strftime("%Y-%m-%d %H:%M:%S"))),
        ("ended (UTC)", "–" if pd.isna(ended) else escape(ended.strftime("%Y-%m-%d %H:%M:%S"))),
        ("atomabench", escape(str(run["atomabench_version"]))),
        ("best output tok/s", _cell(row["output_tok_s"], "f1") + _from(row["scenario"])),
        ("goodput req/s", _cell(row["goodput_req_s"], "f3") + _from(row["goodput_scenario"])),
        ("$ / 1M tokens blended", _usd(row["usd_per_1m_blended"]) + _basis(row["price_basis"])),
        ("$ / 1M input · output", f"{_usd(row['usd_per_1m_input'])} · {_usd(row['usd_per_1m_output'])}"),
        ("determinism tier", _cell(row["determinism_tier"], "text")),
    ]
    title = f"{run['model']} on {run['hardware_class']}"
    return (
        f'<p><a href="../index.html">← leaderboard</a></p><h1>{escape(title)}</h1>'
        + _kv_table(overview)
        + f"<h2>Scenarios ({len(scenarios)})</h2>"
        + '<div class="table-wrap"><table class="metrics"><thead><tr><th>metric</th>'
        + heads
        + "</tr></thead><tbody>"
        + "".join(lines)
        + "</tbody></table></div>"
        + "<h2>Hardware</h2>"
        + _kv_table(_hardware_pairs(run["hardware"], run["hardware_class"]))
        + "<h2>Backend settings</h2>"
        + _kv_table(_settings_pairs(run["backend_settings"]))
    )


def _from(scenario: Any) -> str:
    return f" <small>({escape(str(scenario))})</small>" if scenario else ""


def _basis(basis: Any) -> str:
    return f" <small>({escape(str(basis))})</small>" if basis else ""


def _usd(value: Any) -> str:
    return "–" if value is None else f"${value:.3g}"


def _replace_run_pages(out: Path, layout: Template, data: SiteData, generated: str) -> int:
    """Write every run page into a fresh folder, then swap it in for ``runs/`` and drop the old one.

    New files are several times cheaper than truncating old ones (ext4 flushes a file that is
    truncated and rewritten), pages of deleted runs disappear with the old folder, and a reader never
    sees a half-written ``runs/``.
    """
    fresh = Path(tempfile.mkdtemp(prefix=".runs-", dir=out))
    try:
        pages = _write_run_pages(fresh, layout, data, generated)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    fresh.chmod(0o755)  # mkdtemp makes it private; a static host must read it
    current = out / "runs"
    if current.exists():
        retired = Path(tempfile.mkdtemp(prefix=".runs-old-", dir=out))
        current.rename(retired / "runs")
        fresh.rename(current)
        shutil.rmtree(retired)
    else:
        fresh.rename(current)
    return pages


def _write_run_pages(runs_dir: Path, layout: Template, data: SiteData, generated: str) -> int:
    count = 0
    for row in data.rows:
        run = data.runs[row["run_id"]]
        body = _run_page(run, data.scenarios.get(row["run_id"], []), row)
        title = f"{run['model']} · {run['hardware_class']} · {run['run_id']}"
        _write(runs_dir / page_name(row["run_id"]), _page(layout, title, body, generated, "../"))
        count += 1
    return count
