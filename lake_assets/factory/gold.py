"""Gold assets: one per projection, Spark SQL over silver and gold tables declared in metadata.

Dependencies come from the tables the SQL reads (`catalog.lineage`). A daily projection's
partition recomputes its day and the `lookback_days` before it and replaces just those days,
since a day's arrivals can hold events of earlier days; other projections are rewritten whole.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.lineage import parse_query, projection_inputs, rewrite
from lake_assets.catalog.models import Projection, ProjectionChecks
from lake_assets.catalog.versions import gold_version
from lake_assets.checks.projection import projection_failures
from lake_assets.errors import ProjectionError
from lake_assets.factory.automation import DEPENDENTS
from lake_assets.factory.gold_schema import GoldColumn, gold_columns
from lake_assets.factory.report import table_size
from lake_assets.factory.specs import freshness_policy, owner_tags, provenance
from lake_assets.resources import DeltaLake
from lake_assets.storage.lake import Lake
from lake_assets.storage.sql import lake_sql


@dataclass(frozen=True)
class GoldSpec:
    """A projection with its files, the tables its SQL reads and the SQL Spark runs."""

    projection: Projection
    file: str
    sql_file: str
    sql: str
    spark_sql: str
    inputs: tuple[str, ...]

    @property
    def key(self) -> dg.AssetKey:
        """`gold/<projection>`."""
        return dg.AssetKey(["gold", self.projection.name])


def gold_specs(catalog: Catalog) -> list[GoldSpec]:
    """A spec per projection; raises MetadataError naming the SQL file for SQL that does not
    parse or reads a table the catalog does not hold."""
    inputs = projection_inputs(catalog)
    specs = []
    for projection in catalog.projections:
        path = catalog.sql_path(projection)
        sql_file = path.relative_to(catalog.root).as_posix()
        sql = path.read_text(encoding="utf-8")
        specs.append(GoldSpec(
            projection=projection, file=catalog.file_of("projection", projection.name),
            sql_file=sql_file, sql=sql, spark_sql=rewrite(parse_query(sql, file=sql_file)),
            inputs=inputs[projection.name],
        ))
    return specs


def build_gold_assets(catalog: Catalog, daily: dg.DailyPartitionsDefinition
                      ) -> list[dg.AssetsDefinition]:
    """A gold asset per projection, depending on the silver and gold tables its SQL reads;
    `daily` partitions those that declare partitions."""
    specs = gold_specs(catalog)
    columns = gold_columns(catalog, {s.projection.name: s.sql for s in specs}, _ordered(specs))
    return [_build(spec, catalog, columns.get(spec.projection.name), daily) for spec in specs]


def _ordered(specs: list[GoldSpec]) -> list[str]:
    """Projection names, each after the gold tables it reads (metadata rules out cycles)."""
    done: list[str] = []
    left = list(specs)
    while left:
        ready = [s for s in left
                 if all(i.split(".", 1)[1] in done for i in s.inputs if i.startswith("gold."))]
        if not ready:
            break
        done += [s.projection.name for s in ready]
        left = [s for s in left if s not in ready]
    return done


def _build(spec: GoldSpec, catalog: Catalog, columns: list[GoldColumn] | str | None,
           daily: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    projection = spec.projection
    if isinstance(columns, str):  # the UI says why the schema is missing
        schema: dict[str, object] = {"lake/column_schema_error": columns}
    else:
        schema = {"dagster/column_schema": dg.TableSchema(
            columns=[c.as_table_column() for c in columns])} if columns else {}

    @dg.asset(
        key=spec.key,
        deps=[dg.AssetKey(name.split(".", 1)) for name in spec.inputs],
        partitions_def=daily if projection.partitions else None,
        group_name="gold",
        description=(projection.description.strip()
                     + provenance(gold_version(projection, spec.sql), spec.file, spec.sql_file)
                     ).strip(),
        owners=owner_tags(projection.owners),
        kinds={"spark", "delta"},
        code_version=gold_version(projection, spec.sql),
        automation_condition=DEPENDENTS,
        freshness_policy=freshness_policy(projection.freshness),
        pool=f"gold_{projection.name}",
        tags={"lake/layer": "gold", "lake/projection": projection.name},
        metadata={
            "dagster/table_name": f"gold.{projection.name}",
            "lake/metadata_file": spec.file,
            "lake/sql_file": spec.sql_file,
            "lake/sql": dg.MetadataValue.md(f"```sql\n{spec.sql.strip()}\n```"),
            **schema,
        },
        check_specs=_rules_spec(spec),
    )
    def _gold(context: dg.AssetExecutionContext, lake: DeltaLake
              ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        day = context.partition_key if projection.partitions else None
        store = lake.open()
        found = refresh_projection(store, catalog, spec, day=day)
        context.log.info(f"gold.{projection.name} for {day or 'all days'}: {found}")
        where = {projection.partition_column: day} if day and projection.partition_column \
            else None
        size = table_size(store, spec.key.path, where=where,
                          code_version=gold_version(projection, spec.sql))
        yield dg.MaterializeResult(metadata=found | (size.as_metadata() if size else {}))
        if projection.checks is not None:
            yield _rules_result(spec, projection.checks, _written(store, spec, day))

    return _gold


RULES_CHECK = "rules"


def _rules_spec(spec: GoldSpec) -> list[dg.AssetCheckSpec]:
    checks = spec.projection.checks
    if checks is None:
        return []
    return [dg.AssetCheckSpec(RULES_CHECK, asset=spec.key, blocking=checks.blocking,
                              description="the projection's checks: "
                              f"{', '.join(checks.named_columns())}")]


def _written(lake: Lake, spec: GoldSpec, day: str | None) -> DataFrame:
    """The rows this run wrote: the days it replaced, or the whole table."""
    frame = lake.read(spec.key.path)
    projection = spec.projection
    if day is None or not projection.partition_column:
        return frame
    last = dt.date.fromisoformat(day)
    first = last - dt.timedelta(days=projection.lookback_days)
    return frame.where(F.col(projection.partition_column).between(F.lit(first), F.lit(last)))


def _rules_result(spec: GoldSpec, checks: ProjectionChecks, written: DataFrame
                  ) -> dg.AssetCheckResult:
    failing = projection_failures(written, checks)
    broken = {rule: rows for rule, rows in failing.items() if rows}
    return dg.AssetCheckResult(
        asset_key=spec.key, check_name=RULES_CHECK, passed=not broken,
        severity=dg.AssetCheckSeverity.ERROR if checks.severity == "error"
        else dg.AssetCheckSeverity.WARN,
        metadata={"failing_rows": sum(broken.values()), "failing_rows_by_rule": failing,
                  "rules_broken": ", ".join(sorted(broken)) or "none"})


def refresh_projection(
    lake: Lake, catalog: Catalog, spec: GoldSpec, *, day: str | None
) -> dict[str, object]:
    """Recompute `gold/<projection>`: for a daily projection the days from `day` minus
    `lookback_days` to `day`, replacing only those; otherwise the whole table.

    Returns materialization metadata. Raises ProjectionError if the SQL lacks the partition
    column or reads a gold table not written yet.
    """
    projection = spec.projection
    frame = lake_sql(lake, catalog, spec.spark_sql, spec.inputs)
    if day is None:
        return lake.write(frame, table=spec.key.path, mode="overwrite").as_metadata()
    column = projection.partition_column or ""
    if column not in frame.columns:
        raise ProjectionError(
            f"projection {projection.name}: {spec.sql_file} returns no column {column!r} "
            f"(partition_column in {spec.file}); it returns {', '.join(frame.columns)}"
        )
    last = dt.date.fromisoformat(day)
    first = last - dt.timedelta(days=projection.lookback_days)
    days = frame.where(F.col(column).between(F.lit(first), F.lit(last)))
    result = lake.write(
        days, table=spec.key.path, mode="overwrite", partition_by=[column],
        replace_where=[(column, ">=", first), (column, "<=", last)],
    )
    return result.as_metadata() | {"days": f"{first.isoformat()}..{last.isoformat()}"}
