"""Load-time regression: 50 feeds x 10 tables of generated metadata load in a cold process within
a generous bound (the strict goals live in `python -m benchmarks.definitions_scale`)."""

from __future__ import annotations

import pytest

from benchmarks.definitions_scale import run_size

pytestmark = pytest.mark.slow

# About 8 s on an idle 2-core machine; the bound leaves room for a loaded CI runner.
BOUND_S = 60.0


def test_fifty_feeds_of_ten_tables_load_within_the_bound() -> None:
    found = run_size(50, 10)
    assert found["assets"] >= 50 * 10 * 2  # a bronze and a silver asset per table
    assert found["total_s"] < BOUND_S, found["phases_s"]
