"""Schemas across Spark, Arrow and Delta: conversion, normalisation and evolution rules.

Tables store strings as `string`, timestamps as microseconds in UTC, and every column nullable,
so files written by any executor line up with the Delta schema.
"""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import StructType

from lake_assets.errors import DeltaSchemaError

_PARTITION_TYPES = ("string", "integer", "date", "boolean")


def normalize_type(kind: pa.DataType) -> pa.DataType:
    """The storage form of `kind`: plain strings/binary, UTC microsecond timestamps."""
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return pa.binary()
    if pa.types.is_timestamp(kind):
        return pa.timestamp("us", tz="UTC" if kind.tz else None)
    if pa.types.is_struct(kind):
        return pa.struct([_normalize_field(f) for f in kind])
    if pa.types.is_large_list(kind) or pa.types.is_list(kind):
        return pa.list_(_normalize_field(kind.value_field))
    if pa.types.is_map(kind):
        return pa.map_(normalize_type(kind.key_type), _normalize_field(kind.item_field))
    return kind


def _normalize_field(f: pa.Field) -> pa.Field:
    return pa.field(f.name, normalize_type(f.type), nullable=True)


def normalize_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` in storage form, every field nullable, metadata dropped."""
    return pa.schema([_normalize_field(f) for f in schema])


def spark_to_arrow(struct: StructType) -> pa.Schema:
    """The storage Arrow schema of a Spark schema."""
    return normalize_schema(to_arrow_schema(struct, timezone="UTC"))


def arrow_to_spark(schema: pa.Schema) -> StructType:
    """The Spark schema of an Arrow schema."""
    return from_arrow_schema(schema)


def reconcile(
    table_schema: pa.Schema, incoming: pa.Schema, *, table: str, evolve: bool
) -> tuple[pa.Schema, list[pa.Field]]:
    """The schema to write `incoming` into a table with `table_schema`, and the columns to add.

    Incoming columns may be missing (written as nulls) or safely widened (int32 -> int64).
    Raises DeltaSchemaError naming the table and column for a new column without `evolve`, or
    for a type the table column cannot hold.
    """
    added: list[pa.Field] = []
    for f in normalize_schema(incoming):
        index = table_schema.get_field_index(f.name)
        if index < 0:
            if not evolve:
                raise DeltaSchemaError(
                    f"table {table}: column {f.name!r} ({f.type}) is not in the table schema;"
                    " write with schema evolution to add it"
                )
            added.append(f)
            continue
        have = table_schema.field(index).type
        if f.type != have and not _widens(f.type, have):
            raise DeltaSchemaError(
                f"table {table}: column {f.name!r} has type {f.type}, the table has {have}"
            )
    return pa.schema([*table_schema, *added]), added


def _widens(source: pa.DataType, target: pa.DataType) -> bool:
    if pa.types.is_integer(source) and pa.types.is_integer(target):
        return source.bit_width <= target.bit_width and (
            pa.types.is_signed_integer(source) == pa.types.is_signed_integer(target)
        )
    if pa.types.is_floating(source) and pa.types.is_floating(target):
        return source.bit_width <= target.bit_width
    if pa.types.is_integer(source) and pa.types.is_floating(target):
        return source.bit_width < target.bit_width
    return False


def check_partition_columns(
    schema: pa.Schema, partition_by: tuple[str, ...], *, table: str
) -> None:
    """Raises DeltaSchemaError if a partition column is missing or of an unsupported type."""
    for name in partition_by:
        index = schema.get_field_index(name)
        if index < 0:
            raise DeltaSchemaError(f"table {table}: partition column {name!r} is not a column")
        kind = schema.field(index).type
        supported = (pa.types.is_string(kind) or pa.types.is_integer(kind)
                     or pa.types.is_date(kind) or pa.types.is_boolean(kind))
        if not supported:
            raise DeltaSchemaError(
                f"table {table}: partition column {name!r} has type {kind};"
                f" partition columns must be {', '.join(_PARTITION_TYPES)}"
            )
