"""One signed file per run: pack a stored run, and check a received one byte for byte.

A bundle is a zip archive with exactly these members::

    run.json           the full RunResult (results, per-request records, hardware, engine settings)
    environment.json   the determinism environment descriptor and each determinism scenario's tier
    fingerprint.json   optional: a fingerprint taken with `atomabench determinism fingerprint`
    manifest.json      canonical JSON: format, run id, node, signing time, sha256 + size of each member above
    public_key         the node's raw Ed25519 public key, 64 hex digits
    signature          Ed25519 over b"atomabench-submission-v1\\0" + the manifest bytes, 128 hex digits

The signature covers the manifest's exact bytes and the manifest covers every other member's exact
bytes, so a change to any byte of the payload or the manifest is found. :func:`verify_bundle` checks
in an order that gives each kind of damage its own reason (``docs/submissions.md``).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
import zipfile
import zlib
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json, to_jsonable_python

from atomabench import __version__
from atomabench.records import SCHEMA_VERSION, RunResult
from atomabench.submit.keys import node_id, public_key_hex

FORMAT = "atomabench-submission"
FORMAT_VERSION = 1
SIGNING_CONTEXT = b"atomabench-submission-v1\0"
"""Prefixed to the manifest before signing, so the signature means nothing in any other protocol."""

RUN_MEMBER = "run.json"
ENVIRONMENT_MEMBER = "environment.json"
FINGERPRINT_MEMBER = "fingerprint.json"
MANIFEST_MEMBER = "manifest.json"
PUBLIC_KEY_MEMBER = "public_key"
SIGNATURE_MEMBER = "signature"
PAYLOAD_MEMBERS = (RUN_MEMBER, ENVIRONMENT_MEMBER, FINGERPRINT_MEMBER)
CONTROL_MEMBERS = (MANIFEST_MEMBER, PUBLIC_KEY_MEMBER, SIGNATURE_MEMBER)

MAX_MEMBER_BYTES = 1 << 30
"""A member larger than this (uncompressed) is refused before it is read: no zip bombs."""

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same run, key and signing time give the same file
_HEX_64 = re.compile(r"[0-9a-f]{64}")
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,  # a compression method zipfile lacks
    RuntimeError,  # an encrypted member
)
"""What the standard library raises on a damaged or hostile archive: all become a rejection."""
_HEX_128 = re.compile(r"[0-9a-f]{128}")


class Rejected(Exception):
    """A bundle that must not be stored; ``reason`` is one line for the person who sent it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class MemberDigest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class Manifest(BaseModel):
    """What the node signs: which run, who, when, and the digest of every payload member."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["atomabench-submission"]
    format_version: Literal[1]
    schema_version: int
    """``atomabench.records.SCHEMA_VERSION`` of the atomabench that packed ``run.json``."""
    atomabench_version: str
    run_id: str = Field(min_length=1)
    node_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    public_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    signed_at: AwareDatetime
    members: dict[Literal["run.json", "environment.json", "fingerprint.json"], MemberDigest]

    def canonical_bytes(self) -> bytes:
        """Sorted keys, no whitespace, ASCII: one byte string per manifest (it holds no floats)."""
        return canonical_json(self.model_dump(mode="json"))


class VerifiedBundle(BaseModel):
    """A bundle that passed every check: the run and what the leaderboard records about it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bundle_sha256: str
    manifest: Manifest
    manifest_text: str
    signature: str
    run: RunResult
    environment: dict[str, Any] | None
    fingerprint: dict[str, Any] | None


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def run_json(result: RunResult) -> bytes:
    """The run as JSON that keeps NaN and ±Infinity (records alone would write them as null)."""
    return to_json(to_jsonable_python(result, inf_nan_mode="constants"), inf_nan_mode="constants")


