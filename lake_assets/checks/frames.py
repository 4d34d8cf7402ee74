"""Checks over Spark DataFrames of data already written or about to be merged.

`tally_frame` is one Spark action: every task runs `evaluate_rows` (Pandera's pandas backend) on
its Arrow batches and sends one JSON tally row; uniqueness, which no single task can judge, is
a group-by count of each unique column set in the same action (adaptive execution runs each
group-by's shuffle as a job of its own). The driver merges the rows.
Pure functions of the DataFrames they are given: no session is created here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import reduce

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lake_assets.checks.rows import evaluate_rows
from lake_assets.checks.rules import ARCHIVE_COLUMN, Rule, TableRules
from lake_assets.checks.tally import MAX_ARCHIVES, SAMPLE_SIZE, CheckTally, sample_text

TALLY_SCHEMA = "tally string"
_COUNT = "_lake_count"
_FOUND = "_lake_found"
_VALUE = "_lake_value"
_DIGEST = "_lake_digest"
_VERSIONS = "_lake_versions"
_NEW = "_lake_new"
_ARCHIVE = "_lake_archives"


def tally_frame(df: DataFrame, rules: TableRules, *, unique_by: Sequence[str] = ()
                ) -> CheckTally:
    """What `rules` find in `df`: one read of its rows for every row rule, plus one shuffle per
    uniqueness rule (judged over all of `df`), collected by one Spark action.

    `unique_by` are columns `df` already holds one row per (nulls equal): a uniqueness rule
    over all of them cannot find a repeat, so it is not evaluated.
    """
    wanted = [*rules.columns, rules.facility_column]
    present = [c for c in dict.fromkeys(wanted) if c in df.columns]
    row_rules = rules.without_uniqueness()
    parts = [df.select(*present).mapInArrow(_row_pass(row_rules), TALLY_SCHEMA)]
    for rule in rules.uniqueness:
        if unique_by and set(unique_by) <= set(rule.columns):
            continue
        if all(c in df.columns for c in rule.columns):
            parts.append(_duplicates(df, rule))
    # Bounded: one tally row per task of each part, never data rows.
    rows = reduce(DataFrame.union, parts).collect()
    return CheckTally.merge_all(CheckTally.from_json(row[0]) for row in rows)


def _row_pass(rules: TableRules) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def tally_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        total = CheckTally()
        for batch in batches:
            total = total.merge(evaluate_rows(rules, batch).tally)
        yield pa.record_batch([pa.array([total.to_json()], pa.string())], names=["tally"])

    return tally_task


def _duplicates(df: DataFrame, rule: Rule) -> DataFrame:
    """One tally row per task: rows beyond the first of each repeated value of `rule.columns`.

    Rows with a null in those columns are not compared, as Pandera does not compare them.
    """
    present = reduce(lambda a, b: a & b, [F.col(c).isNotNull() for c in rule.columns])
    repeated = (df.where(present).groupBy(*rule.columns).agg(F.count(F.lit(1)).alias(_COUNT))
                .where(F.col(_COUNT) > 1))

    def duplicates_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        extra, samples = 0, {}
        for batch in batches:
            extra += pc.sum(pc.subtract(batch.column(_COUNT), 1)).as_py() or 0
            for row in batch.slice(0, SAMPLE_SIZE).select(list(rule.columns)).to_pylist():
                parts = (sample_text(row[c], phi=rule.phi) for c in rule.columns)
                samples.setdefault("|".join(parts))
        tally = CheckTally(
            failing={rule.name: extra} if extra else {},
            failing_by_check={rule.check: extra} if extra else {},
            samples={rule.name: tuple(samples)[:SAMPLE_SIZE]} if extra else {},
        )
        yield pa.record_batch([pa.array([tally.to_json()], pa.string())], names=["tally"])

    return repeated.mapInArrow(duplicates_task, TALLY_SCHEMA)


@dataclass(frozen=True)
class Conflicts:
    """What `find_conflicts` found: a tally of the `keys.conflict` rule, and the identities in
    conflict (a lazy DataFrame of the rule's columns) for a caller that holds them back."""

    tally: CheckTally
    identities: DataFrame


def find_conflicts(changes: DataFrame, stored: DataFrame | None, rule: Rule) -> Conflicts:
    """Records of `changes` whose identity (`rule.columns`) is shared by a record of other
    content (`rule.content`), among `changes` or in `stored` (the table they merge into).

    The tally counts the records of `changes` in conflict, with masked identities and the
    archives involved (theirs and the stored records'). Two Spark jobs over the conflicting
    identities only, which are few.
    """
    identity = list(rule.columns)
    content = [c for c in rule.content if c in changes.columns]
    present = reduce(lambda a, b: a & b, [F.col(c).isNotNull() for c in identity])
    incoming = _fingerprinted(changes.where(present), identity, content, incoming=True)
    parts = incoming
    if stored is not None and all(c in stored.columns for c in [*identity, *content]):
        mine = stored.join(incoming.select(*identity).distinct(), on=identity, how="left_semi")
        parts = incoming.unionByName(_fingerprinted(mine, identity, content, incoming=False))
    groups = parts.groupBy(*identity).agg(
        F.countDistinct(_DIGEST).alias(_VERSIONS),
        F.sum(F.col(_NEW).cast("long")).alias(_COUNT),
        F.slice(F.array_sort(F.collect_set(_ARCHIVE)), 1, MAX_ARCHIVES).alias(_ARCHIVE),
    )
    conflicting = groups.where((F.col(_VERSIONS) > 1) & (F.col(_COUNT) > 0))
    # Bounded: one row, then SAMPLE_SIZE rows.
    total = conflicting.agg(F.sum(_COUNT)).first()
    records = int(total[0] or 0) if total else 0
    if not records:
        return Conflicts(CheckTally(), conflicting.select(*identity))
    sampled = conflicting.limit(SAMPLE_SIZE).collect()
    samples = tuple(dict.fromkeys(
        "|".join(sample_text(row[c], phi=rule.phi) for c in identity) for row in sampled))
    archives = tuple(dict.fromkeys(a for row in sampled for a in row[_ARCHIVE] or ()))
    tally = CheckTally(
        failing={rule.name: records}, failing_by_check={rule.check: records},
        samples={rule.name: samples}, archives={rule.name: archives[:MAX_ARCHIVES]},
    )
    return Conflicts(tally, conflicting.select(*identity))


def _fingerprinted(df: DataFrame, identity: list[str], content: list[str], *,
                   incoming: bool) -> DataFrame:
    digest = F.md5(F.to_json(F.struct(*[F.col(c) for c in content]))) if content \
        else F.lit("")
    archive = F.col(ARCHIVE_COLUMN) if ARCHIVE_COLUMN in df.columns else F.lit(None)
    return df.select(*identity, digest.alias(_DIGEST), archive.cast("string").alias(_ARCHIVE),
                     F.lit(incoming).alias(_NEW))


@dataclass(frozen=True)
class ReferenceCount:
    """Rows whose `column` holds a value absent from the referenced column, of those checked
    (non-null); `samples` are masked when the column is PHI-tagged."""

    checked: int
    missing: int
    samples: tuple[str, ...]


def missing_references(
    df: DataFrame, target: DataFrame, *, column: str, to_column: str, phi: bool
) -> ReferenceCount:
    """Count rows of `df` whose non-null `column` is not a value of `target.to_column`.

    One Spark job: an outer join against the distinct referenced values, counted in one
    aggregation (the rows a left-anti join would keep are those with no match). Samples are the
    smallest and largest missing values.
    """
    values = df.select(F.col(column).alias(_VALUE)).where(F.col(_VALUE).isNotNull())
    known = (target.select(F.col(to_column).alias(_VALUE)).where(F.col(_VALUE).isNotNull())
             .distinct().withColumn(_FOUND, F.lit(True)))
    joined = values.join(known, on=_VALUE, how="left")
    missing = F.col(_FOUND).isNull()
    row = joined.agg(
        F.count(F.lit(1)).alias("checked"),
        F.count(F.when(missing, F.lit(1))).alias("missing"),
        F.min(F.when(missing, F.col(_VALUE))).alias("low"),
        F.max(F.when(missing, F.col(_VALUE))).alias("high"),
    ).first()
    if row is None:
        return ReferenceCount(0, 0, ())
    found = [v for v in (row["low"], row["high"]) if v is not None]
    samples = tuple(dict.fromkeys(sample_text(v, phi=phi) for v in found))
    return ReferenceCount(checked=row["checked"], missing=row["missing"], samples=samples)


def daily_counts(
    df: DataFrame, *, date_column: str, first: dt.date, last: dt.date
) -> dict[dt.date, int]:
    """Rows per day of `date_column` from `first` to `last`, inclusive; days without rows are
    absent. One Spark job; a Delta table partitioned by `date_column` reads only those days."""
    day = F.col(date_column)
    # Bounded: one row per day from `first` to `last`.
    rows = (df.where(day.between(F.lit(first), F.lit(last)))
            .groupBy(day.alias("day")).count().collect())
    return {row["day"]: row["count"] for row in rows}
