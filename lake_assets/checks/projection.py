"""Rules over a projection's output (`checks:` in its YAML), judged on the rows just written.

One Spark action counts the failing rows of every row rule (not null, range, allowed, regex,
length); each unique column set is a group-by in the same job. Pure: it judges the DataFrame it
is given and never reads or writes storage.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lake_assets.catalog.models import ColumnChecks, ProjectionChecks


def _row_rules(checks: ProjectionChecks) -> dict[str, Column]:
    """Rule name -> the condition under which a row breaks it (null values pass all but
    not_null, as in table checks)."""
    rules: dict[str, Column] = {f"{c}_not_null": F.col(c).isNull() for c in checks.not_null}
    for name, rule in checks.columns.items():
        rules |= _column_rules(name, rule)
    return rules


def _column_rules(name: str, rule: ColumnChecks) -> dict[str, Column]:
    value, found = F.col(name), {}
    if rule.range is not None:
        found[f"{name}_range"] = _outside(value, rule.range.min, rule.range.max)
    if rule.length is not None:
        found[f"{name}_length"] = _outside(F.length(value), rule.length.min, rule.length.max)
    if rule.allowed is not None:
        found[f"{name}_allowed"] = ~value.cast("string").isin(list(rule.allowed))
    if rule.regex is not None:
        found[f"{name}_regex"] = ~value.cast("string").rlike(rule.regex)
    return found


def _outside(value: Column, low: float | None, high: float | None) -> Column:
    terms = [value < F.lit(low)] if low is not None else []
    terms += [value > F.lit(high)] if high is not None else []
    return reduce(lambda a, b: a | b, terms) if terms else F.lit(False)


def _unique_sets(checks: ProjectionChecks) -> dict[str, list[str]]:
    sets = {f"{c}_unique": [c] for c, rule in checks.columns.items() if rule.unique}
    if checks.unique:
        sets["_".join(checks.unique) + "_unique"] = list(checks.unique)
    return sets


def projection_failures(frame: DataFrame, checks: ProjectionChecks) -> dict[str, int]:
    """Failing rows per rule of `checks` in `frame`: for a unique rule, the rows that share
    their values with another row."""
    rules = _row_rules(checks)
    found: dict[str, int] = {}
    if rules:
        counts = frame.agg(*[F.sum(F.when(cond, 1).otherwise(0)).alias(name)
                             for name, cond in rules.items()]).first()
        found |= {name: int((counts[name] if counts else 0) or 0) for name in rules}
    for name, columns in _unique_sets(checks).items():
        present = reduce(lambda a, b: a & b, [F.col(c).isNotNull() for c in columns])
        repeated = (frame.where(present).groupBy(*columns).count()
                    .where(F.col("count") > 1).agg(F.sum("count")).first())
        found[name] = int((repeated[0] if repeated else 0) or 0)
    return found
