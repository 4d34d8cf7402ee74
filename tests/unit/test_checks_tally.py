"""Check tallies: merge by summing, stay bounded, travel as JSON, mask PHI samples."""

from __future__ import annotations

import pytest

from lake_assets.checks import MASK, SAMPLE_SIZE, CheckTally
from lake_assets.checks.tally import MAX_FACILITIES, sample_text


def test_merge_sums_counts_and_caps_samples_and_facilities() -> None:
    left = CheckTally(
        rows=10, failing={"a.allowed": 2}, failing_by_check={"a_valid": 2},
        samples={"a.allowed": ("x", "y")}, facilities={"a_valid": {"FAC1": 2}},
    )
    right = CheckTally(
        rows=5, failing={"a.allowed": 4, "b.range": 1},
        failing_by_check={"a_valid": 4, "b_valid": 1},
        samples={"a.allowed": ("y", "z", "v", "w", "u"), "b.range": ("7",)},
        facilities={"a_valid": {f"FAC{i:02d}": i + 1 for i in range(30)}},
    )

    merged = left.merge(right)

    assert merged.rows == 15
    assert merged.failing == {"a.allowed": 6, "b.range": 1}
    assert merged.failing_by_check == {"a_valid": 6, "b_valid": 1}
    assert merged.samples["a.allowed"] == ("x", "y", "z", "v", "w")
    assert len(merged.samples["a.allowed"]) == SAMPLE_SIZE
    assert len(merged.facilities["a_valid"]) == MAX_FACILITIES
    assert merged.failing_facilities("a_valid")[0] == ("FAC29", 30)
    assert CheckTally.merge_all([left, right]) == merged
    assert CheckTally.merge_all([]) == CheckTally()


def test_json_round_trip() -> None:
    tally = CheckTally(
        rows=3, failing={"k.unique": 1}, failing_by_check={"keys_unique": 1},
        samples={"k.unique": ("a|b",)}, facilities={"keys_unique": {"FAC1": 1}},
    )

    assert CheckTally.from_json(tally.to_json()) == tally


def test_from_json_rejects_other_text() -> None:
    with pytest.raises(ValueError, match="not a check tally"):
        CheckTally.from_json('{"rows": 1}')


def test_sample_text_masks_phi_and_bounds_length() -> None:
    assert sample_text("Doe, Jane", phi=True) == MASK
    assert sample_text(None, phi=True) == "null"
    assert sample_text("x" * 100, phi=False) == "x" * 39 + "…"
    assert sample_text(12.5, phi=False) == "12.5"
