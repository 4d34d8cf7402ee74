"""Sandboxes: isolated pipelines for trying a change, each with its own Dagster home, lake and
landing prefixes, ports and metadata working copy.

    box = create_sandbox("ana-census", folder=Path(".sandboxes"), metadata=Path("metadata"),
                         dagster_yaml=Path("dagster.yaml"), upstream=prod_pins)
    subprocess.run(["dagster", "dev", "-p", str(box.ports["ui"])], env=box.environment())

With `upstream` the sandbox reads production silver and gold read-only at pinned versions
(`pin_tables`, written to `upstream.json` and named by `$LAKE_UPSTREAM`); its own writes go
only under its own lake root.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import fsspec

from lake_assets.errors import DeltaStorageError, SandboxError
from lake_assets.storage import delta
from lake_assets.storage.lake import UPSTREAM_VARIABLE, Upstream

RECORD = "sandbox.json"
PINS = "upstream.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# Sandbox n listens on the default port + n: the UI (3000), Spark Connect (15002) and the
# SQL endpoint (5433) of `make run` stay free for the checkout's own pipeline.
_BASE_PORTS = {"ui": 3000, "spark_connect": 15002, "serve": 5433}
_MAX_SANDBOXES = 99
# Settings of the production pipeline a sandbox must never inherit.
DROPPED_VARIABLES = ("DAGSTER_PG_URL", "SPARK_REMOTE", UPSTREAM_VARIABLE)


@dataclass(frozen=True)
class Sandbox:
    """A sandbox's folder, roots, metadata, ports and (optional) upstream pins file."""

    name: str
    folder: str
    lake_root: str
    landing_root: str
    metadata: str
    ports: dict[str, int]
    upstream: str | None = None
    created_at: str = ""

    @property
    def dagster_home(self) -> str:
        """The sandbox's own Dagster instance folder."""
        return str(Path(self.folder) / "dagster_home")

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (e.g. os.environ) with this sandbox's settings in place of production's."""
        env = {k: v for k, v in (base or {}).items() if k not in DROPPED_VARIABLES}
        env |= {"DAGSTER_HOME": self.dagster_home, "LAKE_ROOT": self.lake_root,
                "LAKE_BRONZE_ROOT": self.lake_root, "LANDING_ROOT": self.landing_root,
                "LAKE_METADATA": self.metadata,
                "LAKE_UI_URL": f"http://127.0.0.1:{self.ports['ui']}"}
        if self.upstream:
            env[UPSTREAM_VARIABLE] = self.upstream
        return env


def pin_tables(tables: Iterable[str], *, root: str, at: str | None = None,
               s3: Mapping[str, str] | None = None) -> Upstream:
    """The tables of the lake at `root` that exist, each pinned to its latest version, to
    version `at` (an integer) or to its version as of time `at` (ISO 8601).

    Raises SandboxError naming the table when it has no such version or time.
    """
    prod = Upstream(root=delta.lake_root(root=root), versions={}, s3=s3)
    versions = {}
    for table in sorted(tables):
        ref = prod.ref(table)
        if not delta.table_exists(ref.uri, options=ref.options):
            continue
        version, as_of = (int(at), None) if at and at.isdigit() else (None, at)
        try:
            opened = delta.open_table(ref.uri, options=ref.options, table=table,
                                      version=version, as_of=_time(as_of) if as_of else None)
        except DeltaStorageError as exc:
            raise SandboxError(f"cannot pin production {table} at {at}: {exc}") from exc
        versions[table] = opened.version()
    return Upstream(root=prod.root, versions=versions, s3=s3)


def _time(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SandboxError(f"--at {value!r} is neither a version nor an ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def create_sandbox(name: str, *, folder: Path, metadata: Path, dagster_yaml: Path,
                   lake_root: str | None = None, landing_root: str | None = None,
                   upstream: Upstream | None = None) -> Sandbox:
    """Make sandbox `name` under `folder` (the folder of all sandboxes): its Dagster home with
    `dagster_yaml`, its lake (default `<folder>/<name>/lake`) and landing (default
    `<lake>/landing`), the first free set of ports, and the pins file when `upstream` is given.

    Raises SandboxError for a bad or taken name, or a lake root that is the upstream's.
    """
    if not _NAME.match(name):
        raise SandboxError(f"sandbox name {name!r}: use 1-40 of a-z, 0-9, '-', '_'")
    home = (folder / name).resolve()
    if (home / RECORD).exists():
        raise SandboxError(f"sandbox {name} exists ({home}); `lakehouse sandbox rm {name}` first")
    lake = delta.lake_root(root=lake_root or str(home / "lake"))
    if upstream is not None and _overlaps(lake, upstream.root):
        raise SandboxError(f"sandbox {name}: lake root {lake} overlaps production's "
                           f"{upstream.root}; writes must stay apart")
    taken = {_slot(box) for box in list_sandboxes(folder)}
    slot = next((n for n in range(1, _MAX_SANDBOXES + 1) if n not in taken), None)
    if slot is None:
        raise SandboxError(f"{_MAX_SANDBOXES} sandboxes exist under {folder}; remove one")
    (home / "dagster_home").mkdir(parents=True)
    shutil.copyfile(dagster_yaml, home / "dagster_home" / "dagster.yaml")
    pins = None
    if upstream is not None:
        pins = str(home / PINS)
        Path(pins).write_text(json.dumps({"root": upstream.root,
                                          "versions": dict(upstream.versions)}, indent=2))
    box = Sandbox(name=name, folder=str(home), lake_root=lake,
                  landing_root=landing_root or f"{lake}/landing",
                  metadata=str(metadata.resolve()),
                  ports={k: v + slot for k, v in _BASE_PORTS.items()}, upstream=pins,
                  created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    (home / RECORD).write_text(json.dumps(asdict(box), indent=2))
    return box


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def _slot(box: Sandbox) -> int:
    return box.ports["ui"] - _BASE_PORTS["ui"]


def list_sandboxes(folder: Path) -> list[Sandbox]:
    """Every sandbox under `folder`, by name."""
    if not folder.is_dir():
        return []
    return [load_sandbox(p.parent.name, folder=folder)
            for p in sorted(folder.glob(f"*/{RECORD}"))]


def load_sandbox(name: str, *, folder: Path) -> Sandbox:
    """Sandbox `name`; raises SandboxError if there is none."""
    record = folder / name / RECORD
    if not record.is_file():
        raise SandboxError(f"no sandbox {name} under {folder}")
    return Sandbox(**json.loads(record.read_text()))


def remove_sandbox(name: str, *, folder: Path) -> Sandbox:
    """Delete sandbox `name`: its lake and landing (local or s3://), then its folder."""
    box = load_sandbox(name, folder=folder)
    for root in {box.landing_root, box.lake_root}:
        fs, path = fsspec.url_to_fs(root)
        if fs.exists(path):
            fs.rm(path, recursive=True)
    shutil.rmtree(box.folder, ignore_errors=False)
    return box
