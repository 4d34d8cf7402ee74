"""Trino (`lakehouse serve --engine trino`) with the policy compiled to its file-based access
control gives the same tenant, mask and denial results as the embedded endpoint, through
Trino's own Python client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import trino

from lake_assets.catalog.loader import load_catalog
from lake_assets.serve.trino import TrinoServer, running_trino
from lake_assets.storage.lake import Lake
from tests.conftest import METADATA
from tests.serve.conftest import Connect
from tests.spark.servers import free_port

pytestmark = pytest.mark.slow

SAME = [
    ("northwind_portal", "SELECT DISTINCT facility_code FROM silver.visits ORDER BY 1"),
    ("northwind_portal", "SELECT DISTINCT mrn FROM silver.visits"),
    ("northwind_portal", "SELECT facility_code, census_date, occupied_beds FROM "
                         "gold.daily_census ORDER BY 1, 2"),
    ("harbor_portal", "SELECT facility_code, COUNT(*) FROM silver.visits GROUP BY 1"),
    ("ana", "SELECT facility_code, COUNT(*), MIN(mrn) FROM silver.visits GROUP BY 1 ORDER BY 1"),
    ("board", "SELECT COUNT(*) FROM gold.daily_census"),
]
DENIED = [
    ("northwind_portal", "SELECT COUNT(*) FROM silver.patients"),
    ("ana", "SELECT COUNT(*) FROM bronze.adt_events__adt_messages"),
    ("board", "SELECT COUNT(*) FROM silver.visits"),
]


@pytest.fixture
def trino_server(lake_root: Path, tmp_path: Path) -> Iterator[TrinoServer]:
    if not Path("/usr/lib/jvm/temurin-25-jdk-amd64/bin/java").exists():
        pytest.skip("Trino needs the Temurin 25 JDK")
    with running_trino(Lake(), load_catalog(METADATA), tmp_path / "trino",
                       port=free_port()) as server:
        yield server


def trino_rows(server: TrinoServer, user: str, sql: str) -> list[tuple]:
    cursor = trino.dbapi.connect(host="127.0.0.1", port=server.port, user=user,
                                 catalog="lake").cursor()
    cursor.execute(sql)
    return [tuple(r) for r in cursor.fetchall()]


def test_trino_and_the_endpoint_agree(trino_server: TrinoServer, connect: Connect) -> None:
    for user, sql in SAME:
        served = [tuple(r) for r in connect(user).execute(sql).fetchall()]
        assert sorted(trino_rows(trino_server, user, sql)) == sorted(served), (user, sql)
    for user, sql in DENIED:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connect(user).execute(sql)
        with pytest.raises(trino.exceptions.TrinoUserError, match="Access Denied"):
            trino_rows(trino_server, user, sql)
