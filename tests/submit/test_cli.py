"""``atomabench keys``, ``submit`` and ``leaderboard ingest`` as a user runs them: output and exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from atomabench.cli import main
from atomabench.store import open_store

from .helpers import finished_run, rebuilt


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    old_argv = sys.argv
    sys.argv = ["atomabench", *args]
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        sys.argv = old_argv
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


@pytest.fixture
def node_db(tmp_path: Path) -> str:
    """The node's own results database, holding one finished run."""
    path = str(tmp_path / "node.db")
    with open_store(path) as store:
        store.import_run(finished_run())
    return path


def test_keys_creates_once_then_shows_the_same_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["keys", "--json"], capsys)
    first = json.loads(out)
    code_again, out_again, _ = run_main(["keys"], capsys)

    assert (code, code_again) == (0, 0)
    assert first["created"] is True
    assert out_again.splitlines() == [
        f"existing node key {first['path']}",
        f"node id     {first['node_id']}",
        f"public key  {first['public_key']}",
    ]


def test_submit_then_ingest_round_trips_the_run(
    node_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_main(["keys"], capsys)
    bundle = tmp_path / "out" / "run.zip"
    leaderboard = str(tmp_path / "leaderboard.db")

    code, out, err = run_main(["submit", "run-00", "--out", str(bundle), "--db", node_db, "--json"], capsys)
    assert (code, err) == (0, "")
    submitted = json.loads(out)
    assert submitted["run_id"] == "run-0001" and submitted["bytes"] == bundle.stat().st_size

    code, out, _ = run_main(["leaderboard", "ingest", str(bundle), "--db", leaderboard], capsys)
    assert code == 0
    assert out.strip() == f"accepted {bundle}: run run-0001 signed by node {submitted['node_id']}"
    with open_store(leaderboard) as store:
        assert store.get_run("run-0001") == finished_run()


def test_ingest_exits_1_and_says_why_when_any_file_is_rejected(
    node_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_main(["keys"], capsys)
    good = tmp_path / "good.zip"
    run_main(["submit", "run-0001", "--out", str(good), "--db", node_db], capsys)
    unsigned = tmp_path / "unsigned.zip"
    unsigned.write_bytes(rebuilt(good.read_bytes(), signature=None))
    leaderboard = str(tmp_path / "leaderboard.db")

    code, out, _ = run_main(
        ["leaderboard", "ingest", str(unsigned), str(good), str(good), "--db", leaderboard, "--json"], capsys
    )

    assert code == 1
    outcomes = json.loads(out)
    assert [(o["file"], o["status"]) for o in outcomes] == [
        (str(unsigned), "rejected"),
        (str(good), "accepted"),
        (str(good), "rejected"),
    ]
    assert outcomes[0]["reason"] == "unsigned: the bundle has no signature"
    assert outcomes[2]["reason"].startswith("duplicate: bundle ")
    code, out, _ = run_main(["leaderboard", "ingest", str(unsigned), "--db", leaderboard], capsys)
    assert (code, out.strip()) == (1, f"rejected {unsigned}: unsigned: the bundle has no signature")


def test_submit_without_a_key_or_run_is_one_line_and_exit_2(
    node_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(["submit", "run-0001", "--out", str(tmp_path / "x.zip"), "--db", node_db], capsys)
    assert code == 2
    assert err.strip().endswith("key: no node key here; create one with `atomabench keys`")

    run_main(["keys"], capsys)
    code, _, err = run_main(["submit", "nope", "--out", str(tmp_path / "x.zip"), "--db", node_db], capsys)
    assert code == 2
    assert "run_id: no run matches 'nope'" in err
    assert not (tmp_path / "x.zip").exists()


def test_submit_encloses_a_saved_fingerprint(
    node_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime

    from atomabench.determinism.fingerprint import Fingerprint, save_fingerprint

    fingerprint = Fingerprint(
        created_at=datetime(2025, 3, 1, tzinfo=UTC),
        atomabench_version="0.1.0",
        environment={"engine": "transformers"},
        output_tokens=4,
        top_k=2,
        token_hash="a" * 64,
        logprob_hash="b" * 64,
        canaries=(),
    )
    save_fingerprint(fingerprint, tmp_path / "fp.json")
    run_main(["keys"], capsys)
    bundle = tmp_path / "run.zip"
    leaderboard = str(tmp_path / "leaderboard.db")

    run_main(
        [
            "submit",
            "run-0001",
            "-o",
            str(bundle),
            "--db",
            node_db,
            "--fingerprint",
            str(tmp_path / "fp.json"),
        ],
        capsys,
    )
    code, _, _ = run_main(["leaderboard", "ingest", str(bundle), "--db", leaderboard], capsys)

    assert code == 0
    with open_store(leaderboard) as store:
        [submission] = store.list_submissions()
    assert submission.fingerprint == fingerprint.model_dump(mode="json")
