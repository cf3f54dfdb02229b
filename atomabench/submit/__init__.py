"""Signed result submissions: node keys, bundles a node signs, and the leaderboard's ingest.

A node makes an Ed25519 key once (``atomabench keys``), packs a stored run into one signed file
(``atomabench submit``), and a leaderboard checks and stores such files (``atomabench leaderboard
ingest``). The bundle format and every rejection reason are described in ``docs/submissions.md``.
"""

from atomabench.submit.bundle import Manifest, VerifiedBundle, pack_run, verify_bundle
from atomabench.submit.ingest import IngestOutcome, ingest_files
from atomabench.submit.keys import NodeKey, default_key_path, load_or_create_key, load_private_key, node_id

__all__ = [
    "IngestOutcome",
    "Manifest",
    "NodeKey",
    "VerifiedBundle",
    "default_key_path",
    "ingest_files",
    "load_or_create_key",
    "load_private_key",
    "node_id",
    "pack_run",
    "verify_bundle",
]
