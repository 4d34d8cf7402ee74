"""End-to-end fixtures: a real, temporary Dagster instance per test."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from tests.conftest import project_instance


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance in a temporary directory, stored as dagster.yaml says."""
    with project_instance() as real_instance:
        yield real_instance
