"""The UI at scale: how long the asset catalog and the lineage graph take to answer.

    python -m benchmarks.ui_scale [--feeds 50,500] [--tables 10] [--tries 5] [--json FILE]

For each size it generates metadata as `benchmarks.definitions_scale` does (N feeds x T tables),
starts `dagster-webserver` on it with a fresh `DAGSTER_HOME`, waits for the code location to
load, and times the GraphQL queries behind two pages, as the browser sends them over HTTP:

- catalog: every asset with its group, kinds, description and partitioning (the asset
  catalog's table);
- lineage: every asset with its upstream and downstream keys (the graph the lineage page draws
  and then filters to one feed).

It reports the code location's load time and the median of `--tries` answers per query. The
browser's own rendering is not counted. Goal: each page within a few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import PROJECT_ROOT
from benchmarks.definitions_scale import generate
from lake_assets.instance_storage import DAGSTER_PROCESS_ENV

console = Console(width=None if sys.stdout.isatty() else 140)
LOAD_TIMEOUT_S = 900
QUERIES = {
    "catalog": """{ assetNodes { id assetKey { path } groupName kinds description
                    isPartitioned hasAssetChecks } }""",
    "lineage": """{ assetNodes { id assetKey { path } groupName
                    dependencyKeys { path } dependedByKeys { path } } }""",
}
LOADED = """{ workspaceOrError { ... on Workspace { locationEntries { loadStatus
              locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def graphql(port: int, query: str, timeout: float = 300) -> dict[str, Any]:
    """POST one GraphQL query to the webserver and return its `data`."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        body = json.load(answer)
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors'][:1]}")
    return body["data"]


def wait_loaded(port: int, process: subprocess.Popen, began: float) -> float:
    """Seconds from `began` until the code location has loaded."""
    while time.monotonic() - began < LOAD_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited ({process.returncode})")
        try:
            entries = graphql(port, LOADED, timeout=10)["workspaceOrError"]["locationEntries"]
        except OSError:
            entries = []
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            errors = [e["locationOrLoadError"].get("message") for e in entries
                      if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"]
            if errors:
                raise RuntimeError(f"code location failed to load: {errors[0]}")
            return time.monotonic() - began
        time.sleep(1)
    raise RuntimeError(f"code location not loaded within {LOAD_TIMEOUT_S} s")


def measure(feeds: int, tables: int, tries: int) -> dict[str, Any]:
    """Load time and per-query medians for one size."""
    work = Path(tempfile.mkdtemp(prefix="lake-ui-"))
    try:
        generate(work / "metadata", feeds=feeds, tables=tables)
        (work / "home").mkdir()
        # The shipped settings: its code-server startup timeout, and the gRPC limits every
        # Dagster process the project starts runs with.
        shutil.copy(PROJECT_ROOT / "dagster.yaml", work / "home" / "dagster.yaml")
        port = free_port()
        env = DAGSTER_PROCESS_ENV | dict(
            os.environ, LAKE_METADATA=str(work / "metadata"), DAGSTER_HOME=str(work / "home"),
            LANDING_ROOT=str(work / "landing"))
        env.pop("DAGSTER_PG_URL", None)  # the shipped storage would otherwise use that Postgres
        began = time.monotonic()
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml",
             "-h", "127.0.0.1", "-p", str(port)], cwd=PROJECT_ROOT, env=env,
            stdout=(work / "webserver.log").open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            loaded = wait_loaded(port, process, began)
            found: dict[str, Any] = {"feeds": feeds, "tables": tables, "load_s": loaded}
            for name, query in QUERIES.items():
                spent = []
                for _ in range(tries):
                    started = time.perf_counter()
                    nodes = graphql(port, query)["assetNodes"]
                    spent.append(time.perf_counter() - started)
                found[f"{name}_s"] = statistics.median(spent)
                found["assets"] = len(nodes)
            console.print(f"{feeds} x {tables}: {found}", style="dim")
            return found
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", default="50,500", help="comma-separated feed counts")
    parser.add_argument("--tables", type=int, default=10, help="tables per feed")
    parser.add_argument("--tries", type=int, default=5, help="answers timed per query")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    args = parser.parse_args()
    load = os.getloadavg()
    results = [measure(int(n), args.tables, args.tries) for n in args.feeds.split(",")]
    table = Table("feeds x tables", "assets", "location load (s)", "catalog (s)",
                  "lineage (s)", title="Dagster UI queries at scale (median answers)")
    for r in results:
        table.add_row(f"{r['feeds']} x {r['tables']}", f"{r['assets']:,}", f"{r['load_s']:.1f}",
                      f"{r['catalog_s']:.2f}", f"{r['lineage_s']:.2f}")
    console.print(table)
    console.print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
                  f"cores: {os.cpu_count()}")
    out = args.json or PROJECT_ROOT / "benchmarks" / "results" / "ui_scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"load_average": load, "results": results}, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
