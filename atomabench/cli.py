"""The ``atomabench`` command: parse options, call one library function, render its result.

Mistakes a user can make surface as ``UserError``: one line on stderr, exit code 2, no traceback.
An interrupted run exits 130 after its finished scenarios are safely stored.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from atomabench import __version__, api
from atomabench.cli_options import DbOption, JsonOption
from atomabench.errors import UserError

if TYPE_CHECKING:
    from atomabench.workloads.suite import Suite

app = typer.Typer(
    name="atomabench",
    help="Benchmark and qualify LLM inference nodes: throughput, latency, memory, determinism.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
results_app = typer.Typer(help="Browse, show and export stored results.", no_args_is_help=True)
suites_app = typer.Typer(help="Bundled and custom workload suites.", no_args_is_help=True)
app.add_typer(results_app, name="results")
app.add_typer(suites_app, name="suites")


def _version(value: bool) -> None:
    if value:
        print(f"atomabench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """atomabench: how much is this node worth to an inference network?"""


# ------------------------------------------------------------------------------------------------ run
@app.command()
def run(
    suite: Annotated[
        str, typer.Option("--suite", "-s", help="Bundled suite name or path to a TOML file.")
    ] = (api.DEFAULT_SUITE),
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="smollm2-135m (bundled), tiny-random-llama, HF folder or .gguf"),
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", "-b", help="Engine (default: transformers).")
    ] = None,
    dtype: Annotated[str | None, typer.Option(help="auto, float32, bfloat16 or float16.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or mps.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch.")] = None,
    url: Annotated[
        str | None, typer.Option(help="openai-http: the server's base URL, e.g. http://127.0.0.1:8000/v1.")
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(help="openai-http: local tokenizer that builds and counts prompts (default: bundled)."),
    ] = None,
    api_kind: Annotated[
        str | None, typer.Option("--api", help="openai-http: completions (default) or chat.")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-o", help="Engine option KEY=VALUE (VALUE read as TOML, else text); repeatable."
        ),
    ] = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run a suite on this machine, store every result, and print a summary (and verdict, if any)."""
    from atomabench.workloads.suite import load_suite

    options = api.parse_engine_options(option or [])
    options.update({k: v for k, v in (("url", url), ("tokenizer", tokenizer), ("api", api_kind)) if v})
    run_and_render(
        load_suite(suite),
        json_output,
        backend=backend,
        model=model,
        dtype=dtype,
        device=device,
        threads=threads,
        options=options,
        db=db,
    )


def run_and_render(loaded: Suite, json_output: bool, **options: Any) -> None:
    """Run ``loaded`` with a progress display, then print tables (or JSON) and the verdict, if any.

    Shared by ``run`` and ``determinism``; an interrupt exits 130 once finished scenarios are stored.
    """
    from atomabench import console
    from atomabench.runner import RunInterrupted
    from atomabench.verdict import decide

    try:
        with console.RichProgress() as progress:
            result = api.run(loaded, observer=progress, **options)
    except RunInterrupted as interrupted:
        console.stderr.print(f"[yellow]{interrupted}; finished scenarios are stored.[/yellow]")
        raise typer.Exit(130) from None
    verdict = decide(result, loaded.verdict) if loaded.verdict is not None else None
    if json_output:
        document = console.run_document(result)
        if verdict is not None:
            document["verdict"] = verdict.model_dump(mode="json")
        console.print_json(document)
        return
    console.stdout.print(console.scenario_table(result))
    for scenario in result.scenarios:
        for table in console.scenario_details(scenario):
            console.stdout.print(table)
    if verdict is not None:
        console.stdout.print(console.verdict_table(verdict))
    console.stdout.print(
        f"stored as run [bold]{result.run.run_id}[/bold]; "
        f"see `atomabench results show {result.run.run_id[:12]}`"
    )


# ------------------------------------------------------------------------------------------- hardware
@app.command()
def hw(json_output: JsonOption = False) -> None:
    """Show the hardware this machine has and the profile it matches."""
    from atomabench import console
    from atomabench.hardware import get_profile, probe
    from atomabench.hardware.render import hardware_table

    info = probe()
    profile = get_profile(info.profile_id) if info.profile_id else None
    if json_output:
        document = info.model_dump(mode="json")
        document["profile"] = profile.model_dump(mode="json") if profile else None
        console.print_json(document)
    else:
        console.stdout.print(hardware_table(info, profile))


# -------------------------------------------------------------------------------------------- suites
@suites_app.command("list")
def suites_list(json_output: JsonOption = False) -> None:
    """List the bundled suites."""
    from atomabench import console
    from atomabench.workloads.suite import available_suites, load_suite

    rows = []
    for name, path in available_suites().items():
        suite = load_suite(str(path))
        rows.append(
            {
                "name": name,
                "scenarios": ", ".join(f"{s.name} ({s.kind})" for s in suite.scenarios),
                "description": suite.description,
                "path": str(path),
            }
        )
    if json_output:
        console.print_json(rows)
    else:
        console.stdout.print(console.rows_table("suites", rows, ["name", "scenarios", "description"]))


def _compact(value: object) -> object:
    """Length distributions as '128', 'uniform 96-160' or 'normal 100±20'; lists joined by commas."""
    if isinstance(value, dict) and "dist" in value:
        if value["dist"] == "fixed":
            return value["value"]
        if value["dist"] == "uniform":
            return f"uniform {value['min']}-{value['max']}"
        return f"normal {value['mean']:g}±{value['std']:g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return value


