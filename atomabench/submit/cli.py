"""``atomabench keys``, ``atomabench submit`` and ``atomabench leaderboard ingest``.

Exit codes: 0 when everything asked for was done; ``leaderboard ingest`` exits 1 when at least one
file was rejected (the others are still stored); a user mistake (no key, unknown run, a database
that cannot be opened) is one line and exit 2, as everywhere in atomabench.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atomabench.cli_options import DbOption

Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
KeyPath = Annotated[
    Path | None,
    typer.Option("--key", help="Node key file (default: $ATOMABENCH_KEY_DIR or the per-user config dir)."),
]

leaderboard_app = typer.Typer(
    help="Leaderboard side: check and store signed result bundles.", no_args_is_help=True
)


def keys(
    out: Annotated[Path | None, typer.Option("--out", help="Key file to use or create.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing key (the old one is lost).")
    ] = False,
    json_output: Json = False,
) -> None:
    """Create this node's Ed25519 key (once) and print its public key and node id."""
    from atomabench import console
    from atomabench.submit.keys import load_or_create_key

    key = load_or_create_key(out, force=force)
    if json_output:
        console.print_json(key.model_dump())
        return
    state = "created" if key.created else "existing"
    typer.echo(f"{state} node key {key.path}\nnode id     {key.node_id}\npublic key  {key.public_key}")


def submit(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle file to write (.zip).")],
    db: DbOption = None,
    key: KeyPath = None,
    fingerprint: Annotated[
        Path | None,
        typer.Option(
            "--fingerprint", help="Also enclose a fingerprint from `atomabench determinism fingerprint`."
        ),
    ] = None,
    json_output: Json = False,
) -> None:
    """Pack a stored run into one signed bundle for a leaderboard."""
    import hashlib

    from atomabench import console
    from atomabench.errors import UserError
    from atomabench.store import open_store
    from atomabench.submit.bundle import pack_run
    from atomabench.submit.keys import load_private_key, node_id, public_key_hex

    private_key = load_private_key(key)
    enclosed = None
    if fingerprint is not None:
        from atomabench.determinism.fingerprint import load_fingerprint

        enclosed = load_fingerprint(fingerprint).model_dump(mode="json")
    with open_store(db) as store:
        result = store.get_run(run_id)
    data = pack_run(result, private_key, fingerprint=enclosed)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    except OSError as exc:
        raise UserError(f"cannot write the bundle: {exc.strerror}", path=out, field="--out") from None
    summary = {
        "path": str(out),
        "run_id": result.run.run_id,
        "node_id": node_id(public_key_hex(private_key.public_key())),
        "bundle_sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }
    if json_output:
        console.print_json(summary)
    else:
        typer.echo(
            f"wrote {out} ({len(data):,} bytes): run {summary['run_id']} signed by node {summary['node_id']}"
        )


@leaderboard_app.command("ingest")
def leaderboard_ingest(
    files: Annotated[list[Path], typer.Argument(help="Bundle files from `atomabench submit`.")],
    db: DbOption = None,
    json_output: Json = False,
) -> None:
    """Check signed bundles and store the valid ones; exit 1 if any file was rejected."""
    from atomabench import console
    from atomabench.store import open_store
    from atomabench.submit.ingest import ingest_files

    with open_store(db) as store:
        outcomes = ingest_files(store, files)
    if json_output:
        console.print_json([outcome.model_dump() for outcome in outcomes])
    else:
        for outcome in outcomes:
            typer.echo(outcome.line())
    if any(outcome.status == "rejected" for outcome in outcomes):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Called by ``atomabench.cli``: adds ``keys``, ``submit`` and ``leaderboard``."""
    app.command("keys")(keys)
    app.command("submit")(submit)
    app.add_typer(leaderboard_app, name="leaderboard")
