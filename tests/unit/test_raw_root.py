"""Raw PHI layers (bronze, quarantine) can live under their own root, apart from silver and gold."""

from __future__ import annotations

from pathlib import Path

import pytest

from lake_assets.storage.lake import Lake
from lake_assets.storage.manifest import MANIFEST_TABLE


def test_bronze_and_quarantine_resolve_under_the_raw_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("LAKE_BRONZE_ROOT", str(tmp_path / "restricted"))
    lake = Lake()
    assert lake.ref("bronze/adt_events/patients").uri == str(
        tmp_path / "restricted" / "bronze" / "adt_events" / "patients")
    assert lake.ref(["quarantine", "lab_results", "lab_results"]).uri.startswith(
        str(tmp_path / "restricted"))
    assert lake.ref("silver/patients").uri == str(tmp_path / "lake" / "silver" / "patients")
    assert lake.ref(MANIFEST_TABLE).uri.startswith(str(tmp_path / "lake"))


def test_without_a_raw_root_everything_shares_the_lake_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.delenv("LAKE_BRONZE_ROOT", raising=False)
    lake = Lake()
    assert lake.ref("bronze/a/b").uri == str(tmp_path / "lake" / "bronze" / "a" / "b")
    explicit = Lake(bronze_root=str(tmp_path / "raw"))
    assert explicit.ref("bronze/a/b").uri == str(tmp_path / "raw" / "bronze" / "a" / "b")
