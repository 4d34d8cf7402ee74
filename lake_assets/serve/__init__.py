"""The governed SQL endpoint: `lakehouse serve` (PostgreSQL protocol over DuckDB on the Delta
tables) and `lakehouse serve --engine trino` (`lake_assets.serve.trino`), one access policy.

`engine` runs statements for a principal, `database` and `loader` keep each policy shape's
DuckDB tables, `wire`/`extended`/`codec`/`replies` speak the protocol, `auth` logs users in.
"""

from lake_assets.serve.engine import Engine, Result, Session
from lake_assets.serve.server import audit_log, build_endpoint, running, serve_forever

__all__ = ["Engine", "Result", "Session", "audit_log", "build_endpoint", "running",
           "serve_forever"]
