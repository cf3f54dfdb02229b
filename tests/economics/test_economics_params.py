"""Parameter files: defaults with sources, user overrides, sweeps, and errors naming file, line, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from atomabench.economics.capacity import load_capacity_params
from atomabench.economics.catalogue import load_catalogue
from atomabench.economics.forecast import load_forecast_params
from atomabench.economics.params import merge, parse_sweep, parse_value, read_toml
from atomabench.economics.pricing import load_pricing_params
from atomabench.economics.rewards import load_rewards_params
from atomabench.errors import UserError


def test_every_bundled_file_loads_and_every_value_has_a_source() -> None:
    for loaded in (
        load_pricing_params(),
        load_capacity_params(),
        load_rewards_params(),
        load_forecast_params(),
    ):
        table = loaded.assumptions()
        in_file = table[~table["source"].str.startswith("built-in")]
        assert not in_file.empty
        missing = in_file[in_file["source"].str.contains("no source comment")]
        assert missing.empty, missing.to_string()


def test_defaults_carry_the_reference_figures() -> None:
    pricing = load_pricing_params()
    assert pricing.params.blend_input_weight == 3 and pricing.params.blend_output_weight == 1
    assert "Artificial Analysis" in pricing.source_of("blend_input_weight")
    forecast = load_forecast_params().params
    # 60M gas per 12 s block = 5M gas/s; 14 blobs × 131,072 B ÷ 12 s = 152,917.33 B/s.
    assert forecast.chains["ethereum"].gas_per_s == 60_000_000 / 12
    assert forecast.chains["ethereum"].bytes_per_s == pytest.approx(14 * 131072 / 12, abs=0.01)
    assert forecast.chains["solana"].gas_per_s == 60_000_000 / 0.4
    assert load_catalogue().params.get("meta-llama/Llama-3.1-8B-Instruct").id == "llama-3.1-8b"


def test_user_file_overrides_one_value_and_is_named_as_its_source(tmp_path: Path) -> None:
    user = tmp_path / "mine.toml"
    user.write_text("utilisation = 0.7  # our fleet, Q3\n[tco]\npue = 1.1\n")
    loaded = load_pricing_params(user)
    assert loaded.params.utilisation == 0.7
    assert loaded.params.tco.pue == 1.1
    assert loaded.params.tco.life_years == 4  # untouched default
    assert loaded.source_of("utilisation") == f"{user}:1 our fleet, Q3"
    assert loaded.source_of("tco.pue") == f"{user}:3"


def test_bad_value_names_file_line_and_field(tmp_path: Path) -> None:
    user = tmp_path / "bad.toml"
    user.write_text("# comment\n\nutilisation = 2.0\n")
    with pytest.raises(UserError) as caught:
        load_pricing_params(user)
    assert (caught.value.path, caught.value.line, caught.value.field) == (str(user), 3, "utilisation")
    assert "less than or equal to 1" in caught.value.message


def test_unknown_key_in_a_table_is_an_error_with_its_line(tmp_path: Path) -> None:
    user = tmp_path / "typo.toml"
    user.write_text("[tco]\nlife_years = 5\npeu = 1.2\n")
    with pytest.raises(UserError) as caught:
        load_pricing_params(user)
    assert (caught.value.line, caught.value.field) == (3, "tco.peu")


def test_toml_syntax_error_reports_the_line(tmp_path: Path) -> None:
    user = tmp_path / "syntax.toml"
    user.write_text("utilisation = 0.5\nhourly_price = \n")
    with pytest.raises(UserError) as caught:
        load_pricing_params(user)
    assert caught.value.line == 2 and caught.value.path == str(user)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="file not found"):
        load_pricing_params(tmp_path / "nope.toml")


def test_cross_field_error_points_at_the_field(tmp_path: Path) -> None:
    user = tmp_path / "mc.toml"
    user.write_text(
        '[[monte_carlo.uncertain]]\nname = "demand.nonsense"\ndist = "uniform"\nlow = 1\nhigh = 2\n'
    )
    with pytest.raises(UserError) as caught:
        load_forecast_params(user)
    # The user's list replaces the default one, so the bad element is element 0, on line 2.
    assert caught.value.field == "monte_carlo.uncertain.0.name"
    assert caught.value.line == 2


def test_array_tables_are_indexed_for_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text("[[x]]\na = 1  # first\n[[x]]\na = 2  # second\n[x.sub]\nb = 3\n")
    sourced = read_toml(path)
    assert sourced.lines["x.0.a"] == 2 and sourced.comments["x.1.a"] == "second"
    assert sourced.lines["x.1.sub.b"] == 6


def test_sweep_values_are_parsed_as_toml_and_validated() -> None:
    assert parse_sweep("utilisation=0.3, 0.5,0.7") == ("utilisation", [0.3, 0.5, 0.7])
    assert parse_sweep("hourly_price=rent,tco") == ("hourly_price", ["rent", "tco"])
    assert parse_value("true") is True and parse_value("8") == 8
    loaded = load_pricing_params()
    assert loaded.with_values({"tco.pue": 1.5}).params.tco.pue == 1.5
    assert loaded.with_values({"tco.pue": 1.5}).source_of("tco.pue") == "set on the command line"
    with pytest.raises(UserError) as caught:
        loaded.with_values({"utilisation": 0})
    assert caught.value.field == "utilisation"
    with pytest.raises(UserError):
        parse_sweep("utilisation")


def test_merge_replaces_lists_and_merges_tables() -> None:
    assert merge({"a": {"b": 1, "c": 2}, "l": [1, 2]}, {"a": {"c": 3}, "l": [9]}) == {
        "a": {"b": 1, "c": 3},
        "l": [9],
    }
