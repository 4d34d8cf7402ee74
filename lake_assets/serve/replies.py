"""The messages answering a statement's result or its error, shared by both query protocols."""

from __future__ import annotations

from collections.abc import Sequence

import lake_assets.serve.codec as codec
from lake_assets.errors import AccessDeniedError, LakehouseError
from lake_assets.serve.engine import Result


def reply(result: Result, *, describe: bool, formats: Sequence[int] = ()) -> list[bytes]:
    """The messages answering `result`: row description (if asked), rows in `formats` (text
    by default) and the tag."""
    if result.tag == "":
        return [codec.EMPTY_QUERY]
    parts = []
    if result.rows is not None:
        if describe:
            parts.append(codec.row_description(result.rows.schema, formats))
        parts.extend(codec.data_rows(result.rows, formats))
    parts.append(codec.command_complete(result.tag))
    return parts


def error_for(exc: LakehouseError) -> bytes:
    """ErrorResponse for a refused or failed statement: 42501 for permission denied."""
    return codec.error(str(exc), "42501" if isinstance(exc, AccessDeniedError) else "42000")
