"""The node key: one Ed25519 key pair per node, kept private in the per-user config directory.

The private key is a PKCS#8 PEM file readable by its owner only (0600, directory 0700); a key file
that others can read is refused, the way ssh refuses one. The public key travels in every bundle,
and the node id is the first 16 hex digits of its sha256, short enough to show in tables.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from platformdirs import user_config_dir
from pydantic import BaseModel, ConfigDict

from atomabench.errors import UserError

KEY_DIR_ENV = "ATOMABENCH_KEY_DIR"
KEY_FILE_NAME = "node_ed25519.pem"
NODE_ID_HEX_DIGITS = 16


class NodeKey(BaseModel):
    """What ``atomabench keys`` reports: where the key is and who it makes this node."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    public_key: str
    """Raw 32-byte Ed25519 public key, hex."""
    node_id: str
    created: bool
    """True when this call made the key; False when it already existed."""


def default_key_path() -> Path:
    """``$ATOMABENCH_KEY_DIR/node_ed25519.pem``, else the same file in the per-user config dir."""
    override = os.environ.get(KEY_DIR_ENV)
    folder = Path(override).expanduser() if override else Path(user_config_dir("atomabench")) / "keys"
    return folder / KEY_FILE_NAME


def public_key_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def node_id(public_key: str) -> str:
    """The node id of a hex public key: sha256 of the raw 32 bytes, first 16 hex digits."""
    return hashlib.sha256(bytes.fromhex(public_key)).hexdigest()[:NODE_ID_HEX_DIGITS]


def load_or_create_key(path: Path | None = None, *, force: bool = False) -> NodeKey:
    """The node key at ``path`` (default :func:`default_key_path`), made first if missing or ``force``."""
    path = (path or default_key_path()).expanduser()
    created = force or not path.exists()
    if created:
        _write_private_key(path, Ed25519PrivateKey.generate())
    public = public_key_hex(load_private_key(path).public_key())
    return NodeKey(path=str(path), public_key=public, node_id=node_id(public), created=created)


def load_private_key(path: Path | None = None) -> Ed25519PrivateKey:
    """Read a node's private key; a missing, foreign or world-readable file is a ``UserError``."""
    path = (path or default_key_path()).expanduser()
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(
            "no node key here; create one with `atomabench keys`", path=path, field="key"
        ) from None
    except OSError as exc:
        raise UserError(f"cannot read the node key: {exc.strerror}", path=path, field="key") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UserError(
            f"node key is accessible by others (mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`",
            path=path,
            field="key",
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise UserError(f"not an unencrypted PEM private key ({exc})", path=path, field="key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(f"not an Ed25519 key but {type(key).__name__}", path=path, field="key")
    return key


def _write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write atomically, never readable by others even for an instant (created 0600, then renamed)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a directory")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if hasattr(os, "fchmod"):  # POSIX: undo nothing the umask did, set exactly 0600
                os.fchmod(descriptor, 0o600)
            os.write(descriptor, pem)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise UserError(f"cannot write the node key: {exc.strerror or exc}", path=path, field="key") from None
