"""Trino over the same Delta tables and the same policy: `lakehouse serve --engine trino`.

The server tarball comes from Maven Central (`io.trino:trino-server`, which bundles the Delta
Lake plugin) through `mvn dependency:get` into the project's `.cache/maven`, and is unpacked
once into `.cache/trino` with only the Delta Lake plugin kept. Trino runs on JDK 25
(`TRINO_JAVA_HOME`, default `/usr/lib/jvm/temurin-25-jdk-amd64`) on loopback, with a file
metastore; every written lake table is registered in catalog `lake`, and `rules.json` is the
policy compiled by `catalog.trino_rules`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlglot import exp

from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.policy import Policy, governed_tables
from lake_assets.catalog.trino_rules import trino_rules
from lake_assets.errors import ServeError
from lake_assets.storage import delta
from lake_assets.storage.lake import Lake

TRINO_VERSION = "476"  # the newest io.trino:trino-server on Maven Central
SERVICE_USER = "lakehouse"
_PROJECT = Path(__file__).resolve().parents[2]
_DEFAULT_JAVA = "/usr/lib/jvm/temurin-25-jdk-amd64"


def trino_home(cache: Path = _PROJECT / ".cache") -> Path:
    """The unpacked Trino server, fetched and unpacked on first use; raises ServeError when
    Maven cannot fetch it."""
    home = cache / "trino" / f"trino-server-{TRINO_VERSION}"
    if (home / "bin" / "launcher").is_file():
        return home
    tarball = (cache / "maven" / "io" / "trino" / "trino-server" / TRINO_VERSION /
               f"trino-server-{TRINO_VERSION}.tar.gz")
    if not tarball.is_file():
        fetched = subprocess.run(
            ["mvn", "-q", "-B", "dependency:get", f"-Dmaven.repo.local={cache / 'maven'}",
             f"-Dartifact=io.trino:trino-server:{TRINO_VERSION}:tar.gz", "-Dtransitive=false"],
            capture_output=True, text=True, check=False)
        if fetched.returncode != 0 or not tarball.is_file():
            raise ServeError(f"cannot fetch io.trino:trino-server:{TRINO_VERSION} with mvn: "
                             f"{(fetched.stdout + fetched.stderr)[-500:]}")
    with tarfile.open(tarball) as archive:
        archive.extractall(home.parent, filter="data")
    for plugin in (home / "plugin").iterdir():
        if plugin.name != "delta-lake":  # Trino loads every plugin at start: keep one
            shutil.rmtree(plugin)
    return home


@dataclass(frozen=True)
class TrinoServer:
    """A Trino server on loopback: its port and working folder."""

    port: int
    folder: Path

    @property
    def url(self) -> str:
        """The server's HTTP address."""
        return f"http://127.0.0.1:{self.port}"


def write_config(folder: Path, *, port: int, rules: dict[str, object]) -> Path:
    """Write Trino's etc/ under `folder` (one coordinator node, file metastore, file access
    control from `rules`); returns the etc folder."""
    etc = folder / "etc"
    (etc / "catalog").mkdir(parents=True, exist_ok=True)
    (etc / "node.properties").write_text(
        f"node.environment=lake\nnode.id={uuid.uuid4()}\nnode.data-dir={folder / 'data'}\n")
    (etc / "jvm.config").write_text("\n".join([
        "-server", "-Xmx1G", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
        "-Djdk.attach.allowAttachSelf=true", "-XX:-UseContainerSupport"]) + "\n")
    (etc / "config.properties").write_text("\n".join([
        "coordinator=true", "node-scheduler.include-coordinator=true",
        f"http-server.http.port={port}", "node.internal-address=127.0.0.1",
        f"discovery.uri=http://127.0.0.1:{port}", "query.max-memory=512MB",
        "query.max-memory-per-node=512MB", "task.concurrency=2"]) + "\n")
    (etc / "rules.json").write_text(json.dumps(rules, indent=2))
    (etc / "access-control.properties").write_text(
        f"access-control.name=file\nsecurity.config-file={etc / 'rules.json'}\n"
        "security.refresh-period=5s\n")
    (etc / "catalog" / "lake.properties").write_text("\n".join([
        "connector.name=delta_lake", "hive.metastore=file",
        f"hive.metastore.catalog.dir=local:///{(folder / 'metastore').as_posix().lstrip('/')}",
        "delta.register-table-procedure.enabled=true", "fs.native-local.enabled=true",
        "local.location=/"]) + "\n")
    return etc


