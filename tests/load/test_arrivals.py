"""Arrival processes: exact constant gaps, Poisson and gamma moments, seeded reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from atomabench.workloads.arrivals import arrival_offsets


def test_no_rate_sends_everything_at_once():
    assert arrival_offsets("poisson", None, 4, np.random.default_rng(0)) == [0.0, 0.0, 0.0, 0.0]


def test_constant_rate_sends_exactly_every_interval():
    assert arrival_offsets("constant", 4.0, 5, np.random.default_rng(0)) == [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize(("process", "burstiness"), [("poisson", 1.0), ("gamma", 0.25), ("gamma", 4.0)])
def test_gaps_have_the_mean_and_spread_of_the_process(process, burstiness):
    offsets = arrival_offsets(process, 10.0, 40_001, np.random.default_rng(7), burstiness=burstiness)
    gaps = np.diff(offsets)
    assert offsets[0] == 0.0 and (gaps >= 0).all()
    assert gaps.mean() == pytest.approx(0.1, rel=0.03)  # mean gap 1/rate
    # gamma(shape k): coefficient of variation 1/sqrt(k); Poisson is k = 1 (CV 1)
    assert gaps.std() / gaps.mean() == pytest.approx(1 / np.sqrt(burstiness), rel=0.05)


def test_the_same_seed_gives_the_same_schedule():
    first = arrival_offsets("gamma", 3.0, 50, np.random.default_rng(1), burstiness=0.5)
    again = arrival_offsets("gamma", 3.0, 50, np.random.default_rng(1), burstiness=0.5)
    other = arrival_offsets("gamma", 3.0, 50, np.random.default_rng(2), burstiness=0.5)
    assert first == again and first != other
