"""Cross-check against the simulator: for archives with faults, the ingest core reaches the
simulator's ground truth — archive status and reason, good and bad rows per table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from lake_assets.catalog.loader import load_catalog
from lake_assets.ingest import read_archive
from lake_assets.storage.secrets import get_secret
from tests.conftest import METADATA

simulator = pytest.importorskip("lake_assets.simulate")


def test_ingest_agrees_with_the_simulator_truth(tmp_path: Path) -> None:
    catalog = load_catalog(METADATA)
    options = simulator.SimulationOptions(
        out=str(tmp_path / "landing"),
        truth=str(tmp_path / "truth.jsonl"),
        facilities=4,
        hours=1,
        rate=40,
        faults=0.7,
        seed=5,
        size_scale=0.05,
        start=datetime(2024, 1, 15, tzinfo=UTC),
    )
    simulator.simulate(catalog, options)
    truth = simulator.read_truth(options.truth)
    assert {record.feed for record in truth} == {feed.name for feed in catalog.feeds}
    outcomes = []
    for record in truth:
        feed = catalog.feed(record.feed)
        secret = feed.archive.password_secret
        result = read_archive(
            feed,
            data=(tmp_path / "landing" / record.archive).read_bytes(),
            path=record.archive,
            password=get_secret(secret) if secret else None,
        )
        expected = (record.status, record.reason if record.status == "quarantine" else None)
        if record.status == "quarantine":
            got = ("quarantine", result.reason)
        else:
            got = ("good" if result.status == "loaded" else "quarantine", result.reason)
            rows = {name: t.good.num_rows for name, t in result.tables.items()}
            bad = {name: t.bad.num_rows for name, t in result.tables.items()}
            assert (rows, bad) == (record.rows, record.bad_rows), record.archive
        assert got == expected, f"{record.archive} ({record.fault}): {result.message}"
        outcomes.append((record.status, record.fault))
    statuses = {status for status, _ in outcomes}
    assert statuses == {"good", "quarantine"}
    assert any(status == "good" and fault for status, fault in outcomes)
