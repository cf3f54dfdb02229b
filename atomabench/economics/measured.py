"""Reading measured results (``Store.scenarios_frame()``) for the economics models.

Only rows of valid scenarios from completed or interrupted runs count. "Throughput at the SLO" means
the output throughput of a scenario whose p99 TTFT and p99 TPOT both meet the pricing SLO, so that
offline and single-stream results (which carry no per-request SLO) price the same way as server
loads; the per-request ``goodput`` column of server scenarios is shown beside it by the report.
"""

from __future__ import annotations

import pandas as pd

from atomabench.economics.catalogue import Catalogue

COUNTED_STATUSES = ("completed", "interrupted")

REQUIRED_COLUMNS = (
    "run_id",
    "model",
    "status",
    "valid",
    "profile_id",
    "gpu_count",
    "device_name",
    "scenario",
    "kind",
    "duration_s",
    "total_input_tokens",
    "total_output_tokens",
    "output_throughput",
    "ttft_ms_p99",
    "tpot_ms_p99",
    "average_watts",
)


def usable_rows(frame: pd.DataFrame | None) -> pd.DataFrame:
    """Rows that count: ``valid`` is True, the run completed or was interrupted, and the scenario
    measured serving (determinism scenarios run odd batch mixes; their throughput is no price basis)."""
    if frame is None or frame.empty:
        return pd.DataFrame(columns=list(REQUIRED_COLUMNS))
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"scenarios frame lacks columns: {', '.join(missing)}")
    keep = frame["valid"].eq(True) & frame["status"].isin(COUNTED_STATUSES) & frame["kind"].ne("determinism")
    return frame.loc[keep].reset_index(drop=True)


def meets_slo(frame: pd.DataFrame, ttft_p99_ms: float, tpot_p99_ms: float) -> pd.Series:
    """True where both p99 TTFT and p99 TPOT are within the SLO; a missing figure counts as a miss."""
    ttft = pd.to_numeric(frame["ttft_ms_p99"], errors="coerce")
    tpot = pd.to_numeric(frame["tpot_ms_p99"], errors="coerce")
    return (ttft <= ttft_p99_ms) & (tpot <= tpot_p99_ms)


def input_throughput(frame: pd.DataFrame) -> pd.Series:
    """Prompt tokens per second over each scenario's measured window."""
    duration = pd.to_numeric(frame["duration_s"], errors="coerce")
    return pd.to_numeric(frame["total_input_tokens"], errors="coerce") / duration.where(duration > 0)


def model_ids(frame: pd.DataFrame, catalogue: Catalogue) -> pd.Series:
    """The catalogue id of each row's model, or the stored name where the catalogue lacks it.

    Looked up once per distinct name: a leaderboard frame repeats a handful of models many times.
    """
    names = {str(name) for name in frame["model"].unique()}
    ids = {name: found.id if (found := catalogue.find(name)) else name for name in names}
    return frame["model"].map(lambda name: ids[str(name)])