def table_columns(lake: Lake, catalog: Catalog) -> dict[str, list[tuple[str, bool]]]:
    """Every written lake table's columns, each with whether it is text."""
    found = {}
    for name, path in governed_tables(catalog).items():
        ref = lake.ref(path)
        if delta.table_exists(ref.uri, options=ref.options):
            schema = delta.arrow_schema(delta.open_table(ref.uri, options=ref.options,
                                                         table=ref.name))
            found[name] = [(f.name, str(f.type) in ("string", "large_string")) for f in schema]
    return found


@contextmanager
def running_trino(lake: Lake, catalog: Catalog, folder: Path, *, port: int = 8080,
                  java_home: str | None = None, timeout: float = 300) -> Iterator[TrinoServer]:
    """Trino serving `lake` under `catalog`'s policy until the block ends; raises ServeError
    when it does not start within `timeout` seconds."""
    columns = table_columns(lake, catalog)
    etc = write_config(folder, port=port, rules=trino_rules(Policy.of(catalog), columns,
                                                            service_user=SERVICE_USER))
    java = java_home or os.environ.get("TRINO_JAVA_HOME", _DEFAULT_JAVA)
    env = dict(os.environ, JAVA_HOME=java, PATH=f"{java}/bin:{os.environ.get('PATH', '')}")
    log = (folder / "trino.log").open("wb")
    process = subprocess.Popen([str(trino_home() / "bin" / "launcher"), "run",
                                f"--etc-dir={etc}"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    server = TrinoServer(port, folder)
    try:
        _wait(server, process, timeout)
        _register(server, {name: lake.ref(governed_tables(catalog)[name]).uri
                           for name in columns})
        _wait_for_a_node(server, process, timeout, scan=next(iter(columns), None))
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            process.wait(60)
        log.close()


def _wait(server: TrinoServer, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServeError(f"Trino exited ({process.returncode}); see "
                             f"{server.folder / 'trino.log'}")
        try:
            with urllib.request.urlopen(f"{server.url}/v1/info", timeout=5) as answer:
                if not json.load(answer).get("starting", True):
                    return
        except OSError:
            pass
        time.sleep(1)
    raise ServeError(f"Trino did not start within {timeout:.0f} s; see "
                     f"{server.folder / 'trino.log'}")


def _wait_for_a_node(server: TrinoServer, process: subprocess.Popen, timeout: float, *,
                     scan: str | None) -> None:
    """Wait until the coordinator schedules work on itself as a worker of catalog `lake`:
    `/v1/info` stops saying `starting`, and metadata statements and `SELECT 1` succeed, a
    moment before that; a table scan in between fails with NO_NODES_AVAILABLE. `scan` names
    a registered table (`layer.table`) to probe with; None probes with `SELECT 1`."""
    import trino

    deadline = time.monotonic() + timeout
    cursor = trino.dbapi.connect(host="127.0.0.1", port=server.port,
                                 user=SERVICE_USER).cursor()
    probe = "SELECT 1"
    if scan is not None:
        layer, table = scan.split(".", 1)
        name = exp.table_(table, db=layer, catalog="lake", quoted=True).sql("trino")
        probe = f"SELECT count(*) FROM {name}"
    while True:
        try:
            cursor.execute(probe)
            cursor.fetchall()
            return
        except trino.exceptions.TrinoQueryError as error:
            if error.error_name != "NO_NODES_AVAILABLE" or time.monotonic() > deadline:
                raise
        if process.poll() is not None:
            raise ServeError(f"Trino exited ({process.returncode}); see "
                             f"{server.folder / 'trino.log'}")
        time.sleep(0.5)


def _register(server: TrinoServer, paths: dict[str, str]) -> None:
    """Create the layer schemas and register every written table (SQL name -> URI) in
    catalog `lake`."""
    import trino

    connection = trino.dbapi.connect(host="127.0.0.1", port=server.port, user=SERVICE_USER,
                                     catalog="lake")
    cursor = connection.cursor()
    for layer in sorted({n.split(".", 1)[0] for n in paths}):
        cursor.execute(f'CREATE SCHEMA IF NOT EXISTS lake."{layer}"')
        cursor.fetchall()
    for name, uri in paths.items():
        layer, table = name.split(".", 1)
        values = [exp.Literal.string(v).sql("trino")
                  for v in (layer, table, Path(uri).resolve().as_uri())]
        cursor.execute("CALL lake.system.register_table(schema_name => {}, table_name => {}, "
                       "table_location => {})".format(*values))  # CALL takes no parameters
        cursor.fetchall()
