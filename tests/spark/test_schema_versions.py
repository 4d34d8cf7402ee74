"""Schema history: every table keeps each schema it has had, and a reader asks for one by number.

A column addition and a type change each start a new schema version; a write that keeps the
schema adds none. `read_table(..., schema_version=N)` reads the table as it last was with its
N-th schema, and `lakehouse catalog` lists the versions as `schema_versions`.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from lake_assets.api import read_table
from lake_assets.catalog.loader import load_catalog
from lake_assets.cli import app
from lake_assets.errors import SchemaVersionError
from lake_assets.storage.lake import Lake
from tests.conftest import METADATA

pytestmark = pytest.mark.spark

TABLE = ("gold", "daily_census")


def test_history_survives_a_column_addition_and_a_type_change(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(root=str(tmp_path / "lake"), session_factory=lambda: spark)
    write = lambda rows, schema, **kw: lake.write(  # noqa: E731
        spark.createDataFrame(rows, schema), table=TABLE, **kw)

    write([(1, "a")], "id int, name string")
    first = lake.record_schema(TABLE, code_version="v1")
    write([(2, "b")], "id int, name string")
    assert lake.record_schema(TABLE, code_version="v1") == first  # same schema: no new version
    write([(3, "c", 7.5)], "id int, name string, score double", evolve_schema=True)
    added = lake.record_schema(TABLE, code_version="v2")
    # A projection whose SQL changed a type replaces the table with the new schema.
    ref = lake.ref(TABLE)
    write_deltalake(ref.uri, pa.table({"id": pa.array([4], pa.int64()), "name": ["d"],
                                       "score": [1.0]}),
                    mode="overwrite", schema_mode="overwrite")
    changed = lake.record_schema(TABLE, code_version="v3")

    versions = lake.schema_history().versions("gold/daily_census")
    assert [(v.schema_version, v.code_version) for v in versions] == [
        (1, "v1"), (2, "v2"), (3, "v3")]
    assert versions[0].delta_version == 0 and versions[2].delta_version == lake.version(TABLE)
    assert versions[1].column_names() == ["id", "name", "score"]
    assert (first.columns, added.columns, changed.columns) == (2, 3, 3)

    catalog = load_catalog(METADATA)
    read = lambda n: read_table("gold.daily_census", user="admin", kind="arrow",  # noqa: E731
                                lake=lake, catalog=catalog, schema_version=n)
    assert read(1).column_names == ["id", "name"] and read(1).num_rows == 2
    assert sorted(read(2).column("id").to_pylist()) == [1, 2, 3]
    assert read(3).schema.field("id").type == pa.int64()
    with pytest.raises(SchemaVersionError, match=r"no schema version 4.*1 to 3"):
        read(4)

    monkeypatch.setenv("LAKE_ROOT", lake.root or "")
    monkeypatch.setenv("LAKE_METADATA", str(METADATA))
    out = CliRunner().invoke(app, ["catalog", "--json", "SELECT \"table\", schema_version, "
                                   "code_version, column_names FROM schema_versions"])
    assert out.exit_code == 0, out.output
    assert '"code_version": "v3"' in out.output and '"column_names": "id,name,score"' in out.output
