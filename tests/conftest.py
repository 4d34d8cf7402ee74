"""Fixtures shared by every test folder: the project's metadata, copied so tests can break it."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from lake_assets.factory.partitions import daily_partitions

if TYPE_CHECKING:
    import dagster as dg

PROJECT_ROOT = Path(__file__).resolve().parents[1]
METADATA = PROJECT_ROOT / "metadata"
DEV_SECRETS = PROJECT_ROOT / "dev.secrets"
# The days of assets that tests build without `build_definitions`.
DAILY = daily_partitions("2026-01-01")


def project_instance() -> AbstractContextManager[dg.DagsterInstance]:
    """A temporary Dagster instance with the storage that the project's dagster.yaml names."""
    import dagster as dg

    storage = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())["storage"]
    return dg.instance_for_test(overrides={"storage": storage})


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test gets its own lake root and the development secrets."""
    monkeypatch.setenv("LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.delenv("LANDING_ROOT", raising=False)
    monkeypatch.delenv("LAKE_METADATA", raising=False)
    monkeypatch.delenv("LAKE_UPSTREAM", raising=False)
    monkeypatch.setenv("LAKE_SECRETS_FILE", str(DEV_SECRETS))
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture
def metadata_copy(tmp_path: Path) -> Path:
    """A private copy of `metadata/` that a test may edit."""
    target = tmp_path / "metadata"
    shutil.copytree(METADATA, target)
    return target


EditFn = Callable[[str, Callable[[dict[str, Any]], None]], None]


@pytest.fixture
def edit_yaml(metadata_copy: Path) -> EditFn:
    """Edit one YAML file of the metadata copy through a function on its parsed data."""

    def edit(relative: str, change: Callable[[dict[str, Any]], None]) -> None:
        path = metadata_copy / relative
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    return edit


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The one local Spark session of the test process: `local[2]`, UTC, UI off.

    pyspark is imported inside, so tests without Spark never load it.
    """
    from lake_assets.storage.delta import register
    from lake_assets.storage.spark import build_session

    session = build_session(
        master="local[2]",
        app_name="lakehouse-tests",
        conf={
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.driver.memory": "1g",
            "spark.python.worker.reuse": "true",
        },
        ui_enabled=False,
    )
    register(session)
    yield session
    session.stop()