def environment_document(result: RunResult) -> dict[str, Any]:
    """The determinism environment descriptor of a stored run, and the tier of each determinism scenario.

    The descriptor is the one a fingerprint carries (``atomabench.determinism.fingerprint.environment``)
    rebuilt from the run's stored engine settings, without running or reading the model: its
    ``model_digest`` is None (a fingerprint taken on the node has it).
    """
    from atomabench.backends.base import BackendInfo
    from atomabench.determinism.fingerprint import environment

    environment_descriptor: dict[str, Any] | None = None
    try:
        info = BackendInfo.model_validate(result.run.backend_settings)
    except ValidationError:
        info = None
    if info is not None:
        environment_descriptor = environment(
            info.model_copy(update={"model_path": None}), result.run.hardware
        )
        # environment() reads VLLM_BATCH_INVARIANT from this process; only the run's settings can say
        environment_descriptor["batch_invariant"] = info.settings.get(
            "batch_invariant", None if info.kind == "vllm" else False
        )
    return {
        "environment": environment_descriptor,
        "determinism_tiers": {
            scenario.name: scenario.determinism_summary.tier
            for scenario in result.scenarios
            if scenario.determinism_summary is not None
        },
    }


def pack_run(
    result: RunResult,
    key: Ed25519PrivateKey,
    *,
    fingerprint: dict[str, Any] | None = None,
    signed_at: datetime | None = None,
) -> bytes:
    """The bundle file for ``result``, signed with the node's ``key``."""
    payload = {
        RUN_MEMBER: run_json(result),
        ENVIRONMENT_MEMBER: canonical_json(environment_document(result)),
    }
    if fingerprint is not None:
        payload[FINGERPRINT_MEMBER] = canonical_json(fingerprint)
    public = public_key_hex(key.public_key())
    manifest = Manifest(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        schema_version=SCHEMA_VERSION,
        atomabench_version=__version__,
        run_id=result.run.run_id,
        node_id=node_id(public),
        public_key=public,
        signed_at=signed_at or datetime.now(UTC),
        members={
            name: MemberDigest(sha256=hashlib.sha256(data).hexdigest(), size=len(data))  # type: ignore[misc]
            for name, data in payload.items()
        },
    )
    manifest_bytes = manifest.canonical_bytes()
    signature = key.sign(SIGNING_CONTEXT + manifest_bytes).hex()
    members = {
        **payload,
        MANIFEST_MEMBER: manifest_bytes,
        PUBLIC_KEY_MEMBER: public.encode(),
        SIGNATURE_MEMBER: signature.encode(),
    }
    return write_zip(members)


def write_zip(members: dict[str, bytes]) -> bytes:
    """A zip of ``members`` in order, with fixed timestamps and permissions (reproducible bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def read_zip(data: bytes) -> dict[str, bytes]:
    """Every member of a bundle, refusing what is not a plain, sane zip of a few small-enough files."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as exc:
        raise Rejected(f"not a readable bundle (zip archive): {exc}") from None
    with archive:
        names = [info.filename for info in archive.infolist()]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise Rejected(f"member {duplicated[0]!r} appears more than once")
        unknown = [name for name in names if name not in (*PAYLOAD_MEMBERS, *CONTROL_MEMBERS)]
        if unknown:
            raise Rejected(
                f"unexpected member {unknown[0]!r}: a bundle holds only {', '.join(PAYLOAD_MEMBERS)} "
                f"and {', '.join(CONTROL_MEMBERS)}"
            )
        members: dict[str, bytes] = {}
        for info in archive.infolist():
            if info.file_size > MAX_MEMBER_BYTES:
                raise Rejected(f"member {info.filename!r} is larger than {MAX_MEMBER_BYTES} bytes")
            try:
                with archive.open(info) as handle:
                    content = handle.read(MAX_MEMBER_BYTES + 1)
            except _ZIP_ERRORS as exc:
                raise Rejected(f"member {info.filename!r} is damaged: {exc}") from None
            if len(content) > MAX_MEMBER_BYTES:
                raise Rejected(f"member {info.filename!r} is larger than {MAX_MEMBER_BYTES} bytes")
            members[info.filename] = content
    return members


