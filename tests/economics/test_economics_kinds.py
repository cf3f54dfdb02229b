"""Only serving scenarios are a price basis: determinism scenarios run odd batch mixes."""

from __future__ import annotations

import pandas as pd

from atomabench.economics.measured import REQUIRED_COLUMNS, usable_rows


def test_determinism_scenarios_are_not_a_price_basis():
    rows = [
        {c: None for c in REQUIRED_COLUMNS}
        | {"valid": True, "status": "completed", "kind": kind, "scenario": kind}
        for kind in ("offline", "determinism")
    ]
    kept = usable_rows(pd.DataFrame(rows))
    assert list(kept["scenario"]) == ["offline"]
