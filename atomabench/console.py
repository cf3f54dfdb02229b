"""Terminal rendering: rich tables and the progress display. No measurement or SQL happens here."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from atomabench.records import LatencyStats, RunResult, ScenarioResult
from atomabench.verdict import Verdict
from atomabench.workloads.plan import ScenarioPlan

stderr = Console(stderr=True)
stdout = Console()


def print_json(document: Any) -> None:
    """Plain JSON on stdout (no rich markup), for scripts."""
    print(json.dumps(document, indent=2, default=str))


def _bytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f} MiB"


def _ms(stats: LatencyStats, key: str) -> str:
    value = stats.percentiles.get(key)
    return "-" if value is None else f"{value:,.1f}"


def scenario_table(run: RunResult, title: str | None = None) -> Table:
    """The end-of-run summary: one column per scenario, one row per metric (fits 80 columns)."""
    info = run.run
    table = Table(
        title=title
        or f"run {info.run_id[:12]} · {info.suite} · {info.backend} · {info.model} · {info.status}",
        title_justify="left",
    )
    table.add_column("metric")
    for scenario in run.scenarios:
        table.add_column(scenario.name + ("" if scenario.valid else " (invalid)"), justify="right")

    def row(label: str, render: Callable[[ScenarioResult], str]) -> None:
        table.add_row(label, *(render(s) for s in run.scenarios))

    row("kind", lambda s: s.kind)
    row("requests ok / failed", lambda s: f"{s.metrics.completed} / {s.metrics.failed}")
    row("duration s", lambda s: f"{s.metrics.duration_s:,.2f}")
    row("requests/s", lambda s: f"{s.metrics.request_throughput:,.3f}")
    row("output tok/s", lambda s: f"{s.metrics.output_throughput:,.1f}")
    row("total tok/s", lambda s: f"{s.metrics.total_token_throughput:,.1f}")
    row("peak output tok/s (1 s)", lambda s: f"{s.metrics.peak_output_throughput:,.0f}")
    for label, attr in (("TTFT", "ttft_ms"), ("TPOT", "tpot_ms"), ("ITL", "itl_ms"), ("E2EL", "e2el_ms")):
        for key in ("p50", "p99"):
            row(f"{label} {key} ms", lambda s, a=attr, k=key: _ms(getattr(s.metrics, a), k))
    if any(s.metrics.goodput is not None for s in run.scenarios):
        row("goodput req/s (SLO met)", _goodput)
    if any(s.serving for s in run.scenarios):
        row("arrival (target req/s)", _arrival)
        row("concurrency peak / mean", _concurrency)
    row("peak host RSS", lambda s: _bytes(s.memory.peak_host_rss_bytes))
    row("peak device memory", lambda s: _bytes(s.memory.peak_device_bytes))
    row("energy J / output token", _energy)
    row("MBU decode / MFU prefill", _roofline)
    row("valid", lambda s: "yes" if s.valid else f"[red]no[/red]: {s.invalid_reason}")
    table.caption = "TTFT, TPOT, ITL, E2EL as vLLM bench serve defines them (docs/metrics.md)"
    return table


def _goodput(scenario: ScenarioResult) -> str:
    m = scenario.metrics
    if m.goodput is None:
        return "-"
    return f"{m.goodput:,.3f} ({100 * (m.slo_attainment or 0):.0f}%)"


def _arrival(scenario: ScenarioResult) -> str:
    serving = scenario.serving or {}
    if "sweep" in serving:
        best = serving["sweep"]["max_rate_within_slo"]
        return "sweep: none in SLO" if best is None else f"sweep: {best:,.3g} in SLO"
    if not serving:
        return "-"
    rate = serving.get("target_rate")
    return f"{serving.get('arrival')}" + ("" if rate is None else f" ({rate:,.3g})")


def _concurrency(scenario: ScenarioResult) -> str:
    m = scenario.metrics
    if m.peak_concurrency is None or m.mean_concurrency is None:
        return "-"
    return f"{m.peak_concurrency:.0f} / {m.mean_concurrency:.1f}"


def scenario_details(scenario: ScenarioResult) -> list[Table]:
    """The tables printed under the summary for one scenario: determinism findings, sweep points."""
    tables = []
    if scenario.determinism_summary is not None:
        tables.append(determinism_table(scenario))
    if scenario.serving and "sweep" in scenario.serving:
        tables.append(sweep_table(scenario))
    return tables


def sweep_table(scenario: ScenarioResult) -> Table:
    """Every point of a sweep with its SLO outcome; the title names the highest rate that met it."""
    sweep = (scenario.serving or {})["sweep"]
    best = sweep["max_rate_within_slo"]
    slo = sweep["slo"]
    limits = ", ".join(
        f"{name} ≤ {slo[key]:g} ms"
        for name, key in (("TTFT", "ttft_ms"), ("TPOT", "tpot_ms"), ("E2EL", "e2el_ms"))
        if slo.get(key) is not None
    )
    key = f"p{slo['percentile']:g}"
    table = Table(
        title=f"{scenario.name}: "
        + (f"highest rate within the SLO {best:,.3f} req/s" if best is not None else "no rate met the SLO")
        + f" (p{slo['percentile']:g} {limits})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for header in (
        "point",
        "target req/s",
        "req/s",
        "out tok/s",
        "goodput",
        f"TTFT {key}",
        f"TPOT {key}",
        "SLO",
    ):
        table.add_column(header, justify="left" if header in ("point", "SLO") else "right")

    def number(value: float | None, fmt: str = ",.2f") -> str:
        return "-" if value is None else format(value, fmt)

    for point in sweep["points"]:
        table.add_row(
            str(point["point"]),
            number(point["target_rate"]),
            number(point["request_throughput"]),
            number(point["output_throughput"], ",.1f"),
            number(point["goodput"]),
            number(point[f"ttft_{key}_ms"], ",.1f"),
            number(point[f"tpot_{key}_ms"], ",.1f"),
            "met" if point["slo_met"] else f"[red]missed[/red]: {point['slo_reason']}",
        )
    return table


def determinism_table(scenario: ScenarioResult) -> Table:
    """Findings per check and batch size, with the tier and its reason as the title."""
    summary = scenario.determinism_summary
    assert summary is not None
    table = Table(
        title=f"{scenario.name}: determinism tier {summary.tier} — {summary.reason}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for header in (
        "check",
        "batch",
        "compared",
        "exact",
        "first diverging token",
        "min margin",
        "max |Δlogprob|",
    ):
        table.add_column(header, justify="left" if header == "check" else "right")
    groups: dict[tuple[str, int], list] = {}
    for result in scenario.determinism:
        groups.setdefault((result.check, result.batch_size), []).append(result)
    for (check, batch), results in sorted(groups.items()):
        divergences = [r.first_divergence for r in results if r.first_divergence is not None]
        margins = [r.margin_at_divergence for r in results if r.margin_at_divergence is not None]
        deltas = [r.max_abs_logprob_delta for r in results if r.max_abs_logprob_delta is not None]
        exact = sum(r.exact_match for r in results)
        unique = [r.unique_completions for r in results if r.unique_completions is not None]
        table.add_row(
            check + (f" ({max(unique)} unique)" if unique else ""),
            str(batch),
            str(len(results)),
            f"{exact}" if exact == len(results) else f"[yellow]{exact}[/yellow]",
            str(min(divergences)) if divergences else "-",
            f"{min(margins):.2e}" if margins else "-",
            f"{max(deltas):.2e}" if deltas else "-",
        )
    notes = [f"near-tie margin {summary.near_tie_margin} nats", *summary.skipped]
    table.caption = "; ".join(notes)
    return table


def verdict_table(verdict: Verdict) -> Table:
    """The qualification verdict: each check, then which catalogue models fit in memory."""
    outcome = "[green]PASS[/green]" if verdict.passed else "[red]FAIL[/red]"
    table = Table(
        title=f"verdict: {outcome} (hardware class {verdict.hardware_class}, "
        f"minimums: {verdict.minimums_from})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for header in ("check", "required", "measured", "result"):
        table.add_column(header)
    for check in verdict.checks:
        result = "pass" if check.passed else "[red]fail[/red]"
        table.add_row(check.name, check.required, check.measured, result)
    fitting: dict[str, list[str]] = {}
    for fit in verdict.servable_models:
        if fit.fits:
            fitting.setdefault(fit.model, []).append(fit.dtype)
    table.caption = (
        f"fits in {verdict.memory_gb:.0f} GB ({verdict.memory_source}): "
        + (", ".join(f"{model} ({'/'.join(d)})" for model, d in fitting.items()) or "no catalogue model")
        + ("; invalid: " + "; ".join(verdict.invalid_scenarios) if verdict.invalid_scenarios else "")
    )
    return table


def _energy(scenario: ScenarioResult) -> str:
    energy = scenario.energy
    if energy is None or energy.joules_per_output_token is None:
        return "-"
    return f"{energy.joules_per_output_token:.3g} ({energy.average_watts:.0f} W)"


def _roofline(scenario: ScenarioResult) -> str:
    figures = scenario.roofline or {}

    def percent(key: str) -> str:
        value = figures.get(key)
        return "-" if value is None else f"{100 * value:.1f}%"

    return f"{percent('mbu')} / {percent('mfu')}"


def run_document(run: RunResult, *, with_requests: bool = False) -> dict:
    """A run as JSON-ready data; per-request records only when asked (they can be large)."""
    document = run.model_dump(mode="json")
    if not with_requests:
        for scenario in document["scenarios"]:
            scenario.pop("records", None)
    return document


def rows_table(title: str, rows: Sequence[dict[str, Any]], columns: Iterable[str]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    columns = list(columns)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("-" if row.get(c) is None else str(row.get(c)) for c in columns))
    return table


class RichProgress:
    """A ``RunObserver`` drawing one progress bar per scenario (warm-up, then measured requests)."""

    def __init__(self, console: Console = stderr) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._name = ""
        # the live display starts with the first stage, so errors before it stay one line
        self._started = False
        self._stage: TaskID | None = None

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self.progress.stop()

    def _start(self) -> None:
        if not self._started:
            self.progress.start()
            self._started = True

    def stage(self, message: str) -> None:
        """A spinner line for work of unknown length (probing, loading, converting the model)."""
        self._start()
        self._finish_stage()
        self._stage = self.progress.add_task(message, total=None)

    def _finish_stage(self) -> None:
        if self._stage is not None:
            self.progress.update(self._stage, total=1, completed=1)
            self._stage = None

    def scenario_started(self, plan: ScenarioPlan, index: int, total: int) -> None:
        self._start()
        self._finish_stage()
        self._name = f"[{index + 1}/{total}] {getattr(plan, 'name', plan.scenario.name)}"
        warmup = sum(len(b) for b in plan.warmup)
        self._task = self.progress.add_task(
            f"{self._name} (warm-up)" if warmup else self._name, total=warmup + plan.measured_requests
        )

    def requests_done(self, count: int, warmup: bool) -> None:
        if self._task is not None:
            self.progress.update(
                self._task, advance=count, description=self._name + (" (warm-up)" if warmup else "")
            )

    def scenario_finished(self, result: ScenarioResult) -> None:
        if result.kind == "sweep":  # the summary after its points: a line of its own
            best = (result.serving or {}).get("sweep", {}).get("max_rate_within_slo")
            outcome = (
                "no rate met the SLO" if best is None else f"highest rate within the SLO {best:,.3f} req/s"
            )
            self.progress.add_task(f"{result.name}: {outcome}", total=1, completed=1)
            return
        if self._task is not None:
            m = result.metrics
            self.progress.update(
                self._task,
                description=f"{self._name}: {m.output_throughput:,.1f} out tok/s, "
                f"TTFT p50 {_ms(m.ttft_ms, 'p50')} ms",
            )
