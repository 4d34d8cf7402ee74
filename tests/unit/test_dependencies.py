"""Every package the code imports is declared in pyproject.toml: the product's imports as
dependencies, the tests' and benchmarks' as dependencies or in the dev extra."""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from tests.conftest import PROJECT_ROOT
from tests.unit.test_layers import imported_names, module_files

OWN = {"lake_assets", "tests", "benchmarks"}


def declared(*groups: str) -> set[str]:
    """Normalised distribution names of the dependency groups (`main` or an extra)."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    found = set()
    for group in groups:
        specs = project["dependencies"] if group == "main" else \
            project["optional-dependencies"][group]
        found.update(_normal(re.split(r"[\s<>=!~\[;]", spec, maxsplit=1)[0]) for spec in specs)
    return found


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions_imported(files: dict[str, Path]) -> dict[str, str]:
    """Distribution -> one module that imports it, for every third-party import in `files`."""
    owners = importlib.metadata.packages_distributions()
    found: dict[str, str] = {}
    for module, path in files.items():
        for name in imported_names(module, path):
            top = name.split(".")[0]
            if not top or top in OWN or top in sys.stdlib_module_names or top == "__future__":
                continue
            for distribution in owners.get(top, [top]):
                found.setdefault(_normal(distribution), module)
    return found


def test_the_product_declares_what_it_imports() -> None:
    missing = {d: m for d, m in distributions_imported(module_files()).items()
               if d not in declared("main")}
    assert missing == {}


# Runs in the virtualenv `benchmarks.jvm_delta` makes (pyspark 4.1.1 + delta-spark), which
# pins what it installs itself; delta-spark cannot load into the project's Spark.
OWN_VIRTUALENV = {"benchmarks.jvm_delta_job"}


def test_tests_and_benchmarks_declare_what_they_import() -> None:
    files = {
        ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts): path
        for folder in ("tests", "benchmarks") for path in (PROJECT_ROOT / folder).rglob("*.py")
    }
    files = {k: v for k, v in files.items() if k not in OWN_VIRTUALENV}
    missing = {d: m for d, m in distributions_imported(files).items()
               if d not in declared("main", "dev")}
    assert missing == {}
