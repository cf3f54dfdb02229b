"""Fixtures for the economics tests; the hand-built objects live in ``economics_helpers``."""

from __future__ import annotations

import pytest
from economics_helpers import h100, toy_gpu, toy_mac, toy_model, toy_moe

from atomabench.economics.catalogue import Catalogue
from atomabench.records import HardwareProfile


@pytest.fixture
def profiles() -> dict[str, HardwareProfile]:
    return {p.id: p for p in (h100(), toy_gpu(), toy_mac())}


@pytest.fixture
def catalogue() -> Catalogue:
    return Catalogue(models=(toy_model(), toy_moe()))
