"""What every economics command returns: named tables, the assumptions used, and whether any figure
is an estimate rather than a measurement. The CLI only renders it; the Python API hands it back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from atomabench.economics.params import Loaded, parse_sweep


@dataclass(frozen=True)
class Answer:
    """One model's result: ``tables`` (full data), ``display`` (columns worth printing per table)."""

    command: str
    tables: dict[str, pd.DataFrame]
    assumptions: pd.DataFrame
    estimated: bool
    notes: tuple[str, ...] = ()
    display: dict[str, list[str]] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-safe document: NaN and infinities become null, numpy scalars plain numbers."""
        return {
            "command": self.command,
            "estimated": self.estimated,
            "notes": list(self.notes),
            "tables": {name: frame_records(frame) for name, frame in self.tables.items()},
            "assumptions": frame_records(self.assumptions),
        }


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): json_value(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def json_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def swept(loaded: Loaded, spec: str | None, make: Callable[[Loaded], Answer]) -> Answer:
    """``make`` once, or once per value of ``--sweep NAME=v1,v2`` with the tables stacked.

    Every stacked table gains a first column ``sweep`` (``NAME=value``); the assumptions show the
    swept name with all its values.
    """
    if spec is None:
        return make(loaded)
    name, values = parse_sweep(spec)
    answers = [(value, make(loaded.with_values({name: value}))) for value in values]
    first = answers[0][1]
    tables = {}
    for key in first.tables:
        parts = [answer.tables[key].assign(sweep=f"{name}={value}") for value, answer in answers]
        stacked = pd.concat(parts, ignore_index=True)
        tables[key] = stacked[["sweep", *[c for c in stacked.columns if c != "sweep"]]]
    assumptions = first.assumptions.copy()
    rows = assumptions["name"] == name
    assumptions["value"] = assumptions["value"].astype(object)
    assumptions.loc[rows, "value"] = ", ".join(str(v) for v, _ in answers)
    assumptions.loc[rows, "source"] = "swept on the command line"
    return Answer(
        command=first.command,
        tables=tables,
        assumptions=assumptions,
        estimated=any(answer.estimated for _, answer in answers),
        notes=tuple(dict.fromkeys(note for _, answer in answers for note in answer.notes)),
        display={key: ["sweep", *cols] for key, cols in first.display.items()},
    )
