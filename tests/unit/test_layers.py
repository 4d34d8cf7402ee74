"""Imports point down the layers of DESIGN.md ("Layers"), never up, never sideways between
independent siblings, never into another package's private `_` modules; and no module imports
itself back through others. Spark's executors load the lake's code without Dagster.

The graph is read from the source with `ast`: grimp and import-linter walk a package's own
folder, and `lake_assets.resources` lives in the top-level `resources/` folder (pyproject.toml
maps it), so they would not see it.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

from tests.conftest import PROJECT_ROOT

ROOT = "lake_assets"
# Top to bottom. A module may import its own container, and containers in later rows; the
# containers of one row are independent of each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("lake_assets.cli",),
    ("lake_assets.definitions", "lake_assets.api", "lake_assets.plan_command",
     "lake_assets.ingestion_command", "lake_assets.run_command", "lake_assets.sandbox_command",
     "lake_assets.stack"),
    ("lake_assets.factory",),
    ("lake_assets.resources", "lake_assets.simulate", "lake_assets.instance_storage"),
    ("lake_assets.alerts", "lake_assets.serve"),
    ("lake_assets.storage",),
    ("lake_assets.checks",),
    ("lake_assets.ingest",),
    ("lake_assets.catalog",),
    ("lake_assets.errors",),
)
# Only these may import Dagster; everything below runs without it (and inside Spark tasks).
DAGSTER_LAYERS = LAYERS[:4]

Graph = dict[str, set[str]]


def package_folders() -> dict[str, Path]:
    """Each installed package and its folder, as pyproject.toml declares them."""
    settings = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = settings.get("package-dir", {})
    return {name: PROJECT_ROOT / mapped.get(name, name.replace(".", "/"))
            for name in settings["packages"]}


@cache
def module_files() -> dict[str, Path]:
    """Every module of the installed packages, by dotted name."""
    found = {}
    for package, folder in package_folders().items():
        for path in folder.glob("*.py"):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def imported_names(module: str, path: Path) -> set[str]:
    """Every name `module` imports, at any depth (function bodies and TYPE_CHECKING too)."""
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}".rstrip(".")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def resolve(name: str, modules: set[str]) -> str | None:
    """The known module `name` refers to (a module, or the module holding the name)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@cache
def source_graph() -> Graph:
    """Module -> the lake modules it imports."""
    files = module_files()
    graph: Graph = {}
    for module, path in files.items():
        found = {resolve(name, set(files)) for name in imported_names(module, path)
                 if name == ROOT or name.startswith(f"{ROOT}.")}
        # The root package's `__init__` is empty; `from lake_assets import x` reaches `x`.
        graph[module] = {m for m in found if m and m not in (module, ROOT)}
    return graph


def container(module: str) -> tuple[int, str]:
    """The layer rank and container of `module`."""
    for rank, row in enumerate(LAYERS):
        for name in row:
            if module == name or module.startswith(f"{name}."):
                return rank, name
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS")


def violations(graph: Graph) -> list[str]:
    """Imports that climb a layer, cross to an independent sibling, or reach a private module
    of another package."""
    found = []
    for importer, targets in graph.items():
        if importer == ROOT:
            continue
        rank, home = container(importer)
        for target in sorted(targets):
            their_rank, theirs = container(target)
            if their_rank < rank:
                found.append(f"{importer} imports {target}, a layer above it")
            elif their_rank == rank and theirs != home:
                found.append(f"{importer} imports {target}, an independent sibling")
            owner, _, leaf = target.rpartition(".")
            inside = importer == owner or importer.startswith(f"{owner}.")
            if leaf.startswith("_") and not leaf.startswith("__") and not inside:
                found.append(f"{importer} imports {target}, private to {owner}")
    return found


def cycle(graph: Graph) -> list[str]:
    """One import cycle of `graph` as a list of modules, or [] when there is none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return []


def test_every_package_folder_is_installed() -> None:
    declared = set(package_folders())
    for top in (PROJECT_ROOT / ROOT, PROJECT_ROOT / "resources"):
        for init in top.rglob("__init__.py"):
            relative = init.parent.relative_to(PROJECT_ROOT)
            name = ".".join(relative.parts).replace("resources", f"{ROOT}.resources", 1) \
                if relative.parts[0] == "resources" else ".".join(relative.parts)
            assert name in declared, f"{relative} is not in pyproject.toml's packages"


def test_imports_point_down_the_layers() -> None:
    assert violations(source_graph()) == []


def test_no_module_imports_itself_back() -> None:
    assert cycle(source_graph()) == []


def test_a_reversed_import_or_a_cycle_is_caught() -> None:
    reversed_ = {m: set(t) for m, t in source_graph().items()}
    reversed_["lake_assets.catalog.models"].add("lake_assets.factory.bronze")
    reversed_["lake_assets.ingest.read"].add("lake_assets.storage.delta._files")
    assert violations(reversed_) == [
        "lake_assets.catalog.models imports lake_assets.factory.bronze, a layer above it",
        "lake_assets.ingest.read imports lake_assets.storage.delta._files, a layer above it",
        "lake_assets.ingest.read imports lake_assets.storage.delta._files, private to "
        "lake_assets.storage.delta",
    ]
    looped = {m: set(t) for m, t in source_graph().items()}
    looped["lake_assets.ingest.records"].add("lake_assets.ingest.read")
    assert {"lake_assets.ingest.records", "lake_assets.ingest.read"} <= set(cycle(looped))


def test_dagster_stays_in_the_dagster_layers() -> None:
    allowed = {name for row in DAGSTER_LAYERS for name in row}
    offenders = [
        module for module, path in module_files().items()
        if module != ROOT and container(module)[1] not in allowed
        and any(n.split(".")[0].startswith("dagster") for n in imported_names(module, path))
    ]
    assert offenders == []


def test_executor_modules_do_not_import_dagster() -> None:
    probe = ("import sys, lake_assets.storage.batch; "
             "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip() == "[]"
