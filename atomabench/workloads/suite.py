"""Suites: TOML files naming scenarios, validated strictly before anything runs.

Each scenario kind has its own pydantic model with ``extra="forbid"``, so a misspelt key is an error,
not a silently ignored setting. Validation errors become one ``UserError`` naming the file, the line
and the field path (``scenarios[1].batch_size``).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from atomabench.errors import UserError
from atomabench.paths import suites_dir
from atomabench.records import SamplingSettings
from atomabench.verdict import VerdictRules


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LengthDistribution(_Strict):
    """A token-length distribution: fixed, uniform in [min, max], or normal clipped to [min, max]."""

    dist: Literal["fixed", "uniform", "normal"] = "fixed"
    value: int | None = Field(default=None, ge=1)
    min: int | None = Field(default=None, ge=1)
    max: int | None = Field(default=None, ge=1)
    mean: float | None = Field(default=None, gt=0)
    std: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _complete(self) -> LengthDistribution:
        if self.dist == "fixed" and self.value is None:
            raise ValueError("a fixed length needs `value`")
        if self.dist == "uniform" and (self.min is None or self.max is None):
            raise ValueError("a uniform length needs `min` and `max`")
        if self.dist == "normal" and (self.mean is None or self.std is None):
            raise ValueError("a normal length needs `mean` and `std`")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is larger than max ({self.max})")
        return self

    @property
    def upper_bound(self) -> int:
        if self.dist == "fixed":
            assert self.value is not None
            return self.value
        if self.max is not None:
            return self.max
        assert self.mean is not None and self.std is not None
        return int(self.mean + 4 * self.std) + 1


def _length(value: int | dict | LengthDistribution) -> LengthDistribution | int | dict:
    return (
        {"dist": "fixed", "value": value} if isinstance(value, int) and not isinstance(value, bool) else value
    )


LengthField = Annotated[LengthDistribution, Field()]


class _ValidityMinimums(_Strict):
    """A scenario shorter than these is marked invalid (too little evidence to trust its numbers)."""

    min_duration_s: float = Field(default=0.0, ge=0.0)
    min_requests: int = Field(default=0, ge=0)


class ScenarioBase(_ValidityMinimums):
    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    num_requests: int = Field(ge=1, le=1_000_000)
    input_tokens: LengthField | None = None
    """Synthetic prompts only (required there); other datasets bring their own prompts."""
    output_tokens: LengthField | None = None
    """Required for synthetic prompts; for other datasets it overrides their output lengths."""
    ignore_eos: bool = True
    dataset: Literal["synthetic", "bundled", "sharegpt", "jsonl"] = "synthetic"
    """synthetic: exact-length corpus windows; bundled: the prompt set shipped with atomabench;
    sharegpt: a ShareGPT-format JSON file; jsonl: lines of ``{"prompt": ..., "output_len": ...}``."""
    dataset_path: str | None = None
    """The file for ``sharegpt`` and ``jsonl``; relative paths are relative to the suite file."""
    seed: int = 0
    temperature: float = Field(default=0.0, ge=0.0, le=10.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    logprobs: int = Field(default=0, ge=0, le=20)

    @model_validator(mode="before")
    @classmethod
    def _lengths_from_ints(cls, data: dict) -> dict:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("input_tokens", "output_tokens"):
                if key in data:
                    data[key] = _length(data[key])
        return data

    @model_validator(mode="after")
    def _dataset_file(self) -> ScenarioBase:
        if self.dataset == "synthetic":
            for key in ("input_tokens", "output_tokens"):
                if getattr(self, key) is None:
                    raise _located((key,), f"synthetic prompts need `{key}`")
        elif self.input_tokens is not None:
            raise _located(("input_tokens",), f"dataset {self.dataset!r} brings its own prompts")
        if self.dataset in ("sharegpt", "jsonl") and not self.dataset_path:
            raise _located(("dataset_path",), f"dataset {self.dataset!r} needs `dataset_path`")
        if self.dataset in ("synthetic", "bundled") and self.dataset_path:
            raise _located(("dataset_path",), f"dataset {self.dataset!r} takes no `dataset_path`")
        return self

    @property
    def sampling(self) -> SamplingSettings:
        return SamplingSettings(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            seed=self.seed,
            logprobs=self.logprobs,
        )


class OfflineScenario(ScenarioBase):
    """Throughput: all requests submitted at once, in batches of ``batch_size``."""

    kind: Literal["offline"]
    batch_size: int = Field(ge=1, le=4096)
    warmup_batches: int = Field(default=1, ge=0, le=100)


class SingleStreamScenario(ScenarioBase):
    """Latency: one request at a time, the next sent when the previous finished (MLPerf SingleStream)."""

    kind: Literal["single_stream"]
    warmup_requests: int = Field(default=1, ge=0, le=1000)


class Slo(_Strict):
    """Service-level objectives. Per request (goodput, attainment): TTFT, TPOT and E2EL each at most
    their limit. For a scenario (a sweep point "holds"): the ``percentile`` of TTFT and of TPOT within
    their limits and no more than ``max_failed_fraction`` of requests failed."""

    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    e2el_ms: float | None = Field(default=None, gt=0)
    percentile: float = Field(default=99.0, gt=0, lt=100)
    max_failed_fraction: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _something(self) -> Slo:
        if self.ttft_ms is None and self.tpot_ms is None and self.e2el_ms is None:
            raise ValueError("an slo needs at least one of ttft_ms, tpot_ms, e2el_ms")
        return self


ArrivalProcess = Literal["constant", "poisson", "gamma"]


class _Load(ScenarioBase):
    """What server and sweep scenarios share: the arrival process, windows and SLO."""

    arrival: ArrivalProcess = "poisson"
    burstiness: float = Field(
        default=1.0, gt=0.0, le=100.0, description="gamma shape: <1 burstier, 1 = Poisson, >1 smoother"
    )
    max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    warmup_requests: int = Field(default=1, ge=0, le=10_000, description="sent one by one, not measured")
    warmup_s: float = Field(default=0.0, ge=0.0, description="requests sent this early are not measured")
    cooldown_s: float = Field(
        default=0.0, ge=0.0, description="requests sent this close to the last send are not measured"
    )
    slo: Slo | None = None


class ServerScenario(_Load):
    """Requests arrive over time (constant, Poisson or gamma) at ``rate`` req/s, as at a live server.

    ``rate`` absent means every request arrives at once; with ``max_concurrency`` that is the fixed
    concurrency load of vLLM's ``--max-concurrency``.
    """

    kind: Literal["server"]
    rate: float | None = Field(default=None, gt=0.0, le=1_000_000.0, description="requests/s")


class SweepScenario(_Load):
    """Synchronous, then maximum throughput, then ``points`` rates between, each ``num_requests`` long;
    reports the highest rate at which the SLO still holds (GuideLLM's sweep, vLLM's SLO definitions)."""

    kind: Literal["sweep"]
    points: int = Field(default=4, ge=0, le=64, description="rates between synchronous and maximum")
    slo: Slo


class DeterminismScenario(_ValidityMinimums):
    """Determinism under batching: R, B, P and U checks on canary prompts (docs/determinism.md)."""

    kind: Literal["determinism"]
    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    num_prompts: int = Field(default=2, ge=1, le=8, description="canary prompts used as needles")
    output_tokens: int = Field(default=32, ge=1, le=4096)
    repeats: int = Field(default=3, ge=1, le=100, description="R: batch-1 runs of each prompt")
    batch_sizes: tuple[Annotated[int, Field(ge=1, le=4096)], ...] = (1, 2, 3, 4, 7, 8, 16, 31, 32, 33, 64)
    positions: tuple[Literal["first", "middle", "last"], ...] = ("first", "middle", "last")
    filler_input_tokens: LengthField = LengthDistribution(dist="uniform", min=16, max=128)
    concurrent: int = Field(default=16, ge=0, le=4096, description="U: identical requests in one batch")
    prefix_cache: bool = True
    prefix_tokens: int = Field(
        default=256, ge=0, le=8192, description="P: shared prefix before the needle (whole cache blocks)"
    )
    logprobs: int = Field(default=5, ge=2, le=20)
    near_tie_margin: float = Field(default=0.1, gt=0.0, description="nats; flips below it are near-ties")
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _lengths_from_ints(cls, data: dict) -> dict:
        if isinstance(data, dict) and "filler_input_tokens" in data:
            data = {**data, "filler_input_tokens": _length(data["filler_input_tokens"])}
        return data

    @property
    def sampling(self) -> SamplingSettings:
        return SamplingSettings(temperature=0.0, seed=self.seed, logprobs=self.logprobs)


Scenario = Annotated[
    OfflineScenario | SingleStreamScenario | ServerScenario | SweepScenario | DeterminismScenario,
    Field(discriminator="kind"),
]
SCENARIO_KINDS = ("offline", "single_stream", "server", "sweep", "determinism")
LOAD_KINDS = ("server", "sweep")
"""Scenario kinds that need a ``ServingBackend`` (requests arriving over time)."""


class SuiteBackendDefaults(_Strict):
    """Backend settings a suite may suggest; command-line options override them."""

    kind: str | None = None
    model: str | None = None
    dtype: str | None = None
    device: str | None = None
    threads: int | None = Field(default=None, ge=1)
    options: dict = Field(default_factory=dict, description="engine options, e.g. url for openai-http")


class Suite(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    percentiles: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)
    telemetry_interval_s: float = Field(default=0.5, gt=0.0, le=60.0)
    tolerated_throttle_reasons: tuple[str, ...] = Field(
        default=(), description="throttle reasons (e.g. SwPowerCap) that do not invalidate a scenario"
    )
    backend: SuiteBackendDefaults = SuiteBackendDefaults()
    scenarios: tuple[Scenario, ...] = Field(min_length=1)
    verdict: VerdictRules | None = None
    slo: Slo | None = None
    """The suite's SLO: server scenarios without their own ``slo`` are judged against it."""
    path: str | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Suite:
        # Whole-suite checks have no field location of their own; ctx["location"] carries it so that
        # parse_suite can point at the offending line (see parse_suite).
        seen: set[str] = set()
        for index, scenario in enumerate(self.scenarios):
            if scenario.name in seen:
                raise _located(("scenarios", index, "name"), f"scenario name {scenario.name!r} is used twice")
            seen.add(scenario.name)
        for index, p in enumerate(self.percentiles):
            if not 0 < p < 100:
                raise _located(("percentiles", index), f"percentile {p:g} is outside (0, 100)")
        return self


