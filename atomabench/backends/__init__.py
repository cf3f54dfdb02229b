"""Engines behind one protocol. Adding an engine is one new module plus one line in ``_BACKENDS``."""

from __future__ import annotations

import importlib

from atomabench.backends.base import Backend, BackendConfig, BackendInfo, ServingBackend
from atomabench.errors import UserError

# name -> "module:factory"; imported lazily so `atomabench hw` never loads torch for nothing.
_BACKENDS: dict[str, str] = {
    "transformers": "atomabench.backends.transformers_backend:TransformersBackend",
    "llamacpp": "atomabench.backends.llamacpp_backend:LlamaCppBackend",
    "openai-http": "atomabench.backends.openai_http_backend:OpenAIHttpBackend",
    "vllm": "atomabench.backends.vllm_backend:VllmBackend",
}


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def create_backend(config: BackendConfig) -> Backend:
    """Build the backend that ``config.kind`` names (not yet loaded)."""
    target = _BACKENDS.get(config.kind)
    if target is None:
        raise UserError(
            f"unknown backend {config.kind!r}; known: {', '.join(backend_names())}", field="backend"
        )
    module_name, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(config)


__all__ = ["Backend", "BackendConfig", "BackendInfo", "ServingBackend", "backend_names", "create_backend"]
