"""Suite parsing: defaults, length shorthands, and errors that name the exact file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from atomabench.errors import UserError
from atomabench.records import SamplingSettings
from atomabench.workloads.suite import (
    LengthDistribution,
    OfflineScenario,
    SingleStreamScenario,
    Suite,
    SuiteBackendDefaults,
    available_suites,
    find_suite,
    load_suite,
    parse_suite,
)

# Line numbers matter below: line 1 is `name`, line 3 the [[scenarios]] header, line 7 batch_size.
MINIMAL = """\
name = "mini"

[[scenarios]]
name = "a"
kind = "offline"
num_requests = 4
batch_size = 2
input_tokens = 8
output_tokens = 4
"""

SECOND_SCENARIO = """
[[scenarios]]
name = "b"
kind = "single_stream"
num_requests = 2
input_tokens = 16
output_tokens = 3
"""


def parse_error(text: str) -> UserError:
    with pytest.raises(UserError) as caught:
        parse_suite(text, "suites/bad.toml")
    return caught.value


# ------------------------------------------------------------------------------------ bundled suites


def test_bundled_suites_all_load() -> None:
    bundled = available_suites()
    assert "smoke" in bundled
    for name, path in bundled.items():
        suite = load_suite(name)
        assert suite.name == name
        assert suite.path == str(path)
        assert len(suite.scenarios) >= 1
        assert len({s.name for s in suite.scenarios}) == len(suite.scenarios)


# ---------------------------------------------------------------------------------- valid suites


def test_minimal_suite_gets_its_defaults() -> None:
    suite = parse_suite(MINIMAL, "somewhere/mini.toml")
    assert suite.name == "mini"
    assert suite.path == "somewhere/mini.toml"
    assert suite.description == ""
    assert suite.percentiles == (50.0, 90.0, 95.0, 99.0)
    assert suite.backend == SuiteBackendDefaults()
    (scenario,) = suite.scenarios
    assert isinstance(scenario, OfflineScenario)
    assert (scenario.name, scenario.kind) == ("a", "offline")
    assert (scenario.num_requests, scenario.batch_size) == (4, 2)
    assert scenario.warmup_batches == 1
    assert (scenario.ignore_eos, scenario.dataset, scenario.seed, scenario.description) == (
        True,
        "synthetic",
        0,
        "",
    )
    assert scenario.sampling == SamplingSettings(temperature=0.0, top_p=1.0, top_k=0, seed=0, logprobs=0)


def test_name_defaults_to_the_file_stem() -> None:
    suite = parse_suite(MINIMAL.replace('name = "mini"\n', ""), Path("x/nightly.toml"))
    assert suite.name == "nightly"


def test_int_lengths_become_fixed_distributions() -> None:
    (scenario,) = parse_suite(MINIMAL).scenarios
    assert scenario.input_tokens == LengthDistribution(dist="fixed", value=8)
    assert scenario.output_tokens == LengthDistribution(dist="fixed", value=4)
    assert (scenario.input_tokens.upper_bound, scenario.output_tokens.upper_bound) == (8, 4)


def test_uniform_and_normal_lengths() -> None:
    text = MINIMAL.replace(
        "input_tokens = 8", 'input_tokens = { dist = "uniform", min = 96, max = 160 }'
    ).replace("output_tokens = 4", 'output_tokens = { dist = "normal", mean = 100, std = 20 }')
    (scenario,) = parse_suite(text).scenarios
    assert scenario.input_tokens == LengthDistribution(dist="uniform", min=96, max=160)
    assert scenario.output_tokens == LengthDistribution(dist="normal", mean=100.0, std=20.0)
    assert scenario.input_tokens.upper_bound == 160
    assert scenario.output_tokens.upper_bound == 181  # int(100 + 4·20) + 1


def test_single_stream_and_suite_settings() -> None:
    text = 'percentiles = [50, 99.9]\ndescription = "two"\n[backend]\nkind = "transformers"\nthreads = 2\n'
    suite = parse_suite(text + MINIMAL.replace('name = "mini"\n', "") + SECOND_SCENARIO, "two.toml")
    assert suite.percentiles == (50.0, 99.9)
    assert suite.description == "two"
    assert suite.backend == SuiteBackendDefaults(kind="transformers", threads=2)
    second = suite.scenarios[1]
    assert isinstance(second, SingleStreamScenario)
    assert (second.name, second.num_requests, second.warmup_requests) == ("b", 2, 1)


def test_sampling_settings_are_carried() -> None:
    text = MINIMAL + "temperature = 0.7\ntop_p = 0.9\ntop_k = 40\nseed = 5\nlogprobs = 5\n"
    (scenario,) = parse_suite(text).scenarios
    assert scenario.sampling == SamplingSettings(temperature=0.7, top_p=0.9, top_k=40, seed=5, logprobs=5)
    assert not scenario.sampling.greedy


def test_parsed_suite_is_a_suite() -> None:
    assert isinstance(parse_suite(MINIMAL), Suite)


# ------------------------------------------------------------------------------------------ errors


def test_malformed_toml_names_the_line() -> None:
    error = parse_error('name = "t"\n\n[[scenarios]]\nname = = "a"\n')
    assert (error.path, error.line, error.field) == ("suites/bad.toml", 4, None)
    assert error.message.startswith("malformed TOML: ")
    assert "(at line" not in error.message  # the position lives in .line, not twice in the text


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        pytest.param(MINIMAL + "bogus = 1\n", 10, "scenarios[0].bogus", "unknown key", id="unknown-key"),
        pytest.param('colour = "red"\n' + MINIMAL, 1, "colour", "unknown key", id="unknown-top-level-key"),
        pytest.param(
            MINIMAL + "\n[backend]\nfoo = 1\n", 12, "backend.foo", "unknown key", id="unknown-backend-key"
        ),
        pytest.param(
            MINIMAL.replace('"offline"', '"streaming"'),
            5,
            "scenarios[0].kind",
            "unknown scenario kind 'streaming'; known: offline, single_stream, server, sweep, determinism",
            id="unknown-kind",
        ),
        pytest.param(
            MINIMAL.replace('kind = "offline"\n', ""),
            3,  # the key is absent, so the scenario's header line
            "scenarios[0].kind",
            "scenario needs a `kind` (one of offline, single_stream, server, sweep, determinism)",
            id="missing-kind",
        ),
        pytest.param(
            MINIMAL.replace("num_requests = 4\n", ""),
            3,
            "scenarios[0].num_requests",
            "required key is missing",
            id="missing-key",
        ),
        pytest.param(
            MINIMAL.replace("batch_size = 2", "batch_size = 0"),
            7,
            "scenarios[0].batch_size",
            "Input should be greater than or equal to 1",
            id="batch-size-0",
        ),
        pytest.param(
            MINIMAL.replace("num_requests = 4", "num_requests = -1"),
            6,
            "scenarios[0].num_requests",
            "Input should be greater than or equal to 1",
            id="negative-num-requests",
        ),
        pytest.param(
            MINIMAL.replace("input_tokens = 8", "input_tokens = -8"),
            8,
            "scenarios[0].input_tokens.value",  # the int shorthand stands for {dist = "fixed", value = -8}
            "Input should be greater than or equal to 1",
            id="negative-length",
        ),
        pytest.param(
            MINIMAL.replace("output_tokens = 4", 'output_tokens = { dist = "uniform", min = -1, max = 4 }'),
            9,
            "scenarios[0].output_tokens.min",
            "Input should be greater than or equal to 1",
            id="negative-min",
        ),
        pytest.param(
            MINIMAL.replace("input_tokens = 8", 'input_tokens = { dist = "uniform", min = 9, max = 4 }'),
            8,
            "scenarios[0].input_tokens",
            "min (9) is larger than max (4)",
            id="min-above-max",
        ),
        pytest.param(
            MINIMAL.replace("input_tokens = 8", 'input_tokens = { dist = "fixed" }'),
            8,
            "scenarios[0].input_tokens",
            "a fixed length needs `value`",
            id="fixed-without-value",
        ),
        pytest.param(
            MINIMAL + SECOND_SCENARIO.replace('"b"', '"a"'),
            12,  # the second `name = "a"`
            "scenarios[1].name",
            "scenario name 'a' is used twice",
            id="duplicate-name",
        ),
        pytest.param(
            "percentiles = [50, 100]\n" + MINIMAL,
            1,
            "percentiles[1]",
            "percentile 100 is outside (0, 100)",
            id="percentile-100",
        ),
        pytest.param(
            "percentiles = [0, 50]\n" + MINIMAL,
            1,
            "percentiles[0]",
            "percentile 0 is outside (0, 100)",
            id="percentile-0",
        ),
        pytest.param(
            MINIMAL.replace("batch_size = 2", 'batch_size = "two"'),
            7,
            "scenarios[0].batch_size",
            "Input should be a valid integer, unable to parse string as an integer",
            id="wrong-type",
        ),
        pytest.param(
            MINIMAL + SECOND_SCENARIO + "warmup_requests = -1\n",
            17,  # 9 lines of MINIMAL, a blank line, then the second scenario's 7 lines
            "scenarios[1].warmup_requests",
            "Input should be greater than or equal to 0",
            id="second-scenario",
        ),
        pytest.param('name = "t"\n', None, "scenarios", "required key is missing", id="no-scenarios"),
    ],
)
def test_errors_name_path_line_and_field(text: str, line: int | None, field: str, message: str) -> None:
    error = parse_error(text)
    assert (error.path, error.line, error.field, error.message) == ("suites/bad.toml", line, field, message)


def test_error_one_line_form() -> None:
    error = parse_error(MINIMAL.replace("batch_size = 2", "batch_size = 0"))
    assert str(error) == (
        "suites/bad.toml:7: scenarios[0].batch_size: Input should be greater than or equal to 1"
    )


# ------------------------------------------------------------------------------- finding and loading


def test_unknown_suite_name_lists_the_bundled_suites() -> None:
    with pytest.raises(UserError) as caught:
        find_suite("no-such-suite")
    error = caught.value
    assert (error.path, error.line, error.field) == (None, None, "suite")
    bundled = ", ".join(available_suites())
    assert error.message == f"unknown suite 'no-such-suite'; bundled suites: {bundled}"


def test_missing_toml_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(UserError) as caught:
        load_suite(str(missing))
    assert (caught.value.path, caught.value.field, caught.value.message) == (
        str(missing),
        "suite",
        "no such suite file",
    )


def test_directory_is_not_a_suite(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        find_suite(str(tmp_path))
    assert (caught.value.path, caught.value.field, caught.value.message) == (
        str(tmp_path),
        "suite",
        "no such suite file",
    )


def test_bundled_name_resolves_to_its_file() -> None:
    assert find_suite("smoke") == available_suites()["smoke"]


def test_load_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(MINIMAL.replace('name = "mini"\n', ""), encoding="utf-8")
    suite = load_suite(str(path))
    assert (suite.name, suite.path, suite.scenarios[0].name) == ("mine", str(path), "a")
    assert find_suite(str(path)) == path


def test_errors_in_a_file_name_that_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(MINIMAL.replace("batch_size = 2", "batch_size = 0"), encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_suite(str(path))
    error = caught.value
    assert (error.path, error.line, error.field) == (str(path), 7, "scenarios[0].batch_size")


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(UserError) as caught:
        load_suite(str(path))
    assert caught.value.path == str(path)
    assert caught.value.message.startswith("cannot read suite: ")
