"""Rewards: each epoch's emissions and fees split among nodes by verified goodput.

The rules, all parameters in ``rewards.toml``:

- A node's weighted work is ``work × class value × tier weight × uptime weight × verification
  weight``: work is verified goodput (compute units, 1 unit = 1 token as in Atoma); the class value
  converts a class's units into a common measure (1 by default); the tier weight comes from the
  node's determinism tier (A, B, fail); uptime weighs as ``uptime ** exponent`` (0 below a floor);
  a node that failed verification this epoch keeps only ``failed_verification_weight`` of its work.
- Work is only comparable within an echelon (same class and GPU count, as in Atoma), so the pools
  are first split among echelons in proportion to their weighted work, then among each echelon's
  nodes in proportion to theirs. Both steps are proportional, so a node's share is its weighted work
  over the epoch's total; the code computes it in that closed form, in a way that is exactly
  monotone in floating point (``1 / (1 + others / own)``).
- A node that failed verification is slashed ``slash_fraction`` of its collateral; the slashed
  amount's ``honest_share_of_slash`` goes to the nodes that passed verification (in proportion to
  their weighted work), the rest is burned (Atoma's rule).
- Emission and fee pools are split by the same shares and reported separately (emissions are in
  the network's token, fees in USD).

Properties that follow, tested with hypothesis: the shares sum to each pool whenever some node has
weighted work; more verified work never earns less; splitting a node into two halves (half the work
and collateral each, same class) earns no more than the whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, field_validator

from atomabench.economics.answer import Answer
from atomabench.economics.capacity import CapacityParams, Census, census_capacity
from atomabench.economics.catalogue import Catalogue
from atomabench.economics.params import Loaded, Params, dotted_loc, load, read_toml
from atomabench.errors import UserError
from atomabench.records import HardwareProfile


class CensusEpochParams(Params):
    """How an epoch is synthesised from a census when no nodes file is given."""

    reference_model: str
    epoch_hours: float = Field(gt=0)
    utilisation: float = Field(ge=0, le=1)
    tier: str
    uptime: float = Field(ge=0, le=1)
    fee_usd_per_million_tokens: float = Field(ge=0)
    collateral: float = Field(ge=0)


class RewardsParams(Params):
    emission_per_epoch: float = Field(ge=0)
    emission_halving_epochs: int = Field(ge=0)
    protocol_fee_share: float = Field(ge=0, le=1)
    tier_weights: dict[str, float]
    uptime_exponent: float = Field(ge=0)
    min_uptime: float = Field(ge=0, le=1)
    failed_verification_weight: float = Field(ge=0, le=1)
    slash_fraction: float = Field(ge=0, le=1)
    honest_share_of_slash: float = Field(ge=0, le=1)
    class_value: dict[str, float]
    census: CensusEpochParams

    @field_validator("tier_weights", "class_value")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for key, weight in value.items():
            if not weight >= 0:
                raise ValueError(f"{key} must be ≥ 0")
        return value

    @field_validator("class_value")
    @classmethod
    def _has_default(cls, value: dict[str, float]) -> dict[str, float]:
        if "default" not in value:
            raise ValueError("needs a 'default' entry for classes not listed")
        return value


def load_rewards_params(path: str | Path | None = None) -> Loaded[RewardsParams]:
    return load(RewardsParams, "rewards.toml", path)


NODE_COLUMNS = ("node_id", "hardware_class", "gpu_count", "work", "tier", "uptime", "verified")
OPTIONAL_COLUMNS = {"epoch": 0, "fees": 0.0, "collateral": 0.0}


class NodeEpoch(Params):
    """One node's record for one epoch, as a nodes file gives it."""

    node_id: str
    hardware_class: str
    gpu_count: int = Field(ge=1)
    work: float = Field(ge=0)
    tier: str
    uptime: float = Field(ge=0, le=1)
    verified: bool
    epoch: int = Field(default=0, ge=0)
    fees: float = Field(default=0.0, ge=0)
    collateral: float = Field(default=0.0, ge=0)


class NodesFile(Params):
    nodes: tuple[NodeEpoch, ...]


