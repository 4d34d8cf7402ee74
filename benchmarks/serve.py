"""SQL endpoint benchmark: dashboard queries over a simulated month at reduced scale, through
`lakehouse serve` with 1, 4 and 16 concurrent clients, as an analyst (all rows) and as a tenant
(its facilities), against the same queries through `lakehouse sql` (a fresh local Spark, and
Spark Connect) and `query()` on a warm local Spark.

    python -m benchmarks.serve [--facilities 20] [--days 30] [--per-client 40] [--out FILE]

Prints a table and writes JSON. Goals on 2 cores: gold p95 <= 100 ms at 16 clients, >= 50x
faster than Spark, tenant overhead <= 20%.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg
import pyarrow as pa
from deltalake import write_deltalake

QUERIES = {
    "census (gold)": "SELECT facility_code, census_date, occupied_beds, occupancy "
                     "FROM gold.daily_census WHERE census_date >= DATE '2026-11-01' "
                     "ORDER BY facility_code, census_date",
    "adt by week": "SELECT facility_code, date_trunc('week', event_time) AS week, "
                   "COUNT(*) AS messages FROM silver.adt_messages GROUP BY 1, 2 ORDER BY 1, 2",
    "lab turnaround": "SELECT test_code, percentile_cont(0.5) WITHIN GROUP (ORDER BY minutes) "
                      "AS p50, percentile_cont(0.9) WITHIN GROUP (ORDER BY minutes) AS p90 "
                      "FROM silver.lab_results GROUP BY test_code ORDER BY test_code",
    "mrn lookup": "SELECT 'adt' AS source, COUNT(*) AS n FROM silver.adt_messages "
                  "WHERE mrn = 'mrn00042' UNION ALL SELECT 'lab', COUNT(*) "
                  "FROM silver.lab_results WHERE mrn = 'mrn00042'",
}
USERS = {"analyst": ("ana", "dev-ana-password"),
         "tenant": ("northwind_portal", "dev-northwind-password")}


def build(root: Path, facilities: int, days: int, seed: int = 7) -> dict[str, int]:
    """Write silver and gold tables of a month at reduced scale; returns rows per table."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    codes = [f"FAC{i:05d}" for i in range(facilities)]
    adt, labs, census = [], [], []
    for day in range(days):
        for code in codes:
            for i in range(150):
                at = start + dt.timedelta(days=day, minutes=rng.randrange(1440))
                adt.append((code, f"m{day}{code}{i}", f"mrn{rng.randrange(5000):05d}", at))
            for i in range(60):
                labs.append((code, f"r{day}{code}{i}", f"mrn{rng.randrange(5000):05d}",
                             f"{rng.randrange(10)}-{rng.randrange(9)}", rng.uniform(5, 600)))
            census.append((code, (start + dt.timedelta(days=day)).date(), 40, rng.randrange(40)))
    tables = {
        "silver/adt_messages": _table(["facility_code", "message_id", "mrn", "event_time"], adt),
        "silver/lab_results": _table(["facility_code", "result_id", "mrn", "test_code",
                                      "minutes"], labs),
        "gold/daily_census": _table(["facility_code", "census_date", "beds", "occupied_beds"],
                                    census),
    }
    gold = tables["gold/daily_census"]
    tables["gold/daily_census"] = gold.append_column(
        "occupancy", pa.array([o / b for o, b in zip(gold["occupied_beds"].to_pylist(),
                                                      gold["beds"].to_pylist(), strict=True)]))
    for name, table in tables.items():
        table = table.append_column("_facility_id", table["facility_code"])
        write_deltalake(str(root / name), table)
    return {name: t.num_rows for name, t in tables.items()}


def _table(names: list[str], rows: list[tuple]) -> pa.Table:
    return pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})


def clients(port: int, user: str, sql: str, count: int, per_client: int) -> dict[str, float]:
    """`count` clients each running `sql` `per_client` times; latency percentiles and QPS."""
    name, secret = USERS[user]
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def client() -> None:
        try:
            run()
        except BaseException as exc:  # a failed client fails the benchmark, not silently
            errors.append(exc)
            barrier.abort()

    def run() -> None:
        with psycopg.connect(host="127.0.0.1", port=port, user=name, password=secret,
                             dbname="lake", autocommit=True) as connection:
            connection.execute(sql).fetchall()  # warm: connection and table load
            barrier.wait()
            mine = []
            for _ in range(per_client):
                began = time.perf_counter()
                connection.execute(sql).fetchall()
                mine.append(time.perf_counter() - began)
            with lock:
                latencies.extend(mine)

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    latencies.sort()
    return {"p50_ms": statistics.median(latencies) * 1000,
            "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000,
            "qps": len(latencies) / wall}


