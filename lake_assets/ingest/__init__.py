"""The ingest core: landed archive bytes in, typed bronze rows and quarantined rows out.

No Dagster and no Spark here (DESIGN decision 5): Spark executors call `read_archive` inside
`mapInArrow` and declare its output with `arrow_schema`.
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
