"""The instance storage dagster.yaml names: PostgreSQL through `dagster-postgres` when
`DAGSTER_PG_URL` is set, else Dagster's SQLite files under `DAGSTER_HOME` with pooled connections.

`LakeStorage` only chooses, when an instance loads; so one dagster.yaml serves a laptop and the
production stack (`lakehouse stack up`). The Postgres URL is read from the variable each time,
never written into the settings Dagster serialises for run workers.

Dagster's SQLite storages build a new SQLAlchemy engine for every connection they open. So each of
the ~370 events a bronze run of four feeds writes compiles its statements again and opens and
closes its database files; closing the last connection also checkpoints the WAL. That is 12-21 ms
per event, about 5 s of a 25 s slice in `benchmarks.ingest`. Keeping one engine, and its pooled
connection, per database file brings it to 4 ms. Files, tables and migrations are Dagster's own, so
a home written by either storage opens with the other. Dagster has no public hook for this, so the
classes below extend its SQLite storages through private modules; pyproject.toml pins Dagster's
exact release for them, and tests/storage runs two writer processes and a reader on them.
`python -m benchmarks.instance_storage` (2 shared cores): Dagster's SQLite 31 events/s, these
classes 91, dagster-postgres 37, pooled as dagster.yaml sets it 105.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
import sqlalchemy as sa
import yaml
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage

from lake_assets.errors import InstanceStorageError

# Run-sharded event logs: one engine per run database. A webserver reads many runs, so only the
# most recent keep theirs open (3 file handles each).
_OPEN_RUN_SHARDS = 16


# Dagster caps each gRPC message between its code server, webserver and daemon at 100 MB. The
# repository snapshot of a 10,000-asset code location is larger (`benchmarks.ui_scale`), and the
# location then fails to load. Every Dagster process the project starts runs with this instead.
DAGSTER_PROCESS_ENV = {"DAGSTER_GRPC_MAX_RX_BYTES": str(1 << 30),
                       "DAGSTER_GRPC_MAX_SEND_BYTES": str(1 << 30)}


def _engine(conn_string: str) -> sa.Engine:
    """An engine that keeps its connections open between uses.

    The storage classes serialise their own use (a lock in the event log; the run and schedule
    storages open a connection per call), so connections may move between threads.
    """
    return sa.create_engine(
        conn_string,
        pool_size=1,
        max_overflow=8,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """The event log, one database per run plus the index, each with an engine kept open."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, sa.Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[sa.Connection]:
        with self._db_lock:
            engine = self._engine_for(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine_for(self, shard: str) -> sa.Engine:
        """The engine of `shard`, opened (and the database created) on first use; under _db_lock."""
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = self._engines[shard] = _engine(self.conn_string_for_shard(shard))
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        while len(self._engines) > _OPEN_RUN_SHARDS + 1:  # + the index shard
            self._engines.popitem(last=False)[1].dispose()
        return engine

    def _dispose_engines(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._dispose_engines()  # wipe deletes the run databases under open connections
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()


class _OneEngine:
    """`connect()` from one engine kept open, for the storages of a single database file."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None):
        self._pooled = _engine(conn_string)
        super().__init__(conn_string, inst_data)  # type: ignore[call-arg]

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        with self._pooled.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self._pooled.dispose()
        super().dispose()  # type: ignore[misc]


class PooledSqliteRunStorage(_OneEngine, SqliteRunStorage):
    """Runs, with one engine kept open."""


class PooledSqliteScheduleStorage(_OneEngine, SqliteScheduleStorage):
    """Schedules, sensors and their ticks, with one engine kept open."""


class LakeSqliteStorage(DagsterSqliteStorage):
    """The instance's SQLite storage under `base_dir`, laid out as Dagster's `storage: sqlite`."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        # The parent's __init__ would open Dagster's own storages first; set up the pooled ones in
        # their place, with the same attributes.
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = PooledSqliteScheduleStorage.from_local(
            _schedule_directory(base_dir)
        )
        self._inst_data = inst_data
        DagsterStorage.__init__(self)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> LakeSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


POSTGRES_URL_VARIABLE = "DAGSTER_PG_URL"
_PSYCOPG2_SCHEMES = ("postgresql+psycopg2://", "postgres+psycopg2://")


class LakeStorage(DagsterPostgresStorage):
    """Chooses the instance storage when the instance loads; never itself instantiated.

    Dagster requires the class named in dagster.yaml to be a `DagsterStorage`; it gets its
    storage from `from_config_value`, which returns `DagsterPostgresStorage` (when the variable
    named by `postgres_url_variable` is set) or `LakeSqliteStorage` under `base_dir`.
    """

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {
            "base_dir": dg.StringSource,
            "postgres_url_variable": dg.Field(str, default_value=POSTGRES_URL_VARIABLE),
            # Each process keeps up to 1 + max_overflow connections per storage (runs, events,
            # schedules) instead of connecting for every query; see benchmarks.instance_storage.
            "postgres_pool": dg.Field(
                {"max_overflow": dg.Field(int, default_value=4),
                 "pool_recycle_seconds": dg.Field(int, default_value=3600)},
                is_required=False,
            ),
        }

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> DagsterStorage:
        variable = config_value["postgres_url_variable"]
        url = os.environ.get(variable)
        if not url:
            return LakeSqliteStorage(config_value["base_dir"], inst_data)
        if not url.startswith(_PSYCOPG2_SCHEMES):
            # SQLAlchemy 2.1 gives a bare postgresql:// URL to psycopg 3, whose `with conn`
            # closes the connection that dagster-postgres' pooled engines set a timeout on.
            raise InstanceStorageError(
                f"{variable} must name the psycopg2 driver: postgresql+psycopg2://user@host/db")
        # Dagster's own settings for its Postgres storage, with the URL still an env reference.
        postgres = ConfigurableClassData(
            "dagster_postgres", "DagsterPostgresStorage",
            yaml.safe_dump({"postgres_url": {"env": variable}}),
        ).rehydrate(DagsterStorage)
        pool = config_value.get("postgres_pool")
        if pool is not None:
            # What dagster-webserver does with its --db-pool-* options, for every process.
            for part in (postgres.run_storage, postgres.event_log_storage,
                         postgres.schedule_storage):
                part.optimize_for_webserver(statement_timeout=0,
                                            pool_recycle=pool["pool_recycle_seconds"],
                                            max_overflow=pool["max_overflow"])
        return postgres
