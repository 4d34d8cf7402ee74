"""Delta statistics of written files, read from the Parquet footer, agree with the data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa

from lake_assets.storage.delta import WriteSpec, write_batches

SCHEMA = pa.schema([
    ("id", pa.int64()), ("code", pa.string()), ("at", pa.timestamp("us", tz="UTC")),
    ("day", pa.date32()), ("value", pa.float64()), ("ratio", pa.float64()),
    ("empty", pa.string()), ("flag", pa.bool_()), ("tags", pa.list_(pa.string())),
    ("note", pa.string()), ("facility", pa.string()),
])


def batch(first: int, *, nan: bool = False, long_note: bool = False) -> pa.RecordBatch:
    ids = list(range(first, first + 3))
    return pa.RecordBatch.from_pydict({
        "id": ids,
        "code": [f"c{i:03d}" for i in ids[:-1]] + [None],
        "at": [dt.datetime(2026, 11, 20, i % 24, tzinfo=dt.UTC) for i in ids],
        "day": [dt.date(2026, 11, 1 + i % 28) for i in ids],
        "value": [1.5 * i for i in ids],
        "ratio": [float("nan") if nan else 0.5, 0.25, None],
        "empty": [None, None, None],
        "flag": [True, None, False],
        "tags": [["a"], None, []],
        "note": ["x" * (5000 if long_note else 3), "b", "c"],
        "facility": ["F1"] * 3,
    }, schema=SCHEMA)


def test_footer_statistics_agree_with_the_data_over_row_groups(tmp_path: Path) -> None:
    spec = WriteSpec(uri=str(tmp_path / "t"), table="bronze/t", schema=SCHEMA,
                     partition_by=("facility",))
    batches = [batch(7), batch(1, nan=True), batch(30, long_note=True)]
    [written] = write_batches(batches, spec)
    stats = json.loads(written.stats)
    data = pa.Table.from_batches(batches)

    assert stats["numRecords"] == written.num_records == 9
    assert stats["minValues"] == {
        "id": 1, "code": "c001", "at": "2026-11-20T01:00:00.000Z", "day": "2026-11-02",
        "value": 1.5,
    }
    assert stats["maxValues"] == {
        "id": 32, "code": "c031", "at": "2026-11-20T09:00:00.000Z", "day": "2026-11-10",
        "value": 48.0,
    }
    # NaN in `ratio`, a value too long for the footer in `note`, all nulls in `empty`: no bounds.
    assert stats["nullCount"] == {
        name: data.column(name).null_count
        for name in ("id", "code", "at", "day", "value", "ratio", "empty", "flag", "note")
    }
    assert stats["nullCount"]["code"] == 3 and stats["nullCount"]["empty"] == 9
