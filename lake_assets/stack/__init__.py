"""The production shape on loopback (`lakehouse stack`): PostgreSQL, an S3 API, a Spark cluster
with a Connect server and Dagster's processes, each started in its own process group."""

from lake_assets.stack.processes import StackState, Started, alive, free_port, stop
from lake_assets.stack.services import postgres_binaries, start_postgres, start_s3
from lake_assets.stack.stack import down, status, up

__all__ = [
    "StackState",
    "Started",
    "alive",
    "down",
    "free_port",
    "postgres_binaries",
    "start_postgres",
    "start_s3",
    "status",
    "stop",
    "up",
]
