"""Asset specs from metadata: keys, owners, kinds, column schema with PHI tags, code versions."""

from __future__ import annotations

import dagster as dg

from lake_assets.catalog.models import Column, Feed, Freshness, Table
from lake_assets.catalog.versions import bronze_version
from lake_assets.factory.partitions import build_feed_partitions

# Lineage columns every bronze table carries (DESIGN.md), with what they mean.
BRONZE_LINEAGE: tuple[tuple[str, str, str], ...] = (
    ("_facility_id", "string", "facility that sent the archive (from the landing path)"),
    ("_arrival_date", "date", "arrival date of the archive; the Delta partition column"),
    ("_source_archive", "string", "archive path relative to the landing root"),
    ("_source_member", "string", "data file inside the archive"),
    ("_archive_sha256", "string", "SHA-256 of the archive bytes"),
    ("_ingested_at", "timestamp", "when the batch was committed"),
    ("_batch_id", "string", "sensor batch that loaded the row"),
    ("_rescued_data", "string", "undeclared fields of the record, as JSON"),
)


def owner_tags(teams: tuple[str, ...]) -> list[str]:
    """Dagster owner strings for metadata team names."""
    return [f"team:{team}" for team in teams]


def freshness_policy(freshness: Freshness) -> dg.FreshnessPolicy:
    """The Dagster freshness policy for metadata's warn and fail windows."""
    return dg.FreshnessPolicy.time_window(
        fail_window=freshness.fail_after, warn_window=freshness.warn_after
    )


def _column(column: Column) -> dg.TableColumn:
    tags = {"phi": column.phi} if column.phi else None
    constraints = dg.TableColumnConstraints(
        nullable=column.nullable, unique=column.checks.unique
    )
    return dg.TableColumn(
        column.name, column.type, column.description or None, constraints=constraints, tags=tags
    )


def bronze_schema(table: Table) -> dg.TableSchema:
    """Declared columns (PHI tags visible; an `hl7` column followed by its precision) and then
    the lineage columns."""
    lineage = [dg.TableColumn(name, kind, about) for name, kind, about in BRONZE_LINEAGE]
    declared = []
    for column in table.columns:
        declared.append(_column(column))
        if column.precision_column is not None:
            declared.append(dg.TableColumn(column.precision_column, "string",
                                           f"precision {column.name} was sent with"))
    return dg.TableSchema(columns=[*declared, *lineage])


def provenance(code_version: str, *files: str) -> str:
    """The description's last line: the code version and the metadata behind it, so a reviewer
    sees which YAML change made an asset stale without opening the collapsed section."""
    return f"\n\nCode version `{code_version}` from {', '.join(f'`{f}`' for f in files)}."


def bronze_key(feed: Feed, table: Table) -> dg.AssetKey:
    """`bronze/<feed>/<table>`."""
    return dg.AssetKey(["bronze", feed.name, table.name])


def build_bronze_specs(feed: Feed, *, source_file: str, daily: dg.DailyPartitionsDefinition
                       ) -> list[dg.AssetSpec]:
    """One bronze asset spec per table of `feed`, partitioned from `daily` on."""
    partitions = build_feed_partitions(feed, daily)
    return [
        dg.AssetSpec(
            key=bronze_key(feed, table),
            group_name="bronze",
            description=(
                f"{table.description.strip()}\n\nRaw `{table.name}` records of feed "
                f"`{feed.name}` ({feed.format.kind} in {feed.archive.kind}), append-only."
                + provenance(bronze_version(feed, table), source_file)
            ),
            owners=owner_tags(feed.owners),
            kinds={"spark", "delta"},
            code_version=bronze_version(feed, table),
            partitions_def=partitions,
            freshness_policy=freshness_policy(feed.freshness),
            tags={"lake/layer": "bronze", "lake/feed": feed.name},
            metadata={
                "dagster/column_schema": bronze_schema(table),
                "dagster/table_name": f"bronze.{feed.name}__{table.name}",
                "lake/metadata_file": source_file,
                "lake/keys": ", ".join(table.keys) or "(none)",
                "lake/cdc": table.cdc,
            },
        )
        for table in feed.tables
    ]
