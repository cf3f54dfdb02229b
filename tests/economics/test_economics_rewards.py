"""Rewards: a hand-worked epoch, and the properties the rules must have, checked with hypothesis."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from atomabench.economics.params import default_path
from atomabench.economics.rewards import (
    check_conservation,
    load_nodes,
    load_rewards_params,
    monotone_shares,
    split_rewards,
)
from atomabench.errors import UserError

RULES = load_rewards_params().params


def rules(**updates: object):
    return load_rewards_params().with_values(updates).params


def test_the_bundled_example_epoch_by_hand() -> None:
    nodes = load_nodes(default_path("rewards_example_epoch.toml"))
    result = split_rewards(nodes, RULES)
    by_id = result.nodes.set_index("node_id")
    # Weighted work: h100-a 4e6 · A 1.0 · uptime 1 = 4e6; h100-b 2e6 · B 0.9 · uptime 0.5 = 0.9e6;
    # 4090-a and 4090-b 1e6 each; 4090-cheat failed verification → 0; mac-fail is tier "fail" → 0.
    assert list(by_id["weighted_work"]) == pytest.approx([4e6, 0.9e6, 1e6, 1e6, 0, 0])
    # 4090-cheat is slashed 10% of 500 = 50; 20% of that (10) goes to the honest nodes.
    # Emission pool 1,000,000 + 10; total weighted work 6.9e6.
    epoch = result.epochs.iloc[0]
    assert (epoch["slashed"], epoch["slash_to_honest"], epoch["slash_burned"]) == pytest.approx((50, 10, 40))
    assert epoch["emission_pool"] == pytest.approx(1_000_010)
    assert by_id.loc["h100-a", "emission_reward"] == pytest.approx(1_000_010 * 4 / 6.9)  # 579,715.94
    assert by_id.loc["h100-b", "emission_reward"] == pytest.approx(1_000_010 * 0.9 / 6.9)  # 130,436.09
    assert by_id.loc["4090-a", "emission_reward"] == pytest.approx(1_000_010 / 6.9)  # 144,928.99
    assert by_id.loc["4090-cheat", "emission_reward"] == 0 and by_id.loc["4090-cheat", "net_emission"] == -50
    assert by_id.loc["mac-fail", "emission_reward"] == 0
    # Fees: 2.10 USD in all, split by the same shares: h100-a 2.1 × 4 / 6.9 = 1.2174.
    assert by_id.loc["h100-a", "fee_reward"] == pytest.approx(2.1 * 4 / 6.9)
    # Echelons: h100-sxm×1 gets (4 + 0.9) / 6.9 of the pool, rtx-4090×1 gets 2 / 6.9.
    echelons = result.echelons.set_index("echelon")
    assert echelons.loc["h100-sxm×1", "emission_reward"] == pytest.approx(1_000_010 * 4.9 / 6.9)
    assert echelons.loc["rtx-4090×1", "emission_reward"] == pytest.approx(1_000_010 * 2 / 6.9)
    assert echelons.loc["rtx-4090×1", "nodes"] == 3
    assert check_conservation(result)


def test_halving_and_protocol_fee() -> None:
    nodes = pd.DataFrame(
        [
            {
                "node_id": "a",
                "hardware_class": "x",
                "gpu_count": 1,
                "work": 1.0,
                "tier": "A",
                "uptime": 1.0,
                "verified": True,
                "epoch": e,
                "fees": 10.0,
            }
            for e in (0, 1, 2)
        ]
    )
    result = split_rewards(nodes, rules(emission_halving_epochs=2, protocol_fee_share=0.25))
    # Epochs 0, 1 emit 1e6; epoch 2 emits 5e5. Fees 10 × (1 − 0.25) = 7.5 each epoch.
    assert list(result.epochs["emission"]) == [1e6, 1e6, 5e5]
    assert list(result.nodes["fee_reward"]) == [7.5, 7.5, 7.5]


def test_no_work_leaves_the_pool_undistributed() -> None:
    nodes = pd.DataFrame(
        [
            {
                "node_id": "a",
                "hardware_class": "x",
                "gpu_count": 1,
                "work": 0.0,
                "tier": "A",
                "uptime": 1.0,
                "verified": True,
                "fees": 3.0,
            }
        ]
    )
    epoch = split_rewards(nodes, RULES).epochs.iloc[0]
    assert epoch["emission_distributed"] == 0 and epoch["undistributed_emission"] == 1e6
    assert epoch["undistributed_fees"] == 3.0


def test_unknown_tier_and_missing_column_are_user_errors() -> None:
    node = {
        "node_id": "a",
        "hardware_class": "x",
        "gpu_count": 1,
        "work": 1.0,
        "tier": "C",
        "uptime": 1.0,
        "verified": True,
    }
    with pytest.raises(UserError, match="unknown tier 'C'"):
        split_rewards(pd.DataFrame([node]), RULES)
    with pytest.raises(UserError) as caught:
        split_rewards(pd.DataFrame([node]).drop(columns="uptime"), RULES)
    assert caught.value.field == "uptime"


def test_nodes_file_errors_name_line_and_field(tmp_path) -> None:
    path = tmp_path / "nodes.toml"
    path.write_text(
        '[[nodes]]\nnode_id = "a"\nhardware_class = "x"\ngpu_count = 1\nwork = -5\n'
        'tier = "A"\nuptime = 1.0\nverified = true\n'
    )
    with pytest.raises(UserError) as caught:
        load_nodes(path)
    assert (caught.value.line, caught.value.field) == (5, "nodes.0.work")
    csv = tmp_path / "nodes.csv"
    csv.write_text(
        "node_id,hardware_class,gpu_count,work,tier,uptime,verified\na,x,1,5,A,1.0,true\nb,x,1,5,A,1.5,true\n"
    )
    with pytest.raises(UserError) as caught:
        load_nodes(csv)
    assert (caught.value.line, caught.value.field) == (3, "uptime")


# --------------------------------------------------------------------------------------------------
# Properties

node_strategy = st.fixed_dictionaries(
    {
        "hardware_class": st.sampled_from(["h100-sxm", "rtx-4090", "m3-max"]),
        "gpu_count": st.sampled_from([1, 2, 8]),
        "work": st.one_of(st.just(0.0), st.floats(min_value=1.0, max_value=1e12)),
        "tier": st.sampled_from(["A", "B", "fail"]),
        "uptime": st.floats(min_value=0.0, max_value=1.0),
        "verified": st.booleans(),
        "fees": st.floats(min_value=0.0, max_value=1e4),
        "collateral": st.floats(min_value=0.0, max_value=1e6),
    }
)
nodes_strategy = st.lists(node_strategy, min_size=1, max_size=12)
rules_strategy = st.builds(
    lambda b, fw, exponent, floor, value: rules(
        **{
            "tier_weights.B": b,
            "failed_verification_weight": fw,
            "uptime_exponent": exponent,
            "min_uptime": floor,
            "class_value.rtx-4090": value,
        }
    ),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 3.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 4.0),
)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frame(nodes: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{**n, "node_id": f"n{i}"} for i, n in enumerate(nodes)])


@FAST
@given(nodes=nodes_strategy, params=rules_strategy)
def test_shares_sum_to_the_pool(nodes: list[dict], params) -> None:
    result = split_rewards(frame(nodes), params)
    epoch = result.epochs.iloc[0]
    assert check_conservation(result)
    if result.nodes["weighted_work"].sum() > 0:
        assert epoch["undistributed_fees"] == 0
        assert result.nodes["emission_reward"].sum() == pytest.approx(
            epoch["emission_pool"] - epoch["undistributed_emission"]
        )
    assert (result.nodes["emission_reward"] >= 0).all() and (result.nodes["fee_reward"] >= 0).all()


@FAST
@given(nodes=nodes_strategy, params=rules_strategy, index=st.integers(0, 11), extra=st.floats(0.0, 1e12))
def test_more_verified_work_never_earns_less(nodes: list[dict], params, index: int, extra: float) -> None:
    index %= len(nodes)
    before = split_rewards(frame(nodes), params).nodes
    more = [dict(n) for n in nodes]
    more[index]["work"] += extra
    after = split_rewards(frame(more), params).nodes
    assert after["emission_reward"].iloc[index] >= before["emission_reward"].iloc[index]
    assert after["fee_reward"].iloc[index] >= before["fee_reward"].iloc[index]


@FAST
@given(nodes=nodes_strategy, params=rules_strategy, index=st.integers(0, 11))
def test_a_node_that_fails_verification_earns_only_what_the_rules_allow(
    nodes: list[dict], params, index: int
) -> None:
    index %= len(nodes)
    honest = [dict(n) for n in nodes]
    honest[index]["verified"] = True
    failed = [dict(n) for n in nodes]
    failed[index]["verified"] = False
    honest_row = split_rewards(frame(honest), params).nodes.iloc[index]
    failed_row = split_rewards(frame(failed), params).nodes.iloc[index]
    # Never more than it would have earned honestly, and it loses its slashed collateral.
    assert failed_row["emission_reward"] <= honest_row["emission_reward"] * (1 + 1e-12)
    assert failed_row["fee_reward"] <= honest_row["fee_reward"] * (1 + 1e-12)
    assert failed_row["slashed"] == pytest.approx(nodes[index]["collateral"] * params.slash_fraction)
    # Under the default rules (failed work weighs 0) it earns nothing at all.
    default_rules = params.model_copy(update={"failed_verification_weight": 0.0})
    strict = split_rewards(frame(failed), default_rules).nodes.iloc[index]
    assert strict["emission_reward"] == 0 and strict["fee_reward"] == 0
    assert strict["net_emission"] == pytest.approx(-nodes[index]["collateral"] * params.slash_fraction)


@FAST
@given(nodes=nodes_strategy, params=rules_strategy, index=st.integers(0, 11), halve_gpus=st.booleans())
def test_splitting_a_node_in_two_halves_earns_no_more(
    nodes: list[dict], params, index: int, halve_gpus: bool
) -> None:
    index %= len(nodes)
    whole = split_rewards(frame(nodes), params).nodes.iloc[index]
    node = nodes[index]
    gpus = max(1, node["gpu_count"] // 2) if halve_gpus else node["gpu_count"]
    half = {
        **node,
        "work": node["work"] / 2,
        "fees": node["fees"] / 2,
        "collateral": node["collateral"] / 2,
        "gpu_count": gpus,
    }
    assume(node["work"] / 2 * 2 == node["work"])
    split = split_rewards(frame([*nodes[:index], half, half, *nodes[index + 1 :]]), params).nodes
    halves = split.iloc[[index, index + 1]]
    tolerance = 1e-9 * max(1.0, whole["emission_reward"])
    assert halves["emission_reward"].sum() <= whole["emission_reward"] + tolerance
    assert halves["fee_reward"].sum() <= whole["fee_reward"] + 1e-9 * max(1.0, whole["fee_reward"])
    assert halves["slashed"].sum() == pytest.approx(whole["slashed"])


@FAST
@given(
    weights=st.lists(st.floats(0.0, 1e12), min_size=1, max_size=20),
    index=st.integers(0, 19),
    extra=st.floats(0.0, 1e12),
)
def test_monotone_shares_are_exactly_monotone(weights: list[float], index: int, extra: float) -> None:
    index %= len(weights)
    before = monotone_shares(pd.Series(weights).to_numpy())
    weights[index] += extra
    after = monotone_shares(pd.Series(weights).to_numpy())
    assert after[index] >= before[index]
