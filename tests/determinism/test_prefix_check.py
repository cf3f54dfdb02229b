"""P (prefix cache cold vs warm): a long shared prefix, and the cache emptied before the cold run."""

from __future__ import annotations

from atomabench.runner import run_suite
from atomabench.store import open_store
from atomabench.workloads.suite import parse_suite

SUITE = """
name = "p"
[[scenarios]]
name = "p"
kind = "determinism"
num_prompts = 1
output_tokens = 4
repeats = 1
batch_sizes = [1]
concurrent = 0
prefix_tokens = 40
"""


class CachingBackend:
    """The tiny model posing as an engine with a prefix cache, logging every batch and cache reset."""

    prefix_cache = True

    def __init__(self, inner):
        self.inner = inner
        self.config = inner.config
        self.log: list[object] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def load(self):
        return self.inner.info

    def close(self):
        pass  # the session fixture owns the model

    def reset_prefix_cache(self) -> bool:
        self.log.append("reset")
        return True

    def generate(self, requests, sampling):
        self.log.append(tuple(len(r.prompt_token_ids) for r in requests))
        return self.inner.generate(requests, sampling)


def test_p_runs_a_long_prompt_cold_after_a_reset_then_warm(tiny_backend, db_path):
    backend = CachingBackend(tiny_backend)
    with open_store(db_path) as store:
        result = run_suite(parse_suite(SUITE, "p.toml"), backend.config, store, backend=backend)
    needle = len(backend.log[0]) and backend.log[0][0]  # R at batch 1: the needle alone
    assert backend.log[1:] == ["reset", (40 + needle,), (40 + needle,)]  # cold after a reset, then warm
    (scenario,) = result.scenarios
    (p,) = [r for r in scenario.determinism if r.check == "P"]
    assert p.exact_match and p.batch_size == 1 and p.repeat == 1
    assert scenario.determinism_summary.skipped == ()