def load_nodes(path: str | Path) -> pd.DataFrame:
    """A nodes file (TOML ``[[nodes]]`` or CSV with the same columns) as a validated DataFrame."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        try:
            frame = pd.read_csv(path)
        except FileNotFoundError:
            raise UserError("file not found", path=path) from None
        nodes = []
        for row, record in enumerate(frame.to_dict(orient="records")):
            try:
                nodes.append(NodeEpoch.model_validate(record))
            except ValidationError as exc:
                error = exc.errors()[0]
                # Line 1 is the header, so data row 0 is on line 2.
                raise UserError(
                    error["msg"], path=path, line=row + 2, field=dotted_loc(error["loc"])
                ) from None
        return pd.DataFrame([n.model_dump() for n in nodes])
    sourced = read_toml(path)
    try:
        parsed = NodesFile.model_validate(sourced.data)
    except ValidationError as exc:
        error = exc.errors()[0]
        dotted = dotted_loc(error["loc"])
        raise UserError(error["msg"], path=path, line=sourced.line_of(dotted), field=dotted) from None
    return pd.DataFrame([n.model_dump() for n in parsed.nodes])


@dataclass(frozen=True)
class RewardsResult:
    """Per node and per epoch tables of one reward computation; per echelon on first use."""

    nodes: pd.DataFrame
    epochs: pd.DataFrame

    @cached_property
    def echelons(self) -> pd.DataFrame:
        """Rewards summed per epoch and echelon (same class and GPU count)."""
        return _echelon_table(self.nodes)


def monotone_shares(weights: np.ndarray) -> np.ndarray:
    """wᵢ / Σw, computed as 1 / (1 + others / wᵢ) with ``others`` summed without wᵢ.

    In floating point this is exactly non-decreasing in wᵢ when the other weights stay fixed, which
    the naive wᵢ / Σw is not guaranteed to be.
    """
    weights = np.asarray(weights, dtype=float)
    if weights.size == 0:
        return weights
    before = np.concatenate(([0.0], np.cumsum(weights)[:-1]))
    after = np.concatenate((np.cumsum(weights[::-1])[::-1][1:], [0.0]))
    others = before + after
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shares = np.where(weights > 0, 1.0 / (1.0 + others / weights), 0.0)
    return shares


def emission_for_epoch(epoch: int, params: RewardsParams) -> float:
    """Emission of ``epoch``, halved every ``emission_halving_epochs`` epochs when that is set."""
    if params.emission_halving_epochs == 0:
        return params.emission_per_epoch
    return params.emission_per_epoch * 0.5 ** (epoch // params.emission_halving_epochs)


def node_weights(nodes: pd.DataFrame, params: RewardsParams) -> pd.DataFrame:
    """The factors behind each node's weighted work, as columns (for the table and for tests)."""
    tiers = nodes["tier"].astype(str).to_numpy()
    unknown = sorted(set(tiers) - set(params.tier_weights))
    if unknown:
        raise UserError(
            f"unknown tier {unknown[0]!r}; tier_weights has {', '.join(params.tier_weights)}", field="tier"
        )
    uptime = nodes["uptime"].to_numpy(dtype=float)
    verified = nodes["verified"].to_numpy(dtype=bool)
    default_value = params.class_value["default"]
    class_value = np.array([params.class_value.get(str(c), default_value) for c in nodes["hardware_class"]])
    tier_weight = np.array([params.tier_weights[t] for t in tiers], dtype=float)
    with np.errstate(under="ignore"):
        uptime_weight = np.where(uptime >= params.min_uptime, uptime**params.uptime_exponent, 0.0)
    verification_weight = np.where(verified, 1.0, params.failed_verification_weight)
    weighted = (
        nodes["work"].to_numpy(dtype=float) * class_value * tier_weight * uptime_weight * verification_weight
    )
    return pd.DataFrame(
        {
            "class_value": class_value,
            "tier_weight": tier_weight,
            "uptime_weight": uptime_weight,
            "verification_weight": verification_weight,
            "weighted_work": weighted,
        },
        index=nodes.index,
    )


