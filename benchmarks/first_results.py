"""First results of `make run`: how long a newcomer waits for bronze, silver and gold.

    python -m benchmarks.first_results [--timeout 900] [--json FILE]

Runs `make run` as a newcomer does (the environment already set up, so pip is not timed) with
its own `DAGSTER_HOME` and `LAKE_ROOT` in a temporary folder, and reads the Dagster instance
every few seconds until every gold asset has materialized once. It reports, from the moment
`make run` started, when the first bronze, silver and gold tables appeared and when the last
shipped projection did. Goal: the whole flow within 3 minutes. `make run` is stopped with
SIGTERM at the end, as Ctrl-C would.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.table import Table

from benchmarks import PROJECT_ROOT

LAYERS = ("bronze", "silver", "gold")
GOAL_S = 180.0
POLL_S = 3.0
console = Console(width=None if sys.stdout.isatty() else 140)


def first_materializations(instance: dg.DagsterInstance) -> dict[str, list[float]]:
    """Per layer, the time of each asset's first materialization (epoch seconds)."""
    found: dict[str, list[float]] = {layer: [] for layer in LAYERS}
    for key in instance.get_asset_keys():
        if key.path[0] not in found:
            continue
        records = instance.fetch_materializations(key, limit=1, ascending=True).records
        if records:
            found[key.path[0]].append(records[0].timestamp)
    return found


def watch(home: Path, began: float, *, gold_assets: int, timeout: float,
          process: subprocess.Popen) -> dict[str, float | None]:
    """Seconds from `began` to the first bronze, silver and gold table and the last gold one."""
    os.environ["DAGSTER_HOME"] = str(home)
    figures: dict[str, float | None] = {}
    while time.time() - began < timeout and process.poll() is None:
        time.sleep(POLL_S)
        if not (home / "dagster.yaml").exists():
            continue
        with dg.DagsterInstance.from_config(str(home)) as instance:
            found = first_materializations(instance)
        figures = {f"first {layer}": min(found[layer]) - began if found[layer] else None
                   for layer in LAYERS}
        figures["every gold"] = (max(found["gold"]) - began
                                 if len(found["gold"]) >= gold_assets else None)
        console.print(f"{time.time() - began:6.0f} s  " + "  ".join(
            f"{name}: {'-' if value is None else f'{value:.0f} s'}"
            for name, value in figures.items()), style="dim")
        if figures["every gold"] is not None:
            break
    return figures


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="first-results-"))
    home = work / "home"
    env = dict(os.environ, DAGSTER_HOME=str(home), LAKE_ROOT=str(work / "lake"))
    gold_assets = len(list((PROJECT_ROOT / "metadata" / "projections").glob("*.yaml")))
    load = os.getloadavg()
    began = time.time()
    process = subprocess.Popen(["make", "-s", "run"], cwd=PROJECT_ROOT, env=env,
                               stdout=(work / "make-run.log").open("wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        figures = watch(home, began, gold_assets=gold_assets, timeout=args.timeout,
                        process=process)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    table = Table("milestone", "seconds after `make run`", "goal", title="first results")
    for name, value in figures.items():
        table.add_row(name, "-" if value is None else f"{value:.0f}", f"<= {GOAL_S:.0f}")
    console.print(table)
    console.print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
                  f"cores: {os.cpu_count()}; log: {work / 'make-run.log'}")
    result = {"figures": figures, "goal_s": GOAL_S, "load_average": load,
              "cores": os.cpu_count(), "met": figures.get("every gold") is not None
              and (figures["every gold"] or 0) <= GOAL_S}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        console.print(f"wrote {args.json}")
    shutil.rmtree(work / "lake", ignore_errors=True)


if __name__ == "__main__":
    main()
