"""The node key: made once, private to its owner, and refused when others could read it."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from atomabench.errors import UserError
from atomabench.submit.keys import (
    KEY_FILE_NAME,
    default_key_path,
    load_or_create_key,
    load_private_key,
    public_key_hex,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def test_the_key_lives_in_the_key_dir_from_the_environment(_private_key_dir: Path) -> None:
    assert default_key_path() == _private_key_dir / KEY_FILE_NAME


@posix_only
def test_a_new_key_is_private_to_its_owner(_private_key_dir: Path) -> None:
    old_umask = os.umask(0o022)  # a permissive umask must not leak into the key's mode
    try:
        key = load_or_create_key()
    finally:
        os.umask(old_umask)

    path = Path(key.path)
    assert key.created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_the_node_id_is_a_sha256_prefix_of_the_public_key() -> None:
    key = load_or_create_key()

    assert len(key.public_key) == 64
    assert key.node_id == hashlib.sha256(bytes.fromhex(key.public_key)).hexdigest()[:16]
    assert public_key_hex(load_private_key().public_key()) == key.public_key


def test_a_second_call_keeps_the_key_and_force_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "node.pem"
    first = load_or_create_key(path)

    again = load_or_create_key(path)
    replaced = load_or_create_key(path, force=True)

    assert (again.created, again.public_key) == (False, first.public_key)
    assert replaced.created and replaced.public_key != first.public_key


@posix_only
def test_a_key_others_can_read_is_refused() -> None:
    path = Path(load_or_create_key().path)
    path.chmod(0o644)

    with pytest.raises(UserError) as caught:
        load_private_key()

    assert caught.value.field == "key"
    assert f"accessible by others (mode 0644); run `chmod 600 {path}`" in str(caught.value)


def test_a_missing_or_foreign_key_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no node key here; create one with `atomabench keys`"):
        load_private_key(tmp_path / "none.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    garbage.chmod(0o600)
    with pytest.raises(UserError, match="not an unencrypted PEM private key"):
        load_private_key(garbage)


def test_a_key_path_that_is_a_directory_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()

    with pytest.raises(UserError, match="cannot write the node key"):
        load_or_create_key(tmp_path / "taken", force=True)
