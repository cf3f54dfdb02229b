"""Parameter files for the economics models: TOML in, validated pydantic models out, sources kept.

Every value in a bundled file carries a trailing ``# comment`` naming its source. The loader keeps
those comments and line numbers, so a command can print the assumptions it used with their
provenance, and so every mistake in a file is reported with file, line and field. A user file given
with ``--params`` is merged over the defaults (tables merge key by key, anything else replaces), and
single values can be set afterwards (``--sweep``), each recorded as such.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from atomabench.errors import UserError
from atomabench.paths import package_data


class Params(BaseModel):
    """Base of every parameter model: frozen, and unknown keys are errors (typos must not pass)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


P = TypeVar("P", bound=BaseModel)

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*="""
)
_TOML_LINE = re.compile(r"line (\d+)")
_LOCATED_MESSAGE = re.compile(r"^Value error, ([A-Za-z0-9_.\-]+): (.*)$", re.S)


def _split_dotted_key(key: str) -> list[str]:
    parts = re.findall(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_\-]+)""", key)
    return [a or b or c for a, b, c in parts]


def _trailing_comment(line: str) -> str:
    """The text after a ``#`` that is not inside a string, stripped."""
    quote: str | None = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            return line[index + 1 :].strip()
    return ""


@dataclass(frozen=True)
class SourcedToml:
    """A parsed TOML file with, for every dotted key, the line it is on and its trailing comment."""

    path: Path
    data: dict[str, Any]
    lines: dict[str, int]
    comments: dict[str, str]

    def line_of(self, dotted: str) -> int | None:
        """Line of ``dotted`` or of its nearest enclosing key that is written in the file."""
        parts = dotted.split(".")
        while parts:
            found = self.lines.get(".".join(parts))
            if found is not None:
                return found
            parts.pop()
        return None

    def comment_of(self, dotted: str) -> str:
        parts = dotted.split(".")
        while parts:
            found = self.comments.get(".".join(parts))
            if found:
                return found
            parts.pop()
        return ""

    def defines(self, dotted: str) -> bool:
        """Whether this file itself sets ``dotted`` (or a table or value that contains it)."""
        node: Any = self.data
        for part in dotted.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return False
        return True


def read_toml(path: str | Path) -> SourcedToml:
    """Parse ``path``; a syntax error or missing file becomes a UserError naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("file not found", path=path) from None
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror}", path=path) from None
    except UnicodeDecodeError:
        raise UserError("not a UTF-8 text file", path=path) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        raise UserError(
            f"invalid TOML: {exc}", path=path, line=int(match.group(1)) if match else None
        ) from None
    lines, comments = _index_lines(text)
    return SourcedToml(path=path, data=data, lines=lines, comments=comments)


def _index_lines(text: str) -> tuple[dict[str, int], dict[str, str]]:
    """Map dotted keys (array tables numbered from 0) to their line number and trailing comment."""
    lines: dict[str, int] = {}
    comments: dict[str, str] = {}
    prefix: list[str] = []
    array_counts: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        header = _HEADER.match(line)
        if header and not _KEY.match(line):
            names = _split_dotted_key(header.group(2))
            if header.group(1) == "[[":
                table = ".".join(names)
                index = array_counts.get(table, 0)
                array_counts[table] = index + 1
                prefix = [*names, str(index)]
            else:
                prefix = _resolve_array_prefix(names, array_counts)
            dotted = ".".join(prefix)
            lines.setdefault(dotted, number)
            comment = _trailing_comment(line)
            if comment:
                comments.setdefault(dotted, comment)
            continue
        key = _KEY.match(line)
        if key:
            dotted = ".".join([*prefix, *_split_dotted_key(key.group(1))])
            lines[dotted] = number
            comment = _trailing_comment(line[key.end() :])
            if comment:
                comments[dotted] = comment
    return lines, comments


def _resolve_array_prefix(names: list[str], array_counts: dict[str, int]) -> list[str]:
    """``[a.b]`` inside the latest ``[[a]]`` element means ``a.<last index>.b``."""
    resolved: list[str] = []
    for name in names:
        resolved.append(name)
        count = array_counts.get(".".join(n for n in resolved if not n.isdigit()))
        if count:
            resolved.append(str(count - 1))
    return resolved


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; any other value in ``override`` replaces the one in ``base``."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``dotted`` (``a.b.0.c``) set to ``value``; missing tables are created."""
    parts = dotted.split(".")
    root: Any = _deep_copy(data)
    node = root
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UserError(f"no element {part!r} in this list", field=dotted)
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise UserError("is not a table", field=".".join(parts[:index]))
    return root


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def parse_value(text: str) -> Any:
    """A command-line value read as TOML (``3``, ``0.5``, ``true``, ``"x"``), else as a bare string."""
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def parse_sweep(spec: str) -> tuple[str, list[Any]]:
    """``NAME=v1,v2,...`` → (NAME, [v1, v2, ...]); a malformed spec is a UserError."""
    name, sep, values = spec.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise UserError("expected NAME=v1,v2,...", field=f"--sweep {spec}")
    return name, [parse_value(v) for v in values.split(",") if v.strip()]


