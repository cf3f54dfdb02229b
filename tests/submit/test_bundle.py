"""What a bundle holds besides the run: the determinism environment, and a fingerprint if given."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from atomabench.backends.base import BackendInfo
from atomabench.determinism.fingerprint import Fingerprint
from atomabench.records import DeterminismSummary
from atomabench.submit.bundle import environment_document, pack_run, verify_bundle

from .helpers import finished_run

KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))


def test_the_environment_descriptor_comes_from_the_stored_engine_settings() -> None:
    info = BackendInfo(
        kind="vllm",
        engine_version="vllm 0.32.0",
        model="smollm2-135m",
        model_path="/models/does-not-matter",
        dtype="bfloat16",
        device="cuda",
        settings={"batch_invariant": True, "threads": None},
    )
    result = finished_run()
    summary = DeterminismSummary(
        tier="A",
        reason="all exact",
        near_tie_margin=0.1,
        comparisons=4,
        exact=4,
        near_tie_flips=0,
        wide_flips=0,
        repeat_mismatches=0,
    )
    determinism = result.scenarios[0].model_copy(
        update={"name": "determinism", "determinism_summary": summary}
    )
    result = result.model_copy(
        update={
            "run": result.run.model_copy(update={"backend_settings": info.model_dump(mode="json")}),
            "scenarios": (determinism, result.scenarios[1]),
        }
    )

    document = environment_document(result)

    environment = document["environment"]
    assert (environment["engine"], environment["engine_version"], environment["dtype"]) == (
        "vllm",
        "vllm 0.32.0",
        "bfloat16",
    )
    assert environment["hardware_class"] == "rtx-4090"
    assert environment["batch_invariant"] is True  # from the run, not from this process's environment
    assert environment["model_digest"] is None  # submit never reads the weights
    assert document["determinism_tiers"] == {"determinism": "A"}


def test_settings_that_are_no_backend_info_give_no_descriptor() -> None:
    assert environment_document(finished_run())["environment"] is None


def test_a_fingerprint_travels_signed_and_is_validated() -> None:
    fingerprint = Fingerprint(
        created_at=datetime(2025, 3, 1, tzinfo=UTC),
        atomabench_version="0.1.0",
        environment={"engine": "transformers"},
        output_tokens=4,
        top_k=2,
        token_hash="a" * 64,
        logprob_hash="b" * 64,
        canaries=(),
    ).model_dump(mode="json")

    verified = verify_bundle(pack_run(finished_run(), KEY, fingerprint=fingerprint))

    assert verified.fingerprint == fingerprint
    assert set(verified.manifest.members) == {"run.json", "environment.json", "fingerprint.json"}
