"""Bronze runs account for every member, re-send and drift in the manifest and the checks."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from lake_assets.catalog.models import Feed
from lake_assets.factory.bronze import build_bronze_assets
from lake_assets.resources import DeltaLake
from lake_assets.storage.lake import Lake
from tests.conftest import DAILY, project_instance
from tests.unit.ingest_builders import LAB_ROW, feed, lab_csv, plain_zip, with_archive

pytestmark = pytest.mark.spark

DAY = "2026-11-20"
OPEN_LABS = with_archive(feed("lab_results"), password_secret=None)


def land(root: Path, name: str, data: bytes, facility: str = "FAC00001", hour: str = "09"
         ) -> str:
    path = f"lab_results/{DAY}/{hour}/{facility}/{name}"
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(data)
    return path


def run_batch(lake: Lake, archives: list[str], batch_id: str, labs: Feed = OPEN_LABS
              ) -> dg.ExecuteInProcessResult:
    asset = build_bronze_assets(labs, source_file="lab_results.yaml", daily=DAILY)
    config = {"ops": {asset.op.name: {"config": {"batch_id": batch_id, "archives": archives}}}}
    with project_instance() as instance:
        result = dg.materialize([asset], instance=instance,
                                resources={"lake": DeltaLake(root=lake.root)},
                                partition_key=DAY, run_config=config)
    assert result.success
    return result


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def manifest(lake: Lake) -> dict[str, dict]:
    return {r["path"]: r for r in lake.manifest().rows().to_pylist()}


def bronze_ids(lake: Lake) -> list[str]:
    table = DeltaTable(lake.ref(["bronze", "lab_results", "lab_results"]).uri)
    return sorted(table.to_pyarrow_table(columns=["result_id"]).column(0).to_pylist())


@pytest.fixture
def landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LANDING_ROOT", str(tmp_path / "landing"))
    return tmp_path / "landing"


def test_every_member_is_in_the_manifest_and_a_cut_name_is_quarantined_not_lost(
    lake: Lake, landing: Path
) -> None:
    members = [
        ("a.csv", lab_csv([{"result_id": "R000001"}])),
        ("docs/", b""),
        ("README.txt", b"notes"),
        # libarchive reads `lost` (the NUL cuts it): it no longer matches *.csv.
        (b"lost\x00.csv", lab_csv([{"result_id": "R000002"}])),
    ]
    path = land(landing, "a.zip", plain_zip(members))

    result = run_batch(lake, [path], "20261120-0000001")

    row = manifest(lake)[path]
    assert (row["status"], row["members_loaded"], row["members_skipped"],
            row["members_quarantined"]) == ("loaded", 1, 2, 1)
    assert json.loads(row["skipped_members"]) == [
        {"name": "docs/", "reason": "directory"}, {"name": "README.txt", "reason": "pattern"}]
    assert bronze_ids(lake) == ["R000001"]
    held = DeltaTable(lake.ref(["quarantine", "lab_results", "lab_results"]).uri)
    [corrupt] = held.to_pyarrow_table().to_pylist()
    assert (corrupt["_source_member"], corrupt["_reason"]) == ("lost", "corrupt")
    kept = Path(lake.ref("quarantine").uri) / "_archives" / "lab_results" / path
    assert kept.is_file()  # the member's rows can be replayed from the original bytes
    found = metadata(result)
    assert (found["skipped_members"], found["quarantined_members"]) == (2, 1)
    assert found["skipped_members_by_reason"] == {"directory": 1, "pattern": 1}


def test_a_resent_archive_is_recorded_as_such_and_not_loaded_again(
    lake: Lake, landing: Path
) -> None:
    first = plain_zip([("a.csv", lab_csv([{"result_id": "R000001"}]))])
    second = plain_zip([("b.csv", lab_csv([{"result_id": "R000002"}]))])
    original = land(landing, "a.zip", first)
    run_batch(lake, [original], "20261120-0000001")
    # A later batch: a copy of a committed archive, and an archive sent twice within it.
    copy = land(landing, "a-again.zip", first, hour="10")
    twice = [land(landing, "b.zip", second, hour="10"),
             land(landing, "b-again.zip", second, facility="FAC00002", hour="10")]

    result = run_batch(lake, [copy, *twice], "20261120-0000002")

    assert bronze_ids(lake) == ["R000001", "R000002"]
    rows = manifest(lake)
    assert (rows[copy]["status"], rows[copy]["resent_of"], rows[copy]["rows"]) == (
        "resent", original, 0)
    assert (rows[twice[1]]["status"], rows[twice[1]]["resent_of"]) == ("resent", twice[0])
    assert rows[twice[0]]["status"] == "loaded" and rows[twice[0]]["resent_of"] is None
    found = metadata(result)
    assert (found["resent_archives"], found["quarantined_archives"]) == (2, 0)


def test_a_feed_may_load_resends_and_still_names_the_original(
    lake: Lake, landing: Path
) -> None:
    labs = OPEN_LABS.model_copy(update={"resend": OPEN_LABS.resend.model_copy(
        update={"action": "load"})})
    data = plain_zip([("a.csv", lab_csv([{"result_id": "R000001"}]))])
    original = land(landing, "a.zip", data)
    copy = land(landing, "b.zip", data)  # within a batch, the first path is the original

    run_batch(lake, [copy, original], "20261120-0000001", labs=labs)

    rows = manifest(lake)
    assert (rows[copy]["status"], rows[copy]["resent_of"]) == ("loaded", original)
    assert bronze_ids(lake) == ["R000001", "R000001"]


def _csv(rows: list[dict[str, str]], *, drop: str, add: str) -> bytes:
    header = [name for name in LAB_ROW if name != drop] + [add]
    lines = [",".join(header)]
    lines += [",".join({**LAB_ROW, add: "x", **row}[name] for name in header) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode()


def test_schema_drift_and_conflicting_records_turn_their_checks_red(
    lake: Lake, landing: Path
) -> None:
    conflicting = [{"result_id": "R000001", "value": "5.4"}, {"result_id": "R000001",
                                                              "value": "9.9"}]
    drifting = land(landing, "a.zip", plain_zip([("a.csv", _csv(conflicting, drop="unit",
                                                                  add="Comment"))]))
    steady = land(landing, "b.zip", plain_zip([("b.csv", lab_csv([{"result_id": "R000002"}]))]),
                  facility="FAC00002")

    result = run_batch(lake, [drifting, steady], "20261120-0000001")

    found = checks(result)
    drift = found["schema_drift"]
    assert not drift.passed
    assert drift.metadata["missing_columns"].value == {"unit": {"archives": 1, "facilities": 1}}
    assert drift.metadata["undeclared_fields"].value == {
        "Comment": {"archives": 1, "facilities": 1}}
    assert drift.metadata["drifting_archives"].value == 1
    assert json.loads(manifest(lake)[drifting]["schema_drift"]) == {
        "lab_results": {"missing": ["unit"], "undeclared": ["Comment"]}}
    conflict = found["keys_conflict"]
    assert not conflict.passed
    assert conflict.metadata["failing_rows"].value == 2
    assert conflict.metadata["archives"].value == {"keys.conflict": [drifting]}
    assert conflict.metadata["samples"].value == {"keys.conflict": ["FAC00042|R000001|"
                                                                    "2024-01-15 11:00:00"]}
    # The default action keeps both in bronze; silver keeps the latest and reports it.
    assert bronze_ids(lake) == ["R000001", "R000001", "R000002"]
    assert metadata(result)["schema_drift_archives"] == 1


def test_quarantine_both_moves_every_conflicting_record(lake: Lake, landing: Path) -> None:
    table = OPEN_LABS.tables[0]
    strict = table.model_copy(update={"checks": table.checks.model_copy(
        update={"on_conflict": "quarantine_both"})})
    labs = OPEN_LABS.model_copy(update={"tables": (strict,)})
    rows = [{"result_id": "R000001", "value": "5.4"}, {"result_id": "R000001", "value": "9.9"},
            {"result_id": "R000002"}]
    path = land(landing, "a.zip", plain_zip([("a.csv", lab_csv(rows))]))

    run_batch(lake, [path], "20261120-0000001", labs=labs)

    assert bronze_ids(lake) == ["R000002"]
    held = DeltaTable(lake.ref(["quarantine", "lab_results", "lab_results"]).uri)
    moved = held.to_pyarrow_table().to_pylist()
    assert [(r["_reason"], r["_error"]) for r in moved] == [("check_failed", "keys.conflict")] * 2
