"""One bronze run on real Spark and Delta: tasks write the files, the driver commits per table."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from lake_assets.catalog.models import Feed
from lake_assets.factory.bronze import build_bronze_assets
from lake_assets.resources import DeltaLake
from lake_assets.storage.lake import Lake
from tests.conftest import DAILY, project_instance
from tests.unit.ingest_builders import PASSWORD, aes_zip, feed, lab_csv, with_table

pytestmark = pytest.mark.spark

DAY = "2026-11-20"


def land(root: Path, name: str, data: bytes, facility: str = "FAC00001") -> str:
    path = f"lab_results/{DAY}/09/{facility}/{name}"
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(data)
    return path


def run_batch(lake: Lake, archives: list[str], batch_id: str, evolution: str, *,
              labs: Feed | None = None, succeeds: bool = True) -> dg.ExecuteInProcessResult:
    labs = with_table(labs or feed("lab_results"), schema_evolution=evolution)
    asset = build_bronze_assets(labs, source_file="lab_results.yaml", daily=DAILY)
    config = {"ops": {asset.op.name: {"config": {"batch_id": batch_id, "archives": archives}}}}
    with project_instance() as instance:
        result = dg.materialize([asset], instance=instance,
                                resources={"lake": DeltaLake(root=lake.root)},
                                partition_key=DAY, run_config=config, raise_on_error=succeeds)
    assert result.success is succeeds
    return result


@pytest.fixture
def landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The landing zone runs read, and the lab zip password."""
    monkeypatch.setenv("LANDING_ROOT", str(tmp_path / "landing"))
    monkeypatch.setenv("LAKE_SECRET_LAB_ZIP_PASSWORD", PASSWORD)
    return tmp_path / "landing"


def test_added_columns_widen_bronze_and_a_bad_archive_does_not_stop_the_batch(
    lake: Lake, landing: Path
) -> None:
    rows = [{"result_id": "R000001"}, {"result_id": "R000003", "test_code": "NOT-A-LOINC"}]
    plain = land(landing, "a.zip", aes_zip([("a.csv", lab_csv(rows))]))
    wider = lab_csv([{"result_id": "R000002"}], extra={"Reference Range": "3.9-5.6"})
    widened = land(landing, "b.zip", aes_zip([("b.csv", wider)]), facility="FAC00002")
    broken = land(landing, "c.zip", b"PK\x03\x04 not really a zip")

    result = run_batch(lake, [plain, widened, broken], "20261120-0000001", "add_columns")

    table = DeltaTable(lake.ref(["bronze", "lab_results", "lab_results"]).uri)
    rows = {r["result_id"]: r for r in table.to_pyarrow_table().to_pylist()}
    assert set(rows) == {"R000001", "R000002"}
    assert rows["R000002"]["reference_range"] == "3.9-5.6"
    assert rows["R000001"]["reference_range"] is None
    manifest = lake.manifest().rows().to_pylist()
    status = {r["path"]: (r["status"], r["reason"]) for r in manifest}
    assert status[broken][0] == "quarantined"
    assert status[plain] == status[widened] == ("loaded", None)
    # The row breaking the test_code pattern moved to quarantine; its check failed, counted.
    held = DeltaTable(lake.ref(["quarantine", "lab_results", "lab_results"]).uri)
    [moved] = held.to_pyarrow_table().to_pylist()
    assert (moved["_reason"], moved["_error"]) == ("check_failed", "test_code.regex")
    assert '"R000003"' in moved["_raw"]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    failed = checks["test_code_valid"]
    assert not failed.passed
    assert failed.metadata["failing_rows"].value == 1
    assert failed.metadata["total_rows"].value == 3
    assert checks["mrn_valid"].passed
    kept = Path(lake.ref("quarantine").uri) / "_archives" / "lab_results" / broken
    assert kept.read_bytes() == b"PK\x03\x04 not really a zip"

    # Replaying the batch commits nothing new; each table holds one commit of its files.
    version = table.version()
    run_batch(lake, [plain, widened, broken], "20261120-0000001", "add_columns")
    assert DeltaTable(table.table_uri).version() == version
    assert len(table.to_pyarrow_table()) == 2


def test_a_broken_fail_rule_commits_nothing_and_fails_the_run(
    lake: Lake, landing: Path, tmp_path: Path
) -> None:
    rows = [{"result_id": "R000001"}, {"result_id": "R000002", "test_code": "NOT-A-LOINC"}]
    archive = land(landing, "a.zip", aes_zip([("a.csv", lab_csv(rows))]))
    labs = feed("lab_results")
    table = labs.tables[0]
    strict = tuple(
        c.model_copy(update={"checks": c.checks.model_copy(update={"action": "fail"})})
        if c.name == "test_code" else c
        for c in table.columns
    )
    labs = labs.model_copy(update={"tables": (table.model_copy(update={"columns": strict}),)})

    result = run_batch(lake, [archive], "20261120-0000001", "rescue", labs=labs, succeeds=False)

    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["test_code_valid"].passed
    bronze = Path(lake.ref(["bronze", "lab_results", "lab_results"]).uri)
    assert not (bronze / "_delta_log").exists()
    assert not list((tmp_path / "lake").rglob("*.parquet"))