def verify_bundle(data: bytes) -> VerifiedBundle:
    """Check a received bundle completely; raises :class:`Rejected` with the first problem found.

    Order: the archive; the signature over the manifest's raw bytes with the enclosed key (so any
    change to the manifest, signature or key is a bad signature, whatever else it broke); the
    manifest's schema and its key and node id; the member list and every member's sha256; the run
    itself. Duplicates are the store's business (:func:`atomabench.submit.ingest.ingest_files`).
    """
    members = read_zip(data)
    if SIGNATURE_MEMBER not in members:
        raise Rejected("unsigned: the bundle has no signature")
    for name in (MANIFEST_MEMBER, PUBLIC_KEY_MEMBER):
        if name not in members:
            raise Rejected(f"the bundle has no {name}")
    manifest_bytes = members[MANIFEST_MEMBER]
    public_text = _ascii(members[PUBLIC_KEY_MEMBER], PUBLIC_KEY_MEMBER)
    signature_text = _ascii(members[SIGNATURE_MEMBER], SIGNATURE_MEMBER)
    if not _HEX_64.fullmatch(public_text):
        raise Rejected("public_key is not 64 lowercase hex digits (a raw Ed25519 public key)")
    if not _HEX_128.fullmatch(signature_text):
        raise Rejected("signature is not 128 lowercase hex digits (an Ed25519 signature)")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_text))
    except ValueError:
        raise Rejected("public_key is not a valid Ed25519 public key") from None
    try:
        public_key.verify(bytes.fromhex(signature_text), SIGNING_CONTEXT + manifest_bytes)
    except InvalidSignature:
        raise Rejected("bad signature: the manifest is not signed by the enclosed public key") from None

    try:
        manifest = Manifest.model_validate_json(manifest_bytes)
    except ValidationError as exc:
        raise Rejected(f"manifest does not follow the bundle format: {_first_error(exc)}") from None
    if manifest.canonical_bytes() != manifest_bytes:
        raise Rejected("manifest is not in canonical form (sorted keys, no whitespace, ASCII)")
    if manifest.public_key != public_text:
        raise Rejected("manifest names another public key than the one enclosed")
    if manifest.node_id != node_id(public_text):
        raise Rejected("manifest node_id is not the one derived from its public key")

    payload = {name for name in members if name in PAYLOAD_MEMBERS}
    if RUN_MEMBER not in manifest.members:
        raise Rejected("manifest lists no run.json")
    for name in sorted(set(manifest.members) - payload):
        raise Rejected(f"{name} is listed in the manifest but missing from the bundle")
    for name in sorted(payload - set(manifest.members)):
        raise Rejected(f"{name} is in the bundle but not listed in the signed manifest")
    for name, digest in sorted(manifest.members.items()):
        content = members[name]
        if len(content) != digest.size or hashlib.sha256(content).hexdigest() != digest.sha256:
            raise Rejected(f"{name} does not match its sha256 in the signed manifest (changed after signing)")

    if manifest.schema_version != SCHEMA_VERSION:
        raise Rejected(
            f"schema version {manifest.schema_version} is not the one this atomabench reads "
            f"({SCHEMA_VERSION})"
        )
    try:
        run = RunResult.model_validate_json(members[RUN_MEMBER])
    except ValidationError as exc:
        raise Rejected(f"run.json is not a valid atomabench run: {_first_error(exc)}") from None
    if run.run.run_id != manifest.run_id:
        raise Rejected(f"run.json holds run {run.run.run_id!r} but the manifest signs {manifest.run_id!r}")
    environment = _json_object(members, ENVIRONMENT_MEMBER)
    fingerprint = _json_object(members, FINGERPRINT_MEMBER)
    if fingerprint is not None:
        from atomabench.determinism.fingerprint import Fingerprint

        try:
            Fingerprint.model_validate(fingerprint)
        except ValidationError as exc:
            raise Rejected(f"fingerprint.json is not a valid fingerprint: {_first_error(exc)}") from None
    return VerifiedBundle(
        bundle_sha256=hashlib.sha256(data).hexdigest(),
        manifest=manifest,
        manifest_text=manifest_bytes.decode("ascii"),
        signature=signature_text,
        run=run,
        environment=environment,
        fingerprint=fingerprint,
    )


def _ascii(content: bytes, name: str) -> str:
    try:
        return content.decode("ascii")
    except UnicodeDecodeError:
        raise Rejected(f"{name} is not ASCII text") from None


def _json_object(members: dict[str, bytes], name: str) -> dict[str, Any] | None:
    if name not in members:
        return None
    try:
        value = json.loads(members[name])
    except ValueError as exc:
        raise Rejected(f"{name} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Rejected(f"{name} is not a JSON object")
    return value


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where + ': ' if where else ''}{error['msg']}{more}"
