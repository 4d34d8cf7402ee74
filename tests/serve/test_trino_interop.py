"""Trino's Delta Lake connector reads a table our delta-rs writer took through merges, schema
evolution, optimize, vacuum and a checkpoint, with the same rows as our reader (timestamps at
Trino's millisecond precision: it maps Delta's `timestamp` to `timestamp(3) with time zone`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import trino
from pyspark.sql import SparkSession

from lake_assets.catalog.loader import load_catalog
from lake_assets.serve.trino import SERVICE_USER, running_trino
from lake_assets.storage.lake import Lake
from tests.conftest import METADATA
from tests.spark.servers import free_port
from tests.spark.test_delta_spark_interop import (
    ALL,
    TS,
    as_json,
    build_ours,
    ours_expected,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark]


def test_trino_reads_our_table_after_every_kind_of_commit(spark: SparkSession,
                                                          tmp_path: Path) -> None:
    if not Path("/usr/lib/jvm/temurin-25-jdk-amd64/bin/java").exists():
        pytest.skip("Trino needs the Temurin 25 JDK")
    lake = Lake(root=str(tmp_path / "lake"), session_factory=lambda: spark)
    build_ours(lake, spark, "silver/visits")  # a governed name, so Trino registers it
    with running_trino(lake, load_catalog(METADATA), tmp_path / "trino",
                       port=free_port()) as server:
        cursor = trino.dbapi.connect(host="127.0.0.1", port=server.port, user=SERVICE_USER,
                                     catalog="lake").cursor()
        cursor.execute(f"SELECT {', '.join(ALL)} FROM silver.visits ORDER BY id")
        rows = cursor.fetchall()
    got = as_json([tuple(v.astimezone(dt.UTC).replace(tzinfo=None)
                         if isinstance(v, dt.datetime) else v for v in r) for r in rows])
    in_millis = TS.replace(microsecond=TS.microsecond // 1000 * 1000).isoformat()
    assert got == [[in_millis if v == TS.isoformat() else v for v in r]
                   for r in ours_expected()]
