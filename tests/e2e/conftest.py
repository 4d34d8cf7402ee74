"""End-to-end fixtures: a real, temporary Dagster instance per test."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance in a temporary directory."""
    with dg.instance_for_test() as real_instance:
        yield real_instance
