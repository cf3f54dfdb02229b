"""A leaderboard ingesting signed bundles: the good one is stored exactly, every damaged one is refused."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from atomabench.records import RunResult, TokenLogprobs
from atomabench.store import Store, open_store
from atomabench.submit.bundle import SIGNING_CONTEXT, pack_run, read_zip, verify_bundle
from atomabench.submit.ingest import IngestOutcome, ingest_files
from atomabench.submit.keys import node_id, public_key_hex

from .helpers import SIGNED_AT, finished_run, flip_byte, members, rebuilt, resigned

KEY_A = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KEY_B = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def bundle() -> bytes:
    return pack_run(finished_run(), KEY_A, signed_at=SIGNED_AT)


def ingest(store: Store, tmp_path: Path, *bundles: bytes) -> list[IngestOutcome]:
    paths = []
    for index, data in enumerate(bundles):
        path = tmp_path / f"bundle-{index}.zip"
        path.write_bytes(data)
        paths.append(path)
    return ingest_files(store, paths)


def test_a_valid_bundle_is_stored_and_reads_back_equal(store: Store, bundle: bytes, tmp_path: Path) -> None:
    [outcome] = ingest(store, tmp_path, bundle)

    assert outcome.status == "accepted", outcome.reason
    assert outcome.run_id == "run-0001"
    assert outcome.node_id == node_id(public_key_hex(KEY_A.public_key()))
    assert store.get_run("run-0001") == finished_run()
    [submission] = store.list_submissions()
    assert submission.bundle_sha256 == hashlib.sha256(bundle).hexdigest()
    assert submission.public_key == public_key_hex(KEY_A.public_key())
    assert (submission.run_id, submission.node_id, submission.signed_at) == (
        "run-0001",
        outcome.node_id,
        SIGNED_AT,
    )
    assert submission.environment is not None
    assert submission.environment["determinism_tiers"] == {}
    # the stored manifest and signature are enough to check the submission again later
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(submission.public_key)).verify(
        bytes.fromhex(submission.signature), SIGNING_CONTEXT + submission.manifest.encode()
    )
    manifest = json.loads(submission.manifest)
    run_json = members(bundle)["run.json"]
    assert manifest["members"]["run.json"] == {
        "sha256": hashlib.sha256(run_json).hexdigest(),
        "size": len(run_json),
    }


def test_non_finite_numbers_survive_the_bundle_and_the_database(store: Store, tmp_path: Path) -> None:
    result = finished_run()
    chat = result.scenarios[0]
    record = chat.records[0]
    assert record.logprobs is not None
    odd = record.model_copy(update={"logprobs": (TokenLogprobs(logprob=-math.inf), *record.logprobs[1:])})
    metrics = chat.metrics.model_copy(update={"output_throughput": math.nan})
    chat = chat.model_copy(update={"records": (odd, *chat.records[1:]), "metrics": metrics})
    result = result.model_copy(update={"scenarios": (chat, result.scenarios[1])})

    [outcome] = ingest(store, tmp_path, pack_run(result, KEY_A))

    assert outcome.status == "accepted", outcome.reason
    stored = store.get_run("run-0001")
    assert math.isnan(stored.scenarios[0].metrics.output_throughput)
    assert stored.scenarios[0].records[0].logprobs is not None
    assert stored.scenarios[0].records[0].logprobs[0].logprob == -math.inf
    assert stored.scenarios[1] == result.scenarios[1]


def _swap_in_key_b(bundle: bytes) -> bytes:
    return rebuilt(bundle, public_key=public_key_hex(KEY_B.public_key()).encode())


def _flip_signature_digit(bundle: bytes) -> bytes:
    signature = members(bundle)["signature"]
    digit = signature[10:11]
    return rebuilt(bundle, signature=signature[:10] + (b"0" if digit != b"0" else b"1") + signature[11:])


def _forged_run(bundle: bytes) -> bytes:
    """Better numbers in run.json and a manifest re-hashed to match, but signed by no one."""
    parts = members(bundle)
    run = RunResult.model_validate_json(parts["run.json"])
    better = run.scenarios[0].metrics.model_copy(update={"output_throughput": 1e6})
    run = run.model_copy(update={"scenarios": (run.scenarios[0].model_copy(update={"metrics": better}),)})
    forged = run.model_dump_json().encode()
    manifest = json.loads(parts["manifest.json"])
    manifest["members"]["run.json"] = {"sha256": hashlib.sha256(forged).hexdigest(), "size": len(forged)}
    return rebuilt(
        bundle,
        run__json=forged,
        manifest__json=json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode(),
    )


TAMPERED: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "flipped byte in run.json": (
        lambda b: rebuilt(b, run__json=flip_byte(members(b)["run.json"])),
        "run.json does not match its sha256 in the signed manifest",
    ),
    "flipped byte in environment.json": (
        lambda b: rebuilt(b, environment__json=flip_byte(members(b)["environment.json"])),
        "environment.json does not match its sha256",
    ),
    "flipped byte in the manifest": (
        lambda b: rebuilt(b, manifest__json=flip_byte(members(b)["manifest.json"])),
        "bad signature",
    ),
    "flipped digit in the signature": (_flip_signature_digit, "bad signature"),
    "a non-hex character in the signature": (
        lambda b: rebuilt(b, signature=b"g" + members(b)["signature"][1:]),
        "signature is not 128 lowercase hex digits",
    ),
    "unsigned": (lambda b: rebuilt(b, signature=None), "unsigned: the bundle has no signature"),
    "key B's public key swapped in": (_swap_in_key_b, "bad signature"),
    "forged run, manifest re-hashed": (_forged_run, "bad signature"),
    "no manifest": (lambda b: rebuilt(b, manifest__json=None), "the bundle has no manifest.json"),
    "extra member": (lambda b: rebuilt(b, **{"notes.txt": b"hi"}), "unexpected member 'notes.txt'"),
    "payload member not in the manifest": (
        lambda b: rebuilt(b, fingerprint__json=b"{}"),
        "fingerprint.json is in the bundle but not listed in the signed manifest",
    ),
    "listed member removed": (
        lambda b: rebuilt(b, environment__json=None),
        "environment.json is listed in the manifest but missing from the bundle",
    ),
    "not a zip": (lambda b: b"PK\x03\x04 this is not really a zip", "not a readable bundle (zip archive)"),
    "truncated file": (lambda b: b[: len(b) // 2], "not a readable bundle (zip archive)"),
    "signed by its key, but another schema version": (
        lambda b: resigned(b, KEY_A, schema_version=3),
        "schema version 3 is not the one this atomabench reads (4)",
    ),
    "signed, but the manifest signs another run id": (
        lambda b: resigned(b, KEY_A, run_id="run-9999"),
        "run.json holds run 'run-0001' but the manifest signs 'run-9999'",
    ),
    "signed, but node_id is not the key's": (
        lambda b: resigned(b, KEY_A, node_id="0123456789abcdef"),
        "manifest node_id is not the one derived from its public key",
    ),
    "signed, but the manifest has an unknown field": (
        lambda b: resigned(b, KEY_A, colour="blue"),
        "manifest does not follow the bundle format: colour: Extra inputs are not permitted",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERED), ids=list(TAMPERED))
def test_a_damaged_bundle_is_rejected_with_its_reason(
    store: Store, bundle: bytes, tmp_path: Path, case: str
) -> None:
    tamper, reason = TAMPERED[case]

    [outcome] = ingest(store, tmp_path, tamper(bundle))

    assert outcome.status == "rejected"
    assert outcome.reason is not None and reason in outcome.reason
    assert "\n" not in outcome.reason
    assert store.list_runs() == []
    assert store.list_submissions() == []


def test_a_signed_run_json_that_is_no_run_is_rejected(store: Store, bundle: bytes, tmp_path: Path) -> None:
    broken = resigned(rebuilt(bundle, run__json=b'{"run": {"run_id": "run-0001"}}'), KEY_A)

    [outcome] = ingest(store, tmp_path, broken)

    assert outcome.reason is not None
    assert outcome.reason.startswith("run.json is not a valid atomabench run: run.suite: Field required")


def test_any_single_byte_flip_in_the_payload_or_manifest_is_caught(bundle: bytes) -> None:
    """Every 97th byte of every signed member, flipped and repacked: never accepted."""
    from atomabench.submit.bundle import Rejected

    for name in ("run.json", "environment.json", "manifest.json", "signature", "public_key"):
        content = members(bundle)[name]
        for index in range(0, len(content), 97):
            with pytest.raises(Rejected):
                verify_bundle(rebuilt(bundle, **{name: flip_byte(content, index)}))


def test_the_same_bundle_twice_is_a_duplicate(store: Store, bundle: bytes, tmp_path: Path) -> None:
    first, second = ingest(store, tmp_path, bundle, bundle)

    assert first.status == "accepted"
    assert second.status == "rejected"
    assert (
        second.reason == f"duplicate: bundle {hashlib.sha256(bundle).hexdigest()[:16]} was already ingested"
    )
    assert len(store.list_submissions()) == 1


@pytest.mark.parametrize("signer", [KEY_A, KEY_B], ids=["same key", "another key"])
def test_the_same_run_signed_again_is_a_duplicate(
    store: Store, bundle: bytes, tmp_path: Path, signer: Ed25519PrivateKey
) -> None:
    again = pack_run(finished_run(), signer)  # signed now, not at SIGNED_AT: another file
    assert again != bundle

    first, second = ingest(store, tmp_path, bundle, again)

    assert first.status == "accepted"
    assert second.reason == "duplicate: run 'run-0001' is already stored"
    assert [submission.signed_at for submission in store.list_submissions()] == [SIGNED_AT]


def test_one_bad_file_does_not_stop_the_others(store: Store, bundle: bytes, tmp_path: Path) -> None:
    other = pack_run(finished_run("run-0002"), KEY_B)
    missing = tmp_path / "missing.zip"

    outcomes = ingest(store, tmp_path, rebuilt(bundle, signature=None), other)
    outcomes += ingest_files(store, [missing])

    assert [outcome.status for outcome in outcomes] == ["rejected", "accepted", "rejected"]
    assert outcomes[2].reason == "cannot read the file: No such file or directory"
    assert [summary.run_id for summary in store.list_runs()] == ["run-0002"]


def test_deleting_a_run_deletes_its_submission_so_it_can_come_again(
    store: Store, bundle: bytes, tmp_path: Path
) -> None:
    ingest(store, tmp_path, bundle)

    store.delete_run("run-0001")

    assert store.list_submissions() == []
    [again] = ingest(store, tmp_path, bundle)
    assert again.status == "accepted"


def test_packing_is_reproducible_and_verifiable(bundle: bytes) -> None:
    assert pack_run(finished_run(), KEY_A, signed_at=SIGNED_AT) == bundle
    verified = verify_bundle(bundle)
    assert verified.run == finished_run()
    assert set(read_zip(bundle)) == {
        "run.json",
        "environment.json",
        "manifest.json",
        "public_key",
        "signature",
    }


def test_a_flip_anywhere_in_the_file_is_rejected_or_leaves_every_signed_byte_unchanged(bundle: bytes) -> None:
    """The zip container (timestamps, attributes) is not signed; everything read from it is."""
    from atomabench.submit.bundle import Rejected

    original = members(bundle)
    rejected = 0
    for index in range(0, len(bundle), 5):
        damaged = bytearray(bundle)
        damaged[index] ^= 0x10
        try:
            verified = verify_bundle(bytes(damaged))
        except Rejected:
            rejected += 1
            continue
        assert members(bytes(damaged)) == original
        assert verified.run == finished_run()
    assert rejected > len(bundle) // 5 // 2  # most bytes of the file are signed content


def test_a_run_id_the_schema_cannot_hold_is_rejected_on_every_database(store: Store, tmp_path: Path) -> None:
    [outcome] = ingest(store, tmp_path, pack_run(finished_run("r" * 300), KEY_A))

    assert outcome.status == "rejected"
    assert outcome.reason == "a run id must have 1 to 128 characters, not 300"
    assert store.list_runs() == []