def dotted_loc(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc)


@dataclass(frozen=True)
class Loaded(Generic[P]):
    """Validated parameters plus where each value came from (files, then values set on top)."""

    params: P
    files: tuple[SourcedToml, ...]
    overrides: dict[str, Any] = field(default_factory=dict)

    def with_values(self, updates: Mapping[str, Any]) -> Loaded[P]:
        """The same parameters with dotted names set (one step of a sweep), re-validated."""
        data = self.params.model_dump(mode="python")
        for dotted, value in updates.items():
            data = set_dotted(data, dotted, value)
        model_type = type(self.params)
        try:
            params = model_type.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            dotted = dotted_loc(error["loc"])
            raise UserError(f"{error['msg']} (value set on the command line)", field=dotted) from None
        return Loaded(params=params, files=self.files, overrides={**self.overrides, **updates})

    def source_of(self, dotted: str) -> str:
        """Where ``dotted`` was set: the command line, a user file (with line), or the default's comment."""
        for name in self.overrides:
            if dotted == name or dotted.startswith(name + "."):
                return "set on the command line"
        for sourced in reversed(self.files[1:]):
            if sourced.defines(dotted):
                comment = sourced.comment_of(dotted)
                where = f"{sourced.path}:{sourced.line_of(dotted) or '?'}"
                return f"{where} {comment}".strip()
        if self.files and self.files[0].defines(dotted):
            return self.files[0].comment_of(dotted) or f"{self.files[0].path.name} (no source comment)"
        return "built-in default (not set in the file)"

    def assumptions(self) -> pd.DataFrame:
        """One row per value: ``name``, ``value`` and ``source`` (what each command prints).

        An element of a list of tables (a seed claim, an uncertain parameter) is one row whose value
        lists its fields and whose source joins its fields' comments.
        """
        rows = []
        for name, value in flatten(self.params.model_dump(mode="json")):
            if isinstance(value, dict):
                fields = flatten(value, name)
                text = ", ".join(
                    f"{n.rsplit('.', 1)[-1]}={v:g}" if isinstance(v, float) else f"{n.rsplit('.', 1)[-1]}={v}"
                    for n, v in fields
                    if v not in (None, "", [])
                )
                sources = dict.fromkeys(self.source_of(n) for n, _ in fields)
                source = "; ".join(
                    s for s in sources if not s.startswith("built-in") and "no source" not in s
                )
                rows.append({"name": name, "value": text, "source": source or self.source_of(name)})
            else:
                rows.append({"name": name, "value": value, "source": self.source_of(name)})
        return pd.DataFrame(rows, columns=["name", "value", "source"])


def flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Leaf values of nested dicts as (dotted name, value); each element of a list of tables stays
    one value (a dict) named ``list.index``."""
    if isinstance(data, dict):
        items: list[tuple[str, Any]] = []
        for key, value in data.items():
            items.extend(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return items
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        return [(f"{prefix}.{index}", value) for index, value in enumerate(data)]
    return [(prefix, data)]


def default_path(name: str) -> Path:
    """A bundled parameter file, ``atomabench/data/economics/<name>``."""
    return package_data("economics") / name


def load(model_type: type[P], default_name: str, override: str | Path | None = None) -> Loaded[P]:
    """Read the bundled ``default_name``, merge ``override`` over it and validate as ``model_type``."""
    files = [read_toml(default_path(default_name))]
    if override is not None:
        files.append(read_toml(override))
    data: dict[str, Any] = {}
    for sourced in files:
        data = merge(data, sourced.data)
    try:
        params = model_type.model_validate(data)
    except ValidationError as exc:
        raise _validation_user_error(exc, files) from None
    return Loaded(params=params, files=tuple(files))


def load_file(model_type: type[P], path: str | Path) -> Loaded[P]:
    """Validate one standalone file (a census, a nodes file) as ``model_type``."""
    sourced = read_toml(path)
    try:
        params = model_type.model_validate(sourced.data)
    except ValidationError as exc:
        raise _validation_user_error(exc, [sourced]) from None
    return Loaded(params=params, files=(sourced,))


def _validation_user_error(exc: ValidationError, files: list[SourcedToml]) -> UserError:
    """Blame the last file that sets the offending field (or, if none does, the last file read)."""
    errors = exc.errors()
    first = errors[0]
    dotted = dotted_loc(first["loc"])
    message = str(first["msg"])
    located = _LOCATED_MESSAGE.match(message)
    if located:
        # A check across fields names its field at the start of the message ("a.b: why").
        dotted = ".".join(p for p in (dotted, located.group(1)) if p)
        message = located.group(2)
    blamed = next((f for f in reversed(files) if f.defines(dotted)), None)
    if blamed is None:
        # A missing field or a table-level check: blame the file that wrote the enclosing table.
        parent = dotted.rsplit(".", 1)[0] if "." in dotted else ""
        blamed = next((f for f in reversed(files) if parent and f.defines(parent)), files[-1])
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return UserError(message, path=blamed.path, line=blamed.line_of(dotted), field=dotted or None)
