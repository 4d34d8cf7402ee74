"""The Spark and Delta resources: lazy at load, configured from the environment at call time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dagster import MaterializeResult, asset, materialize
from dagster_deltalake import S3Config
from pyspark.sql import SparkSession

from lake_assets.errors import SparkConfigError
from lake_assets.resources import DeltaLake, SparkResource
from lake_assets.storage.delta import storage_options
from lake_assets.storage.spark import build_session


def test_definitions_load_does_not_start_spark() -> None:
    script = textwrap.dedent("""
        import pyspark
        from dagster import Definitions, asset
        from lake_assets.resources import DeltaLake

        @asset
        def table(lake: DeltaLake) -> None: ...

        defs = Definitions(assets=[table], resources={"lake": DeltaLake(root="s3://b/p")})
        defs.resolve_asset_graph()
        assert pyspark.SparkContext._active_spark_context is None
        print("no spark")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == "no spark", done.stderr[-2000:]


def test_bad_master_or_remote_is_refused_before_spark_starts() -> None:
    with pytest.raises(SparkConfigError, match="mesos://m:5050"):
        build_session(environ={"SPARK_MASTER": "mesos://m:5050"})
    with pytest.raises(SparkConfigError, match="http://x"):
        build_session(remote="http://x", environ={})


def test_storage_options_come_from_env_or_config(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
           "LAKE_S3_ENDPOINT": "http://127.0.0.1:9000"}
    options = storage_options("s3://lake/t", environ=env)
    assert options == {"aws_access_key_id": "k", "aws_secret_access_key": "s",
                       "aws_endpoint_url": "http://127.0.0.1:9000", "aws_allow_http": "true",
                       "aws_region": "us-east-1", "conditional_put": "etag"}
    resource = DeltaLake(root="s3://lake", s3=S3Config(region="eu-west-1"))
    configured = resource.open().ref("t").options
    assert configured["region"] == "eu-west-1" and configured["conditional_put"] == "etag"
    assert storage_options("/local/t", environ=env) == {}

    lake = DeltaLake().open()
    monkeypatch.setenv("LAKE_ROOT", "s3://other/prefix")
    assert lake.ref("bronze/adt/messages").uri == "s3://other/prefix/bronze/adt/messages"
    with pytest.raises(ValueError, match="lake table path"):
        lake.ref("silver/../../etc")


@pytest.mark.spark
def test_assets_write_and_read_through_the_resources(spark: SparkSession, tmp_path: Path) -> None:
    @asset
    def visits(lake: DeltaLake) -> MaterializeResult:
        tables = lake.open()
        df = tables.session.createDataFrame([(1, "F1")], "id long, facility string")
        result = tables.write(df, table=visits.key.path, app_txn=("visits", 1))
        return MaterializeResult(metadata=result.as_metadata())

    lake = DeltaLake(root=str(tmp_path / "lake"), spark=SparkResource(master="local[2]"))
    outcome = materialize([visits], resources={"lake": lake})
    assert outcome.success
    metadata = outcome.asset_materializations_for_node("visits")[0].metadata
    assert metadata["delta_version"].value == 0 and metadata["rows_written"].value == 1
    assert [tuple(r) for r in lake.open().read("visits").collect()] == [(1, "F1")]
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
