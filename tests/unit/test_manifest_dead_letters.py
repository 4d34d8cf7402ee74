"""Dead letters in the ingestion manifest: recorded apart from committed batches, replaced by the
batch's real rows once a replay commits it, listed and replayed from the `lakehouse` command,
and manifests written before the `attempts` column stay readable and writable."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from typer.testing import CliRunner

from lake_assets.cli import app
from lake_assets.storage.lake import Lake
from lake_assets.storage.manifest import SCHEMA, Manifest, ManifestRow

NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)


def row(path: str, batch: str, status: str, attempts: int | None = None) -> ManifestRow:
    return ManifestRow(path=path, size=10, sha256="", feed="lab_results", facility="FAC00001",
                       arrival_date="2026-11-20", batch_id=batch, status=status, rows=0,
                       bad_rows=0, rows_by_table="{}", reason="SecretNotFoundError",
                       message="secret LAB_ZIP_PASSWORD is not set", ingested_at=NOW,
                       committed_at=NOW, attempts=attempts)


def test_a_manifest_without_the_attempts_column_is_read_and_extended(tmp_path: Path) -> None:
    older = pa.schema([f for f in SCHEMA if f.name != "attempts"])
    first = {k: v for k, v in asdict(row("a.zip", "b1", "loaded")).items() if k != "attempts"}
    write_deltalake(str(tmp_path / "m"), pa.Table.from_pylist([first], schema=older),
                    partition_by=["feed"])
    manifest = Manifest(str(tmp_path / "m"))
    assert manifest.rows().column("attempts").to_pylist() == [None]
    assert manifest.record("lab_results", "b2", [row("b.zip", "b2", "loaded", 2)])
    by_path = {r["path"]: r["attempts"] for r in manifest.rows().to_pylist()}
    assert by_path == {"a.zip": None, "b.zip": 2}
    assert manifest.status_counts().to_pylist() == [
        {"feed": "lab_results", "status": "loaded", "archives": 2, "retried": 1}]


def test_dead_letters_are_replayed_and_replaced_by_the_committed_rows(tmp_path: Path) -> None:
    manifest = Manifest(str(tmp_path / "m"))
    dead = [row(p, "b7", "dead_letter", 3) for p in ("a.zip", "b.zip")]
    assert manifest.dead_letter("lab_results", "b7", dead)
    assert not manifest.committed("lab_results", "b7")  # a replay may still commit it
    assert manifest.known("lab_results", ["2026-11-20"], ["a.zip", "c.zip"]) == {"a.zip"}
    assert manifest.request_replay("lab_results", "b8") == 0
    assert manifest.request_replay(batch_id="b7") == 2
    assert set(manifest.outstanding().column("status").to_pylist()) == {"replay"}
    loaded = [replace(r, status="loaded", attempts=4) for r in dead]
    assert manifest.record("lab_results", "b7", loaded)
    assert manifest.outstanding().num_rows == 0
    assert sorted((r["path"], r["status"]) for r in manifest.rows().to_pylist()) == [
        ("a.zip", "loaded"), ("b.zip", "loaded")]
    assert not manifest.dead_letter("lab_results", "b7", dead)  # committed: left alone
    with pytest.raises(ValueError, match="not a feed name or batch id"):
        manifest.request_replay("lab_results' OR '1'='1")


def test_the_command_lists_counts_and_replays_dead_letters(tmp_path: Path) -> None:
    manifest = Lake().manifest()  # $LAKE_ROOT of this test
    manifest.record("lab_results", "b1", [row("ok.zip", "b1", "loaded", 1)])
    manifest.dead_letter("lab_results", "b2", [row("bad.zip", "b2", "dead_letter", 3)])
    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["deadletter", "list", "--json"]).output)
    assert [(r["path"], r["attempts"], r["reason"]) for r in listed] == [
        ("bad.zip", 3, "SecretNotFoundError")]
    counts = json.loads(runner.invoke(app, ["ingestion", "--json"]).output)
    assert {(c["status"], c["archives"]) for c in counts} == {("loaded", 1), ("dead_letter", 1)}
    landed = tmp_path / "lake" / "landing" / "lab_results" / "2026-11-20" / "09" / "FAC00001"
    landed.mkdir(parents=True)
    (landed / "new.zip").write_bytes(b"x")
    day = json.loads(runner.invoke(app, ["ingestion", "--date", "2026-11-20", "--json"]).output)
    assert {"feed": "lab_results", "status": "pending", "archives": 1, "retried": 0} in day
    replayed = runner.invoke(app, ["deadletter", "replay", "--feed", "lab_results"])
    assert replayed.exit_code == 0 and "1 archive(s) marked for replay" in replayed.output
    assert manifest.outstanding().column("status").to_pylist() == ["replay"]