def split_rewards(nodes: pd.DataFrame, params: RewardsParams) -> RewardsResult:
    """Split every epoch's emissions (plus redistributed slashes) and fees among ``nodes``."""
    missing = [c for c in NODE_COLUMNS if c not in nodes.columns]
    if missing:
        raise UserError(f"nodes table lacks column(s): {', '.join(missing)}", field=missing[0])
    nodes = nodes.reset_index(drop=True)
    nodes = nodes.assign(**{c: d for c, d in OPTIONAL_COLUMNS.items() if c not in nodes.columns})
    factors = node_weights(nodes, params)
    weights = factors["weighted_work"].to_numpy()
    verified = nodes["verified"].to_numpy(dtype=bool)
    slashed = np.where(verified, 0.0, nodes["collateral"].to_numpy(dtype=float) * params.slash_fraction)
    fees = nodes["fees"].to_numpy(dtype=float)
    epochs = nodes["epoch"].to_numpy(dtype=int)
    shares = np.zeros(len(nodes))
    emission_reward = np.zeros(len(nodes))
    fee_reward = np.zeros(len(nodes))
    epoch_rows = []
    for epoch in np.unique(epochs):
        rows = epochs == epoch
        epoch_shares = monotone_shares(weights[rows])
        honest_shares = monotone_shares(np.where(verified[rows], weights[rows], 0.0))
        emission = emission_for_epoch(int(epoch), params)
        epoch_slashed = float(slashed[rows].sum())
        slash_to_honest = params.honest_share_of_slash * epoch_slashed
        epoch_fees = float(fees[rows].sum())
        fee_pool = epoch_fees * (1.0 - params.protocol_fee_share)
        shares[rows] = epoch_shares
        emission_reward[rows] = epoch_shares * emission + honest_shares * slash_to_honest
        fee_reward[rows] = epoch_shares * fee_pool
        any_work = bool(weights[rows].sum() > 0)
        any_honest_work = bool((weights[rows] * verified[rows]).sum() > 0)
        epoch_rows.append(
            {
                "epoch": int(epoch),
                "nodes": int(rows.sum()),
                "emission": emission,
                "slashed": epoch_slashed,
                "slash_to_honest": slash_to_honest,
                "slash_burned": epoch_slashed - slash_to_honest,
                "emission_pool": emission + slash_to_honest,
                "fees": epoch_fees,
                "protocol_fees": epoch_fees - fee_pool,
                "fee_pool": fee_pool,
                "emission_distributed": float(emission_reward[rows].sum()),
                "fees_distributed": float(fee_reward[rows].sum()),
                "undistributed_emission": (0.0 if any_work else emission)
                + (0.0 if any_honest_work else slash_to_honest),
                "undistributed_fees": 0.0 if any_work else fee_pool,
            }
        )
    echelon = [f"{c}×{int(g)}" for c, g in zip(nodes["hardware_class"], nodes["gpu_count"], strict=True)]
    node_table = pd.concat([nodes, factors], axis=1).assign(
        echelon=echelon,
        slashed=slashed,
        share=shares,
        emission_reward=emission_reward,
        fee_reward=fee_reward,
        net_emission=emission_reward - slashed,
    )
    return RewardsResult(nodes=node_table, epochs=pd.DataFrame(epoch_rows))


def _echelon_table(node_table: pd.DataFrame) -> pd.DataFrame:
    if node_table.empty:
        return pd.DataFrame()
    grouped = node_table.groupby(["epoch", "echelon"], sort=True)
    sums = grouped[["work", "weighted_work", "share", "emission_reward", "fee_reward"]].sum()
    firsts = grouped[["hardware_class", "gpu_count"]].first()
    table = firsts.join(sums).assign(nodes=grouped.size()).reset_index()
    columns = ["epoch", "echelon", "hardware_class", "gpu_count", "nodes", "work", "weighted_work", "share"]
    table = table[[*columns, "emission_reward", "fee_reward"]]
    table["emission_per_node"] = table["emission_reward"] / table["nodes"]
    return table


