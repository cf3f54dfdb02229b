"""Determinism on the tiny model: honest runs, a planted wide flip, verification and fingerprints."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from atomabench import api
from atomabench.backends import BackendConfig, create_backend
from atomabench.cli import app
from atomabench.determinism.fingerprint import compare_fingerprints, take_fingerprint
from atomabench.determinism.verify import Claim, verify_claim
from atomabench.hardware import probe
from atomabench.models.tiny import build_tiny_llama
from atomabench.records import RequestRecord, hash_token_ids
from atomabench.runner import run_suite
from atomabench.store import open_store
from atomabench.workloads.suite import parse_suite

FLIP_AT = 3
SUITE = """
name = "det"
[[scenarios]]
name = "det"
kind = "determinism"
num_prompts = 2
output_tokens = 8
repeats = 2
batch_sizes = [1, 2, 5]
concurrent = 4
filler_input_tokens = { dist = "uniform", min = 4, max = 24 }
"""


class FlippingBackend:
    """An engine that cheats inside batches: swaps the needle's token at FLIP_AT for its 5th choice."""

    def __init__(self, inner):
        self.inner = inner
        self.config = inner.config
        self.flipped: list[RequestRecord] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def load(self):
        return self.inner.info

    def close(self):
        pass  # the session fixture owns the model

    def generate(self, requests, sampling):
        records = self.inner.generate(requests, sampling)
        if len(requests) == 1:
            return records
        out = []
        for request, record in zip(requests, records, strict=True):
            if "-B" in request.request_id:
                tokens = list(record.output_token_ids)
                tokens[FLIP_AT] = record.logprobs[FLIP_AT].top[-1][0]  # a token the model did not favour
                record = record.model_copy(
                    update={"output_token_ids": tuple(tokens), "output_hash": hash_token_ids(tokens)}
                )
                self.flipped.append(record)
            out.append(record)
        return out


def _run(backend, db_path):
    with open_store(db_path) as store:
        return run_suite(parse_suite(SUITE, "det.toml"), backend.config, store, backend=backend)


def test_honest_tiny_model_is_stored_with_findings(tiny_backend, db_path):
    honest = FlippingBackend(tiny_backend)
    honest.generate = tiny_backend.generate  # no cheating
    result = _run(honest, db_path)
    scenario = result.scenarios[0]
    summary = scenario.determinism_summary
    assert summary is not None and summary.tier in ("A", "B")
    checks = {(r.check, r.batch_size) for r in scenario.determinism}
    assert checks == {("R", 1), ("B", 2), ("B", 5), ("U", 4)}
    # 2 prompts x (1 R repeat + B: 2 positions at batch 2 + 3 at batch 5 + 1 U) = 14 comparisons
    assert summary.comparisons == len(scenario.determinism) == 14
    assert summary.skipped == ("P: this backend has no prefix cache, so cold and warm runs cannot differ",)
    assert sorted({r.position for r in scenario.determinism if r.batch_size == 5}) == [0, 2, 4]
    with open_store(db_path) as store:
        stored = store.get_run(result.run.run_id).scenarios[0]
        tier = store.scenarios_frame()["determinism_tier"].tolist()
    assert stored.determinism == scenario.determinism and stored.determinism_summary == summary
    assert tier == [summary.tier]


def test_a_wide_flip_is_tiered_fail_and_rejected_by_verify(tiny_backend, db_path):
    cheat = FlippingBackend(tiny_backend)
    scenario = _run(cheat, db_path).scenarios[0]
    summary = scenario.determinism_summary
    assert summary.tier == "fail"
    assert "wide margin" in summary.reason and summary.wide_flips == 2 * (2 + 3)
    flips = [r for r in scenario.determinism if r.check == "B"]
    assert all(r.first_divergence == FLIP_AT and r.margin_at_divergence >= 0.1 for r in flips)

    flipped = cheat.flipped[0]
    prompt = next(r for r in _needles(tiny_backend))
    report = verify_claim(
        tiny_backend, Claim(prompt_token_ids=prompt, output_token_ids=flipped.output_token_ids), 0.1
    )
    # the first rejection is the flip; later tokens may also fail because the forced context changed
    assert not report.accepted and report.first_rejected == FLIP_AT and report.rejected_tokens >= 1
    assert all(v.accepted for v in report.verdicts[:FLIP_AT])
    assert report.max_gap >= 0.1


def _needles(backend):
    from atomabench.determinism.canaries import canaries

    return [tuple(backend.tokenize(c.text)) for c in canaries()[:1]]


