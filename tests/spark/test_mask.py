"""PHI masks: what silver stores for each Safe Harbor tag, and that the key stays secret."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lake_assets.catalog.loader import load_catalog
from lake_assets.ingest.mask import (
    age,
    hash_value,
    low_population_zip3,
    mask_table,
    redact,
    year_only,
    zip3,
)
from tests.conftest import METADATA

pytestmark = pytest.mark.spark

KEY = "test-key"


def test_every_tag_in_one_pass(spark: SparkSession) -> None:
    rows = [
        ("0000100042", "Smith", date(1980, 5, 3), "02134", 45),
        ("0000100042", "Jones", date(1921, 1, 9), "03601", 104),
        ("0000200007", None, None, "12345-6789", 90),
        (None, "Li", date(2001, 12, 31), "123", None),
    ]
    df = spark.createDataFrame(rows, "mrn string, name string, born date, zip string, age int")
    out = df.select(
        hash_value(F.col("mrn"), key=KEY).alias("mrn"),
        redact(F.col("name"), kind="string").alias("name"),
        year_only(F.col("born"), reference_year=2026).alias("born"),
        zip3(F.col("zip")).alias("zip"),
        age(F.col("age")).alias("age"),
    ).collect()
    digest = hmac.new(KEY.encode(), b"0000100042", hashlib.sha256).hexdigest()
    assert [r.mrn for r in out] == [digest, digest, _hmac("0000200007"), None]
    assert [r.name for r in out] == [None] * 4
    assert [r.born for r in out] == [1980, 1936, None, 2001]  # 1921 shows an age over 89
    assert [r.zip for r in out] == ["021", "000", "123", None]
    assert [r.age for r in out] == [45, 90, 90, None]


def test_zip3_is_null_for_anything_but_a_us_zip(spark: SparkSession) -> None:
    values = ["02134", " 02134 ", "021345678", "02134-5678", "141 34", "SW1A 1AA", "H3Z 2Y7",
              "1234", "123456", "02134-567", "0213A", "02134 5678", "", None]
    df = spark.createDataFrame([(v,) for v in values], "zip string")
    out = [r.zip for r in df.select(zip3(F.col("zip")).alias("zip")).collect()]
    assert out == ["021", "021", "021", "021", *[None] * 10]


def test_low_population_prefixes_are_the_safe_harbor_seventeen() -> None:
    prefixes = low_population_zip3()
    assert len(prefixes) == 17
    assert {"036", "059", "102", "893"} <= prefixes


def test_masked_table_keeps_column_order_and_hides_the_key(spark: SparkSession) -> None:
    patients = load_catalog(METADATA).feed("adt_events").table("patients")
    assert patients is not None
    df = spark.createDataFrame(
        [("0000100042", "Smith", "Ann", date(1980, 5, 3), "F", "02134", "x")],
        "mrn string, family_name string, given_name string, birth_date date, sex string, "
        "postal_code string, extra string",
    )
    masked = mask_table(df, patients, key="a-very-secret-key", reference_year=2026)
    assert masked.columns == df.columns
    assert dict(masked.dtypes)["birth_date"] == "int"
    row = masked.first()
    assert row is not None
    assert (row.family_name, row.given_name, row.sex, row.postal_code, row.extra) == (
        None, None, "F", "021", "x")
    plan = masked._jdf.queryExecution().toString()
    assert "a-very-secret-key" not in plan
    assert b"a-very-secret-key".hex() not in plan.lower()


def _hmac(value: str) -> str:
    return hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()