@suites_app.command("show")
def suites_show(
    suite: Annotated[str, typer.Argument(help="Bundled suite name or path to a TOML file.")],
    json_output: JsonOption = False,
) -> None:
    """Validate a suite and show every scenario with its defaults filled in."""
    from atomabench import console
    from atomabench.workloads.suite import load_suite

    loaded = load_suite(suite)
    if json_output:
        console.print_json(loaded.model_dump(mode="json"))
        return
    rows = []
    for scenario in loaded.scenarios:
        row = scenario.model_dump(mode="json", exclude={"description"})
        row["load"] = _load_summary(row)
        if row.get("dataset") not in (None, "synthetic"):
            row["input_tokens"] = row["dataset"]
        rows.append({key: _compact(value) for key, value in row.items()})
    columns = ["name", "kind", "num_requests", "batch_size", "load", "input_tokens", "output_tokens"]
    if any(s.kind == "determinism" for s in loaded.scenarios):
        columns.append("batch_sizes")
    console.stdout.print(console.rows_table(f"suite {loaded.name} ({loaded.path})", rows, columns))


def _load_summary(row: dict) -> str | None:
    """'poisson 1 req/s', 'all at once ≤8', 'sweep 3 points': how a server or sweep scenario loads."""
    if row["kind"] == "sweep":
        return f"sweep {row['points']} points" + (
            f" ≤{row['max_concurrency']}" if row["max_concurrency"] else ""
        )
    if row["kind"] != "server":
        return None
    rate = row["rate"]
    text = "all at once" if rate is None else f"{row['arrival']} {rate:g} req/s"
    return text + (f" ≤{row['max_concurrency']}" if row["max_concurrency"] else "")


# ------------------------------------------------------------------------------------------- results
@results_app.command("list")
def results_list(
    db: DbOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Newest N runs only.")] = None,
    json_output: JsonOption = False,
) -> None:
    """List stored runs, newest first."""
    from atomabench import console
    from atomabench.store import open_store

    with open_store(db) as store:
        summaries = store.list_runs(limit)
    rows = [s.model_dump(mode="json") for s in summaries]
    if json_output:
        console.print_json(rows)
        return
    table_rows = [
        {
            "run": row["run_id"][:8],
            "started UTC": str(row["started_at"])[5:16].replace("T", " "),
            "suite": row["suite"],
            "model": row["model"],
            "engine": f"{row['backend']} {row['dtype'] or ''}".strip(),
            "hardware": row["profile_id"] or row["device_name"],
            "status": row["status"],
            "out tok/s": "-"
            if row["best_output_throughput"] is None
            else f"{row['best_output_throughput']:,.1f}",
        }
        for row in rows
    ]
    columns = ["run", "started UTC", "suite", "model", "engine", "hardware", "status", "out tok/s"]
    console.stdout.print(console.rows_table(f"runs in {db or 'the default database'}", table_rows, columns))


@results_app.command("show")
def results_show(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    db: DbOption = None,
    requests: Annotated[
        bool, typer.Option("--requests", help="Include per-request records in --json.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Show one run: hardware, settings and every scenario's metrics."""
    from atomabench import console

    result = api.get_run(run_id, db)
    if json_output:
        console.print_json(console.run_document(result, with_requests=requests))
        return
    hardware = result.run.hardware
    engine = result.run.backend_settings
    console.stdout.print(
        f"run {result.run.run_id}  started {result.run.started_at:%Y-%m-%d %H:%M:%S} UTC  "
        f"status {result.run.status}\nhardware: {hardware.device_name} × {max(hardware.gpu_count, 1)} "
        f"(profile {hardware.profile_id}), {hardware.cpu_threads} CPU threads\n"
        f"engine: {engine.get('engine_version', result.run.backend)}, "
        f"dtype {engine.get('dtype')}, device {engine.get('device')}"
    )
    console.stdout.print(console.scenario_table(result))
    for scenario in result.scenarios:
        for table in console.scenario_details(scenario):
            console.stdout.print(table)


@results_app.command("export")
def results_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, json or parquet.")] = "csv",
    table: Annotated[str, typer.Option(help="scenarios, requests or runs.")] = "scenarios",
    run_ids: Annotated[list[str] | None, typer.Option("--run", help="Only these runs (repeatable).")] = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Export stored results as CSV, JSON or Parquet."""
    from atomabench import console
    from atomabench.store import open_store

    with open_store(db) as store:
        written = store.export(out, fmt, table=table, run_ids=run_ids)  # type: ignore[arg-type]
    if json_output:
        console.print_json({"path": str(written), "format": fmt, "table": table})
    else:
        console.stdout.print(f"wrote {written}")


def _register_rooms() -> None:
    """Commands owned by other rooms register themselves here."""
    from atomabench.determinism.cli import register as register_determinism
    from atomabench.economics.cli import register as register_economics
    from atomabench.hardware.profile_cli import register as register_profile
    from atomabench.report.cli import register as register_report
    from atomabench.submit.cli import register as register_submit

    register_profile(app)
    register_determinism(app)
    register_economics(app)
    register_report(app)
    register_submit(app)


_register_rooms()


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Entry point: turns user errors into one line and exit code 2."""
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        app()
    except UserError as error:
        print(f"atomabench: error: {error.one_line()}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("atomabench: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