def nodes_from_census(breakdown: pd.DataFrame, model_id: str, census: CensusEpochParams) -> pd.DataFrame:
    """One synthetic epoch: every census node serves ``model_id`` at its tokens/s at the SLO.

    ``breakdown`` is :func:`atomabench.economics.capacity.census_capacity`'s table; work = tokens/s ×
    utilisation × epoch length, fees = work at the fee per million tokens; every node has the
    configured tier, uptime and collateral, and passed verification.
    """
    rows = breakdown[breakdown["model"] == model_id]
    seconds = census.epoch_hours * 3600
    nodes = []
    for entry in rows.itertuples():
        work = float(entry.tokens_per_s_per_node) * census.utilisation * seconds
        for index in range(int(entry.nodes)):
            nodes.append(
                {
                    "node_id": f"{entry.profile_id}x{entry.node_gpus}-{index + 1:03d}",
                    "hardware_class": entry.profile_id,
                    "gpu_count": int(entry.node_gpus),
                    "work": work,
                    "tier": census.tier,
                    "uptime": census.uptime,
                    "verified": True,
                    "epoch": 0,
                    "fees": work / 1e6 * census.fee_usd_per_million_tokens,
                    "collateral": census.collateral,
                    "estimated": bool(entry.estimated),
                }
            )
    return pd.DataFrame(nodes, columns=[*NODE_COLUMNS, *OPTIONAL_COLUMNS, "estimated"])


def check_conservation(result: RewardsResult, rel_tol: float = 1e-9) -> bool:
    """Whether, every epoch, rewards plus the undistributed remainder equal each pool."""
    for row in result.epochs.itertuples():
        if not math.isclose(
            row.emission_distributed + row.undistributed_emission,
            row.emission_pool,
            rel_tol=rel_tol,
            abs_tol=1e-12,
        ):
            return False
        if not math.isclose(
            row.fees_distributed + row.undistributed_fees, row.fee_pool, rel_tol=rel_tol, abs_tol=1e-12
        ):
            return False
    return True


def census_epoch(
    profiles: dict[str, HardwareProfile],
    catalogue: Catalogue,
    capacity_params: CapacityParams,
    census: Census,
    params: RewardsParams,
    results: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """A synthetic epoch from the census: each node's work is its tokens/s at the SLO (measured where
    stored runs exist, else the roofline) for ``census.reference_model``."""
    model = catalogue.find(params.census.reference_model)
    if model is None:
        known = ", ".join(m.id for m in catalogue.models)
        raise UserError(
            f"unknown model {params.census.reference_model!r}; the catalogue has: {known}",
            field="census.reference_model",
        )
    breakdown = census_capacity(catalogue, profiles, census, capacity_params, results)
    return nodes_from_census(breakdown, model.id, params.census)


def rewards_answer(nodes: pd.DataFrame, params: Loaded[RewardsParams], source: str) -> Answer:
    """:func:`split_rewards` with its assumptions, as the ``rewards`` command shows it."""
    result = split_rewards(nodes, params.params)
    estimated = bool(nodes["estimated"].any()) if "estimated" in nodes.columns else False
    notes = [f"nodes: {source}"]
    if estimated:
        notes.append("work of some nodes is a roofline estimate (no stored runs for their class)")
    if result.epochs.empty:
        notes.append("no nodes: nothing to split")
    elif (result.epochs["undistributed_emission"] > 0).any():
        notes.append("some epochs had no weighted work: their pools stay undistributed")
    node_columns = [
        "epoch",
        "node_id",
        "echelon",
        "work",
        "tier",
        "uptime",
        "verified",
        "weighted_work",
        "share",
        "emission_reward",
        "fee_reward",
        "slashed",
        "net_emission",
    ]
    display = {
        "epochs": [
            "epoch",
            "nodes",
            "emission",
            "slashed",
            "emission_pool",
            "fee_pool",
            "emission_distributed",
            "fees_distributed",
        ],
        "echelons": [
            "epoch",
            "echelon",
            "nodes",
            "work",
            "weighted_work",
            "share",
            "emission_reward",
            "fee_reward",
            "emission_per_node",
        ],
    }
    if len(result.nodes) <= 40:
        display["nodes"] = node_columns
    return Answer(
        command="rewards",
        tables={"epochs": result.epochs, "echelons": result.echelons, "nodes": result.nodes},
        assumptions=params.assumptions(),
        estimated=estimated,
        notes=tuple(notes),
        display=display,
    )
