"""`make run` loses no silver row: the two simulator runs it starts (a backfill, then the live
dripper) land in one lake, and every distinct record of bronze is in silver, once.

Before simulator identifiers carried a run tag, both runs numbered messages, visits and results
from 1 per facility: the same ids named different records, silver append kept one of each and
scd1 the later one, and no check turned red.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from deltalake import DeltaTable

from lake_assets.catalog.loader import load_catalog
from lake_assets.catalog.models import Table
from lake_assets.definitions import build_definitions
from lake_assets.simulate import SimulationOptions, simulate
from tests.conftest import METADATA
from tests.e2e.test_silver_gold_e2e import run, tick_feed_sensors

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# make run: `simulate --facilities 10 --hours 2 --rate 40 --faults 0.05 --size-scale 0.05
# --seed 7 --start <two hours before this hour>`, then `simulate --facilities 10 --rate 240
# --size-scale 0.05 --live` (seed 0) from now on. Both are replayed here without waiting,
# shorter: the backfill's hour, then the dripper's tenth of an hour after it.
START = datetime(2026, 11, 20, tzinfo=UTC)
BACKFILL = {"facilities": 10, "hours": 1, "rate": 40, "faults": 0.05, "size_scale": 0.05,
            "seed": 7, "start": START}
DRIPPER = {"facilities": 10, "hours": 0.1, "rate": 240, "size_scale": 0.05, "seed": 0,
           "start": START + timedelta(hours=1)}


def frame(path: Path) -> pd.DataFrame:
    return DeltaTable(str(path)).to_pyarrow_table().to_pandas() if path.exists() \
        else pd.DataFrame()


def identity(table: Table) -> list[str]:
    """What names one record in silver: the keys, plus sequence_by unless appended."""
    extra = [table.sequence_by] if table.cdc != "append" and table.sequence_by else []
    return list(dict.fromkeys([*table.keys, *extra]))


def expected_silver_rows(table: Table, bronze: pd.DataFrame) -> int:
    """Rows silver must hold for these bronze records: one per key (append, scd1) or per key
    and sequence (scd2); scd1 keys whose latest event deletes them are gone."""
    keys = list(table.keys)
    if table.cdc == "scd2":
        return len(bronze.drop_duplicates(identity(table)))
    if table.deletes is None:
        return len(bronze.drop_duplicates(keys))
    signal = table.deletes
    ordered = bronze.assign(_deleted=bronze[signal.column].isin(signal.values))
    latest = ordered.sort_values([table.sequence_by, "_deleted"]).drop_duplicates(keys, keep="last")
    return int((~latest["_deleted"]).sum())


def test_make_run_loses_no_silver_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      spark) -> None:
    lake = tmp_path / "lake"
    monkeypatch.setenv("LAKE_ROOT", str(lake))
    catalog = load_catalog(METADATA)
    for name, options in (("backfill", BACKFILL), ("live", DRIPPER)):
        simulate(catalog, SimulationOptions(out=str(lake / "landing"),
                                            truth=str(tmp_path / f"{name}.jsonl"), **options))
    defs = build_definitions(catalog)
    silver = [a for a in defs.assets if all(k.path[0] == "silver" for k in a.keys)]
    with dg.instance_for_test() as instance:
        for asset, request in tick_feed_sensors(defs, instance):
            run(defs, instance, [asset], request.partition_key, request.run_config, request.tags)
        results = dg.materialize(silver, instance=instance, resources=defs.resources,
                                 partition_key=START.date().isoformat())
    assert results.success
    conflicts = {e.asset_key.path[-1]: e for e in results.get_asset_check_evaluations()
                 if e.check_name == "keys_conflict"}

    for name in sorted({t.name for f in catalog.feeds for t in f.tables}):
        feeds = [(f, f.table(name)) for f in catalog.feeds if f.table(name)]
        table = feeds[0][1]
        assert table is not None
        bronze = pd.concat([frame(lake / "bronze" / f.name / name) for f, _ in feeds])
        declared = [c.name for c in table.columns]
        records = bronze.drop_duplicates(declared)
        # No two different records share an identity...
        assert len(records) == len(records.drop_duplicates(identity(table))), name
        assert conflicts[name].passed, (name, conflicts[name].description)
        # ...so silver holds every one of them.
        stored = len(frame(lake / "silver" / name))
        assert stored == expected_silver_rows(table, records), name
