"""Arrow schemas of bronze and quarantine rows, so Spark can declare `mapInArrow` output."""

from __future__ import annotations

import pyarrow as pa

from lake_assets.catalog.models import Table
from lake_assets.ingest.conform import RESCUED, SOURCE_MEMBER
from lake_assets.ingest.convert import arrow_type
from lake_assets.ingest.records import BAD_SCHEMA

LINEAGE = pa.schema(
    [
        pa.field("_facility_id", pa.string()),
        pa.field("_source_archive", pa.string()),
        pa.field("_archive_sha256", pa.string()),
        pa.field("_ingested_at", pa.timestamp("us", tz="UTC")),
        pa.field("_batch_id", pa.string()),
    ]
)
"""Lineage columns the caller appends to every good and bad row."""


def record_schema(table: Table) -> pa.Schema:
    """Good rows as `read_archive` returns them: declared columns typed (an `hl7` date or
    timestamp followed by its `<column>_precision`), `_rescued_data` (JSON string) and
    `_source_member`. Every field is nullable: bronze keeps what arrived."""
    fields = []
    for column in table.columns:
        fields.append(pa.field(column.name, arrow_type(column)))
        if column.precision_column is not None:
            fields.append(pa.field(column.precision_column, pa.string()))
    fields += [pa.field(RESCUED, pa.string()), pa.field(SOURCE_MEMBER, pa.string())]
    return pa.schema(fields)


def arrow_schema(table: Table) -> pa.Schema:
    """The bronze schema of `table`: `record_schema` followed by the lineage columns.

    With `schema_evolution: add_columns`, undeclared fields arrive as extra string columns
    before `_rescued_data`; they are not (and cannot be) part of this fixed schema.
    """
    return pa.schema(list(record_schema(table)) + list(LINEAGE))


def quarantine_schema() -> pa.Schema:
    """Bad rows: `_source_member`, `_reason`, `_error`, `_raw` (JSON), then the lineage columns."""
    return pa.schema(list(BAD_SCHEMA) + list(LINEAGE))
