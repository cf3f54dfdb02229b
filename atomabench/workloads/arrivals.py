"""Arrival processes: when each request of a server scenario is sent, as offsets from the load start.

Same definitions as vLLM's ``bench serve`` (``--request-rate``, ``--burstiness``): inter-arrival gaps
are gamma-distributed with shape ``burstiness`` and mean ``1/rate``, so burstiness 1 is a Poisson
process, below 1 burstier and above 1 more regular; ``constant`` sends exactly every ``1/rate``
seconds. No rate means every request arrives at once (the load is then bounded only by the
scenario's ``max_concurrency``). The first request is sent at offset 0 and the draws are seeded, so a
scenario always produces the same schedule.
"""

from __future__ import annotations

import numpy as np

from atomabench.workloads.suite import ArrivalProcess


def arrival_offsets(
    process: ArrivalProcess,
    rate: float | None,
    count: int,
    rng: np.random.Generator,
    *,
    burstiness: float = 1.0,
) -> list[float]:
    """``count`` non-decreasing send offsets in seconds, starting at 0."""
    if count <= 0:
        return []
    if rate is None or np.isinf(rate):
        return [0.0] * count
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if process == "constant":
        gaps = np.full(count - 1, 1.0 / rate)
    elif process == "poisson":
        gaps = rng.exponential(1.0 / rate, size=count - 1)
    elif process == "gamma":
        gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=count - 1)
    else:  # pragma: no cover - the suite model admits only the processes above
        raise ValueError(f"unknown arrival process {process!r}")
    return [0.0, *np.cumsum(gaps).tolist()]
