"""A small lake for the read-path tests: silver and gold Delta tables written with delta-rs.

Three facilities (FAC00000-FAC00002) so the shipped tenants (northwind: 00000 and 00001,
harbor: 00002) each see a known slice.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

FACILITIES = ("FAC00000", "FAC00001", "FAC00002")
DAY = dt.date(2026, 11, 20)


def visits(rows_per_facility: int = 4, *, units: tuple[str, ...] = ("ICU", "MED")) -> pa.Table:
    """silver.visits rows: hashed keys, a facility column and lineage columns."""
    rows = []
    for f_index, facility in enumerate(FACILITIES):
        for i in range(rows_per_facility):
            start = dt.datetime(2026, 11, 20, 8, tzinfo=dt.UTC) + dt.timedelta(hours=i)
            rows.append({
                "facility_code": facility, "visit_number": f"v{f_index}{i:03d}",
                "mrn": f"mrnhash{f_index}{i % 3}", "event_type": "A01",
                "event_time": start, "unit": units[i % len(units)], "bed": f"B{i}",
                "admit_time": start, "_facility_id": facility,
                "_source_archive": f"adt/{facility}/a{i}.zip", "_arrival_date": DAY.isoformat(),
            })
    return pa.Table.from_pylist(rows)


def patients() -> pa.Table:
    """silver.patients rows (no tenant may read them)."""
    return pa.Table.from_pylist([
        {"mrn": f"mrnhash{f}{i}", "sex": "F" if i else "M", "birth_date": 1950 + i,
         "_facility_id": FACILITIES[f]} for f in range(3) for i in range(3)])


def daily_census() -> pa.Table:
    """gold.daily_census rows: one per facility and day."""
    return pa.Table.from_pylist([
        {"facility_code": f, "census_date": DAY - dt.timedelta(days=d), "beds": 20 + i,
         "occupied_beds": 10 + d, "occupancy": round((10 + d) / (20 + i), 4)}
        for i, f in enumerate(FACILITIES) for d in range(3)])


def bronze_messages() -> pa.Table:
    """bronze.adt_events__adt_messages rows: raw PHI, for raw roles only."""
    return pa.Table.from_pylist([
        {"message_id": f"m{i}", "mrn": f"MRN{i:06d}", "_facility_id": FACILITIES[i % 3]}
        for i in range(6)])


def build_lake(root: Path) -> Path:
    """Write the small lake under `root`; returns `root`."""
    write_deltalake(str(root / "silver" / "visits"), visits())
    write_deltalake(str(root / "silver" / "patients"), patients())
    write_deltalake(str(root / "gold" / "daily_census"), daily_census())
    write_deltalake(str(root / "bronze" / "adt_events" / "adt_messages"), bronze_messages())
    return root
