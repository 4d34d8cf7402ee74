"""Schema drift: declared columns a data file did not carry, and undeclared fields it did.

A nullable column missing from a file becomes null without failing a row, so drift is counted
per archive and reported (manifest, `schema_drift` check) instead: an owner sees that three
facilities stopped sending `middle_name` today.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake_assets.catalog.models import Table
from lake_assets.ingest.records import RawTable


class Drift(TypedDict):
    """One table's drift in one archive: column and field names, sorted."""

    missing: list[str]
    undeclared: list[str]


def schema_drift(table: Table, raw: RawTable, members: pa.Array) -> dict[int, Drift]:
    """Drift per archive of `table`'s records read together, whose members are named
    `<archive index>/<member>` (see `read.read_archives`).

    A declared column is missing from a file when none of the file's records carries it (a CSV
    header without it, an XML element or HL7 segment no record has); an undeclared field is any
    field a record carried that no column declares. Archives without drift are left out.
    """
    if not raw.num_rows:
        return {}
    encoded = pc.dictionary_encode(members)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    owners = [int(name.partition("/")[0]) for name in encoded.dictionary.to_pylist()]
    files = len(owners)
    missing: dict[int, set[str]] = {}
    for column in table.columns:
        present = raw.column(column.name).is_valid().to_numpy(zero_copy_only=False)
        carried = np.bincount(codes, weights=present, minlength=files)
        for file in np.flatnonzero(carried == 0):
            missing.setdefault(owners[file], set()).add(column.name)
    undeclared: dict[int, set[str]] = {}
    if any(fields is not None for fields in raw.unknown):
        for code, fields in zip(codes, raw.unknown, strict=True):
            if fields:
                undeclared.setdefault(owners[code], set()).update(fields)
    return {
        index: Drift(missing=sorted(missing.get(index, ())),
                     undeclared=sorted(undeclared.get(index, ())))
        for index in sorted(set(missing) | set(undeclared))
    }
