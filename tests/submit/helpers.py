"""Runs to submit, and bundles taken apart and put back together the way a tamperer would."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from atomabench.records import RunResult
from atomabench.submit.bundle import (
    MANIFEST_MEMBER,
    PUBLIC_KEY_MEMBER,
    SIGNATURE_MEMBER,
    SIGNING_CONTEXT,
    Manifest,
    MemberDigest,
    canonical_json,
    read_zip,
    write_zip,
)
from atomabench.submit.keys import node_id, public_key_hex
from tests.store.factories import T0, make_request, make_run, make_scenario

SIGNED_AT = datetime(2025, 3, 2, 9, 30, tzinfo=UTC)


def finished_run(run_id: str = "run-0001") -> RunResult:
    """A completed run of two scenarios, one with logprobs and a failed request."""
    run = make_run(run_id).model_copy(update={"status": "completed", "ended_at": T0.replace(hour=13)})
    chat = make_scenario("chat")
    failing = make_scenario(
        "long",
        records=(make_request(0, scenario="long"), make_request(1, scenario="long", error="timeout")),
        with_energy=False,
        minutes_after_t0=2,
    )
    return RunResult(run=run, scenarios=(chat, failing))


def members(bundle: bytes) -> dict[str, bytes]:
    return read_zip(bundle)


def rebuilt(bundle: bytes, **changes: bytes | None) -> bytes:
    """The same bundle with members replaced (bytes), added, or removed (None), not re-signed."""
    parts = read_zip(bundle)
    for name, content in changes.items():
        name = name.replace("__", ".")  # run__json -> run.json
        if content is None:
            parts.pop(name, None)
        else:
            parts[name] = content
    return write_zip(parts)


def flip_byte(content: bytes, index: int | None = None) -> bytes:
    """``content`` with one byte changed (the middle one unless told), keeping it printable ASCII."""
    index = len(content) // 2 if index is None else index
    changed = content[index] ^ 0x01
    return content[:index] + bytes([changed]) + content[index + 1 :]


def resigned(bundle: bytes, key: Ed25519PrivateKey, **manifest_changes: Any) -> bytes:
    """Re-hash the payload and sign a manifest with ``key``, changed as asked: a well-signed bundle."""
    parts = read_zip(bundle)
    manifest = Manifest.model_validate_json(parts[MANIFEST_MEMBER])
    public = public_key_hex(key.public_key())
    digests = {
        name: MemberDigest(sha256=hashlib.sha256(content).hexdigest(), size=len(content))
        for name, content in parts.items()
        if name not in (MANIFEST_MEMBER, PUBLIC_KEY_MEMBER, SIGNATURE_MEMBER)
    }
    fields = {
        **manifest.model_dump(mode="json"),
        "public_key": public,
        "node_id": node_id(public),
        "members": {name: digest.model_dump() for name, digest in digests.items()},
        **manifest_changes,
    }
    manifest_bytes = canonical_json(fields)
    parts[MANIFEST_MEMBER] = manifest_bytes
    parts[PUBLIC_KEY_MEMBER] = public.encode()
    parts[SIGNATURE_MEMBER] = key.sign(SIGNING_CONTEXT + manifest_bytes).hex().encode()
    return write_zip(parts)
