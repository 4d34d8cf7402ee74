"""Tables on a real S3 API (moto server on loopback): write, read, merge, and safe commits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

import lake_assets.storage.delta._commit as commit_module
from lake_assets.storage.delta import CommitPlan, WriteSpec, arrow_schema, write_batches
from lake_assets.storage.delta._commit import commit
from lake_assets.storage.lake import Lake
from tests.spark.servers import moto_s3

pytestmark = pytest.mark.spark

SCHEMA = "id long, facility string, v string, seq long"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_s3("lake", tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture
def s3_lake(endpoint: str, monkeypatch: pytest.MonkeyPatch, spark: SparkSession) -> Lake:
    """A lake on s3://lake/<unique prefix>, with credentials and endpoint from the environment."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_REGION": "us-east-1", "LAKE_S3_ENDPOINT": endpoint}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LAKE_ROOT", f"s3://lake/{uuid.uuid4().hex}")
    return Lake()


def test_write_read_merge_round_trip_on_s3(
    spark: SparkSession, s3_lake: Lake, endpoint: str
) -> None:
    ref = s3_lake.ref("silver/visits")
    assert ref.uri.startswith("s3://lake/") and ref.options["conditional_put"] == "etag"
    rows = [(1, "F1", "a", 1), (2, "F2", "b", 1), (3, "F1", "c", 1)]
    s3_lake.write(spark.createDataFrame(rows, SCHEMA), table="silver/visits",
                  partition_by=["facility"])
    s3_lake.write(spark.createDataFrame([(4, "F2", "d", 1)], SCHEMA), table="silver/visits",
                  mode="overwrite", replace_where={"facility": "F2"})
    changes = spark.createDataFrame([(1, "F1", "a2", 2), (5, "F1", "e", 1)], SCHEMA)
    result = s3_lake.merge(changes, table="silver/visits", keys=["id"], sequence_by="seq")
    assert result.version == 2

    got = sorted(tuple(r) for r in s3_lake.read("silver/visits").collect())
    assert got == [(1, "F1", "a2", 2), (3, "F1", "c", 1), (4, "F2", "d", 1), (5, "F1", "e", 1)]
    plain = DeltaTable(ref.uri, storage_options=ref.options).to_pyarrow_table()
    assert sorted(plain.column("id").to_pylist()) == [1, 3, 4, 5]
    assert sorted(tuple(r) for r in s3_lake.read("silver/visits", version=0).collect()) == rows

    bucket = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    prefix = ref.uri.removeprefix("s3://lake/")
    keys = {o["Key"] for o in bucket.list_objects_v2(Bucket="lake", Prefix=prefix)["Contents"]}
    assert f"{prefix}/_delta_log/00000000000000000002.json" in keys


def test_a_stale_commit_on_s3_lands_on_the_next_version(
    spark: SparkSession, s3_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing an existing log version fails (If-None-Match), so delta-rs retries on the next."""
    ref = s3_lake.ref("bronze/f/t")
    s3_lake.write(spark.createDataFrame([(1, "F1", "a", 1)], SCHEMA), table="bronze/f/t")
    stale = DeltaTable(ref.uri, storage_options=ref.options)
    s3_lake.write(spark.createDataFrame([(2, "F1", "b", 1)], SCHEMA), table="bronze/f/t")

    spec = WriteSpec(uri=ref.uri, table=ref.name, schema=arrow_schema(stale), options=ref.options)
    batch = pa.record_batch({"id": [3], "facility": ["F1"], "v": ["c"], "seq": [1]})
    files = write_batches([batch], spec)
    monkeypatch.setattr(commit_module, "open_table", lambda *a, **k: stale)
    assert commit(CommitPlan(spec=spec, write_id=str(uuid.uuid4())), files) == 2
    assert sorted(r.id for r in s3_lake.read("bronze/f/t").collect()) == [1, 2, 3]
    history = DeltaTable(ref.uri, storage_options=ref.options).history()
    assert [h["version"] for h in history] == [2, 1, 0]