def spark_latency(sql: str, user: str, runs: int = 3) -> float:
    """Median seconds of `sql` through `query()` on local Spark (session already started)."""
    from lake_assets.api import query

    times = []
    for _ in range(runs):
        began = time.perf_counter()
        query(sql, user=USERS[user][0]).collect()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def cli_seconds(sql: str, env: dict[str, str]) -> float:
    """Wall seconds of `lakehouse sql` as an analyst from a fresh process."""
    began = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("lakehouse")), "sql", sql, "--user",
                    USERS["analyst"][0], "--limit", "5"], env=env, check=True,
                   capture_output=True, timeout=900)
    return time.perf_counter() - began


def spark_cli(connect: bool) -> dict[str, float]:
    """`lakehouse sql` wall seconds per query: a fresh local Spark each time, and with
    `connect` through a Spark Connect server started for it (the first query warms it)."""
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    found = {"local: " + label: cli_seconds(sql, env) for label, sql in
             list(QUERIES.items())[:1]}
    if not connect:
        return found
    port = 15000 + os.getpid() % 1000
    server = subprocess.Popen([str(Path(sys.executable).with_name("lakehouse")),
                               "spark-server", "--port", str(port), "--master", "local[2]"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        subprocess.run([str(Path(sys.executable).with_name("lakehouse")), "spark-server",
                        "--port", str(port), "--wait-only"], check=True, timeout=600,
                       capture_output=True)
        env["SPARK_REMOTE"] = f"sc://127.0.0.1:{port}"
        cli_seconds(QUERIES["census (gold)"], env)
        found |= {"connect: " + label: cli_seconds(sql, env) for label, sql in QUERIES.items()}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--facilities", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-client", type=int, default=40)
    parser.add_argument("--spark", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--connect", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", type=Path,
                        default=Path(tempfile.gettempdir()) / "serve-benchmark.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    os.environ["LAKE_ROOT"] = str(work / "lake")
    os.environ.setdefault("LAKE_SECRETS_FILE", str(Path("dev.secrets").resolve()))
    rows = build(work / "lake", args.facilities, args.days)
    print(f"lake: {rows} under {work}; load {os.getloadavg()}")

    from lake_assets.catalog.loader import load_catalog, metadata_root
    from lake_assets.serve.server import build_endpoint, running
    from lake_assets.storage.lake import Lake

    results: list[dict[str, object]] = []
    endpoint = build_endpoint(Lake(), load_catalog(metadata_root()), port=0)
    with running(endpoint) as served:
        for label, sql in QUERIES.items():
            for user in USERS:
                for count in (1, 4, 16):
                    found = clients(served.port, user, sql, count, args.per_client)
                    results.append({"query": label, "user": user, "clients": count, **found})
                    print(f"{label:15} {user:8} {count:2} clients  p50 {found['p50_ms']:7.2f} ms"
                          f"  p95 {found['p95_ms']:7.2f} ms  {found['qps']:7.1f} q/s")
        memory = psutil.Process().memory_info().rss / 2**20
    spark, cli = {}, {}
    if args.spark:
        cli = spark_cli(args.connect)
        for label, seconds in cli.items():
            print(f"lakehouse sql {label:25} {seconds:7.1f} s")
        for label, sql in QUERIES.items():
            spark[label] = spark_latency(sql, "analyst")
            print(f"{label:15} query() on warm local Spark, median {spark[label] * 1000:9.1f} ms")
    report = {"rows": rows, "results": results, "server_rss_mib": memory,
              "spark_local_s": spark, "lakehouse_sql_s": cli, "load": os.getloadavg()}
    args.out.write_text(json.dumps(report, indent=2, default=str))
    summarize(report)
    print(f"JSON: {args.out}")


def summarize(report: dict) -> None:
    """Print the goals: gold p95 at 16 clients, speed-up over Spark, tenant overhead."""
    by = {(r["query"], r["user"], r["clients"]): r for r in report["results"]}
    print(f"\nserver RSS {report['server_rss_mib']:.0f} MiB (endpoint and benchmark process)")
    print(f"{'query':15} {'p95@16 ana':>11} {'p95@16 tenant':>14} {'tenant/ana p50@1':>17} "
          f"{'warm Spark/endpoint p50@1':>26} {'Connect CLI/endpoint':>21}")
    for label in QUERIES:
        analyst, tenant = by[(label, "analyst", 16)], by[(label, "tenant", 16)]
        ratio = by[(label, "tenant", 1)]["p50_ms"] / by[(label, "analyst", 1)]["p50_ms"]
        spark = report["spark_local_s"].get(label)
        base = by[(label, "analyst", 1)]["p50_ms"]
        speedup = f"{spark * 1000 / base:.0f}x" if spark else "-"
        connect = report["lakehouse_sql_s"].get(f"connect: {label}")
        via_cli = f"{connect * 1000 / base:.0f}x" if connect else "-"
        print(f"{label:15} {analyst['p95_ms']:9.1f}ms {tenant['p95_ms']:12.1f}ms "
              f"{ratio:17.2f} {speedup:>26} {via_cli:>21}")


if __name__ == "__main__":
    main()
