"""A throwaway PostgreSQL server (Debian's binaries) for the instance storage tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lake_assets.stack import postgres_binaries, start_postgres, stop
from lake_assets.stack.services import create_database, remove_postgres_data


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """A PostgreSQL server on a free loopback port: (port, URL template with `{db}`)."""
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL server binaries are missing (apt-get install postgresql; "
                    "`make system` does it as root)")
    directory = tmp_path_factory.mktemp("postgres")
    server, url = start_postgres(directory, settings={"fsync": "off"}, databases=())
    try:
        yield server.port or 0, url
    finally:
        stop(server)
        remove_postgres_data(directory)


@pytest.fixture
def postgres_url(postgres: tuple[int, str], request: pytest.FixtureRequest) -> str:
    """A fresh database on the session's server, for one test."""
    port, url = postgres
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    create_database(port, name)
    return url.format(db=name)


def write_settings(home: Path, storage: dict | None = None) -> None:
    """The project's dagster.yaml in `home`, or with its `storage` replaced."""
    import yaml

    from tests.conftest import PROJECT_ROOT

    settings = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    settings["storage"] = storage or settings["storage"]
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
