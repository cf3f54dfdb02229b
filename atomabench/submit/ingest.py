"""The leaderboard side: check received bundles and store the good ones with who signed them.

Each file is judged on its own; one bad file never stops the others. A file is accepted only if
:func:`atomabench.submit.bundle.verify_bundle` passes and neither the same file (bundle sha256) nor the
same run (run id) is stored yet; the run and its submission record go in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import SQLAlchemyError

from atomabench.errors import UserError
from atomabench.store import DuplicateSubmission, Store, Submission
from atomabench.submit.bundle import Rejected, verify_bundle


class IngestOutcome(BaseModel):
    """The verdict on one file, as ``atomabench leaderboard ingest --json`` prints it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    """One line saying why a file was rejected; None when accepted."""
    run_id: str | None = None
    node_id: str | None = None
    bundle_sha256: str | None = None

    def line(self) -> str:
        if self.status == "accepted":
            return f"accepted {self.file}: run {self.run_id} signed by node {self.node_id}"
        return f"rejected {self.file}: {self.reason}"


def ingest_files(store: Store, paths: Iterable[str | Path]) -> list[IngestOutcome]:
    """Judge and store each bundle in turn; returns one outcome per path, in order."""
    return [ingest_file(store, Path(path)) for path in paths]


def ingest_file(store: Store, path: Path) -> IngestOutcome:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return IngestOutcome(
            file=str(path), status="rejected", reason=f"cannot read the file: {exc.strerror}"
        )
    try:
        bundle = verify_bundle(data)
    except Rejected as rejected:
        return IngestOutcome(file=str(path), status="rejected", reason=rejected.reason)
    known = {
        "run_id": bundle.run.run.run_id,
        "node_id": bundle.manifest.node_id,
        "bundle_sha256": bundle.bundle_sha256,
    }
    submission = Submission(
        bundle_sha256=bundle.bundle_sha256,
        run_id=bundle.run.run.run_id,
        public_key=bundle.manifest.public_key,
        node_id=bundle.manifest.node_id,
        signed_at=bundle.manifest.signed_at,
        ingested_at=datetime.now(UTC),
        manifest=bundle.manifest_text,
        signature=bundle.signature,
        environment=bundle.environment,
        fingerprint=bundle.fingerprint,
    )
    try:
        store.add_submission(bundle.run, submission)
    except DuplicateSubmission as duplicate:
        return IngestOutcome(
            file=str(path), status="rejected", reason=f"duplicate: {duplicate.message}", **known
        )
    except UserError as refused:  # e.g. a run id the schema cannot hold
        return IngestOutcome(file=str(path), status="rejected", reason=refused.message, **known)
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return IngestOutcome(
            file=str(path), status="rejected", reason=f"the database refused the run: {detail}", **known
        )
    return IngestOutcome(file=str(path), status="accepted", **known)
