"""The endpoint (DuckDB) and Spark SQL (`query()`, `lakehouse sql`) return the same rows for the
same queries and users on the same table versions: one policy, every read path."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from lake_assets.api import query
from lake_assets.storage.lake import Lake
from tests.serve.conftest import Connect

pytestmark = [pytest.mark.spark, pytest.mark.slow]

QUERIES = [
    "SELECT facility_code, COUNT(*) AS n FROM silver.visits GROUP BY facility_code "
    "ORDER BY facility_code",
    "SELECT facility_code, mrn, unit FROM silver.visits ORDER BY facility_code, unit, mrn",
    "SELECT facility_code, SUM(occupied_beds) AS occupied FROM gold.daily_census "
    "GROUP BY facility_code ORDER BY facility_code",
]


@pytest.mark.parametrize("user", ["ana", "northwind_portal"])
def test_endpoint_and_spark_agree(spark: SparkSession, connect: Connect, user: str) -> None:
    lake = Lake(session_factory=lambda: spark)
    connection = connect(user)
    for sql in QUERIES:
        served = [tuple(r) for r in connection.execute(sql).fetchall()]
        sparked = [tuple(r) for r in query(sql, user=user, lake=lake).collect()]
        assert served == sparked, sql


def test_spark_refuses_what_the_endpoint_refuses(spark: SparkSession) -> None:
    from lake_assets.errors import AccessDeniedError

    lake = Lake(session_factory=lambda: spark)
    with pytest.raises(AccessDeniedError, match=r"may not read silver\.patients"):
        query("SELECT * FROM silver.patients", user="northwind_portal", lake=lake)
    with pytest.raises(AccessDeniedError, match="name the user"):
        query("SELECT * FROM gold.daily_census", lake=lake)
