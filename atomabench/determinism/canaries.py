"""The bundled canary prompts (``atomabench/data/canaries.toml``)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache

from atomabench.paths import package_data


@dataclass(frozen=True)
class Canary:
    id: str
    text: str


@cache
def canaries() -> tuple[Canary, ...]:
    data = tomllib.loads(package_data("canaries.toml").read_text(encoding="utf-8"))
    return tuple(Canary(id=item["id"], text=item["text"]) for item in data["canary"])
