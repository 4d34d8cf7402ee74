"""Safe Harbor de-identification of PHI-tagged columns, as Spark Column expressions.

Tags (metadata `phi:`) and what silver stores instead of the raw value:

| tag | stored value | type |
|---|---|---|
| `hash` | lowercase hex HMAC-SHA256 of the value's text, keyed by secret `PHI_HMAC_KEY` | string |
| `redact` | null | the declared type |
| `year_only` | the year; years at least 90 before the reference year become that year | integer |
| `zip3` | first 3 digits of a 5- or 9-digit US ZIP, "000" if low-population, else null | string |
| `age` | the age, 90 for 90 and over | the declared type |

Hashing runs in an Arrow UDF rather than Spark's built-in `hmac`: the built-in takes the key as a
literal, which Spark prints in query plans (UI, event logs, `explain`). No Dagster here, and no
session is created: the functions only build expressions and transforms.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from functools import cache
from importlib import resources

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    TimestampType,
)

from lake_assets.catalog.models import Column as TableColumn
from lake_assets.catalog.models import ColumnType, PhiTag, Table

HMAC_SECRET = "PHI_HMAC_KEY"
AGE_CAP = 90
LOW_POPULATION_FILE = "data/low_population_zip3.txt"
US_ZIP = r"^[0-9]{5}(-?[0-9]{4})?$"
_SPARK_TYPES: dict[str, type[DataType]] = {
    "string": StringType, "integer": IntegerType, "long": LongType, "double": DoubleType,
    "boolean": BooleanType, "date": DateType, "timestamp": TimestampType,
}


@cache
def low_population_zip3() -> frozenset[str]:
    """The ZIP3 prefixes Safe Harbor requires to be replaced by "000", from the shipped list."""
    text = resources.files("lake_assets.ingest").joinpath(LOW_POPULATION_FILE).read_text("utf-8")
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(line for line in lines if line)


def hash_value(column: Column, *, key: str) -> Column:
    """`column` as text, replaced by its keyed HMAC-SHA256 in hex; null stays null.

    The same text gives the same hash in every table and feed, so hashed MRNs still join.
    Raises ValueError for an empty key.
    """
    if not key:
        raise ValueError(f"the {HMAC_SECRET} secret is empty")
    return _hmac_udf(key)(column.cast("string"))


def _hmac_udf(key: str) -> Callable[[Column], Column]:
    secret = key.encode("utf-8")

    def phi_hash(values: pa.Array) -> pa.Array:
        digests = [
            None if v is None else hmac.new(secret, v.encode("utf-8"), hashlib.sha256).hexdigest()
            for v in values.to_pylist()
        ]
        return pa.array(digests, pa.string())

    return F.arrow_udf(phi_hash, "string")


def redact(column: Column, *, kind: ColumnType) -> Column:
    """A null of the declared type in place of `column`, whatever it held."""
    return F.lit(None).cast(spark_type(kind))


def year_only(column: Column, *, reference_year: int) -> Column:
    """The year of a date or timestamp, as an integer.

    Years `AGE_CAP` or more before `reference_year` become `reference_year - AGE_CAP`: Safe
    Harbor also aggregates the dates that show an age over 89.
    """
    year = F.year(F.to_date(column))
    floor = F.lit(reference_year - AGE_CAP)
    # `greatest` skips nulls, so a missing date would otherwise become the floor year.
    return F.when(year.isNotNull(), F.greatest(year, floor)).cast("int")


def zip3(column: Column) -> Column:
    """The first three digits of a US ZIP code (`12345`, `12345-6789` or `123456789`, blanks
    around it ignored); "000" for low-population prefixes.

    Anything else is null: a postal code of another country (`141 34`, `SW1A 1AA`), too short,
    letters. Its first digits are not a ZIP3, and passing them on could identify someone.
    """
    text = F.trim(column.cast("string"))
    prefix = F.substring(text, 1, 3)
    masked = F.when(prefix.isin(*sorted(low_population_zip3())), F.lit("000")).otherwise(prefix)
    return F.when(text.rlike(US_ZIP), masked)


def age(column: Column) -> Column:
    """The age, with every age of `AGE_CAP` and over reported as `AGE_CAP`; null stays null."""
    return F.when(column >= AGE_CAP, F.lit(AGE_CAP)).otherwise(column)


def mask_column(
    column: Column, tag: PhiTag, *, kind: ColumnType, key: str, reference_year: int
) -> Column:
    """`column` de-identified by its PHI `tag`; see the module table for each result."""
    if tag == "hash":
        return hash_value(column, key=key)
    if tag == "redact":
        return redact(column, kind=kind)
    if tag == "year_only":
        return year_only(column, reference_year=reference_year)
    if tag == "zip3":
        return zip3(column)
    return age(column).cast(spark_type(kind))


def mask_table(df: DataFrame, table: Table, *, key: str, reference_year: int) -> DataFrame:
    """`df` with every PHI-tagged column of `table` replaced by its masked value, same order.

    Columns of `df` that `table` does not declare pass through unchanged.
    """
    tags = {c.name: (c.phi, c.type) for c in table.columns if c.phi is not None}
    masked = []
    for name in df.columns:
        if name not in tags:
            masked.append(F.col(name))
            continue
        tag, kind = tags[name]
        expression = mask_column(F.col(name), tag, kind=kind, key=key,
                                 reference_year=reference_year)
        masked.append(expression.alias(name))
    return df.select(*masked)


def masked_type(column: TableColumn) -> ColumnType:
    """The type silver stores for `column` after masking."""
    if column.phi in ("hash", "zip3"):
        return "string"
    if column.phi == "year_only":
        return "integer"
    return column.type


def spark_type(kind: ColumnType) -> DataType:
    """The Spark type of a metadata column type."""
    return _SPARK_TYPES[kind]()
