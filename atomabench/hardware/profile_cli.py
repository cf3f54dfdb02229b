"""The ``atomabench profile`` command: measure this machine, compare with its profile, store, write TOML.

Thin by design: probe, call :func:`~atomabench.hardware.microbench.run_profile`, store the result,
render it as a rich table or one JSON document. A machine that matched no vendor profile (a generic
CPU, an unknown GPU) gets a measured profile TOML written so the roofline has figures for it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from atomabench.cli_options import DbOption
from atomabench.errors import UserError
from atomabench.hardware import probe
from atomabench.hardware.microbench import (
    DeviceProfileResult,
    format_figure,
    measured_profile_id,
    measured_profile_toml,
    run_profile,
)
from atomabench.hardware.profiles import GENERIC_CPU_ID, clear_profile_cache, load_profile_file
from atomabench.records import HardwareInfo


def register(app: typer.Typer) -> None:
    """Add ``profile`` to the ``atomabench`` command."""
    app.command("profile")(profile)


def profile(
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes: a rough figure in seconds.")] = False,
    db: DbOption = None,
    write_profile: Annotated[
        Path | None,
        typer.Option(
            "--write-profile",
            help="Write the measured profile TOML here (default: only for unmatched hardware, "
            "under the per-user data dir).",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON on stdout instead of tables.")
    ] = False,
) -> None:
    """Measure matmul TFLOPS per dtype, memory bandwidth, PCIe bandwidth and launch latency."""
    from atomabench import console
    from atomabench.store import open_store

    hardware = probe()
    with open_store(db) as store:  # opened first: a bad --db fails before a minute of measuring
        with console.stderr.status(f"profiling {device} ({'quick' if quick else 'full'} sizes)..."):
            result = run_profile(device, quick=quick, hardware=hardware)
        stored_id = store.add_device_profile(result)
        stored_in = store.url

    written: Path | None = None
    # no vendor figures to compare with: write (or refresh) this machine's measured profile
    unmatched = result.profile_id in (None, GENERIC_CPU_ID) or result.profile_id.startswith("measured-")
    if write_profile is not None or (unmatched and not quick):
        written = write_measured_profile(result, hardware, write_profile)

    if json_output:
        console.print_json(
            {
                "result": result.model_dump(mode="json"),
                "figures": result.figures(),
                "stored_id": stored_id,
                "db": stored_in,
                "profile_written": None if written is None else str(written),
            }
        )
        return
    console.stdout.print(figures_table(result))
    for note in result.notes:
        console.stdout.print(f"[yellow]note:[/yellow] {note}")
    console.stdout.print(f"stored as device profile #{stored_id} in {stored_in}")
    if written is not None:
        console.stdout.print(f"wrote measured hardware profile {written}")
    elif unmatched and quick:
        console.stdout.print("quick figures are too rough for a profile; run without --quick to write one")


def figures_table(result: DeviceProfileResult) -> Table:
    """One row per figure: what was achieved, the profile's peak and the share of it."""
    title = f"{result.device_name} ({result.device}) vs profile {result.profile_id or 'none'}"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column, justify in (("figure", "left"), ("achieved", "right"), ("peak", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("% of peak", justify="right")
    table.add_column("how", overflow="fold")
    for row in result.figures():
        table.add_row(
            row["figure"],
            format_figure(row["achieved"], row["unit"]),
            format_figure(row["peak"], row["unit"]),
            "-" if row["vs_peak_pct"] is None else f"{row['vs_peak_pct']:.1f} %",
            row["detail"],
        )
    return table


def default_profile_path(profile_id: str) -> Path:
    """Where measured profiles live: ``<per-user data dir>/hardware_profiles/<id>.toml``."""
    from atomabench.hardware.profiles import measured_profiles_dir

    return measured_profiles_dir() / f"{profile_id}.toml"


def write_measured_profile(
    result: DeviceProfileResult, hardware: HardwareInfo, path: Path | None = None
) -> Path:
    """Write the measured TOML (atomically) and check it loads; the file stem is the profile id."""
    profile_id = path.stem if path is not None else measured_profile_id(result.device_name)
    target = path if path is not None else default_profile_path(profile_id)
    text = measured_profile_toml(result, hardware, profile_id=profile_id)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    except OSError as error:
        raise UserError(
            f"cannot write the profile: {error.strerror or error}", path=target, field="write-profile"
        ) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise UserError(
            f"cannot write the profile: {error.strerror or error}", path=target, field="write-profile"
        ) from None
    load_profile_file(target)  # a file we wrote must load; if not, that is a bug worth a traceback
    clear_profile_cache()
    return target
