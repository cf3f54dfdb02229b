"""A small store built with the store factories, and the site built from it once per module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from store.factories import make_hardware, make_run, make_scenario

from atomabench.hardware.profiles import load_profiles
from atomabench.paths import hardware_profiles_dir
from atomabench.records import DeterminismResult, DeterminismSummary, HardwareProfile
from atomabench.report import SiteSummary, build_site
from atomabench.store import Store, open_store

XSS_MODEL = "<script>alert(1)</script>"
XSS_HOST = '<img src=x onerror="alert(2)">'
ENDED = datetime(2025, 3, 2, tzinfo=UTC)


def _determinism_scenario():
    results = (
        DeterminismResult(check="R", prompt_id="p0", batch_size=1, exact_match=True),
        DeterminismResult(check="B", prompt_id="p0", batch_size=4, exact_match=True),
        DeterminismResult(
            check="B", prompt_id="p0", batch_size=8, exact_match=False, margin_at_divergence=0.01
        ),
        DeterminismResult(check="B", prompt_id="p1", batch_size=8, exact_match=True),
    )
    summary = DeterminismSummary(
        tier="B",
        reason="1 of 4 differed, all at near-ties",
        near_tie_margin=0.1,
        comparisons=4,
        exact=3,
        near_tie_flips=1,
        wide_flips=0,
        repeat_mismatches=0,
    )
    base = make_scenario("determinism", output_throughput=900.0, minutes_after_t0=3)
    return base.model_copy(
        update={"kind": "determinism", "determinism": results, "determinism_summary": summary}
    )


def fill_small_store(store: Store) -> None:
    """Four runs: two GPU runs (one with hostile names), a CPU run without device memory, a failed run."""
    store.start_run(make_run("run-a"))
    store.add_scenario("run-a", make_scenario("chat", output_throughput=40.0))
    store.add_scenario("run-a", make_scenario("batch8", output_throughput=120.0, minutes_after_t0=2))
    store.add_scenario("run-a", _determinism_scenario())
    store.finish_run("run-a", "completed", ENDED)

    hostile = make_hardware("NVIDIA H100 80GB HBM3", "h100-sxm").model_copy(update={"hostname": XSS_HOST})
    store.start_run(
        make_run("run-b", hours_after_t0=1, model=XSS_MODEL, backend="llamacpp", hardware=hostile)
    )
    store.add_scenario("run-b", make_scenario("chat", output_throughput=300.0))
    store.add_scenario("run-b", make_scenario("broken", output_throughput=5000.0, valid=False))
    store.finish_run("run-b", "completed", ENDED)

    cpu = make_hardware("AMD EPYC 9654", "generic-cpu", gpu_count=0)
    store.start_run(make_run("run-d", hours_after_t0=3, model="cpu|model", hardware=cpu))
    store.add_scenario("run-d", make_scenario("chat", output_throughput=8.0, with_energy=False))
    store.finish_run("run-d", "interrupted", ENDED)

    store.start_run(make_run("run-c", hours_after_t0=2, model="never-listed"))
    store.add_scenario("run-c", make_scenario("chat", output_throughput=77.0))
    store.finish_run("run-c", "failed", ENDED)


@dataclass(frozen=True)
class BuiltSite:
    store: Store
    out: Path
    summary: SiteSummary
    profiles: dict[str, HardwareProfile]


@pytest.fixture(scope="module")
def profiles() -> dict[str, HardwareProfile]:
    """The bundled profiles only, never a measured one from the user's data dir."""
    return load_profiles(hardware_profiles_dir())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, profiles) -> Iterator[BuiltSite]:
    root = tmp_path_factory.mktemp("report")
    with open_store(root / "results.db") as store:
        fill_small_store(store)
        summary = build_site(store, root / "site", profiles=profiles)
        yield BuiltSite(store=store, out=root / "site", summary=summary, profiles=profiles)
