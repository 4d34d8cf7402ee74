"""Dagster instance storage: events written per second and UI-like query latency for Dagster's
SQLite, the project's pooled SQLite (LakeSqliteStorage) and dagster-postgres, with and without
the pool dagster.yaml configures.

    python -m benchmarks.instance_storage [--runs 6] [--queries 30] [--out FILE]

PostgreSQL is a throwaway server (Debian's binaries) on a free loopback port, fsync on like
SQLite's files. A run materializes 10 assets that log 10 lines each (~170 events), as a bronze
run writes; the UI queries are the latest 25 runs, the latest materialization of every asset,
and one run's event log, from a second instance (a webserver's view).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import yaml

from lake_assets.stack import start_postgres, stop
from lake_assets.stack.services import create_database, remove_postgres_data
from tests.conftest import PROJECT_ROOT

ASSETS = 10
LINES = 10


def _asset(index: int) -> dg.AssetsDefinition:
    @dg.asset(name=f"table_{index:02d}")
    def _table(context) -> dg.MaterializeResult:  # unannotated: Dagster rejects string hints
        for line in range(LINES):
            context.log.info(f"batch line {line}")
        return dg.MaterializeResult(metadata={"rows": 100, "files": 3})

    return _table


TABLES = [_asset(i) for i in range(ASSETS)]


def _storages(pg_url: str | None) -> dict[str, dict]:
    project = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())["storage"]
    sqlite = {"sqlite": {"base_dir": {"env": "DAGSTER_HOME"}}}
    found = {"dagster_sqlite": (sqlite, None), "lake_sqlite": (project, None)}
    if pg_url:
        unpooled = {"custom": {**project["custom"], "config": {
            k: v for k, v in project["custom"]["config"].items() if k != "postgres_pool"}}}
        found["postgres"] = (unpooled, pg_url.format(db="plain"))
        found["postgres_pooled"] = (project, pg_url.format(db="pooled"))
    return found


@contextmanager
def _instance(home: Path, storage: dict, pg_url: str | None) -> Iterator[dg.DagsterInstance]:
    os.environ["DAGSTER_HOME"] = str(home)
    if pg_url:
        os.environ["DAGSTER_PG_URL"] = pg_url
    else:
        os.environ.pop("DAGSTER_PG_URL", None)
    (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": storage,
                                                       "telemetry": {"enabled": False}}))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


def _latencies(query: Callable[[], object], repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        query()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 2)}


def measure(name: str, storage: dict, pg_url: str | None, *, runs: int,
            queries: int) -> dict[str, object]:
    """Write `runs` runs, then time the UI queries from a second instance."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
        home = Path(folder)
        with _instance(home, storage, pg_url) as writer:
            dg.materialize(TABLES, instance=writer)  # warm-up: tables, migrations, imports
            start = time.perf_counter()
            run_ids = [dg.materialize(TABLES, instance=writer).run_id for _ in range(runs)]
            elapsed = time.perf_counter() - start
            events = sum(len(writer.all_logs(r)) for r in run_ids)
        with _instance(home, storage, pg_url) as reader:
            keys = [t.key for t in TABLES]
            ui = {
                "latest_runs": _latencies(lambda: reader.get_runs(limit=25), queries),
                "latest_materializations": _latencies(
                    lambda: reader.get_latest_materialization_events(keys), queries),
                "run_event_log": _latencies(lambda: reader.all_logs(run_ids[-1]), queries),
            }
    return {"storage": name, "runs": runs, "events": events,
            "events_per_s": round(events / elapsed, 1),
            "ms_per_event": round(elapsed * 1000 / events, 2),
            "run_s": round(elapsed / runs, 2), **ui}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--out", type=Path,
                        default=Path(tempfile.gettempdir()) / "instance-storage-benchmark.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as folder:
        server, url = start_postgres(Path(folder), databases=())
        try:
            for database in ("plain", "pooled"):
                create_database(server.port or 0, database)
            results = [measure(name, storage, pg, runs=args.runs, queries=args.queries)
                       for name, (storage, pg) in _storages(url).items()]
        finally:
            stop(server)
            remove_postgres_data(Path(folder))
    args.out.write_text(json.dumps({"results": results}, indent=2))
    print(f"{'storage':<16} {'events/s':>9} {'ms/event':>9} {'run s':>6} "
          f"{'runs p50/p95':>14} {'latest mat.':>14} {'event log':>14}")
    for r in results:
        cells = [f"{r[q]['p50_ms']:.1f}/{r[q]['p95_ms']:.1f}"  # type: ignore[index]
                 for q in ("latest_runs", "latest_materializations", "run_event_log")]
        print(f"{r['storage']:<16} {r['events_per_s']:>9} {r['ms_per_event']:>9} "
              f"{r['run_s']:>6} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14}")
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    main()
