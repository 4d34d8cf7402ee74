"""The access policy: access.yaml validation naming file and key, and its compiled decisions."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from lake_assets.catalog.loader import load_catalog
from lake_assets.catalog.policy import Policy
from lake_assets.catalog.query import run_query
from lake_assets.catalog.statements import inspect, mask_literals
from lake_assets.errors import AccessDeniedError, MetadataError
from tests.conftest import METADATA, EditFn


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.of(load_catalog(METADATA))


def problems_of(root: Path) -> list[str]:
    with pytest.raises(MetadataError) as caught:
        load_catalog(root)
    return [str(p) for p in caught.value.problems]


def test_grants_follow_globs_and_raw_layers_need_raw(policy: Policy) -> None:
    analyst = policy.principal("ana")
    readable = policy.readable(analyst)
    assert "silver.visits" in readable and "gold.daily_census" in readable
    assert not [t for t in readable if t.startswith(("bronze.", "quarantine."))]
    admin = policy.readable(policy.principal("admin"))
    assert "quarantine.lab_results__lab_results" in admin
    with pytest.raises(AccessDeniedError, match="raw PHI"):
        policy.table(analyst, "bronze.adt_events__patients")


def test_a_tenant_gets_its_facilities_masks_and_hidden_columns(policy: Policy) -> None:
    tenant = policy.principal("northwind_portal")
    visits = policy.table(tenant, "silver.visits")
    names = ["facility_code", "mrn", "unit", "_facility_id"]
    assert visits.columns(names) == [("facility_code", "show"), ("mrn", "mask"),
                                     ("unit", "show")]
    assert visits.row_filter(names) == [("_facility_id", ("FAC00000", "FAC00001")),
                                        ("facility_code", ("FAC00000", "FAC00001"))]
    with pytest.raises(AccessDeniedError, match="no facility column"):
        visits.row_filter(["unit"])
    with pytest.raises(AccessDeniedError, match=r"may not read silver\.patients"):
        policy.table(tenant, "silver.patients")
    with pytest.raises(AccessDeniedError, match="unknown user"):
        policy.principal("nobody")


def test_access_problems_name_the_key(edit_yaml: EditFn, metadata_copy: Path) -> None:
    def broken(data: dict) -> None:
        data["roles"]["analyst"]["grants"].append("silver.vists")
        data["roles"]["analyst"]["grants"].append("bronze.*")
        data["roles"]["tenant"]["columns"].append(
            {"table": "silver.visits", "column": "no_such", "action": "hide"})
        data["users"]["eve"] = {"role": "auditor", "password_secret": "SERVE_PASSWORD_EVE"}

    edit_yaml("access.yaml", broken)
    found = problems_of(metadata_copy)
    assert any("users.eve.role: no role 'auditor'" in p for p in found)
    edit_yaml("access.yaml", lambda d: d["users"].pop("eve"))
    found = problems_of(metadata_copy)
    assert "access.yaml: roles.analyst.grants[2]: 'silver.vists' matches no table" in found
    assert any(p.startswith("access.yaml: roles.analyst.grants[3]: 'bronze.*' grants raw PHI")
               for p in found)
    assert any("roles.tenant.columns[3].column" in p and "no_such" in p for p in found)


def test_the_catalog_answers_who_may_read_what() -> None:
    names, rows = run_query(load_catalog(METADATA),
                            "SELECT role, grant, rows FROM grants WHERE role = 'tenant'")
    assert names == ["role", "grant", "rows"]
    assert ("tenant", "silver.visits", "tenant") in rows
    _, users = run_query(load_catalog(METADATA),
                         "SELECT facilities FROM users WHERE user = 'northwind_portal'")
    assert users == [("FAC00000,FAC00001",)]


def test_statements_report_tables_columns_travel_and_mask_literals() -> None:
    found = inspect("SELECT v.unit FROM silver.visits FOR VERSION AS OF 3 AS v "
                    "WHERE v.mrn = 'abc' AND v.bed > 2",
                    schema={"silver": {"visits": ["unit", "mrn", "bed"]}})
    assert found.tables == ["silver.visits"]
    assert found.travel[0].kind == "version" and found.travel[0].value == "3"
    assert "abc" not in found.masked_sql and "'" not in found.masked_sql
    assert mask_literals("not sql at all 'MRN1' 42") == "not sql at all ? ?"


def test_arrow_reads_apply_the_same_policy(policy: Policy) -> None:
    from lake_assets.storage.sql import governed_arrow

    table = pa.table({"facility_code": ["FAC00000", "FAC00002"], "mrn": ["h1", "h2"],
                      "_facility_id": ["FAC00000", "FAC00002"]})
    seen = governed_arrow(table, policy.table(policy.principal("northwind_portal"),
                                              "silver.visits"))
    assert seen.to_pylist() == [{"facility_code": "FAC00000", "mrn": "***"}]


def test_the_policy_compiles_to_trino_file_based_rules(policy: Policy) -> None:
    from lake_assets.catalog.trino_rules import trino_rules

    columns = {"silver.visits": [("facility_code", True), ("mrn", True), ("_facility_id", True),
                                 ("admit_time", False)],
               "silver.patients": [("mrn", True), ("_facility_id", True)],
               "gold.daily_census": [("facility_code", True), ("beds", False)]}
    rules = trino_rules(policy, columns)
    tenant = [r for r in rules["tables"] if r["user"] == "^northwind_portal$"]
    assert {r["table"] for r in tenant} == {"visits", "daily_census"}  # not patients
    visits = next(r for r in tenant if r["table"] == "visits")
    assert visits["privileges"] == ["SELECT"]
    assert visits["filter"] == ("\"_facility_id\" IN ('FAC00000', 'FAC00001') AND "
                                "\"facility_code\" IN ('FAC00000', 'FAC00001')")
    assert {"name": "_facility_id", "allow": False} in visits["columns"]
    assert any(c["name"] == "mrn" and c["mask"] == "'***'" for c in visits["columns"])
    assert not [r for r in rules["tables"] if r["user"] == "^ana$" and r["schema"] == "bronze"]
