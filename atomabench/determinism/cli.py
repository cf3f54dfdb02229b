"""``atomabench determinism``: run the suite, fingerprint this node, compare fingerprints, verify claims."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atomabench import api

determinism_app = typer.Typer(
    help="Determinism under batching: run the R/B/P/U suite (default), fingerprint, compare, verify.",
    invoke_without_command=True,
)

Model = Annotated[str | None, typer.Option("--model", "-m", help="Model (default: the bundled SmolLM2).")]
Backend = Annotated[str | None, typer.Option("--backend", "-b", help="Engine (default: transformers).")]
Dtype = Annotated[str | None, typer.Option(help="auto, float32, bfloat16 or float16.")]
Device = Annotated[str | None, typer.Option(help="auto, cpu, cuda or mps.")]
Threads = Annotated[int | None, typer.Option(min=1, help="CPU threads for torch.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _int_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()] or []
    except ValueError:
        from atomabench.errors import UserError

        raise UserError(f"expected comma-separated integers, got {text!r}", field="--batch-sizes") from None


@determinism_app.callback()
def determinism(
    context: typer.Context,
    suite: Annotated[
        str, typer.Option("--suite", "-s", help="Suite with determinism scenarios.")
    ] = "determinism",
    model: Model = None,
    backend: Backend = None,
    dtype: Dtype = None,
    device: Device = None,
    threads: Threads = None,
    batch_sizes: Annotated[str | None, typer.Option(help="Override, e.g. 1,2,4,8,16.")] = None,
    prompts: Annotated[int | None, typer.Option(min=1, max=8, help="Canary prompts used as needles.")] = None,
    output_tokens: Annotated[int | None, typer.Option(min=1, help="Tokens generated per request.")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Engine option KEY=VALUE, e.g. batch_invariant=true (vllm)."),
    ] = None,
    db: Annotated[str | None, typer.Option("--db", envvar="ATOMABENCH_DB", help="Results database.")] = None,
    json_output: Json = False,
) -> None:
    """Run the determinism suite on its own and print the tier it earns."""
    if context.invoked_subcommand is not None:
        return
    from atomabench.cli import run_and_render
    from atomabench.workloads.suite import load_suite

    loaded = api.with_determinism_overrides(
        load_suite(suite),
        batch_sizes=_int_list(batch_sizes),
        num_prompts=prompts,
        output_tokens=output_tokens,
    )
    run_and_render(
        loaded,
        json_output,
        backend=backend,
        model=model,
        dtype=dtype,
        device=device,
        threads=threads,
        options=api.parse_engine_options(option or []),
        db=db,
    )


@determinism_app.command("fingerprint")
def fingerprint(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the fingerprint JSON.")],
    model: Model = None,
    backend: Backend = None,
    dtype: Dtype = None,
    device: Device = None,
    threads: Threads = None,
    output_tokens: Annotated[int, typer.Option(min=1, max=256)] = 32,
    json_output: Json = False,
) -> None:
    """Run the canary set alone and write this node's determinism fingerprint."""
    from atomabench import console
    from atomabench.determinism.fingerprint import save_fingerprint
    from atomabench.errors import UserError

    if not out.parent.is_dir() or out.is_dir():  # fail before minutes of canaries, not after
        raise UserError(
            "cannot write the fingerprint there (no such directory, or a directory)", path=out, field="--out"
        )
    taken = api.fingerprint(
        model=model, backend=backend, dtype=dtype, device=device, threads=threads, output_tokens=output_tokens
    )
    save_fingerprint(taken, out)
    if json_output:
        console.print_json(
            {
                "path": str(out),
                "token_hash": taken.token_hash,
                "logprob_hash": taken.logprob_hash,
                "environment": taken.environment,
            }
        )
    else:
        console.stdout.print(
            f"wrote {out}: token hash {taken.token_hash[:16]}…, logprob hash "
            f"{taken.logprob_hash[:16]}… ({len(taken.canaries)} canaries × {taken.output_tokens})"
        )


@determinism_app.command("compare")
def compare(
    first: Annotated[Path, typer.Argument(help="Fingerprint JSON of node A.")],
    second: Annotated[Path, typer.Argument(help="Fingerprint JSON of node B.")],
    margin: Annotated[float, typer.Option(min=0.0, help="Near-tie margin in nats.")] = 0.1,
    json_output: Json = False,
) -> None:
    """identical, near-tie, different-class or mismatch."""
    from atomabench import console
    from atomabench.determinism.fingerprint import compare_fingerprints, load_fingerprint

    result = compare_fingerprints(load_fingerprint(first), load_fingerprint(second), margin)
    if json_output:
        console.print_json(result.model_dump(mode="json"))
        return
    console.stdout.print(f"[bold]{result.verdict}[/bold]: {result.reason}")
    for key, (a, b) in result.environment_differences.items():
        console.stdout.print(f"  {key}: {a!r} vs {b!r}")


@determinism_app.command("verify")
def verify(
    claims: Annotated[
        Path, typer.Argument(help="Claim JSON (prompt + output_token_ids) or a fingerprint file.")
    ],
    epsilon: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="Accept tokens within this many nats of argmax (default: the engine's ε)."
        ),
    ] = None,
    model: Model = None,
    backend: Backend = None,
    dtype: Dtype = None,
    device: Device = None,
    threads: Threads = None,
    json_output: Json = False,
) -> None:
    """Re-score claimed tokens with one teacher-forced prefill; exit 1 if any claim is rejected."""
    from atomabench import console

    reports = api.verify(
        str(claims),
        epsilon=epsilon,
        model=model,
        backend=backend,
        dtype=dtype,
        device=device,
        threads=threads,
    )
    if json_output:
        console.print_json(
            [
                r.model_dump(mode="json", exclude={"verdicts"})
                | {"rejected": [v.model_dump(mode="json") for v in r.verdicts if not v.accepted]}
                for r in reports
            ]
        )
    else:
        rows = [
            {
                "claim": r.id,
                "verdict": "accepted" if r.accepted else "REJECTED",
                "tokens": r.tokens,
                "argmax": r.argmax_tokens,
                "near-tie": r.near_tie_tokens,
                "rejected": r.rejected_tokens,
                "first rejected": r.first_rejected,
                "max gap (nats)": f"{r.max_gap:.4f}",
            }
            for r in reports
        ]
        console.stdout.print(
            console.rows_table(f"verification (epsilon {reports[0].epsilon} nats)", rows, list(rows[0]))
        )
    if not all(r.accepted for r in reports):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(determinism_app, name="determinism")