@pytest.mark.parametrize("batch", [1, 3, 6])
def test_honest_outputs_always_pass_verify(tiny_backend, batch):
    from atomabench.determinism.canaries import canaries
    from atomabench.records import RequestSpec, SamplingSettings

    texts = [c.text for c in canaries()][:batch]
    requests = [
        RequestSpec(
            request_id=str(i), scenario="v", prompt_token_ids=tuple(tiny_backend.tokenize(t)), max_tokens=12
        )
        for i, t in enumerate(texts)
    ]
    for request, record in zip(requests, tiny_backend.generate(requests, SamplingSettings()), strict=True):
        claim = Claim(prompt_token_ids=request.prompt_token_ids, output_token_ids=record.output_token_ids)
        report = verify_claim(tiny_backend, claim, epsilon=0.1)
        assert report.accepted, report
        assert report.argmax_tokens + report.near_tie_tokens == report.tokens == 12


def test_fingerprints_same_settings_identical_other_dtype_or_model_mismatch(tiny_backend, tmp_path):
    hardware = probe()
    first = take_fingerprint(tiny_backend, tiny_backend.info, hardware, output_tokens=8)
    second = take_fingerprint(tiny_backend, tiny_backend.info, hardware, output_tokens=8)
    same = compare_fingerprints(first, second)
    assert same.verdict == "identical" and first.token_hash == second.token_hash

    bf16 = create_backend(BackendConfig(model="tiny-random-llama", dtype="bfloat16", device="cpu"))
    other_dtype = take_fingerprint(bf16, bf16.load(), hardware, output_tokens=8)
    by_dtype = compare_fingerprints(first, other_dtype)
    assert by_dtype.verdict == "mismatch" and "dtype" in by_dtype.reason
    assert by_dtype.environment_differences["dtype"] == ("float32", "bfloat16")

    other_folder = build_tiny_llama(tmp_path / "other-tiny", seed=1)
    other = create_backend(BackendConfig(model=str(other_folder), device="cpu"))
    by_model = compare_fingerprints(first, take_fingerprint(other, other.load(), hardware, output_tokens=8))
    assert by_model.verdict == "mismatch" and "model" in by_model.reason


def test_determinism_cli_fingerprint_compare_and_verify(tmp_path):
    runner = CliRunner()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path in (a, b):
        made = runner.invoke(
            app,
            [
                "determinism",
                "fingerprint",
                "--model",
                "tiny-random-llama",
                "--device",
                "cpu",
                "--output-tokens",
                "6",
                "--out",
                str(path),
            ],
        )
        assert made.exit_code == 0, made.output
    compared = runner.invoke(app, ["determinism", "compare", str(a), str(b), "--json"])
    assert json.loads(compared.stdout)["verdict"] == "identical"

    verified = runner.invoke(app, ["determinism", "verify", str(a), "--model", "tiny-random-llama", "--json"])
    assert verified.exit_code == 0, verified.output
    reports = json.loads(verified.stdout)
    assert len(reports) == 8 and all(r["accepted"] for r in reports)

    document = json.loads(a.read_text())
    document["canaries"][0]["output_token_ids"][2] = (
        document["canaries"][0]["output_token_ids"][2] + 97
    ) % 259
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    rejected = runner.invoke(
        app, ["determinism", "verify", str(forged), "--model", "tiny-random-llama", "--json"]
    )
    assert rejected.exit_code == 1
    assert json.loads(rejected.stdout)[0]["first_rejected"] == 2


def test_determinism_cli_runs_the_suite_with_overrides(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "determinism",
            "--model",
            "tiny-random-llama",
            "--device",
            "cpu",
            "--batch-sizes",
            "1,2",
            "--prompts",
            "1",
            "--output-tokens",
            "4",
            "--db",
            str(tmp_path / "r.db"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    scenario = json.loads(result.stdout)["scenarios"][0]
    assert scenario["settings"]["batch_sizes"] == [1, 2]
    assert {r["check"] for r in scenario["determinism"]} == {"R", "B", "U"}
    assert scenario["determinism_summary"]["tier"] in ("A", "B")


def test_api_override_validates(tiny_suite_path):
    from atomabench.workloads.suite import load_suite

    suite = api.with_determinism_overrides(load_suite("determinism"), batch_sizes=[1, 4], num_prompts=1)
    assert suite.scenarios[0].batch_sizes == (1, 4) and suite.scenarios[0].num_prompts == 1
