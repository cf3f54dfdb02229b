"""Verify another node's claimed tokens by teacher-forced re-scoring: the check a verifier node runs.

One prefill over prompt + claim gives, at every claimed position, this node's logprob of the claimed
token and of its own argmax. A claimed token passes when it is the argmax or within ``epsilon`` nats
of it: honest nodes differ from each other only at near-ties, so they pass; a substituted token the
model did not favour fails. This is how tier-B nodes are checked without bit-identical kernels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atomabench.errors import UserError
from atomabench.records import TokenLogprobs

DEFAULT_EPSILON = 0.1
"""Nats: the near-tie width for engines whose teacher-forced scores match their decode logprobs."""

ENGINE_EPSILON: dict[str, float] = {
    # llama.cpp scores a prefill with other kernels than its one-token decode steps: on the bundled
    # SmolLM2 Q4_1 its teacher-forced logprobs differed from decode logprobs by up to ~0.16 nats for
    # honest tokens (docs/determinism.md), so 0.1 would reject honest llama.cpp nodes.
    "llamacpp": 0.25,
}
"""Per-engine default ε where the engine's own prefill and decode disagree by more than 0.1 nats."""


def default_epsilon(engine: str | None) -> float:
    """The ε ``verify`` uses when none is given: wide enough that honest outputs of ``engine`` pass."""
    return ENGINE_EPSILON.get(engine or "", DEFAULT_EPSILON)


class Claim(BaseModel):
    """What a node says it generated for a prompt (text or token ids)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = "claim"
    prompt: str | None = None
    prompt_token_ids: tuple[int, ...] | None = None
    output_token_ids: tuple[int, ...] = Field(min_length=1)


class TokenVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    token_id: int
    logprob: float
    argmax_id: int
    argmax_logprob: float
    gap: float
    accepted: bool


class ClaimReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    accepted: bool
    epsilon: float
    tokens: int
    argmax_tokens: int
    near_tie_tokens: int
    rejected_tokens: int
    first_rejected: int | None
    max_gap: float
    verdicts: tuple[TokenVerdict, ...]


def judge(
    claimed: Sequence[int], scores: Sequence[TokenLogprobs], epsilon: float, claim_id: str
) -> ClaimReport:
    """Pure verdict from this node's teacher-forced scores of the claimed tokens."""
    verdicts = []
    for index, (token, step) in enumerate(zip(claimed, scores, strict=True)):
        argmax_id, argmax_logprob = step.top[0]
        gap = argmax_logprob - step.logprob
        verdicts.append(
            TokenVerdict(
                index=index,
                token_id=token,
                logprob=step.logprob,
                argmax_id=argmax_id,
                argmax_logprob=argmax_logprob,
                gap=max(gap, 0.0),
                accepted=token == argmax_id or gap <= epsilon,
            )
        )
    rejected = [v for v in verdicts if not v.accepted]
    return ClaimReport(
        id=claim_id,
        accepted=not rejected,
        epsilon=epsilon,
        tokens=len(verdicts),
        argmax_tokens=sum(1 for v in verdicts if v.token_id == v.argmax_id),
        near_tie_tokens=sum(1 for v in verdicts if v.token_id != v.argmax_id and v.accepted),
        rejected_tokens=len(rejected),
        first_rejected=rejected[0].index if rejected else None,
        max_gap=max((v.gap for v in verdicts), default=0.0),
        verdicts=tuple(verdicts),
    )


def verify_claim(backend, claim: Claim, epsilon: float) -> ClaimReport:
    prompt_ids = (
        list(claim.prompt_token_ids) if claim.prompt_token_ids else backend.tokenize(claim.prompt or "")
    )
    vocab = backend.vocab_size()
    for name, ids in (("prompt_token_ids", prompt_ids), ("output_token_ids", claim.output_token_ids)):
        bad = next((t for t in ids if not 0 <= t < vocab), None)
        if bad is not None:
            raise UserError(
                f"token id {bad} is outside this model's vocabulary (0..{vocab - 1})",
                field=f"{claim.id}.{name}",
            )
    if not prompt_ids:
        raise UserError("the prompt tokenizes to nothing", field=f"{claim.id}.prompt")
    scores = backend.score(prompt_ids, claim.output_token_ids, top_k=2)
    return judge(claim.output_token_ids, scores, epsilon, claim.id)


def load_claims(path: Path) -> list[Claim]:
    """Claims from a JSON file: one claim, a list, ``{"claims": [...]}``, or a fingerprint's canaries."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read claim file: {exc.strerror}", path=path) from exc
    except json.JSONDecodeError as exc:
        raise UserError(f"malformed JSON: {exc.msg}", path=path, line=exc.lineno) from exc
    except UnicodeDecodeError as exc:
        raise UserError("not a text file (expected claim JSON)", path=path) from exc
    if isinstance(data, dict) and "canaries" in data:
        if not isinstance(data["canaries"], list) or not all(isinstance(c, dict) for c in data["canaries"]):
            raise UserError("`canaries` must be a list of objects", path=path, field="canaries")
        items = [
            {
                "id": c.get("prompt_id"),
                "prompt": c.get("prompt"),
                "output_token_ids": c.get("output_token_ids"),
            }
            for c in data["canaries"]
        ]
    elif isinstance(data, dict) and "claims" in data:
        items = data["claims"]
        if not isinstance(items, list):
            raise UserError("`claims` must be a list", path=path, field="claims")
    else:
        items = data if isinstance(data, list) else [data]
    if not items:
        raise UserError("the file holds no claim", path=path)
    claims = []
    for index, item in enumerate(items):
        try:
            claim = Claim.model_validate(item)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = f"claims[{index}]." + ".".join(str(p) for p in error["loc"])
            raise UserError(error["msg"], path=path, field=field) from exc
        if not claim.prompt and not claim.prompt_token_ids:
            raise UserError(
                "a claim needs a non-empty `prompt` or `prompt_token_ids`",
                path=path,
                field=f"claims[{index}]",
            )
        claims.append(claim)
    return claims
