"""The manifest's later columns: an older manifest keeps loading, and re-sends are found by
digest within the window, never against the slice a re-run replaces."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, fields
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from lake_assets.storage.manifest import SCHEMA, Manifest, ManifestRow

NOW = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
OLD_COLUMNS = [f.name for f in SCHEMA][: SCHEMA.get_field_index("committed_at") + 1]


def row(path: str, sha256: str, *, day: str = "2026-11-20", facility: str = "FAC00001",
        resent_of: str | None = None, batch: str = "b1") -> ManifestRow:
    return ManifestRow(
        path=path, size=10, sha256=sha256, feed="lab_results", facility=facility,
        arrival_date=day, batch_id=batch, status="resent" if resent_of else "loaded", rows=1,
        bad_rows=0, rows_by_table="{}", reason=None, message=None, ingested_at=NOW,
        committed_at=NOW, members_loaded=1, members_skipped=0, skipped_members="[]",
        members_quarantined=0, schema_drift=None, resent_of=resent_of,
    )


def test_an_older_manifest_gains_the_new_columns_and_still_reads(tmp_path: Path) -> None:
    uri = str(tmp_path / "manifest")
    old = {k: v for k, v in asdict(row("old.zip", "a" * 64)).items() if k in OLD_COLUMNS}
    write_deltalake(uri, pa.Table.from_pylist([old], schema=pa.schema(
        [SCHEMA.field(name) for name in OLD_COLUMNS])), partition_by=["feed"])
    manifest = Manifest(uri)
    assert manifest.rows().column_names == SCHEMA.names  # missing columns read as nulls
    assert manifest.digests("lab_results", since=dt.date(2026, 11, 1)) == {"a" * 64: "old.zip"}

    assert manifest.record("lab_results", "b2", [row("new.zip", "b" * 64, batch="b2")])

    found = {r["path"]: r for r in manifest.rows().to_pylist()}
    assert found["old.zip"]["members_loaded"] is None
    assert found["new.zip"]["members_loaded"] == 1
    assert [f.name for f in fields(ManifestRow)] == SCHEMA.names


def test_digests_skip_resends_older_days_and_the_replaced_slice(tmp_path: Path) -> None:
    manifest = Manifest(str(tmp_path / "manifest"))
    manifest.record("lab_results", "b1", [
        row("a.zip", "1" * 64, day="2026-11-19"),
        row("a-again.zip", "1" * 64, resent_of="a.zip"),
        row("b.zip", "2" * 64),
        row("c.zip", "3" * 64, facility="FAC00002"),
        row("old.zip", "4" * 64, day="2026-09-01"),
    ])
    since = dt.date(2026, 10, 21)
    assert manifest.digests("lab_results", since=since) == {
        "1" * 64: "a.zip", "2" * 64: "b.zip", "3" * 64: "c.zip"}
    replaced = manifest.digests("lab_results", since=since,
                                replaced=("2026-11-20", ["FAC00001"]))
    assert replaced == {"1" * 64: "a.zip", "3" * 64: "c.zip"}
    assert manifest.digests("other_feed", since=since) == {}
