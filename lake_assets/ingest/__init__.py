"""The ingest core: landed archive bytes in, typed bronze rows and quarantined rows out.

No Dagster here (DESIGN decision 5). Archive reading, parsing and conforming are plain Python
on bytes and Arrow, which Spark executors call inside `mapInArrow` (`batch`); the masking and
CDC transforms (`mask`, `cdc`) are pure DataFrame -> DataFrame functions.
"""

from lake_assets.ingest.archives import Member, iter_members
from lake_assets.ingest.facility import ArchiveLocation, locate_archive
from lake_assets.ingest.read import ArchiveResult, TableRows, quarantined, read_archive
from lake_assets.ingest.schema import LINEAGE, arrow_schema, quarantine_schema, record_schema

__all__ = [
    "LINEAGE",
    "ArchiveLocation",
    "ArchiveResult",
    "Member",
    "TableRows",
    "arrow_schema",
    "iter_members",
    "locate_archive",
    "quarantine_schema",
    "quarantined",
    "read_archive",
    "record_schema",
]
