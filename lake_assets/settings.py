"""Where things live (DESIGN.md, "Where things live"), read from the environment when asked."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def metadata_root() -> Path:
    """The metadata folder: $LAKE_METADATA, else the project's `metadata/`."""
    return Path(os.environ.get("LAKE_METADATA", PROJECT_ROOT / "metadata"))


def lake_root() -> str:
    """Root of the lake: $LAKE_ROOT (local path or s3://bucket/prefix), default ./.lake."""
    return os.environ.get("LAKE_ROOT", ".lake").rstrip("/")


def landing_root() -> str:
    """Where facilities drop archives: $LANDING_ROOT, default $LAKE_ROOT/landing."""
    return os.environ.get("LANDING_ROOT", f"{lake_root()}/landing").rstrip("/")