def _located(location: tuple, message: str) -> PydanticCustomError:
    """A validation error that names the field it is about, for checks made after fields validate."""
    return PydanticCustomError("suite_check", message, {"location": location})


# ------------------------------------------------------------------------------------------- loading


def available_suites() -> dict[str, Path]:
    return {path.stem: path for path in sorted(suites_dir().glob("*.toml"))}


def find_suite(name_or_path: str) -> Path:
    """A suite file: an existing path, or the name of a bundled suite."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise UserError("no such suite file", path=candidate, field="suite")
        return candidate
    bundled = available_suites()
    if name_or_path not in bundled:
        raise UserError(
            f"unknown suite {name_or_path!r}; bundled suites: {', '.join(bundled) or 'none'}", field="suite"
        )
    return bundled[name_or_path]


def load_suite(name_or_path: str) -> Suite:
    path = find_suite(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read suite: {exc}", path=path) from exc
    return parse_suite(text, path)


def parse_suite(text: str, path: Path | str = "<suite>") -> Suite:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _decode_error_line(exc)
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise UserError(f"malformed TOML: {message}", path=path, line=line) from exc
    data.setdefault("name", Path(str(path)).stem)
    try:
        suite = Suite.model_validate({**data, "path": str(path)})
    except ValidationError as exc:
        error = exc.errors()[0]
        location = tuple(part for part in error["loc"] if not _is_union_tag(part))
        # a check made after fields validate names its field relative to the model that made it
        location = (*location, *(error.get("ctx") or {}).get("location", ()))
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            location = (*location, "kind")  # the problem is the scenario's `kind` key
        field = _format_location(location)
        raise UserError(_message(error), path=path, line=_line_of(text, location), field=field) from exc
    return suite


def _decode_error_line(exc: tomllib.TOMLDecodeError) -> int | None:
    line = getattr(exc, "lineno", None)
    if line:
        return int(line)
    found = re.search(r"line (\d+)", str(exc))
    return int(found.group(1)) if found else None


def _is_union_tag(part: object) -> bool:
    """pydantic puts the discriminator value (e.g. 'offline') into error locations; drop it."""
    return part in SCENARIO_KINDS or (isinstance(part, str) and part.startswith("function-"))


def _format_location(location: tuple) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _message(error: dict) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"unknown scenario kind {error['input'].get('kind')!r}; known: {', '.join(SCENARIO_KINDS)}"
    if kind == "union_tag_not_found":
        return f"scenario needs a `kind` (one of {', '.join(SCENARIO_KINDS)})"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


def _line_of(text: str, location: tuple) -> int | None:
    """Best-effort line of a field: the deepest table/key on the path that appears in the text."""
    array_counts: dict[str, int] = {}
    table: tuple = ()
    best: tuple[int, int] | None = None  # (matched depth, line)
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            name = header.group(2)
            if header.group(1) == "[[":
                array_counts[name] = array_counts.get(name, -1) + 1
                table = (name, array_counts[name])
            else:
                table = tuple(name.split("."))
            path = table
        else:
            key = _KEY.match(line)
            if not key:
                continue
            path = (*table, key.group(1))
        depth = _common_prefix(path, location)
        if depth == len(path) and (best is None or depth > best[0]):
            best = (depth, number)
    return best[1] if best else None


def _common_prefix(a: tuple, b: tuple) -> int:
    depth = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        depth += 1
    return depth
