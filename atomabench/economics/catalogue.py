"""The model catalogue: architecture figures the capacity and pricing models need, from a TOML file.

Only what memory and bandwidth arithmetic needs is kept: parameter counts (total and, for mixtures of
experts, active per token), layers, KV heads and head size. Each entry names its source.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from atomabench.economics.params import Loaded, Params, load
from atomabench.errors import UserError

Dtype = Literal["fp32", "fp16", "bf16", "fp8", "int8", "int4"]

BYTES_PER_VALUE: dict[str, float] = {
    "fp32": 4.0,
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}
"""Bytes per weight or KV value by dtype (int4 packs two values in a byte; scales are ignored)."""


class ModelSpec(Params):
    """One model's architecture, as far as memory and bandwidth arithmetic needs it."""

    id: str
    name: str
    params: float = Field(gt=0, description="total parameters")
    active_params: float | None = Field(default=None, gt=0, description="parameters used per token (MoE)")
    layers: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    experts: int = Field(default=1, ge=1)
    experts_per_token: int = Field(default=1, ge=1)
    aliases: tuple[str, ...] = ()
    uncertain: tuple[str, ...] = ()
    source: str = ""

    @model_validator(mode="after")
    def _check_moe(self) -> ModelSpec:
        if self.experts_per_token > self.experts:
            raise ValueError("experts_per_token cannot exceed experts")
        if self.experts > 1 and self.active_params is None:
            raise ValueError("a mixture of experts needs active_params")
        if self.active_params is not None and self.active_params > self.params:
            raise ValueError("active_params cannot exceed params")
        return self

    @property
    def active(self) -> float:
        return self.active_params if self.active_params is not None else self.params

    def weight_bytes(self, dtype: str) -> float:
        """Bytes to hold every weight at ``dtype``."""
        return self.params * BYTES_PER_VALUE[dtype]

    def kv_bytes_per_token(self, kv_dtype: str) -> float:
        """KV-cache bytes per token of context: 2 (K and V) · layers · kv_heads · head_dim · bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * BYTES_PER_VALUE[kv_dtype]

    def weight_bytes_read_per_step(self, dtype: str, batch: float) -> float:
        """Weight bytes one decode step reads for ``batch`` sequences.

        Dense models read every weight. A mixture of experts reads the shared weights plus each expert
        that at least one sequence routes to: with E experts and k per token, the expected fraction of
        experts touched by a batch of B is 1 − (1 − k/E)^B (routing assumed uniform and independent).
        """
        if self.experts == 1:
            return self.weight_bytes(dtype)
        per_expert = (self.params - self.active) / (self.experts - self.experts_per_token)
        shared = self.params - self.experts * per_expert
        touched = self.experts * (1.0 - (1.0 - self.experts_per_token / self.experts) ** batch)
        return (shared + per_expert * touched) * BYTES_PER_VALUE[dtype]


class Catalogue(Params):
    models: tuple[ModelSpec, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalogue:
        seen: set[str] = set()
        for model in self.models:
            if model.id in seen:
                raise ValueError(f"duplicate model id {model.id!r}")
            seen.add(model.id)
        return self

    def find(self, name: str) -> ModelSpec | None:
        """The entry whose id or alias matches ``name`` (case, org prefix and -instruct ignored)."""
        wanted = normalise_model_name(name)
        for model in self.models:
            if wanted in {normalise_model_name(n) for n in (model.id, model.name, *model.aliases)}:
                return model
        return None

    def get(self, name: str) -> ModelSpec:
        """Like :meth:`find`, but an unknown name is a UserError listing the known ids."""
        model = self.find(name)
        if model is None:
            known = ", ".join(m.id for m in self.models)
            raise UserError(f"unknown model {name!r}; the catalogue has: {known}", field="model")
        return model


def normalise_model_name(name: str) -> str:
    """``meta-llama/Llama-3.1-8B-Instruct`` and ``llama-3.1-8b`` compare equal."""
    base = name.strip().lower().rsplit("/", 1)[-1]
    base = re.sub(r"[-_.](instruct|chat|it)$", "", base)
    return re.sub(r"[\s_]+", "-", base)


def load_catalogue(path: str | Path | None = None) -> Loaded[Catalogue]:
    """The bundled catalogue (``models.toml``), or ``path`` merged over it (its list replaces)."""
    return load(Catalogue, "models.toml", path)
