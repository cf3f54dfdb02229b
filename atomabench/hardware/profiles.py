"""Hardware profiles: published figures per hardware class, read from ``hardware_profiles/*.toml``.

A profile is what the roofline, capacity and pricing models know about a class of machine (memory,
bandwidth, peak FLOPS, TDP, price). The probe finds the class of *this* machine by matching the device
name the driver reports against each profile's case-insensitive regexes. A broken file is the user's
to fix, so every problem is a :class:`UserError` naming the file, the line and the field.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import ValidationError

from atomabench import paths
from atomabench.errors import UserError
from atomabench.records import HardwareProfile

GENERIC_CPU_ID = "generic-cpu"
"""The profile chosen for a CPU-only machine that no measured CPU profile matches."""

_ACCELERATOR_KIND = {"cuda": "gpu", "rocm": "gpu", "mps": "apple", "cpu": "cpu"}
_PROFILE_FIELDS = frozenset(HardwareProfile.model_fields)
_NON_NEGATIVE_FIELDS = ("memory_gb", "memory_bandwidth_gbs", "tdp_w", "price_usd")


def load_profiles(directory: Path | None = None) -> dict[str, HardwareProfile]:
    """Every ``*.toml`` profile in ``directory``, keyed by id (file stem).

    By default: the bundled profiles plus the measured ones ``atomabench profile`` wrote to the
    per-user data dir (ids ``measured-*``, so they never shadow a vendor profile). Parsed once per
    directory and cached, because the CLI asks several times per command.
    """
    if directory is not None:
        return dict(_load_profiles_cached(directory.expanduser().resolve()))
    profiles = dict(_load_profiles_cached(paths.hardware_profiles_dir().resolve()))
    measured_dir = measured_profiles_dir()
    if measured_dir.is_dir():
        for profile_id, profile in _load_profiles_cached(measured_dir.resolve()).items():
            if profile_id in profiles:
                raise UserError(
                    f"measured profile {profile_id!r} has the id of a bundled profile; rename it",
                    path=measured_dir / f"{profile_id}.toml",
                    field="id",
                )
            profiles[profile_id] = profile
    return profiles


def measured_profiles_dir() -> Path:
    """Where ``atomabench profile`` writes profiles of hardware no bundled profile describes."""
    return paths.data_dir() / "hardware_profiles"


def clear_profile_cache() -> None:
    """Forget cached profiles, e.g. after ``atomabench profile`` wrote a new file."""
    _load_profiles_cached.cache_clear()


@functools.cache
def _load_profiles_cached(directory: Path) -> Mapping[str, HardwareProfile]:
    if not directory.is_dir():
        raise UserError("hardware profile directory does not exist", path=directory)
    profiles = {}
    for path in sorted(directory.glob("*.toml")):
        profile = load_profile_file(path)
        profiles[profile.id] = profile
    return profiles


def load_profile_file(path: Path) -> HardwareProfile:
    """One profile file, validated; its id is the file stem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read hardware profile: {error}", path=path) from error
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line_match = re.search(r"at line (\d+)", str(error))
        raise UserError(
            f"malformed TOML: {error}", path=path, line=int(line_match.group(1)) if line_match else None
        ) from error

    def fail(field: str, message: str) -> UserError:
        return UserError(message, path=path, line=_line_of_key(text, field), field=field)

    stated_id = data.pop("id", path.stem)
    if stated_id != path.stem:
        raise fail("id", f"id {stated_id!r} must equal the file name stem {path.stem!r}")
    for key in data:
        if key not in _PROFILE_FIELDS:
            raise fail(key, f"unknown field; known fields: {', '.join(sorted(_PROFILE_FIELDS))}")
    try:
        profile = HardwareProfile.model_validate({"id": path.stem, **data})
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"] if not isinstance(part, int)) or "?"
        raise fail(field, first["msg"]) from error
    _check_values(profile, fail)
    return profile


def _check_values(profile: HardwareProfile, fail: Callable[[str, str], UserError]) -> None:
    """Checks pydantic's types cannot express: compilable regexes, sane numbers, known field names."""
    for pattern in profile.match:
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as error:
            raise fail("match", f"invalid regex {pattern!r}: {error}") from error
    for name in _NON_NEGATIVE_FIELDS:
        value = getattr(profile, name)
        if value is not None and value < 0:
            raise fail(name, f"must not be negative, got {value}")
    for dtype, tflops in profile.peak_tflops.items():
        if tflops <= 0:
            raise fail(f"peak_tflops.{dtype}", f"must be positive, got {tflops}")
    if profile.rent_usd_per_hour is not None:
        low, high = profile.rent_usd_per_hour
        if not 0 <= low <= high:
            raise fail("rent_usd_per_hour", f"must be [low, high] with 0 <= low <= high, got [{low}, {high}]")
    for name in profile.uncertain:
        if name not in _PROFILE_FIELDS:
            raise fail("uncertain", f"{name!r} is not a profile field")


def _line_of_key(text: str, key: str) -> int | None:
    """Best-effort line number of ``key = ...`` (or a ``[key]`` table) for an error message."""
    key_pattern = re.escape(key.rsplit(".", 1)[-1])
    assignment = re.compile(rf"""^\s*(["']?){key_pattern}\1\s*=|^\s*\[\s*{key_pattern}\s*\]""")
    for number, line in enumerate(text.splitlines(), start=1):
        if assignment.search(line):
            return number
    return None


def match_profile(
    device_name: str, kind: str, profiles: Mapping[str, HardwareProfile] | None = None
) -> HardwareProfile | None:
    """The profile whose regexes match ``device_name``; ``None`` for an accelerator no profile knows.

    ``kind`` is a profile kind (``gpu``, ``apple``, ``cpu``) or a probe accelerator (``cuda``, ``rocm``,
    ``mps``, ``cpu``). A CPU-only machine falls back to ``generic-cpu`` when no measured CPU profile
    matches its CPU model: any CPU can be benchmarked, but an unknown GPU must not borrow the figures
    of another class.
    """
    profile_kind = _ACCELERATOR_KIND.get(kind, kind)
    if profile_kind not in ("gpu", "apple", "cpu"):
        raise ValueError(f"unknown hardware kind {kind!r}")
    if profiles is None:
        profiles = load_profiles()
    for profile_id in sorted(profiles):
        profile = profiles[profile_id]
        if profile.kind == profile_kind and any(
            re.search(pattern, device_name, re.IGNORECASE) for pattern in profile.match
        ):
            return profile
    if profile_kind == "cpu":
        return profiles.get(GENERIC_CPU_ID)
    return None


def get_profile(profile_id: str, directory: Path | None = None) -> HardwareProfile:
    """The profile with this id, or a UserError that lists the ids there are."""
    profiles = load_profiles(directory)
    try:
        return profiles[profile_id]
    except KeyError:
        known = ", ".join(sorted(profiles)) or "none"
        raise UserError(f"unknown hardware profile {profile_id!r}; known: {known}", field="profile") from None
