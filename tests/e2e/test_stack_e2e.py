"""The production shape end to end: `lakehouse stack up` starts PostgreSQL, the S3 API, a
2-worker Spark cluster behind a Connect server and Dagster's code server, webserver and daemon;
then a simulated landing zone goes through the feed sensors, bronze, silver and gold on S3, the
cluster and Postgres, and an alert reaches a local SMTP server; `lakehouse stack down` stops
exactly what was started.

The pipeline is driven in this process (sensor ticks and runs, as tests/e2e does) against the
stack's servers, on a database and bucket prefixes of its own: the daemon would take minutes
of sensor intervals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.loader import load_catalog
from lake_assets.simulate import read_truth
from lake_assets.stack import StackState, alive, postgres_binaries
from lake_assets.stack.services import create_database
from lake_assets.storage.delta import storage_options
from tests.alert_servers import RecordingSmtp, serve_smtp
from tests.conftest import METADATA, PROJECT_ROOT
from tests.e2e.test_bronze_e2e import expected_counts
from tests.e2e.test_silver_gold_e2e import (
    _leak,
)

pytestmark = [pytest.mark.spark, pytest.mark.slow]

PROCESSES = {"postgres", "s3", "spark-master", "spark-worker-1", "spark-worker-2",
             "spark-connect", "dagster-code-server", "dagster-webserver", "dagster-daemon"}
PREFIX = "e2e"


def _lakehouse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("lakehouse")), *args],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=420)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackState]:
    """`lakehouse stack up` in a state folder of its own; `stack down --wipe` afterwards."""
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL server binaries are missing (apt-get install postgresql)")
    directory = tmp_path_factory.mktemp("stack")
    started = _lakehouse("stack", "up", "--dir", str(directory))
    state = StackState.load(directory)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert state is not None
        yield state
    finally:
        _lakehouse("stack", "down", "--dir", str(directory), "--wipe")


def test_stack_up_starts_every_process(stack: StackState) -> None:
    assert {p.name for p in stack.processes} == PROCESSES
    assert all(alive(p) for p in stack.processes)
    web = next(p for p in stack.processes if p.name == "dagster-webserver")
    query = {"query": "{ repositoriesOrError { ... on RepositoryConnection "
                      "{ nodes { location { name } } } } }"}
    request = urllib.request.Request(f"{web.url}/graphql", data=json.dumps(query).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        nodes = json.load(response)["data"]["repositoriesOrError"]["nodes"]
    assert [n["location"]["name"] for n in nodes] == ["lake_assets"]  # via the code server
    assert stack.env["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stack.env.items():
            patch.setenv(name, value)
        with dg.DagsterInstance.get() as instance:  # the daemon's own instance: on Postgres
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert instance.get_daemon_heartbeats(), "the daemon never wrote a heartbeat"


@dataclass(frozen=True)
class Landed:
    catalog: Catalog
    truth: Path
    env: dict[str, str]
    smtp: RecordingSmtp


@pytest.fixture(scope="module")
def landed(stack: StackState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Landed]:
    """tests/e2e/stack_pipeline.py in a process of its own, on the stack's Spark cluster, S3
    (prefix e2e/ of each bucket) and PostgreSQL (database e2e), alerting a local SMTP server."""
    root = tmp_path_factory.mktemp("stack-e2e")
    port = next(p.port for p in stack.processes if p.name == "postgres")
    create_database(port or 0, PREFIX)
    (root / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    with serve_smtp() as smtp:
        env = {**os.environ, **stack.env,
               "DAGSTER_HOME": str(root),
               "DAGSTER_PG_URL": stack.env["DAGSTER_PG_URL"].rsplit("/", 1)[0] + f"/{PREFIX}",
               "LANDING_ROOT": f"s3://landing/{PREFIX}",
               "LAKE_ROOT": f"s3://lake/{PREFIX}",
               "LAKE_BRONZE_ROOT": f"s3://bronze/{PREFIX}",
               "LAKE_SMTP_HOST": "127.0.0.1", "LAKE_SMTP_PORT": str(smtp.port)}
        env.pop("SPARK_MASTER", None)
        done = subprocess.run([sys.executable, "-m", "tests.e2e.stack_pipeline", str(root)],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                              timeout=900)
        phases = [line for line in done.stderr.splitlines() if "stack pipeline:" in line]
        print("\n".join(phases), file=sys.stderr)
        assert done.returncode == 0, done.stderr[-4000:]
        catalog = load_catalog(METADATA)
        yield Landed(catalog, root / "truth.jsonl", env, smtp)


def _table(env: dict[str, str], root: str, *path: str) -> list[dict]:
    uri = "/".join([env[root], *path])
    options = storage_options(uri, environ=env)
    assert DeltaTable.is_deltatable(uri, storage_options=options), f"{uri} was not written"
    return DeltaTable(uri, storage_options=options).to_pyarrow_table().to_pylist()


def test_bronze_rows_equal_the_simulator_truth(landed: Landed) -> None:
    expected = expected_counts(landed.truth, "rows")
    assert sum(expected.values()) > 50
    got = Counter({(feed, table): len(_table(landed.env, "LAKE_BRONZE_ROOT", "bronze", feed,
                                             table)) for feed, table in expected})
    assert got == expected


def test_gold_matches_an_independent_count(landed: Landed) -> None:
    expected: Counter[str] = Counter()
    for record in read_truth(str(landed.truth)):
        if record.feed == "adt_events" and record.resent_of is None:
            expected[record.facility] += record.rows.get("adt_messages", 0)
    gold: Counter[str] = Counter()
    for row in _table(landed.env, "LAKE_ROOT", "gold", "adt_daily_volume"):
        gold[row["facility_code"]] += row["messages"]
    assert +expected and gold == +expected


def test_no_raw_phi_value_in_silver_or_gold_on_s3(landed: Landed) -> None:
    raw: dict[str, str] = {}
    for feed in landed.catalog.feeds:
        for declared in feed.tables:
            rows = _table(landed.env, "LAKE_BRONZE_ROOT", "bronze", feed.name, declared.name)
            for column in (c for c in declared.columns if c.phi and c.phi != "age"):
                raw |= {str(v): f"{feed.name}.{declared.name}.{column.name}"
                        for v in {r[column.name] for r in rows} - {None}}
    assert len(raw) > 50
    silver = sorted({t.name for f in landed.catalog.feeds for t in f.tables})
    for layer, names in (("silver", silver), ("gold", [p.name for p in
                                                       landed.catalog.projections])):
        for name in names:
            for row in _table(landed.env, "LAKE_ROOT", layer, name):
                leaks = {c: _leak(v, raw) for c, v in row.items() if _leak(v, raw)}
                assert leaks == {}, f"{layer}.{name} holds raw PHI of {leaks}"


def test_an_alert_reaches_the_smtp_server(landed: Landed) -> None:
    """The simulated faults leave encounters of unknown patients: silver's reference check
    fails and the owners of silver/encounters are mailed, with a link to the asset."""
    owners = landed.catalog.owners.teams
    encounters = next(f for f in landed.catalog.feeds
                      if any(t.name == "encounters" for t in f.tables))
    addresses = {a for team in encounters.owners for a in owners[team.removeprefix("team:")].email}
    mailed = [m for m in landed.smtp.messages if set(m["To"].split(", ")) & addresses]
    assert any("check mrn_in_patients failing on silver/encounters" in m["Subject"]
               for m in mailed), [m["Subject"] for m in landed.smtp.messages]
    assert "/assets/silver/encounters" in landed.smtp.raw()


def test_stack_down_stops_exactly_what_it_started(stack: StackState) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 start_new_session=True)
    try:
        stopped = _lakehouse("stack", "down", "--dir", str(stack.directory))
        assert stopped.returncode == 0, stopped.stderr
        assert not any(alive(p) for p in stack.processes)
        assert bystander.poll() is None  # another process group is left alone
        assert StackState.load(stack.directory) is None
    finally:
        bystander.kill()
        bystander.wait()
    assert os.path.exists(stack.directory)
