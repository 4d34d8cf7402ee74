"""`lakehouse serve` through real clients: psql and psycopg on loopback, as the shipped users."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg
import pytest
from deltalake import write_deltalake

from lake_assets.serve.server import audit_log
from lake_assets.serve.wire import Endpoint
from lake_assets.storage.lake import Lake
from tests.serve.conftest import Connect, dsn, password
from tests.serve.lake_builder import FACILITIES, visits

NORTHWIND = {"FAC00000", "FAC00001"}


def psql(endpoint: Endpoint, user: str, command: str, *extra: str) -> subprocess.CompletedProcess:
    """psql (postgresql-client) running one command as `user`."""
    uri = dsn(endpoint, user)
    return subprocess.run(["psql", "-X", "-A", "-t", "-c", command, uri, *extra],
                          capture_output=True, text=True, timeout=60, check=False)


def test_psql_lists_schemas_and_tables_and_runs_queries(endpoint: Endpoint) -> None:
    tables = psql(endpoint, "ana", r"\dt")
    assert tables.returncode == 0, tables.stderr
    assert "gold|daily_census|table" in tables.stdout
    assert "silver|visits|table" in tables.stdout and "bronze" not in tables.stdout
    schemas = psql(endpoint, "ana", r"\dn")
    assert {"gold", "silver"} <= {line.split("|")[0] for line in schemas.stdout.split()}
    counted = psql(endpoint, "ana", "SELECT count(*) FROM silver.visits")
    assert counted.stdout.strip() == str(visits().num_rows)


def test_psycopg_reads_the_catalog_as_bi_tools_do(connect: Connect) -> None:
    connection = connect("board")
    tables = connection.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall()
    assert tables == [("gold", "daily_census")]  # a dashboard role sees gold only
    columns = connection.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        ("gold", "daily_census")).fetchall()
    assert [c[0] for c in columns] == ["facility_code", "census_date", "beds", "occupied_beds",
                                       "occupancy"]
    namespaces = {r[0] for r in connection.execute(
        "SELECT nspname FROM pg_catalog.pg_namespace").fetchall()}
    assert "gold" in namespaces and "silver" not in namespaces


@pytest.mark.parametrize(("user", "facilities"), [
    ("northwind_portal", NORTHWIND), ("harbor_portal", {"FAC00002"}), ("ana", set(FACILITIES)),
])
def test_a_tenant_sees_only_its_facilities_in_every_table(
        connect: Connect, user: str, facilities: set[str]) -> None:
    connection = connect(user)
    for table in ("silver.visits", "gold.daily_census"):
        seen = {r[0] for r in connection.execute(
            f"SELECT DISTINCT facility_code FROM {table}").fetchall()}
        assert seen == facilities, table


def test_masked_columns_show_masks_and_hidden_ones_are_gone(connect: Connect) -> None:
    tenant = connect("northwind_portal")
    cursor = tenant.execute("SELECT * FROM silver.visits LIMIT 3")
    names = [d.name for d in cursor.description]
    assert "_facility_id" not in names and "_source_archive" not in names
    assert {r[names.index("mrn")] for r in cursor.fetchall()} == {"***"}
    analyst = connect("ana").execute("SELECT mrn FROM silver.visits LIMIT 1").fetchone()
    assert analyst is not None and analyst[0].startswith("mrnhash")


def test_a_table_not_granted_gives_a_clear_permission_error(connect: Connect) -> None:
    tenant = connect("northwind_portal")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"may not read silver\."
                                                                   "patients"):
        tenant.execute("SELECT * FROM silver.patients")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="raw PHI"):
        connect("ana").execute("SELECT * FROM bronze.adt_events__adt_messages")
    rows = connect("admin").execute("SELECT count(*) FROM bronze.adt_events__adt_messages")
    assert rows.fetchone() == (6,)


ESCAPES = [
    "SELECT * FROM read_parquet('{root}/silver/patients/*.parquet')",
    "SELECT * FROM delta_scan('{root}/silver/patients')",
    "SELECT * FROM '{root}/silver/patients/_delta_log/00000000000000000000.json'",
    "SELECT * FROM read_text('/etc/passwd')",
    "COPY silver.visits TO '{root}/leak.csv'",
    "ATTACH '{root}/other.duckdb' AS other",
    "INSTALL httpfs",
    "LOAD delta",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "CREATE TABLE silver.mine AS SELECT 1",
    "DROP TABLE silver.visits",
    "EXPORT DATABASE '{root}/export'",
    "SELECT 1; DROP TABLE silver.visits",
    "EXPLAIN ANALYZE DROP TABLE silver.visits",
    "EXPLAIN ANALYZE CREATE TABLE silver.mine AS SELECT 1",
    "PIVOT silver.visits ON unit",
]


def test_every_escape_is_denied_and_audited(connect: Connect, lake_root: Path) -> None:
    tenant = connect("northwind_portal")
    for escape in ESCAPES:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            tenant.execute(escape.format(root=lake_root))
    assert not (lake_root / "leak.csv").exists()
    plan = tenant.execute("EXPLAIN ANALYZE SELECT count(*) FROM silver.visits").fetchall()
    assert plan  # EXPLAIN ANALYZE of a SELECT is allowed
    assert {r[0] for r in tenant.execute("SELECT DISTINCT facility_code FROM silver.visits")
            .fetchall()} == NORTHWIND  # nothing above changed what the tenant sees


def test_wrong_passwords_are_rejected_then_the_client_is_locked(endpoint: Endpoint,
                                                                 connect: Connect) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect("mallory", "guess")  # an unknown user fails the same way
    for _ in range(2):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect("ana", "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="too many failed logins"):
        connect("ana")  # 3 failures from one address lock it, right password or not


def test_every_read_is_audited_with_literals_masked(endpoint: Endpoint,
                                                    connect: Connect) -> None:
    tenant = connect("northwind_portal")
    tenant.execute("SELECT count(*) FROM silver.visits WHERE mrn = %s", ("mrnhash01",))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        tenant.execute("SELECT * FROM silver.patients WHERE mrn = 'mrnhash01'")
    with pytest.raises(psycopg.OperationalError):
        connect("ana", "wrong")
    endpoint.engine.audit.flush()  # type: ignore[union-attr]
    rows = audit_log(Lake()).read().to_pylist()
    assert "mrnhash01" not in repr(rows)
    reads = [r for r in rows if r["tables"] == ["silver.visits"]]
    assert reads[0]["principal"] == "northwind_portal" and reads[0]["allowed"]
    assert reads[0]["rows"] == 1 and reads[0]["client"] == "127.0.0.1"
    assert "silver.visits.mrn" in reads[0]["columns"] and "mrn = $1" in reads[0]["sql"]
    assert "mrn = ?" in next(r for r in rows if r["tables"] == ["silver.patients"])["sql"]
    denied = [r for r in rows if r["tables"] == ["silver.patients"]]
    assert denied[0]["allowed"] is False and "may not read" in denied[0]["reason"]
    logins = [r for r in rows if r["sql"] == "<login>"]
    assert logins[0]["principal"] == "ana" and logins[0]["allowed"] is False


def test_reads_the_latest_version_and_travels_in_time(connect: Connect,
                                                      lake_root: Path) -> None:
    analyst = connect("ana")
    before = visits().num_rows
    assert analyst.execute("SELECT count(*) FROM silver.visits").fetchone() == (before,)
    write_deltalake(str(lake_root / "silver" / "visits"), visits(1), mode="append")
    assert analyst.execute("SELECT count(*) FROM silver.visits").fetchone() == (before + 3,)
    assert analyst.execute("SELECT count(*) FROM silver.visits FOR VERSION AS OF 0") \
        .fetchone() == (before,)
    tenant = connect("northwind_portal")
    travelled = tenant.execute("SELECT DISTINCT facility_code, mrn FROM silver.visits "
                               "FOR VERSION AS OF 0").fetchall()
    assert {r[0] for r in travelled} == NORTHWIND and {r[1] for r in travelled} == {"***"}


def test_tls_is_offered_when_a_certificate_is_configured(lake_root: Path,
                                                         tmp_path: Path) -> None:
    from lake_assets.catalog.loader import load_catalog
    from lake_assets.serve.server import build_endpoint, running
    from tests.conftest import METADATA

    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    built = build_endpoint(Lake(), load_catalog(METADATA), port=0, tls_cert=cert, tls_key=key)
    with running(built) as served, psycopg.connect(
            dsn(served, "ana", sslmode="require")) as connection:
        assert connection.pgconn.ssl_in_use
        assert connection.execute("SELECT count(*) FROM gold.daily_census").fetchone() == (9,)


def test_sqlalchemy_and_pandas_read_through_the_endpoint(endpoint: Endpoint) -> None:
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(f"postgresql+psycopg://ana:{password('ana')}@127.0.0.1:"
                              f"{endpoint.port}/lake")
    with engine.connect() as connection:
        frame = pd.read_sql(sa.text("SELECT facility_code, COUNT(*) AS n FROM silver.visits "
                                    "GROUP BY 1 ORDER BY 1"), connection)
        assert frame["facility_code"].tolist() == list(FACILITIES)
        found = sa.inspect(connection)
        assert {"gold", "silver"} <= set(found.get_schema_names())
        assert found.get_table_names(schema="gold") == ["daily_census"]
    engine.dispose()


def test_lakehouse_audit_answers_who_read_a_table(endpoint: Endpoint, connect: Connect) -> None:
    from typer.testing import CliRunner

    from lake_assets.cli import app

    connect("ana").execute("SELECT count(*) FROM silver.patients")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        connect("northwind_portal").execute("SELECT count(*) FROM silver.patients")
    endpoint.engine.audit.flush()  # type: ignore[union-attr]
    shown = CliRunner().invoke(app, ["audit", "--table", "silver.patients", "--json"])
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.output)
    assert [(r["principal"], r["allowed"]) for r in rows] == [("ana", True),
                                                             ("northwind_portal", False)]


def test_binary_results_match_text_results(connect: Connect) -> None:
    sql = ("SELECT 1::INTEGER AS i, 2::BIGINT AS b, 1.5::DOUBLE AS d, 'x' AS t, true AS ok, "
           "DATE '2026-11-20' AS day, TIMESTAMP '2026-11-20 08:00:00.25' AS at, "
           "12.340::DECIMAL(10, 3) AS n, -0.5::DECIMAL(4, 2) AS m, NULL::INTEGER AS missing")
    connection = connect("ana")
    text = connection.execute(sql).fetchone()
    binary = connection.cursor(binary=True).execute(sql).fetchone()
    assert binary == text


@pytest.mark.slow
def test_pgjdbc_lists_tables_and_runs_prepared_statements(endpoint: Endpoint) -> None:
    java = Path("/usr/lib/jvm/temurin-25-jdk-amd64/bin/java")
    if not java.exists():
        pytest.skip("the JDBC probe runs as a single-file program on the Temurin 25 JDK")
    from tests.conftest import PROJECT_ROOT

    repository = PROJECT_ROOT / ".cache" / "maven"
    jar = repository / "org/postgresql/postgresql/42.7.8/postgresql-42.7.8.jar"
    if not jar.exists():
        subprocess.run(["mvn", "-q", "-B", "dependency:get", f"-Dmaven.repo.local={repository}",
                        "-Dartifact=org.postgresql:postgresql:42.7.8", "-Dtransitive=false"],
                       check=True, capture_output=True, timeout=600)
    probe = Path(__file__).parent / "jdbc" / "Probe.java"
    ran = subprocess.run([str(java), "-cp", str(jar), str(probe),
                          f"jdbc:postgresql://127.0.0.1:{endpoint.port}/lake", "ana",
                          password("ana")], capture_output=True, text=True, timeout=300,
                         check=False)
    assert ran.returncode == 0, ran.stderr
    assert "table gold.daily_census" in ran.stdout
    assert [line for line in ran.stdout.splitlines() if line.startswith("row ")] == [
        "row FAC00000 2", "row FAC00001 2", "row FAC00002 2"]
