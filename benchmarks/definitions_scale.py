"""Definitions load at scale: generated metadata of N feeds x T tables, loaded in a cold process.

    python -m benchmarks.definitions_scale [--feeds 50,500] [--tables 10] [--json FILE]

Each feed is the shipped `lab_results` feed renamed, with T copies of its table (13 columns and
their checks), so a size has N x T bronze and N x T silver assets. For each size a fresh Python
process imports the entry point and builds the repository, as a code server, the daemon and
every run do; it reports the time of each phase and the peak memory (RSS). The phases:

- import: `import lake_assets.definitions` (Python modules only, no metadata);
- yaml: parsing every metadata file;
- validation: the whole `load_catalog` less its YAML parsing (models and cross-file rules);
- assets: bronze, silver and gold asset definitions with their check specs;
- sensors: feed sensors, automation, alert routing and silence checks;
- repository: `Definitions(...)` and `get_repository_def()`, which resolves the asset graph.

Memory is reported as the peak RSS and as the RSS each phase added. Beside each size, a floor
row times Dagster alone on the same shape: per feed one bronze multi-asset of T tables and T
silver assets that depend on them, daily-partitioned, each with as many check specs as the
project gives it. Its import is Dagster and the two resource libraries the definitions hand to
Dagster (dagster-deltalake, dagster-pyspark); no metadata, sensors, jobs or project code.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import yaml
from rich.console import Console
from rich.table import Table

from benchmarks import PROJECT_ROOT

METADATA = PROJECT_ROOT / "metadata"
PHASES = ("import", "yaml", "validation", "assets", "sensors", "repository")
console = Console(width=None if sys.stdout.isatty() else 140)


def generate(target: Path, *, feeds: int, tables: int) -> None:
    """Write metadata of `feeds` x `tables` under `target` (owners.yaml, feeds/, projections/)."""
    template = yaml.safe_load((METADATA / "feeds" / "lab_results.yaml").read_text())
    (target / "feeds").mkdir(parents=True)
    (target / "projections").mkdir()
    (target / "owners.yaml").write_text((METADATA / "owners.yaml").read_text())
    table = template["tables"][0]
    for f in range(feeds):
        feed = copy.deepcopy(template)
        feed["name"] = f"feed_{f:04d}"
        feed["landing"]["prefix"] = f"feed_{f:04d}/"
        feed["tables"] = []
        for t in range(tables):
            copied = copy.deepcopy(table)
            copied["name"] = f"f{f:04d}_t{t:02d}"
            feed["tables"].append(copied)
        path = target / "feeds" / f"feed_{f:04d}.yaml"
        path.write_text(yaml.safe_dump(feed, sort_keys=False))


def measure(metadata: Path) -> dict[str, Any]:
    """Phase times (s), counts and peak RSS (MB) of one load of `metadata`, in this process."""
    clock = time.perf_counter()
    marks: dict[str, float] = {}
    rss = [_rss_mb()]
    grown: dict[str, float] = {}

    def mark(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        marks[name] = now - clock
        clock = now
        rss.append(_rss_mb())
        grown[name] = rss[-1] - rss[-2]

    import dagster as dg

    import lake_assets.definitions  # noqa: F401  (the import a code server does first)
    from lake_assets.catalog.loader import load_catalog, read_yaml
    from lake_assets.definitions import partitions_start
    from lake_assets.factory import alerts, automation, bronze, gold, sensors, silence, silver
    from lake_assets.factory.partitions import daily_partitions
    from lake_assets.resources import AlertRouter, DeltaLake

    mark("import")
    files = sorted(metadata.rglob("*.yaml"))
    for path in files:
        read_yaml(path, path.name)
    mark("yaml")
    catalog = load_catalog(metadata)
    marks["validation"] = time.perf_counter() - clock - marks["yaml"]
    clock = time.perf_counter()
    rss.append(_rss_mb())
    grown["validation"] = rss[-1] - rss[-2]
    daily = daily_partitions(partitions_start(catalog))
    built = {
        feed.name: bronze.build_bronze_assets(feed, source_file=catalog.file_of("feed", feed.name),
                                              daily=daily)
        for feed in catalog.feeds
    }
    assets = [*built.values(), *silver.build_silver_assets(catalog, daily),
              *gold.build_gold_assets(catalog, daily)]
    mark("assets")
    checks = silence.build_silence_checks(catalog)
    feed_sensors = [sensors.build_feed_sensor(feed, built[feed.name], lambda f, a: set())
                    for feed in catalog.feeds]
    all_sensors = [*feed_sensors, automation.build_automation_sensor(),
                   alerts.build_alert_sensor(catalog, [*assets, *checks])]
    mark("sensors")
    defs = dg.Definitions(assets=assets, asset_checks=checks, sensors=all_sensors,
                          schedules=[silence.build_silence_schedule(checks)],
                          resources={"lake": DeltaLake(), "alerts": AlertRouter()})
    repository = defs.get_repository_def()
    graph = repository.asset_graph
    mark("repository")
    per_table: dict[str, Counter[tuple[str, ...]]] = {"bronze": Counter(), "silver": Counter()}
    for check in graph.asset_check_keys:
        if check.asset_key.path[0] in per_table:
            per_table[check.asset_key.path[0]][tuple(check.asset_key.path)] += 1
    return {
        "phases_s": marks,
        "total_s": sum(marks.values()),
        "assets": len(graph.get_all_asset_keys()),
        "asset_checks": len(graph.asset_check_keys),
        "checks_per_table": {layer: max(counts.values(), default=0)
                             for layer, counts in per_table.items()},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_grown_mb": grown,
    }


def measure_floor(feeds: int, tables: int, checks: dict[str, int]) -> dict[str, Any]:
    """Dagster alone on the project's shape (see the module docstring): phase times and RSS."""
    clock = time.perf_counter()
    import dagster as dg
    import dagster_deltalake  # noqa: F401  (the resources the definitions hand to Dagster)
    import dagster_pyspark  # noqa: F401

    imported = time.perf_counter() - clock
    clock = time.perf_counter()
    daily = dg.DailyPartitionsDefinition(start_date="2026-01-01")

    def check_specs(key: dg.AssetKey, count: int) -> list[dg.AssetCheckSpec]:
        return [dg.AssetCheckSpec(f"check_{n}", asset=key, partitions_def=daily)
                for n in range(count)]

    assets: list[dg.AssetsDefinition] = []
    with warnings.catch_warnings():  # partitioned checks are a preview
        warnings.simplefilter("ignore", dg.PreviewWarning)
        for f in range(feeds):
            bronze = [dg.AssetKey(["bronze", f"feed_{f:04d}", f"t{t:02d}"]) for t in range(tables)]

            @dg.multi_asset(name=f"bronze_feed_{f:04d}", partitions_def=daily,
                            specs=[dg.AssetSpec(key, partitions_def=daily) for key in bronze],
                            check_specs=[c for key in bronze
                                         for c in check_specs(key, checks["bronze"])])
            def _bronze():  # type: ignore[no-untyped-def]
                ...  # no return type: Dagster would read it as the op's outputs

            assets.append(_bronze)
            for t, upstream in enumerate(bronze):
                key = dg.AssetKey(["silver", f"feed_{f:04d}_t{t:02d}"])

                @dg.asset(key=key, deps=[upstream], partitions_def=daily,
                          check_specs=check_specs(key, checks["silver"]))
                def _silver():  # type: ignore[no-untyped-def]
                    ...

                assets.append(_silver)
    built = time.perf_counter() - clock
    clock = time.perf_counter()
    dg.Definitions(assets=assets).get_repository_def()
    marks = {"import": imported, "assets": built, "repository": time.perf_counter() - clock}
    return {"phases_s": marks, "total_s": sum(marks.values()),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def run_size(feeds: int, tables: int) -> dict[str, Any]:
    """One generated size measured in a cold child process, and its floor in another."""
    with tempfile.TemporaryDirectory(prefix="lake-defs-") as work:
        metadata = Path(work) / "metadata"
        generate(metadata, feeds=feeds, tables=tables)
        found = _load_in_child(metadata, Path(work) / "result.json", feeds=feeds, tables=tables)
    return {"size": f"{feeds} x {tables}", **found}


def run_shipped() -> dict[str, Any]:
    """The project's own metadata; its floor has the same feeds and tables per feed (rounded
    up) with the most checks any table has."""
    # Here, not at the top: a worker's import phase must start without project modules.
    from lake_assets.catalog.loader import load_catalog

    catalog = load_catalog(METADATA)
    feeds = len(catalog.feeds)
    tables = -(-sum(len(f.tables) for f in catalog.feeds) // feeds)
    with tempfile.TemporaryDirectory(prefix="lake-defs-") as work:
        found = _load_in_child(METADATA, Path(work) / "result.json", feeds=feeds, tables=tables)
    return {"size": "shipped", **found}


def _load_in_child(metadata: Path, out: Path, *, feeds: int, tables: int) -> dict[str, Any]:
    env = dict(os.environ, LAKE_METADATA=str(metadata))
    module = [sys.executable, "-m", "benchmarks.definitions_scale"]
    subprocess.run([*module, "--worker", str(metadata), "--json", str(out)],
                   cwd=PROJECT_ROOT, env=env, check=True)
    found = json.loads(out.read_text())
    shape = {"feeds": feeds, "tables": tables, "checks": found["checks_per_table"]}
    subprocess.run([*module, "--floor", json.dumps(shape), "--json", str(out)],
                   cwd=PROJECT_ROOT, env=env, check=True)
    return {**found, "floor": json.loads(out.read_text())}


def report(results: list[dict[str, Any]]) -> None:
    """Print one table: a row per size, a column per phase."""
    table = Table(title="definitions load from a cold process (seconds; RSS in MB)")
    for name in ("size (feeds x tables)", "assets", "checks", *PHASES, "total", "peak RSS"):
        table.add_column(name, justify="right")
    for r in results:
        phases = [f"{r['phases_s'][p]:.2f}" for p in PHASES]
        size = r["size"]
        table.add_row(size, f"{r['assets']:,}", f"{r['asset_checks']:,}", *phases,
                      f"{r['total_s']:.2f}", f"{r['peak_rss_mb']:.0f}")
        floor = r["floor"]
        table.add_row(f"{size} Dagster alone", "", "",
                      *[f"{floor['phases_s'][p]:.2f}" if p in floor["phases_s"] else "-"
                        for p in PHASES], f"{floor['total_s']:.2f}",
                      f"{floor['peak_rss_mb']:.0f}", style="dim")
    console.print(table)
    grown = Table(title="RSS each phase added (MB)")
    for name in ("size (feeds x tables)", *PHASES):
        grown.add_column(name, justify="right")
    for r in results:
        grown.add_row(r["size"], *[f"{r['rss_grown_mb'][p]:.0f}" for p in PHASES])
    console.print(grown)


def main() -> None:
    """Entry point: `--feeds` sizes (comma-separated), or `--worker DIR` inside the child."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", default="50,500", help="comma-separated feed counts")
    parser.add_argument("--tables", type=int, default=10, help="tables per feed")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--floor", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        args.json.write_text(json.dumps(measure(args.worker)))
        return
    if args.floor is not None:
        args.json.write_text(json.dumps(measure_floor(**json.loads(args.floor))))
        return
    results = [run_shipped(), *(run_size(int(n), args.tables) for n in args.feeds.split(","))]
    report(results)
    out = args.json or PROJECT_ROOT / "benchmarks" / "results" / "definitions_scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"uptime_load": os.getloadavg(), "results": results}, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
