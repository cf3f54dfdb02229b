"""The Python API: run suites and read results as records or pandas DataFrames.

    >>> from atomabench import api
    >>> result = api.run("smoke")                  # doctest: +SKIP
    >>> api.scenarios().head()                     # doctest: +SKIP

Everything the CLI does goes through these functions; the CLI only parses options and renders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from atomabench.backends import BackendConfig
from atomabench.errors import UserError
from atomabench.records import RunResult
from atomabench.workloads.suite import Suite, load_suite

if TYPE_CHECKING:
    import pandas as pd

    from atomabench.runner import RunObserver

DEFAULT_SUITE = "smoke"


def backend_config_for(
    suite: Suite,
    *,
    backend: str | None = None,
    model: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    options: dict | None = None,
) -> BackendConfig:
    """Command-line values win over the suite's ``[backend]`` table, which wins over defaults."""
    suggested = suite.backend
    defaults = BackendConfig()
    return BackendConfig(
        kind=backend or suggested.kind or defaults.kind,
        model=model or suggested.model or defaults.model,
        dtype=dtype or suggested.dtype or defaults.dtype,
        device=device or suggested.device or defaults.device,
        threads=threads or suggested.threads,
        options={**suggested.options, **(options or {})},
    )


def parse_engine_options(pairs: list[str]) -> dict:
    """``["max_num_seqs=64", "api=chat"]`` → ``{"max_num_seqs": 64, "api": "chat"}``.

    A value that parses as a TOML value (number, boolean, quoted string, array) is taken as that;
    anything else is kept as text, so ``url=http://host:8000/v1`` needs no quoting.
    """
    import tomllib

    options: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"engine option {pair!r} is not KEY=VALUE", field="option")
        try:
            options[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            options[key] = raw
    return options


def run(
    suite: str | Suite = DEFAULT_SUITE,
    *,
    backend: str | None = None,
    model: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    options: dict | None = None,
    db: str | None = None,
    observer: RunObserver | None = None,
) -> RunResult:
    """Run a suite (a bundled name, a TOML path or a ``Suite``) and return the stored result.

    ``options`` are engine options (``BackendConfig.options``), e.g. ``{"url": ...}`` for openai-http.
    """
    from atomabench.runner import run_suite
    from atomabench.store import open_store

    loaded = suite if isinstance(suite, Suite) else load_suite(suite)
    config = backend_config_for(
        loaded, backend=backend, model=model, dtype=dtype, device=device, threads=threads, options=options
    )
    with open_store(db) as store:
        return run_suite(loaded, config, store, observer=observer)


def get_run(run_id: str, db: str | None = None) -> RunResult:
    from atomabench.store import open_store

    with open_store(db) as store:
        return store.get_run(run_id)


def runs(db: str | None = None) -> pd.DataFrame:
    """One row per run."""
    from atomabench.store import open_store

    with open_store(db) as store:
        return store.runs_frame()


def scenarios(db: str | None = None, run_ids: list[str] | None = None) -> pd.DataFrame:
    """One row per scenario with every aggregate metric as a column."""
    from atomabench.store import open_store

    with open_store(db) as store:
        return store.scenarios_frame(run_ids)


def requests(run_id: str, db: str | None = None) -> pd.DataFrame:
    """One row per request of a run, raw token timestamps included."""
    from atomabench.store import open_store

    with open_store(db) as store:
        return store.requests_frame(run_id)


# ------------------------------------------------------------------------------------ determinism
def with_determinism_overrides(
    suite: Suite,
    *,
    batch_sizes: list[int] | None = None,
    num_prompts: int | None = None,
    output_tokens: int | None = None,
) -> Suite:
    """The suite with its determinism scenarios narrowed (e.g. fewer batch sizes for a slow dtype)."""
    from atomabench.workloads.suite import DeterminismScenario

    updates = {
        key: value
        for key, value in (
            ("batch_sizes", tuple(batch_sizes) if batch_sizes else None),
            ("num_prompts", num_prompts),
            ("output_tokens", output_tokens),
        )
        if value is not None
    }
    if batch_sizes is not None and not batch_sizes:
        raise UserError("give at least one batch size", field="--batch-sizes")
    if not updates:
        return suite
    options = {"batch_sizes": "--batch-sizes", "num_prompts": "--prompts", "output_tokens": "--output-tokens"}
    try:
        scenarios = tuple(
            DeterminismScenario.model_validate({**s.model_dump(), **updates})
            if isinstance(s, DeterminismScenario)
            else s
            for s in suite.scenarios
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        raise UserError(
            str(error["msg"]), field=options.get(str(error["loc"][0]), str(error["loc"][0]))
        ) from exc
    return Suite.model_validate({**suite.model_dump(), "scenarios": [s.model_dump() for s in scenarios]})


def _loaded_backend(
    model: str | None, backend: str | None, dtype: str | None, device: str | None, threads: int | None
):
    from atomabench.backends import create_backend

    defaults = BackendConfig()
    config = BackendConfig(
        kind=backend or defaults.kind,
        model=model or defaults.model,
        dtype=dtype or defaults.dtype,
        device=device or defaults.device,
        threads=threads,
    )
    engine = create_backend(config)
    return engine, engine.load()


def fingerprint(
    *,
    model: str | None = None,
    backend: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    output_tokens: int = 32,
):
    """Take this node's determinism fingerprint on the bundled canary set."""
    from atomabench.determinism.fingerprint import take_fingerprint
    from atomabench.hardware import probe

    engine, info = _loaded_backend(model, backend, dtype, device, threads)
    try:
        return take_fingerprint(engine, info, probe(), output_tokens=output_tokens)
    finally:
        engine.close()


def verify(
    claims_path: str,
    *,
    epsilon: float | None = None,
    model: str | None = None,
    backend: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    threads: int | None = None,
):
    """Re-score another node's claimed tokens here; one report per claim.

    ``epsilon`` None takes the engine's default (``determinism.verify.ENGINE_EPSILON``).
    """
    from pathlib import Path

    from atomabench.determinism.verify import default_epsilon, load_claims, verify_claim

    claims = load_claims(Path(claims_path))
    engine, info = _loaded_backend(model, backend, dtype, device, threads)
    width = default_epsilon(info.kind) if epsilon is None else epsilon
    try:
        return [verify_claim(engine, claim, width) for claim in claims]
    finally:
        engine.close()
